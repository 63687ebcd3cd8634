//! The `host-test` CLI as a user runs it: real binary, real component, the
//! Slack stand-in on loopback. The examples keep their https://slack.com
//! URLs; `--connect-to` sends them to the stand-in.

use std::path::Path;
use std::process::{Command, Output};

use host_test::mock_slack::{MockSlack, Reply};
use serde_json::{json, Value};

/// The absolute path of a file in `examples/`.
fn examples(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(file);
    path.to_str().expect("a UTF-8 path").to_string()
}

fn host_test(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(args)
        .output()
        .expect("host-test runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `send`/`test`/`route` against the seed configuration, routed to `slack`.
fn run(command: &str, slack: &MockSlack, config: &str, rest: &[&str]) -> Output {
    let route = format!("https://slack.com={}", slack.url());
    let config = examples(config);
    let mut args = vec![command, "--config", config.as_str(), "--connect-to", &route];
    args.extend_from_slice(rest);
    host_test(&args)
}

/// `send` against the seed configuration, routed to `slack`.
fn send(slack: &MockSlack, rest: &[&str]) -> Output {
    run("send", slack, "kapacitor.conf", rest)
}

fn no_secrets(o: &Output) {
    for text in [stdout(o), stderr(o)] {
        assert!(
            !text.contains("mY5uP3Rs3CrE7t0keN"),
            "a token leaked: {text}"
        );
    }
}

#[test]
fn send_with_no_options_uses_the_default_workspace() {
    let slack = MockSlack::start().unwrap();
    let alert = examples("alerts/cpu-warning.json");
    let o = send(&slack, &["--alert", alert.as_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("delivered: workspace \"alerts\", channel \"#alerts\""),
        "{}",
        stdout(&o)
    );
    let got = slack.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].host, "slack.com");
    assert_eq!(got[0].path, "/api/chat.postMessage");
    assert_eq!(
        got[0].header("authorization"),
        Some("Bearer mY5uP3Rs3CrE7t0keN1")
    );
    assert_eq!(got[0].json()["username"], "AlertBot");
    no_secrets(&o);
}

#[test]
fn send_reports_a_one_megabyte_message_cut_to_slacks_limit() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let alert = dir.path().join("big.json");
    let message = "m".repeat(1024 * 1024);
    std::fs::write(
        &alert,
        format!(r#"{{"id":"big","message":"{message}","time":"2026-11-26T10:00:00Z","level":"CRITICAL"}}"#),
    )
    .unwrap();
    let o = send(&slack, &["--alert", alert.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("longer than Slack's 40,000 characters and was cut"),
        "{}",
        stdout(&o)
    );
    let o = send(&slack, &["--alert", alert.to_str().unwrap(), "--json"]);
    let answer: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        answer["warnings"],
        serde_json::json!(["handler_truncated_message"])
    );
    let sent = slack.requests()[0].json();
    assert!(sent["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .ends_with("it had 1048576 characters, Slack takes 40000]"));
}

#[test]
fn send_with_a_handler_file_and_json_output() {
    let slack = MockSlack::start().unwrap();
    let alert = examples("alerts/500-errors-24h.json");
    let handler = examples("slack_500_errors_daily.yaml");
    let o = send(
        &slack,
        &[
            "--alert",
            alert.as_str(),
            "--handler",
            handler.as_str(),
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let answer: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        answer,
        json!({"delivered": true, "workspace": "error-reports", "channel": "#error-reports",
               "channel_id": "CERRORREPORTS", "ts": "1700000000.000001", "warnings": []})
    );
    assert_eq!(
        slack.requests()[0].header("authorization"),
        Some("Bearer mY5uP3Rs3CrE7t0keN2")
    );
}

#[test]
fn send_with_a_tickscript_and_option_flags() {
    let slack = MockSlack::start().unwrap();
    let alert = examples("alerts/machine-on-fire.json");
    let tick = examples("slack-cpu-alert-workspace.tick");
    let o = send(
        &slack,
        &[
            "--alert",
            alert.as_str(),
            "--tick",
            tick.as_str(),
            "--option",
            "channel=#fire",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let body = slack.requests()[0].json();
    assert_eq!(body["channel"], "#fire");
    assert_eq!(body["icon_emoji"], ":fire:");
    assert_eq!(
        body["attachments"][0]["text"],
        "Hey, I think the machine is on fire."
    );
}

#[test]
fn dry_run_prints_the_request_without_secrets_and_sends_nothing() {
    let slack = MockSlack::start().unwrap();
    let alert = examples("alerts/cpu-warning.json");
    let o = send(&slack, &["--alert", alert.as_str(), "--dry-run", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let request: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(request["method"], "POST");
    assert_eq!(request["url"], "https://slack.com/api/chat.postMessage");
    assert!(request["headers"]
        .as_array()
        .unwrap()
        .contains(&json!(["authorization", "Bearer [redacted]"])));
    assert_eq!(request["body"]["channel"], "#alerts");
    assert!(slack.requests().is_empty());
    no_secrets(&o);
}

#[test]
fn handler_errors_exit_non_zero_with_the_components_error() {
    let slack = MockSlack::start().unwrap();
    let alert = examples("alerts/cpu-warning.json");
    let o = send(
        &slack,
        &["--alert", alert.as_str(), "--option", "workspace=nope"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "error (workspace-not-found, retrying will not help): workspace id not found: \"nope\""
        ),
        "{}",
        stderr(&o)
    );

    slack.push_reply(Reply::json(
        200,
        json!({"ok": false, "error": "not_in_channel"}),
    ));
    let o = send(&slack, &["--alert", alert.as_str(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let answer: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (
            answer["error"].as_str(),
            answer["code"].as_str(),
            answer["retryable"].as_bool()
        ),
        (Some("slack-rejected"), Some("not_in_channel"), Some(false))
    );
    no_secrets(&o);
}

#[test]
fn a_handler_of_another_kind_or_topic_is_refused() {
    let slack = MockSlack::start().unwrap();
    let alert = examples("alerts/cpu-warning.json");
    let aggregate = examples("500_errors_24h.yaml");
    let o = send(
        &slack,
        &["--alert", alert.as_str(), "--handler", aggregate.as_str()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("this is a `aggregate` handler"),
        "{}",
        stderr(&o)
    );

    let alert = examples("alerts/cpu-critical.json");
    let daily = examples("slack_500_errors_daily.yaml");
    let o = send(
        &slack,
        &["--alert", alert.as_str(), "--handler", daily.as_str()],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("published to topic `cpu`, but handler `slack-500-errors-daily` subscribes to `500-errors-24h`"), "{}", stderr(&o));
    assert!(slack.requests().is_empty());
}

#[test]
fn bad_input_files_exit_2_and_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"id":"x","message":"m","time":"1970-01-01T00:00:00Z","level":"LOUD"}"#,
    )
    .unwrap();
    let config = examples("kapacitor.conf");
    let o = host_test(&[
        "send",
        "--config",
        config.as_str(),
        "--alert",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown level \"LOUD\""),
        "{}",
        stderr(&o)
    );

    let good = examples("alerts/cpu-warning.json");
    let o = host_test(&[
        "send",
        "--config",
        "/nonexistent.conf",
        "--alert",
        good.as_str(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent.conf"), "{}", stderr(&o));
}

#[test]
fn invalid_configuration_is_reported_with_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("k.conf");
    std::fs::write(&conf, "[[slack]]\nenabled = true\ndefault = true\nurl = \"https://slack.com/api/chat.postMessage\"\nicon_emoji = \":x:\"\n").unwrap();
    let alert = examples("alerts/cpu-warning.json");
    let o = host_test(&[
        "send",
        "--config",
        conf.to_str().unwrap(),
        "--alert",
        alert.as_str(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "line 5, [[slack]] #1: unknown key `icon_emoji` (did you mean `icon-emoji`?)"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn service_test_answers_as_kapacitor() {
    let slack = MockSlack::start().unwrap();
    let o = run(
        "test",
        &slack,
        "kapacitor.conf",
        &["--option", "workspace=error-reports"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        serde_json::from_str::<Value>(stdout(&o).trim()).unwrap(),
        json!({"success": true, "message": ""})
    );
    let body = slack.requests()[0].json();
    assert_eq!(
        (
            body["channel"].as_str(),
            body["attachments"][0]["text"].as_str()
        ),
        (Some("#error-reports"), Some("test slack message"))
    );

    let o = run(
        "test",
        &slack,
        "kapacitor.conf",
        &["--option", "workspace=nope"],
    );
    assert_eq!(o.status.code(), Some(1));
    let answer: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(answer["success"], false);
    assert!(answer["message"]
        .as_str()
        .unwrap()
        .contains("workspace id not found"));
}

#[test]
fn route_sends_only_through_a_global_default() {
    let slack = MockSlack::start().unwrap();
    let warning = examples("alerts/cpu-warning.json");
    let o = run(
        "route",
        &slack,
        "kapacitor.conf",
        &["--alert", warning.as_str()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("suppressed: the default workspace is not global"),
        "{}",
        stdout(&o)
    );
    assert!(slack.requests().is_empty());

    let o = run(
        "route",
        &slack,
        "kapacitor-global.conf",
        &["--alert", warning.as_str()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("delivered: workspace \"alerts\""),
        "{}",
        stdout(&o)
    );
    assert_eq!(slack.requests().len(), 1);
}

#[test]
fn route_with_state_changes_only_suppresses_an_unchanged_level() {
    let slack = MockSlack::start().unwrap();
    let unchanged = examples("alerts/cpu-still-critical.json");
    let o = run(
        "route",
        &slack,
        "kapacitor-global.conf",
        &["--alert", unchanged.as_str(), "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        serde_json::from_str::<Value>(stdout(&o).trim()).unwrap(),
        json!({"delivered": false, "suppressed": "state-changes-only: the level did not change"})
    );
    assert!(slack.requests().is_empty());

    let changed = examples("alerts/cpu-critical.json");
    let o = run(
        "route",
        &slack,
        "kapacitor-global.conf",
        &["--alert", changed.as_str()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(slack.requests().len(), 1);
}

#[test]
fn without_state_changes_only_an_unchanged_level_is_sent_again() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("global.conf");
    let text = std::fs::read_to_string(examples("kapacitor-global.conf")).unwrap();
    std::fs::write(
        &conf,
        text.replace("state-changes-only = true", "state-changes-only = false"),
    )
    .unwrap();
    let route = format!("https://slack.com={}", slack.url());
    let unchanged = examples("alerts/cpu-still-critical.json");
    let o = host_test(&[
        "route",
        "--config",
        conf.to_str().unwrap(),
        "--connect-to",
        &route,
        "--alert",
        unchanged.as_str(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(slack.requests().len(), 1);
}

#[test]
fn plugin_directory_loads_name_wasm_with_name_toml() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(host_test::COMPONENT_PATH, dir.path().join("slack.wasm")).unwrap();
    std::fs::copy(examples("kapacitor.conf"), dir.path().join("slack.toml")).unwrap();
    let route = format!("https://slack.com={}", slack.url());
    let alert = examples("alerts/cpu-critical.json");
    let handler = examples("slack_cpu_handler.yaml");
    let send = || {
        host_test(&[
            "send",
            "--plugins",
            dir.path().to_str().unwrap(),
            "--connect-to",
            &route,
            "--alert",
            alert.as_str(),
            "--handler",
            handler.as_str(),
        ])
    };
    // Without the operator's allowlist the plugin may reach nothing.
    let o = send();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("may reach nothing")
            && stderr(&o).contains("slack.egress.toml")
            && stderr(&o).contains("https://slack.com"),
        "{}",
        stderr(&o)
    );
    assert!(slack.requests().is_empty());
    let egress = dir.path().join("slack.egress.toml");
    std::fs::write(&egress, "allow = [\"https://slack.com\"]\n").unwrap();
    let o = send();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(slack.requests()[0].json()["icon_emoji"], ":fire:");

    // A configuration naming one more endpoint than the operator allows:
    // refused at configure, naming the endpoint and the file.
    let mut conf = std::fs::read_to_string(examples("kapacitor.conf")).unwrap();
    conf.push_str(
        "\n[[slack]]\n  workspace = \"extra\"\n  enabled = true\n  url = \"https://collector.example/api/chat.postMessage\"\n  token = \"xoxb-extra\"\n  channel = \"#x\"\n",
    );
    std::fs::write(dir.path().join("slack.toml"), conf).unwrap();
    let o = send();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("https://collector.example is not in the egress allowlist")
            && stderr(&o).contains(egress.to_str().unwrap()),
        "{}",
        stderr(&o)
    );
    assert_eq!(slack.requests().len(), 1, "nothing more was sent");
    std::fs::copy(examples("kapacitor.conf"), dir.path().join("slack.toml")).unwrap();

    // Each plugin loads on its own: one without its configuration is
    // named, and the others serve.
    std::fs::copy(host_test::COMPONENT_PATH, dir.path().join("orphan.wasm")).unwrap();
    let o = send();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("orphan.wasm: its configuration")
            && stderr(&o).contains("orphan.toml is missing"),
        "{}",
        stderr(&o)
    );

    // Two plugins of one kind: an error naming both.
    std::fs::copy(host_test::COMPONENT_PATH, dir.path().join("twin.wasm")).unwrap();
    std::fs::copy(examples("kapacitor.conf"), dir.path().join("twin.toml")).unwrap();
    let o = send();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("slack.wasm")
            && stderr(&o).contains("twin.wasm")
            && stderr(&o).contains("handles kind `slack` too"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn describe_says_what_the_component_is_before_any_configuration() {
    let o = host_test(&["describe", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(d["kind"], "slack");
    assert_eq!(d["version"], env!("CARGO_PKG_VERSION"));
    let names = |list: &str| -> Vec<String> {
        d[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    for key in ["url", "token", "channel", "layout", "on-recovery"] {
        assert!(names("config-keys").contains(&key.to_string()), "{key}");
    }
    for option in ["workspace", "channel", "previous-ts"] {
        assert!(names("options").contains(&option.to_string()), "{option}");
    }
    assert!(d["config-keys"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| !s["doc"].as_str().unwrap().is_empty()));
}

#[test]
fn demo_runs_the_seed_examples() {
    let o = host_test(&["demo"]);
    assert!(o.status.success(), "{}\n{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("4 of 4 alerts delivered; the Slack stand-in received 4 requests."),
        "{out}"
    );
    assert!(out.contains("\"icon_emoji\": \":exclamation:\""), "{out}");
    assert!(out.contains("\"channel\": \"#error-reports\""), "{out}");
    // The documentation's pipeline: 42 errors, one daily message.
    assert!(
        out.contains("42 alerts published to `500-errors`")
            && out.contains("\"text\": \"42 500 errors last 24 hours.\""),
        "{out}"
    );
    no_secrets(&o);
}

#[test]
fn send_waits_out_retry_after_and_delivers() {
    let slack = MockSlack::start().unwrap();
    slack.push_reply(
        Reply::json(429, json!({"ok": false, "error": "rate_limited"}))
            .with_header("retry-after", "1"),
    );
    slack.push_reply(Reply::text(503, "<html>busy</html>"));
    let alert = examples("alerts/cpu-warning.json");
    let o = send(&slack, &["--alert", alert.as_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("attempt 1: error (transient"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("retrying in 1.0s"), "{}", stderr(&o));
    let got = slack.requests();
    assert_eq!(got.len(), 3);
    assert!(
        got[1].at - got[0].at >= std::time::Duration::from_secs(1),
        "a request inside the Retry-After window"
    );
    no_secrets(&o);
}

#[test]
fn send_never_retries_a_permanent_failure() {
    let slack = MockSlack::start().unwrap();
    slack.push_reply(Reply::json(
        200,
        json!({"ok": false, "error": "invalid_auth"}),
    ));
    let alert = examples("alerts/cpu-warning.json");
    let o = send(&slack, &["--alert", alert.as_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("gave up after 1 attempt(s): the failure is permanent"),
        "{}",
        stderr(&o)
    );
    assert_eq!(slack.requests().len(), 1);
}

#[test]
fn send_gives_up_when_retry_after_is_past_its_deadline() {
    let slack = MockSlack::start().unwrap();
    slack.push_reply(
        Reply::json(429, json!({"ok": false, "error": "rate_limited"}))
            .with_header("retry-after", "120"),
    );
    let alert = examples("alerts/cpu-warning.json");
    let o = send(
        &slack,
        &["--alert", alert.as_str(), "--retry-for", "5", "--json"],
    );
    assert_eq!(o.status.code(), Some(1));
    let answer: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (
            answer["error"].as_str(),
            answer["retry_after_seconds"].as_u64()
        ),
        (Some("transient"), Some(120))
    );
    assert_eq!(
        slack.requests().len(),
        1,
        "no request inside the Retry-After window"
    );
}

#[test]
fn secrets_come_from_files_and_kapacitors_variables_never_from_elsewhere() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("token"), "xoxb-from-a-file\n").unwrap();
    let config = dir.path().join("slack.toml");
    std::fs::write(
        &config,
        format!(
            "[[slack]]\nenabled = true\nurl = \"{}/api/chat.postMessage\"\ntoken-file = \"{}\"\nchannel = \"#from-the-file\"\n",
            slack.url(),
            secrets.join("token").display()
        ),
    )
    .unwrap();
    let alert = examples("alerts/cpu-critical.json");
    let send = |env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_host-test"))
            .args([
                "send",
                "--config",
                config.to_str().unwrap(),
                "--alert",
                &alert,
            ])
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let o = send(&[("KAPACITOR_SLACK_0_CHANNEL", "#from-the-environment")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let request = &slack.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some("Bearer xoxb-from-a-file")
    );
    assert_eq!(request.json()["channel"], "#from-the-environment");
    for text in [stdout(&o), stderr(&o)] {
        assert!(
            !text.contains("xoxb-from-a-file"),
            "the token leaked: {text}"
        );
    }

    // A file that is not there: named by key and path, content never shown.
    std::fs::remove_file(secrets.join("token")).unwrap();
    let o = send(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("`token-file`")
            && stderr(&o).contains("secrets/token\": cannot read it"),
        "{}",
        stderr(&o)
    );
    // A bad variable is named, its value not shown.
    std::fs::write(secrets.join("token"), "xoxb-from-a-file\n").unwrap();
    let o = send(&[("KAPACITOR_SLACK_0_ENABLED", "perhaps")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("KAPACITOR_SLACK_0_ENABLED must be true or false")
            && !stderr(&o).contains("perhaps"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_handler_files_match_decides_whether_it_takes_the_alert() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, matches: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!("id: {name}\ntopic: cpu\nkind: slack\nmatch: {matches}\noptions:\n  workspace: alerts\n"),
        )
        .unwrap();
        path.to_str().unwrap().to_string()
    };
    let send_with = |alert: &str, handler: &str| {
        run(
            "send",
            &slack,
            "kapacitor.conf",
            &["--alert", &examples(alert), "--handler", handler],
        )
    };
    let critical_changes = write("critical", "level() == CRITICAL AND changed()");
    let o = send_with("alerts/cpu-warning.json", &critical_changes);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(
            "suppressed: handler `critical`: match `level() == CRITICAL AND changed()` is false"
        ),
        "{}",
        stdout(&o)
    );
    assert!(slack.requests().is_empty());
    let o = send_with("alerts/cpu-critical.json", &critical_changes);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(slack.requests().len(), 1, "{}", stdout(&o));

    // A tag the alert does not have: not taken, and said why.
    // (In YAML the expression is quoted when it starts with a quote.)
    let by_host = write("by-host", "'\"host\" =~ /^server/'");
    let o = send_with("alerts/cpu-critical.json", &by_host);
    assert!(
        stdout(&o).contains("cannot be evaluated: the event has no tag \"host\""),
        "{}",
        stdout(&o)
    );
    assert_eq!(slack.requests().len(), 1);

    // A bad expression is refused at load, naming the file and the column.
    let bad = write("bad", "level() == CRITICAL AND host == 'a'");
    let o = send_with("alerts/cpu-critical.json", &bad);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("bad") && stderr(&o).contains("`match` column 25"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn publish_sends_an_alert_through_a_topics_handlers_once() {
    let slack = MockSlack::start().unwrap();
    let route = format!("https://slack.com={}", slack.url());
    let o = host_test(&[
        "publish",
        "--config",
        &examples("kapacitor.conf"),
        "--connect-to",
        &route,
        "--handlers",
        &examples(""),
        "--topic",
        "500-errors-24h",
        "--alert",
        &examples("alerts/500-errors-24h.json"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("handler `slack-500-errors-daily`:"),
        "{}",
        stdout(&o)
    );
    assert_eq!(slack.requests().len(), 1);
    assert_eq!(slack.requests()[0].json()["channel"], "#error-reports");
    let o = host_test(&[
        "publish",
        "--config",
        &examples("kapacitor.conf"),
        "--handlers",
        &examples(""),
        "--topic",
        "500-errors",
        "--alert",
        &examples("alerts/500-errors-24h.json"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("aggregate `500-errors-24h` collects it"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        slack.requests().len(),
        1,
        "an aggregate sends nothing at once"
    );
}
