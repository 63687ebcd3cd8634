//! Kapacitor's own server tests for the Slack handler, run against the real
//! component in wasmtime and the Slack stand-in over loopback.

use crate::common::{configured, event, options};
use alert_handler_host::Level;
use host_test::mock_slack::MockSlack;
use serde_json::json;

#[test]
fn oracle_one_section_with_a_channel_option() {
    let slack = MockSlack::start().unwrap();
    let config = format!(
        "[[slack]]\nenabled = true\ndefault = true\nurl = \"{}/test/slack/url\"\nusername = \"kapacitor\"\n",
        slack.url()
    );
    let (mut plugin, _) = configured(&config);
    let delivery = plugin
        .handle_alert(
            &event("message", Level::Critical),
            &options(&[("channel", "#test")]),
        )
        .unwrap()
        .unwrap();
    assert_eq!(delivery.channel, "#test");

    let got = slack.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].method.as_str(), got[0].path.as_str()),
        ("POST", "/test/slack/url")
    );
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert_eq!(got[0].header("authorization"), None);
    assert_eq!(
        got[0].json(),
        json!({"channel": "#test", "username": "kapacitor", "text": "", "icon_emoji": "",
               "attachments": [{"fallback": "message", "color": "danger", "text": "message", "mrkdwn_in": ["text"]}]})
    );
}

#[test]
fn oracle_two_sections_route_by_workspace_with_and_without_token() {
    // Kapacitor's test builds an unnamed default in code; from a file every
    // section of several needs an id (`id must not be empty`), so it has one.
    let slack = MockSlack::start().unwrap();
    let config = format!(
        r#"[[slack]]
enabled = true
default = true
workspace = "default"
url = "{0}/test/slack/url"
username = "kapacitor"

[[slack]]
enabled = true
workspace = "company_private"
url = "{0}/test/slack/url2"
token = "my_secret_token"
username = "kapacitor"
"#,
        slack.url()
    );
    let (mut plugin, _) = configured(&config);

    plugin
        .handle_alert(
            &event("message", Level::Critical),
            &options(&[("workspace", "company_private"), ("channel", "#alerts")]),
        )
        .unwrap()
        .unwrap();
    plugin
        .handle_alert(
            &event("message", Level::Critical),
            &options(&[("channel", "@jim")]),
        )
        .unwrap()
        .unwrap();

    let got = slack.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].path, "/test/slack/url2");
    assert_eq!(
        got[0].header("authorization"),
        Some("Bearer my_secret_token")
    );
    assert_eq!(got[0].json()["channel"], "#alerts");
    assert_eq!(got[1].path, "/test/slack/url");
    assert_eq!(got[1].header("authorization"), None);
    assert_eq!(got[1].json()["channel"], "@jim");
}
