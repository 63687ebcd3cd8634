//! Any text as Alertmanager's webhook payload: decoding must give alerts or
//! an error, never a panic, and every alert it gives must decode as
//! Kapacitor's alert JSON (the event JSON it writes is always valid), with
//! as many alerts as the payload's `alerts` list holds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slack_alert_handler::alert_json;
use slack_alert_handler::alertmanager::{self, Levels};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match alertmanager::decode(text, &Levels::default()) {
        Err(e) => assert!(!e.is_empty(), "an error says what is wrong"),
        Ok(hook) => {
            let payload: serde_json::Value = serde_json::from_str(text).expect("it decoded");
            assert_eq!(
                Some(hook.alerts.len()),
                payload["alerts"].as_array().map(Vec::len),
                "one event per alert"
            );
            for alert in &hook.alerts {
                if let Err(e) = alert_json::decode(alert) {
                    panic!("the event written does not decode: {e}\n{alert}");
                }
            }
        }
    }
});
