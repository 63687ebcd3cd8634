//! The component never traps: hostile configuration text, options and
//! messages get an error (or a delivery), and the instance keeps working.

use crate::common::{configured, event, instance, options, web_api_config};
use alert_handler_host::{HandlerError, Level};
use host_test::mock_slack::{MockSlack, Reply};

fn configure_refuses(text: &str) -> String {
    let mut plugin = instance();
    match plugin.configure(text).expect("configure must not trap") {
        Err(HandlerError::InvalidConfig(m)) => m,
        other => panic!("expected invalid-config, got {other:?}"),
    }
}

#[test]
fn deeply_nested_toml_is_an_error_not_a_stack_overflow() {
    let depth = 100_000;
    let text = format!("x = {}{}", "[".repeat(depth), "]".repeat(depth));
    let m = configure_refuses(&text);
    assert!(!m.is_empty());
    let text = format!("x = {}1{}", "{a = ".repeat(depth), "}".repeat(depth));
    configure_refuses(&text);
}

#[test]
fn ten_megabyte_configuration_is_handled() {
    let mut text =
        String::from("[slack]\nenabled = true\nurl = \"https://slack.com/api/chat.postMessage\"\n");
    text.push_str(&format!("channel = \"{}\"\n", "c".repeat(10 * 1024 * 1024)));
    let mut plugin = instance();
    let summary = plugin.configure(&text).expect("no trap").expect("accepted");
    assert_eq!(summary.workspaces.len(), 1);
}

#[test]
fn garbage_configurations_are_errors() {
    for text in [
        "\u{0}\u{1}\u{2}",
        "[[slack]\n",
        "slack = \"x\"",
        "[slack]\nurl = \"\\uD800\"",
        "[slack]\r\nenabled = yes",
        "🔥 = 1",
    ] {
        configure_refuses(text);
    }
}

#[test]
fn hostile_options_and_messages_do_not_trap() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    let long = "w".repeat(1_000_000);
    for opts in [
        vec![("workspace", long.as_str())],
        vec![("", "")],
        vec![("channel", "\u{0}")],
        vec![("workspace", "")],
    ] {
        let _ = plugin
            .handle_alert(&event("x", Level::Critical), &options(&opts))
            .expect("no trap");
    }
    let message = "\u{0}\"\\<>&".repeat(200_000);
    let d = plugin
        .handle_alert(&event(&message, Level::Critical), &[])
        .expect("no trap");
    assert!(d.is_ok(), "{d:?}");
}

#[test]
fn hostile_answers_do_not_trap() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for reply in [
        Reply::text(200, &nested),
        Reply::text(500, &"x".repeat(2 * 1024 * 1024)),
        Reply {
            status: 200,
            headers: vec![],
            body: vec![0xff, 0xfe, 0x00],
        },
        Reply::text(429, "").with_header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"),
    ] {
        slack.push_reply(reply);
        let _ = plugin
            .handle_alert(&event("x", Level::Critical), &[])
            .expect("no trap");
    }
    plugin
        .handle_alert(&event("still fine", Level::Ok), &[])
        .unwrap()
        .unwrap();
}
