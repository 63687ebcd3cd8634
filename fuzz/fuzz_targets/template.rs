//! Any templates, in any layout, over any alert: rendering never panics or
//! traps, and the body is valid JSON within Slack's limits (a template that
//! fails falls back to the default, never losing the alert).
#![no_main]

use libfuzzer_sys::fuzz_target;
use slack_alert_handler::config::Config;
use slack_alert_handler::event::{AlertEvent, FieldValue, Level};
use slack_alert_handler::{handler, payload};

const CONFIG: &str = r##"[[slack]]
enabled = true
default = true
workspace = "alerts"
url = "https://slack.com/api/chat.postMessage"
token = "xoxb-fuzz"
channel = "#alerts"
mention = "here,U024BE7LH"
"##;

/// The keys a template or setting is fuzzed for, in input order.
const KEYS: [&str; 8] = [
    "title", "text", "pretext", "footer", "color", "title-link", "fields", "mention-levels",
];

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::parse(CONFIG) else {
        return;
    };
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\u{0}');
    let message = parts.next().unwrap_or_default();
    let layout = ["kapacitor", "attachment", "blocks"][usize::from(selector % 3)];
    let level = [Level::Ok, Level::Info, Level::Warning, Level::Critical][usize::from(selector / 3 % 4)];
    let mut options = vec![("layout".to_string(), layout.to_string())];
    for (key, value) in KEYS.iter().zip(parts.by_ref()) {
        options.push((key.to_string(), value.to_string()));
    }
    let mut event = AlertEvent::with_message(message, level);
    event.id = message.chars().take(300).collect();
    // The rest of the input becomes tags and fields, a few of them large.
    for (i, piece) in parts.enumerate() {
        event.tags.push((format!("t{i}"), piece.repeat(1 + usize::from(selector) * 10)));
        event.fields.push((piece.to_string(), FieldValue::Float(i as f64 / 3.0)));
    }
    if let Ok(prepared) = handler::prepare_alert(&config, &event, &options) {
        let body: serde_json::Value =
            serde_json::from_slice(&prepared.request.body).expect("the body is JSON");
        payload::limits::check(&body).expect("within Slack's limits");
    }
});
