//! The component in wasmtime against the Slack stand-in: what is delivered,
//! and every error a user can cause or Slack can answer. After each error
//! the same instance must still work (nothing trapped).

use crate::common::pki;

use crate::common::{
    configured, event, instance, options, runtime, web_api_config, webhook_config,
};
use alert_handler_host::{HandlerError, Instance, Level};
use host_test::mock_slack::{MockSlack, Reply};
use serde_json::json;

fn still_works(plugin: &mut Instance, slack: &MockSlack) {
    let before = slack.requests().len();
    plugin
        .handle_alert(&event("after the error", Level::Ok), &[])
        .expect("no trap")
        .expect("the same instance still delivers");
    assert_eq!(slack.requests().len(), before + 1);
}

fn send(
    plugin: &mut Instance,
    opts: &[(&str, &str)],
) -> Result<alert_handler_host::Delivery, HandlerError> {
    plugin
        .handle_alert(
            &event("Hey, check your CPU", Level::Warning),
            &options(opts),
        )
        .expect("no trap")
}

#[test]
fn web_api_delivery_returns_channel_id_and_ts() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    let d = send(&mut plugin, &[("iconEmoji", ":fire:")]).unwrap();
    assert_eq!(
        (d.workspace.as_str(), d.channel.as_str()),
        ("alerts", "#alerts")
    );
    assert_eq!(d.channel_id.as_deref(), Some("CALERTS"));
    assert_eq!(d.ts.as_deref(), Some("1700000000.000001"));
    let got = &slack.requests()[0];
    assert_eq!(got.header("authorization"), Some("Bearer xoxb-test-token"));
    assert_eq!(got.json()["icon_emoji"], ":fire:");
    assert_eq!(got.json()["attachments"][0]["color"], "warning");
}

#[test]
fn slack_warnings_come_back_with_the_delivery() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    slack.push_reply(Reply::json(
        200,
        json!({"ok": true, "channel": "C1", "ts": "1.2", "warning": "missing_charset",
               "response_metadata": {"warnings": ["missing_charset"]}}),
    ));
    let d = send(&mut plugin, &[]).unwrap();
    assert_eq!(d.warnings, ["missing_charset"]);
}

#[test]
fn webhook_delivery_without_token() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&webhook_config(&slack));
    let d = send(&mut plugin, &[]).unwrap();
    assert_eq!(
        (d.channel.as_str(), d.channel_id.clone(), d.ts.clone()),
        ("#hooks", None, None)
    );
    let got = &slack.requests()[0];
    assert_eq!(got.path, "/services/T000/B000/XXXXXXXX");
    assert_eq!(got.header("authorization"), None);
}

#[test]
fn web_api_without_a_token_is_rejected_as_not_authed() {
    let slack = MockSlack::start().unwrap();
    let config = web_api_config(&slack).replace("token = \"xoxb-test-token\"\n", "");
    let (mut plugin, _) = configured(&config);
    match send(&mut plugin, &[]) {
        Err(HandlerError::SlackRejected(r)) => {
            assert_eq!((r.status, r.code.as_str()), (200, "not_authed"));
        }
        other => panic!("expected slack-rejected, got {other:?}"),
    }
    assert_eq!(slack.requests()[0].header("authorization"), None);
}

#[test]
fn ok_false_at_200_is_an_error_not_a_delivery() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    slack.push_reply(Reply::json(
        200,
        json!({"ok": false, "error": "channel_not_found"}),
    ));
    match send(&mut plugin, &[("channel", "#nope")]) {
        Err(HandlerError::SlackRejected(r)) => {
            assert_eq!((r.status, r.code.as_str()), (200, "channel_not_found"));
            assert!(
                r.message.contains("channel does not exist"),
                "{}",
                r.message
            );
        }
        other => panic!("expected slack-rejected, got {other:?}"),
    }
    still_works(&mut plugin, &slack);
}

#[test]
fn webhook_text_errors_are_errors() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&webhook_config(&slack));
    for (status, code) in [
        (400, "invalid_payload"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
        (403, "action_prohibited"),
    ] {
        slack.push_reply(Reply::text(status, code));
        match send(&mut plugin, &[]) {
            Err(HandlerError::SlackRejected(r)) => {
                assert_eq!((r.status, r.code.as_str()), (status, code))
            }
            other => panic!("{status} {code}: expected slack-rejected, got {other:?}"),
        }
    }
    still_works(&mut plugin, &slack);
}

#[test]
fn rate_limit_is_transient_with_retry_after() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    slack.push_reply(
        Reply::json(
            429,
            json!({"ok": false, "error": "rate_limited", "retry_after": 30}),
        )
        .with_header("retry-after", "30"),
    );
    match send(&mut plugin, &[]) {
        Err(HandlerError::Transient(t)) => {
            assert_eq!(
                (t.status, t.code.as_str(), t.retry_after_seconds),
                (Some(429), "rate_limited", Some(30))
            );
        }
        other => panic!("expected transient, got {other:?}"),
    }
    still_works(&mut plugin, &slack);
}

