//! Any status, Retry-After and body as Slack's answer: classified, never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slack_alert_handler::response::classify;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let status = u16::from_le_bytes([data[0], data[1]]) % 600;
    let split = (data[2] as usize).min(data.len() - 4);
    let retry_after = String::from_utf8_lossy(&data[4..4 + split]).into_owned();
    let body = &data[4 + split..];
    let _ = classify(status, Some(&retry_after), body, data[3] & 1 == 1);
    let _ = classify(status, None, body, false);
});
