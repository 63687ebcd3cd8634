//! Any key/value pairs as handler options and service-test options.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slack_alert_handler::options::{HandlerOptions, TestOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(String, String)> = text
        .split('\n')
        .map(|line| match line.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (line.to_string(), String::new()),
        })
        .collect();
    let _ = HandlerOptions::parse(&pairs);
    let _ = TestOptions::parse(&pairs);
});