#[test]
fn server_errors_are_transient() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&webhook_config(&slack));
    slack.push_reply(Reply::text(503, "<html>unavailable</html>"));
    match send(&mut plugin, &[]) {
        Err(HandlerError::Transient(t)) => {
            assert_eq!((t.status, t.retry_after_seconds), (Some(503), None))
        }
        other => panic!("expected transient, got {other:?}"),
    }
}

#[test]
fn connection_refused_is_a_transport_error() {
    // Bind then drop a listener: nothing listens on that port any more.
    let port = crate::common::free_port();
    let (mut plugin, _) = configured(&format!(
        "[slack]\nenabled = true\nurl = \"http://127.0.0.1:{port}/services/T/B/SECRETPATH\"\n"
    ));
    match send(&mut plugin, &[]) {
        Err(HandlerError::Transport(m)) => {
            assert!(m.contains("connection refused"), "{m}");
            assert!(m.contains(&format!("127.0.0.1:{port}")), "{m}");
            assert!(!m.contains("SECRETPATH"), "{m}");
        }
        other => panic!("expected transport, got {other:?}"),
    }
}

#[test]
fn a_forty_thousand_character_message_is_delivered() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    let text: String = "0123456789".repeat(4_000);
    plugin
        .handle_alert(&event(&text, Level::Critical), &[])
        .expect("no trap")
        .expect("delivered");
    let got = slack.requests()[0].json();
    assert_eq!(
        got["attachments"][0]["text"].as_str().map(str::len),
        Some(40_000)
    );
    assert_eq!(
        got["attachments"][0]["fallback"].as_str().map(str::len),
        Some(40_000)
    );
    still_works(&mut plugin, &slack);
}

#[test]
fn a_one_megabyte_message_is_cut_to_slacks_limit_with_a_marker_and_a_warning() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    let text: String = "ünïcode ".repeat(131_072);
    let delivery = plugin
        .handle_alert(&event(&text, Level::Critical), &[])
        .expect("no trap")
        .expect("delivered");
    assert_eq!(delivery.warnings, ["handler_truncated_message"]);
    let got = slack.requests()[0].json();
    let sent = got["attachments"][0]["text"].as_str().unwrap();
    assert_eq!(sent.chars().count(), 40_000);
    assert!(
        sent.ends_with("… [message truncated by slack-alert-handler: it had 1048576 characters, Slack takes 40000]"),
        "{}",
        &sent[sent.len() - 120..]
    );
    assert_eq!(got["attachments"][0]["fallback"].as_str(), Some(sent));
    // The dry run shows the same cut.
    let preview = plugin
        .preview_alert(&event(&text, Level::Critical), &[])
        .unwrap()
        .unwrap();
    assert!(preview
        .body
        .contains("[message truncated by slack-alert-handler"));
    still_works(&mut plugin, &slack);
}

#[test]
fn a_message_of_multibyte_characters_is_delivered_whole() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    let text: String = "🔥é<&>".repeat(8_000); // 40,000 characters: the limit
    plugin
        .handle_alert(&event(&text, Level::Critical), &[])
        .unwrap()
        .unwrap();
    assert_eq!(
        slack.requests()[0].json()["attachments"][0]["text"],
        text.as_str()
    );
}

#[test]
fn unknown_option_is_an_error_and_nothing_is_sent() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    match send(&mut plugin, &[("icon_emoji", ":x:")]) {
        Err(HandlerError::UnknownOption(m)) => assert!(
            m.contains("`icon_emoji`") && m.contains("icon-emoji"),
            "{m}"
        ),
        other => panic!("expected unknown-option, got {other:?}"),
    }
    assert!(slack.requests().is_empty());
    still_works(&mut plugin, &slack);
}

#[test]
fn unknown_workspace_is_an_error() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    let e = send(&mut plugin, &[("workspace", "nope")]).unwrap_err();
    assert!(
        matches!(e, HandlerError::WorkspaceNotFound(ref id) if id == "nope"),
        "{e:?}"
    );
    assert!(slack.requests().is_empty());
}

#[test]
fn disabled_workspace_is_an_error() {
    let slack = MockSlack::start().unwrap();
    let config = format!(
        "{}\n[[slack]]\nenabled = false\nworkspace = \"off\"\nurl = \"{}/api/chat.postMessage\"\n",
        web_api_config(&slack),
        slack.url()
    );
    let (mut plugin, _) = configured(&config);
    let e = send(&mut plugin, &[("workspace", "off")]).unwrap_err();
    assert!(
        matches!(e, HandlerError::WorkspaceDisabled(ref id) if id == "off"),
        "{e:?}"
    );
    assert!(slack.requests().is_empty());
}

