//! Any storm (lines of any message, id and level, any times and counts)
//! with any options drawn into Slack's payload: a storm message the host
//! cannot make Slack refuse. The body must stay valid JSON within Slack's
//! limits, and its preview must hide the token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slack_alert_handler::config::Config;
use slack_alert_handler::event::{AlertEvent, Level};
use slack_alert_handler::handler;
use slack_alert_handler::storm::{Storm, StormLine};

const CONFIG: &str = r##"[[slack]]
enabled = true
default = true
workspace = "alerts"
url = "https://slack.com/api/chat.postMessage"
token = "xoxb-fuzz"
channel = "#alerts"
actions = "acknowledge,silence"
layout = "blocks"
"##;

const LEVELS: [Level; 4] = [Level::Ok, Level::Info, Level::Warning, Level::Critical];

fuzz_target!(|data: &[u8]| {
    let Ok(config) = Config::parse(CONFIG) else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{0}');
    let head = parts.next().unwrap_or_default();
    let options: Vec<(String, String)> = head
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let number = |i: usize| i64::from(*data.get(i).unwrap_or(&0)) * 97;
    let lines: Vec<StormLine> = parts
        .enumerate()
        .map(|(i, message)| {
            let mut event = AlertEvent::with_message(message, LEVELS[i % 4]);
            event.id = message.chars().rev().take(40).collect();
            event.context = vec![("labels.instance".into(), message.chars().take(60).collect())];
            StormLine {
                event,
                since: number(i),
                silenced_until: (i % 3 == 0).then(|| number(i + 1)),
            }
        })
        .collect();
    let storm = Storm {
        key: head.chars().take(100).collect(),
        started: number(0),
        now: number(1) * 1000,
        closed: data.len() % 2 == 0,
        group_labels: vec![("alertname".into(), head.chars().take(30).collect())],
        common_labels: Vec::new(),
        firing: vec![(Level::Critical, lines.len() as u32)],
        resolved: data.len() as u32,
        total: u32::MAX - (data.len() as u32),
        more: data.first().copied().unwrap_or(0).into(),
        lines,
    };
    if let Ok(prepared) = handler::prepare_storm(&config, &storm, &options) {
        let body: serde_json::Value =
            serde_json::from_slice(&prepared.request.body).expect("the body is JSON");
        slack_alert_handler::payload::limits::check(&body).expect("within Slack's limits");
        let preview = prepared.request.preview();
        assert!(!format!("{preview:?}").contains("xoxb-fuzz"));
    }
});
