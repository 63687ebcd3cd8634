//! Any text as an interaction: as Slack's `block_actions` payload (the JSON
//! inside the Request URL's form, or inside a Socket Mode envelope), as a
//! Socket Mode message, and as a whole unsigned request. Reading must give
//! a click, or say why not, never panic; a click names its alert, user and
//! message; an envelope is acknowledged with its own id; nothing unsigned
//! is ever acted on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slack_alert_handler::config::Config;
use slack_alert_handler::interaction::{self, Outcome};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(text) {
        match interaction::from_payload(&value) {
            Ok(click) => {
                assert!(!click.user.is_empty() && !click.channel_id.is_empty() && !click.ts.is_empty());
                assert_eq!(click.alert, value["actions"][0]["value"].as_str().unwrap());
            }
            Err(why) => assert!(!why.is_empty(), "a refusal says why"),
        }
    }
    let config = Config::parse(
        "[[slack]]\nenabled = true\nurl = \"https://slack.com/api/chat.postMessage\"\ntoken = \"xoxb-1\"\nsigning-secret = \"s\"\n",
    )
    .expect("the fuzz configuration parses");
    let answer = interaction::socket_message(&config, text);
    if let Some(reply) = &answer.reply {
        let reply: serde_json::Value = serde_json::from_str(reply).expect("the reply is JSON");
        let sent: serde_json::Value = serde_json::from_str(text).expect("an envelope is JSON");
        assert_eq!(reply["envelope_id"], sent["envelope_id"], "acknowledged with its own id");
    }
    let headers = [("X-Slack-Request-Timestamp".to_string(), "1764460800".to_string())];
    assert!(
        matches!(
            interaction::read(&config, &headers, data, 1_764_460_800),
            Outcome::Refuse(_)
        ),
        "nothing unsigned is acted on"
    );
});