#[test]
fn invalid_config_is_refused_and_names_key_and_section() {
    let mut plugin = instance();
    let refused = plugin
        .configure("[[slack]]\ndefault = true\nworkspace = \"a\"\nicon_emoji = \":x:\"\n[[slack]]\nworkspace = \"a\"\n")
        .unwrap();
    match refused {
        Err(HandlerError::InvalidConfig(m)) => {
            assert!(
                m.contains("line 4, [[slack]] #1 (workspace \"a\"): unknown key `icon_emoji`"),
                "{m}"
            );
            assert!(m.contains("duplicate workspace id \"a\""), "{m}");
        }
        other => panic!("expected invalid-config, got {other:?}"),
    }
}

#[test]
fn unconfigured_instance_says_how_to_configure_it() {
    let mut plugin = instance();
    match plugin.handle_alert(&event("x", Level::Ok), &[]).unwrap() {
        Err(HandlerError::NotConfigured(m)) => assert!(m.contains("SLACK_HANDLER_CONFIG"), "{m}"),
        other => panic!("expected not-configured, got {other:?}"),
    }
}

#[test]
fn unconfigured_instance_reads_its_configuration_from_the_environment() {
    let slack = MockSlack::start().unwrap();
    let wasi = wasmtime_wasi::WasiCtx::builder()
        .env("SLACK_HANDLER_CONFIG", web_api_config(&slack))
        .build();
    let mut plugin = runtime().instantiate_with(wasi).unwrap();
    let d = plugin
        .handle_alert(&event("from env", Level::Critical), &[])
        .unwrap()
        .unwrap();
    assert_eq!(d.workspace, "alerts");
    assert_eq!(slack.requests().len(), 1);
}

#[test]
fn unconfigured_instance_reads_slack_toml_from_a_preopened_dir() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slack.toml"), webhook_config(&slack)).unwrap();
    let mut wasi = wasmtime_wasi::WasiCtx::builder();
    wasi.preopened_dir(dir.path(), ".", wasmtime_wasi::FsPerms::ReadOnly)
        .unwrap();
    let wasi = wasi.build();
    let mut plugin = runtime().instantiate_with(wasi).unwrap();
    plugin
        .handle_alert(&event("from a file", Level::Info), &[])
        .unwrap()
        .unwrap();
    assert_eq!(slack.requests()[0].path, "/services/T000/B000/XXXXXXXX");
}

#[test]
fn dry_run_shows_the_request_without_secrets_and_sends_nothing() {
    let slack = MockSlack::start().unwrap();
    let config = format!(
        "[slack]\nenabled = true\nurl = \"{}/services/T0/B0/SECRETPATH\"\ntoken = \"xoxb-SECRET\"\nchannel = \"#c\"\n",
        slack.url()
    );
    let (mut plugin, _) = configured(&config);
    let r = plugin
        .preview_alert(&event("m", Level::Critical), &[])
        .unwrap()
        .unwrap();
    assert_eq!(r.method, "POST");
    assert_eq!(r.url, format!("{}/[redacted]", slack.url()));
    assert!(r
        .headers
        .contains(&("authorization".into(), "Bearer [redacted]".into())));
    assert!(r
        .headers
        .contains(&("content-type".into(), "application/json".into())));
    assert!(!format!("{r:?}").contains("SECRET"));
    let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(body["channel"], "#c");
    assert!(slack.requests().is_empty());
}

#[test]
fn summary_tells_the_host_endpoints_and_tls_but_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("CA");
    let leaf = ca.leaf(&["client"]);
    let ca_path = pki::write(dir.path(), "ca.pem", &ca.pem);
    let cert = pki::write(dir.path(), "c.pem", &leaf.cert_pem);
    let key = pki::write(dir.path(), "k.pem", &leaf.key_pem);
    let config = format!(
        r#"[[slack]]
enabled = true
default = true
global = true
state-changes-only = true
workspace = "a"
url = "https://hooks.slack.com:8443/services/T/B/SECRETPATH"
ssl-ca = "{}"
ssl-cert = "{}"
ssl-key = "{}"
[[slack]]
enabled = false
workspace = "b"
insecure-skip-verify = true
"#,
        ca_path.display(),
        cert.display(),
        key.display()
    );
    let (_, summary) = configured(&config);
    assert_eq!(summary.kind, "slack");
    let a = &summary.workspaces[0];
    assert!(a.enabled && a.is_default && a.global && a.state_changes_only);
    let endpoint = a.endpoint.as_ref().unwrap();
    assert_eq!(
        (endpoint.scheme.as_str(), endpoint.authority.as_str()),
        ("https", "hooks.slack.com:8443")
    );
    assert_eq!(a.tls.ssl_ca.as_deref(), ca_path.to_str());
    assert_eq!(a.tls.ssl_cert.as_deref(), cert.to_str());
    assert_eq!(a.tls.ssl_key.as_deref(), key.to_str());
    let b = &summary.workspaces[1];
    assert!(!b.enabled && !b.is_default && b.endpoint.is_none() && b.tls.insecure_skip_verify);
    assert!(!format!("{summary:?}").contains("SECRETPATH"));
}

