//! Any bytes as Kapacitor's alert JSON: decoding must give an event or an
//! error naming what is wrong, and a decoded event must render into a body
//! that is JSON carrying its message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slack_alert_handler::config::Config;
use slack_alert_handler::{alert_json, handler, payload};

const CONFIG: &str = r##"[[slack]]
enabled = true
default = true
url = "https://slack.com/api/chat.postMessage"
token = "xoxb-fuzz"
channel = "#alerts"
"##;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match alert_json::decode(text) {
        Err(e) => assert!(e.starts_with("alert JSON: "), "{e}"),
        Ok(event) => {
            let Ok(config) = Config::parse(CONFIG) else {
                return;
            };
            let prepared = handler::prepare_alert(&config, &event, &[]).expect("no options");
            let body: serde_json::Value =
                serde_json::from_slice(&prepared.request.body).expect("the body is JSON");
            let expected =
                payload::truncate(&event.message).unwrap_or_else(|| event.message.clone());
            assert_eq!(body["attachments"][0]["text"], expected.as_str());
        }
    }
});
