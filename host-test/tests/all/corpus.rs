//! The bad-input corpus (`tests/corpus/` at the top of the repository): one
//! file per case with its expected outcome beside it in `NAME.expected`, as
//! `KIND: text the message must contain`. Configurations and options go to
//! the component in wasmtime; alerts and handler files to the CLI;
//! Alertmanager's webhook payloads to `serve`'s `POST /alertmanager` (the
//! kind is the status). Nothing may trap, and every error must name what is
//! wrong.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::server::{write_config, Server};
use crate::common::{event, instance, options, web_api_config};
use alert_handler_host::{HandlerError, Level};
use host_test::mock_slack::MockSlack;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/corpus")
        .canonicalize()
        .unwrap()
}

/// Every case of a category: (case file, expected kind, expected text).
fn cases(category: &str) -> Vec<(PathBuf, String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(corpus().join(category)).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "expected") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{} has no .expected", path.display()));
        let (kind, text) = expected.trim_end().split_once(": ").expect("KIND: text");
        found.push((path, kind.to_string(), text.to_string()));
    }
    found.sort();
    found
}

fn check(
    failures: &mut Vec<String>,
    case: &Path,
    kind: &str,
    text: &str,
    got_kind: &str,
    got: &str,
) {
    if got_kind != kind || !got.contains(text) {
        failures.push(format!(
            "{}: expected {kind}: {text}\n    got {got_kind}: {got}",
            case.display()
        ));
    }
}

fn finish(category: &str, count: usize, failures: Vec<String>) {
    assert!(count > 0, "no {category} cases");
    assert!(
        failures.is_empty(),
        "{} of {count} {category} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn bad_configurations_are_refused_with_a_named_error() {
    let mut failures = Vec::new();
    let cases = cases("config");
    for (path, kind, text) in &cases {
        let config = std::fs::read_to_string(path)
            .unwrap()
            .replace("{CORPUS}", corpus().to_str().unwrap());
        let mut plugin = instance();
        let answer = plugin.configure(&config).expect("configure must not trap");
        let (got_kind, got) = match &answer {
            Ok(_) => ("accepted", String::new()),
            Err(e) => (e.kind(), format!("{e:?}")),
        };
        let got = match &answer {
            Err(HandlerError::InvalidConfig(m)) => m.clone(),
            _ => got,
        };
        check(&mut failures, path, kind, text, got_kind, &got);
        assert!(!got.contains("xoxb-never-shown"), "a token leaked: {got}");
    }
    finish("config", cases.len(), failures);
}

#[test]
fn bad_options_get_a_named_error() {
    let slack = MockSlack::start().unwrap();
    let mut failures = Vec::new();
    let cases = cases("options");
    for (path, kind, text) in &cases {
        let pairs: Vec<(String, String)> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .expect("KEY=VALUE")
            })
            .collect();
        let (mut plugin, _) = crate::common::configured(&web_api_config(&slack));
        let answer = plugin
            .handle_alert(&event("x", Level::Critical), &pairs)
            .expect("no trap");
        let (got_kind, got) = match answer {
            Ok(d) => ("delivered", d.workspace),
            Err(HandlerError::UnknownOption(m)) => ("unknown-option", m),
            Err(HandlerError::WorkspaceNotFound(id)) => ("workspace-not-found", id),
            Err(e) => (e.kind(), format!("{e:?}")),
        };
        check(&mut failures, path, kind, text, got_kind, &got);
    }
    let _ = options(&[]);
    finish("options", cases.len(), failures);
}

fn cli(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bad_alerts_and_handler_files_are_refused_by_the_cli() {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kapacitor.conf");
    let good_alert =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/alerts/cpu-warning.json");
    let mut failures = Vec::new();
    let mut count = 0;
    for (category, flag) in [
        ("alert", "--alert"),
        ("handler", "--handler"),
        ("config-file", "--config"),
    ] {
        for (path, kind, text) in cases(category) {
            count += 1;
            let mut args = vec!["send", "--dry-run"];
            if flag != "--config" {
                args.extend(["--config", config.to_str().unwrap()]);
            }
            if flag != "--alert" {
                args.extend(["--alert", good_alert.to_str().unwrap()]);
            }
            args.extend([flag, path.to_str().unwrap()]);
            let (code, stderr) = cli(&args);
            let got_kind = if code == Some(2) { "input" } else { "other" };
            check(&mut failures, &path, &kind, &text, got_kind, &stderr);
            assert!(!stderr.contains("panicked"), "{}: {stderr}", path.display());
        }
    }
    finish("alert, handler and config-file", count, failures);
}

#[test]
fn bad_alertmanager_payloads_are_refused_by_serve_naming_the_field() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &web_api_config(&slack));
    let server = Server::start(&config, &dir.path().join("spool"), &[]);
    let mut failures = Vec::new();
    let cases = cases("alertmanager");
    for (path, kind, text) in &cases {
        let body = std::fs::read_to_string(path).unwrap();
        let (status, answer) = server.request(&format!(
            "POST /alertmanager HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ));
        let got = answer["error"]
            .as_str()
            .map_or_else(|| answer.to_string(), str::to_string);
        check(&mut failures, path, kind, text, &status.to_string(), &got);
    }
    let spool = server.spool();
    for list in ["pending", "finished"] {
        assert_eq!(
            spool[list],
            serde_json::json!([]),
            "nothing of a refused payload is stored: {spool}"
        );
    }
    assert!(!server.logged().contains("panicked"), "{}", server.logged());
    finish("alertmanager", cases.len(), failures);
}

/// Interaction payloads, each signed as Slack signs its Request URL's
/// posts and read by the component in wasmtime: a click (`act: ACTION`)
/// or why it is not one (`ignore: text`). Nothing traps.
#[test]
fn interaction_payloads_are_read_or_ignored_naming_what_is_missing() {
    use alert_handler_host::{Action, InteractionOutcome, Timestamp};
    use host_test::slack_clicks::{form, signature};

    const SECRET: &str = "corpus-signing-secret";
    let config = format!(
        "[[slack]]\nenabled = true\nurl = \"https://slack.com/api/chat.postMessage\"\ntoken = \"xoxb-1\"\nsigning-secret = \"{SECRET}\"\n"
    );
    let mut plugin = instance();
    plugin.configure(&config).unwrap().unwrap();
    let now = 1_764_460_800;
    let mut failures = Vec::new();
    let cases = cases("interaction");
    for (path, kind, text) in &cases {
        let payload: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let body = form(&payload);
        let headers = vec![
            ("x-slack-request-timestamp".to_string(), now.to_string()),
            (
                "x-slack-signature".to_string(),
                signature(SECRET, now, &body),
            ),
        ];
        let at = Timestamp {
            seconds: now,
            nanoseconds: 0,
        };
        let outcome = plugin.interaction(&headers, body.as_bytes(), at).unwrap();
        let (got_kind, got) = match outcome {
            InteractionOutcome::Act(click) => (
                "act",
                match click.action {
                    Action::Acknowledge => "acknowledge".to_string(),
                    Action::Silence(s) => format!("silence {s}"),
                    Action::Unsilence => "unsilence".to_string(),
                },
            ),
            InteractionOutcome::Ignore(why) => ("ignore", why),
            InteractionOutcome::Refuse(why) => ("refuse", why),
        };
        check(&mut failures, path, kind, text, got_kind, &got);
    }
    finish("interaction", cases.len(), failures);
}