#[test]
fn service_test_sends_kapacitors_test_message() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    let defaults = plugin.service_test_options().unwrap();
    assert!(defaults.contains(&("message".into(), "test slack message".into())));
    assert!(defaults.contains(&("level".into(), "CRITICAL".into())));
    plugin.service_test(&[]).unwrap().unwrap();
    plugin
        .service_test(&options(&[
            ("channel", "#other"),
            ("message", "hello"),
            ("level", "OK"),
        ]))
        .unwrap()
        .unwrap();
    let got = slack.requests();
    assert_eq!(
        got[0].json()["attachments"][0]["text"],
        "test slack message"
    );
    assert_eq!(got[0].json()["attachments"][0]["color"], "danger");
    assert_eq!(got[1].json()["channel"], "#other");
    assert_eq!(got[1].json()["attachments"][0]["color"], "good");
    match plugin.service_test(&options(&[("level", "LOUD")])).unwrap() {
        Err(HandlerError::InvalidOption(m)) => assert!(m.contains("LOUD"), "{m}"),
        other => panic!("expected invalid-option, got {other:?}"),
    }
}

#[test]
fn reconfiguring_replaces_the_configuration() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    plugin.configure(&webhook_config(&slack)).unwrap().unwrap();
    send(&mut plugin, &[]).unwrap();
    assert_eq!(slack.requests()[0].path, "/services/T000/B000/XXXXXXXX");
}

#[test]
fn no_error_carries_the_token_or_the_webhook_path() {
    const TOKEN: &str = "xoxb-DISTINCTIVE-TOKEN-4242";
    const PATH: &str = "B0DISTINCTIVEWEBHOOKPATH";
    let slack = MockSlack::start().unwrap();
    let port = crate::common::free_port();
    let config = format!(
        r##"[[slack]]
enabled = true
default = true
workspace = "api"
url = "{0}/api/chat.postMessage"
token = "{TOKEN}"
channel = "#a"
[[slack]]
enabled = true
workspace = "hook"
url = "{0}/services/T0/{PATH}"
[[slack]]
enabled = true
workspace = "down"
url = "http://127.0.0.1:{port}/services/T0/{PATH}"
token = "{TOKEN}"
"##,
        slack.url()
    );
    let (mut plugin, summary) = configured(&config);
    let mut seen = vec![format!("{summary:?}")];
    let mut outcome = |plugin: &mut Instance, opts: &[(&str, &str)]| {
        let r = plugin
            .handle_alert(&event("m", Level::Critical), &options(opts))
            .expect("no trap");
        seen.push(format!("{r:?}"));
        if let Err(e) = r {
            seen.push(e.describe());
            seen.push(host_test::report::error_json(&e).to_string());
        }
        seen.push(format!(
            "{:?}",
            plugin
                .preview_alert(&event("m", Level::Ok), &options(opts))
                .unwrap()
        ));
    };
    for reply in [
        Reply::json(200, json!({"ok": false, "error": "invalid_auth"})),
        Reply::json(429, json!({"ok": false, "error": "rate_limited"}))
            .with_header("retry-after", "1"),
        Reply::text(503, "<html>down</html>"),
    ] {
        slack.push_reply(reply);
        outcome(&mut plugin, &[]);
    }
    slack.push_reply(Reply::text(404, "channel_not_found"));
    outcome(&mut plugin, &[("workspace", "hook")]);
    outcome(&mut plugin, &[("workspace", "down")]);
    outcome(&mut plugin, &[("workspace", "nope")]);
    outcome(&mut plugin, &[("bogus", TOKEN)]);
    let refused = instance()
        .configure(&format!(
            "[slack]\ntoken = \"{TOKEN}\nurl = \"ftp://x/{PATH}\"\n"
        ))
        .unwrap();
    seen.push(format!("{refused:?}"));
    let refused = instance()
        .configure(&format!("[slack]\nurl = \"ftp://x/{PATH}\"\n"))
        .unwrap();
    seen.push(format!("{refused:?}"));

    for text in &seen {
        assert!(!text.contains("DISTINCTIVE"), "a secret leaked: {text}");
    }
    assert!(seen.len() > 20);
}
