//! Any message, level and options rendered into Slack's payload and its
//! redacted preview; the body must stay valid JSON within Slack's limits,
//! carrying the message (cut with a marker past Slack's 40,000 characters)
//! when no message setting of ours is used.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slack_alert_handler::config::Config;
use slack_alert_handler::event::{AlertEvent, Level};
use slack_alert_handler::{handler, payload, style};

const CONFIG: &str = r##"[[slack]]
enabled = true
default = true
workspace = "alerts"
url = "https://hooks.slack.com/services/T0/B0/SECRET"
token = "xoxb-fuzz"
channel = "#alerts"
"##;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::parse(CONFIG) else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    let (head, message) = text.split_once('\u{0}').unwrap_or(("", &text));
    let level = [Level::Ok, Level::Info, Level::Warning, Level::Critical][head.len() % 4];
    let options: Vec<(String, String)> = head
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let event = AlertEvent::with_message(message, level);
    // Our message settings change the body; without them it is Kapacitor's.
    let kapacitors = options.iter().all(|(k, _)| style::canonical(k).is_none());
    if let Ok(prepared) = handler::prepare_alert(&config, &event, &options) {
        let body: serde_json::Value =
            serde_json::from_slice(&prepared.request.body).expect("the body is JSON");
        payload::limits::check(&body).expect("within Slack's limits");
        if kapacitors {
            let expected = payload::truncate(message).unwrap_or_else(|| message.to_string());
            assert_eq!(body["attachments"][0]["text"], expected.as_str());
        }
        let preview = prepared.request.preview();
        assert!(!preview.url.contains("SECRET") && !format!("{preview:?}").contains("xoxb-fuzz"));
    }
});
