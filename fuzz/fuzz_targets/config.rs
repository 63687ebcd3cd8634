//! Any text as a configuration: an error or a configuration, never a panic,
//! and never an error that quotes a token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slack_alert_handler::config::Config;
use slack_alert_handler::handler;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(config) => {
            let _ = handler::summary(&config);
            let _ = config.select("");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
