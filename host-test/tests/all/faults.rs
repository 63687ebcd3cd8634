//! Fault scripts through `host-test serve`: every answer and failure Slack
//! (or the network between) can give, one alert per fault, each checked for
//! how it ended in the spool and how many requests it took. Then one sweep
//! over everything those runs and the CLI wrote, for the token and the
//! webhook's secret path.

use crate::common::pki;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::server::{alert, wait_until, write_config, Server};
use host_test::mock_slack::{Fault, MockSlack, Reply};
use serde_json::{json, Value};

/// Distinctive secrets, to be found nowhere but in the configuration file.
const TOKEN: &str = "xoxb-SWEEP-7f3c9e1a-token";
const HOOK_SECRET: &str = "sweepSECRETpath9c4d";

/// The host waits this long for an answer to start, and between chunks.
const RESPONSE_TIMEOUT_MS: u64 = 400;

enum Step {
    Reply(Reply),
    Fault(Fault),
}

struct Scenario {
    name: String,
    /// Handler options, as the query of the POST.
    query: &'static str,
    script: Vec<Step>,
    delivered: bool,
    attempts: u32,
    /// Text the spool's detail must contain.
    detail: String,
}

fn scenario(
    name: impl Into<String>,
    query: &'static str,
    script: Vec<Step>,
    delivered: bool,
    attempts: u32,
    detail: impl Into<String>,
) -> Scenario {
    Scenario {
        name: name.into(),
        query,
        script,
        delivered,
        attempts,
        detail: detail.into(),
    }
}

fn ok() -> Reply {
    Reply::json(
        200,
        json!({"ok": true, "channel": "CWEB", "ts": "1.000001"}),
    )
}

fn ok_false(code: &str) -> Reply {
    Reply::json(200, json!({"ok": false, "error": code}))
}

fn reply(r: Reply) -> Step {
    Step::Reply(r)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn scenarios() -> Vec<Scenario> {
    let mut all = vec![
        scenario("plain delivery", "", vec![], true, 1, "#web 1700000000"),
        scenario(
            "connection reset mid-response",
            "",
            vec![Step::Fault(Fault::ResetMidResponse(ok()))],
            true,
            2,
            "#web",
        ),
        scenario(
            "slow body, each chunk inside the timeout",
            "",
            vec![Step::Fault(Fault::SlowBody {
                reply: ok(),
                chunks: 5,
                pause: ms(RESPONSE_TIMEOUT_MS / 4),
            })],
            true,
            1,
            "#web 1.000001",
        ),
        scenario(
            "slow body, stalled past the timeout",
            "",
            vec![Step::Fault(Fault::SlowBody {
                reply: ok(),
                chunks: 3,
                pause: ms(RESPONSE_TIMEOUT_MS * 2),
            })],
            true,
            2,
            "#web",
        ),
        scenario(
            "no answer within the response timeout",
            "",
            vec![Step::Fault(Fault::Silent(ms(RESPONSE_TIMEOUT_MS * 2)))],
            true,
            2,
            "#web",
        ),
        scenario(
            "500, 502, 503 in a row",
            "",
            vec![
                reply(Reply::text(500, "")),
                reply(Reply::text(502, "<html>Bad Gateway</html>")),
                reply(Reply::json(
                    503,
                    json!({"ok": false, "error": "service_unavailable"}),
                )),
            ],
            true,
            4,
            "#web",
        ),
        scenario(
            "429 without Retry-After",
            "",
            vec![reply(Reply::json(
                429,
                json!({"ok": false, "error": "ratelimited"}),
            ))],
            true,
            2,
            "#web",
        ),
        scenario(
            "429 with Retry-After: 1",
            "",
            vec![reply(
                Reply::json(429, json!({"ok": false, "error": "ratelimited"}))
                    .with_header("retry-after", "1"),
            )],
            true,
            2,
            "#web",
        ),
        scenario(
            "a 10 MB answer with 200",
            "",
            vec![reply(Reply::text(200, &"x".repeat(10 << 20)))],
            true,
            1,
            "warnings: response_too_large",
        ),
        scenario(
            "a 10 MB answer with 503",
            "",
            vec![reply(Reply::text(503, &"y".repeat(10 << 20)))],
            true,
            2,
            "#web",
        ),
        scenario(
            "a 2xx that is not Slack's JSON",
            "",
            vec![reply(Reply::text(200, "<html>fine</html>"))],
            true,
            1,
            "warnings: unrecognised_response",
        ),
        scenario(
            "200 ok:false fatal_error (it may have posted)",
            "",
            vec![reply(ok_false("fatal_error"))],
            false,
            1,
            "fatal_error",
        ),
        scenario(
            "missing_scope names the scope",
            "",
            vec![reply(Reply::json(
                200,
                json!({"ok": false, "error": "missing_scope", "needed": "chat:write", "provided": "channels:read"}),
            ))],
            false,
            1,
            "chat:write",
        ),
    ];
    // Every permanent code of chat.postMessage: ends at once, named.
    for code in [
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "restricted_action",
        "too_many_attachments",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "access_denied",
        "invalid_arguments",
    ] {
        all.push(scenario(
            format!("200 ok:false {code}"),
            "",
            vec![reply(ok_false(code))],
            false,
            1,
            code,
        ));
    }
    // Every transient code: tried again, then delivered.
    for code in [
        "rate_limited",
        "ratelimited",
        "internal_error",
        "service_unavailable",
        "request_timeout",
    ] {
        all.push(scenario(
            format!("200 ok:false {code}"),
            "",
            vec![reply(ok_false(code))],
            true,
            2,
            "#web",
        ));
    }
    // The legacy webhook's plain-text refusals.
    for (status, code) in [
        (400, "invalid_payload"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
        (403, "action_prohibited"),
        (403, "invalid_token"),
    ] {
        all.push(scenario(
            format!("webhook {status} {code}"),
            "workspace=hook",
            vec![reply(Reply::text(status, code))],
            false,
            1,
            code,
        ));
    }
    all.push(scenario(
        "webhook 500 rollup_error",
        "workspace=hook",
        vec![reply(Reply::text(500, "rollup_error"))],
        true,
        2,
        "#hook",
    ));
    all.push(scenario(
        "a server certificate nobody trusts",
        "workspace=tls",
        vec![],
        false,
        1,
        "not trusted",
    ));
    all
}

/// What a fault-script run left behind, for the secrets sweep.
struct Evidence {
    dir: tempfile::TempDir,
    config: PathBuf,
    logs: String,
    spool_shown: String,
}

fn config_text(slack: &MockSlack, tls: &MockSlack, down: u16) -> String {
    format!(
        r##"[[slack]]
workspace = "web"
default = true
enabled = true
url = "{web}/api/chat.postMessage"
token = "{TOKEN}"
channel = "#web"

[[slack]]
workspace = "hook"
enabled = true
url = "{web}/services/T0SWEEP/B0SWEEP/{HOOK_SECRET}"
channel = "#hook"

[[slack]]
workspace = "tls"
enabled = true
url = "{tls}/api/chat.postMessage"
token = "{TOKEN}"
channel = "#tls"

[[slack]]
workspace = "down"
enabled = true
url = "http://127.0.0.1:{down}/api/chat.postMessage"
token = "{TOKEN}"
channel = "#down"
"##,
        web = slack.url(),
        tls = tls.url(),
    )
}

fn finished(server: &Server) -> Vec<Value> {
    server.spool()["finished"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Runs every scenario through one `serve`, one alert at a time, and checks
/// each ending; then the refused connection, fixed by starting Slack.
fn run_fault_script() -> Evidence {
    let slack = MockSlack::start().unwrap();
    let untrusted = pki::Ca::new("a CA nobody trusts");
    let tls = MockSlack::start_tls(pki::server(&untrusted.leaf(&["127.0.0.1"]), None)).unwrap();
    let down = crate::common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &config_text(&slack, &tls, down));
    let timeout = RESPONSE_TIMEOUT_MS.to_string();
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--response-timeout-ms", &timeout],
    );

    let mut failures = Vec::new();
    for (n, s) in scenarios().into_iter().enumerate() {
        for step in s.script {
            match step {
                Step::Reply(r) => slack.push_reply(r),
                Step::Fault(f) => slack.push_fault(f),
            }
        }
        let before = slack.requests().len();
        let started = Instant::now();
        let (status, answer) = server.post_with(s.query, &alert(&format!("fault-{n}")));
        assert_eq!(status, 202, "{}: {answer}", s.name);
        wait_until(&s.name, || finished(&server).len() > n);
        let ended = &finished(&server)[n];
        let want = if s.delivered { "delivered" } else { "failed" };
        let detail = ended["detail"].as_str().unwrap_or_default();
        if ended["status"] != want || ended["attempts"] != s.attempts || !detail.contains(&s.detail)
        {
            failures.push(format!(
                "{}: expected {want} after {} attempt(s) with \"{}\", got {ended}",
                s.name, s.attempts, s.detail
            ));
        }
        if s.query != "workspace=tls" {
            // Each attempt reached the stand-in, and nothing more did. A
            // silent answer is recorded when its wait ends: allow for it.
            wait_until(&format!("{}: the stand-in's record", s.name), || {
                slack.requests().len() >= before + s.attempts as usize
            });
            assert_eq!(
                slack.requests().len(),
                before + s.attempts as usize,
                "{}: requests made",
                s.name
            );
        }
        if s.name.contains("Retry-After: 1") {
            let requests = slack.requests();
            let gap = requests[before + 1].at - requests[before].at;
            assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
        }
        if s.name.contains("slow body, each chunk") {
            assert!(
                started.elapsed() >= ms(RESPONSE_TIMEOUT_MS),
                "the body took longer than the timeout in all"
            );
        }
    }
    assert!(tls.tls_failures() >= 1, "the TLS handshake was refused");
    let logged = server.logged();
    assert!(
        logged.contains("attempt failed; will retry alert=2 attempt=1 channel=\"web #web\" error=\"error (transport, retrying can help): transport error: reading the answer from 127.0.0.1"),
        "{logged}"
    );
    assert!(
        logged.contains("failed: connection terminated\" retry_in_ms="),
        "the reset is named: {logged}"
    );
    assert!(
        failures.is_empty(),
        "{} scenario(s) ended wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // Connection refused: retried with backoff until Slack is there.
    let n = finished(&server).len();
    assert_eq!(server.post_with("workspace=down", &alert("down")).0, 202);
    wait_until("two refused attempts", || {
        server
            .logged()
            .contains(&format!("alert={} attempt=2", n + 1))
    });
    assert!(
        server.logged().contains("connection refused"),
        "{}",
        server.logged()
    );
    let back = MockSlack::start_on(down).unwrap();
    wait_until("the delivery once Slack is up", || {
        finished(&server).len() > n
    });
    let ended = &finished(&server)[n];
    assert_eq!(ended["status"], "delivered", "{ended}");
    assert!(ended["attempts"].as_u64().unwrap() >= 3, "{ended}");
    assert_eq!(back.requests().len(), 1);

    let spool_shown = server.spool().to_string();
    let logs = server.logged();
    server.kill();
    Evidence {
        dir,
        config,
        logs,
        spool_shown,
    }
}

#[test]
fn every_fault_through_serve_ends_as_it_should() {
    run_fault_script();
}

#[test]
fn an_answer_trickled_past_the_response_deadline_is_retried_and_delivered() {
    let slack = MockSlack::start().unwrap();
    // The first answer's body comes a byte a second: every byte is within
    // the 30 s between-bytes timeout, the whole answer is not within 2 s.
    let trickled = ok();
    slack.push_fault(Fault::SlowBody {
        chunks: trickled.body.len(),
        reply: trickled,
        pause: Duration::from_secs(1),
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &crate::common::web_api_config(&slack));
    let server = Server::start(
        &config,
        &dir.path().join("spool"),
        &["--response-deadline-secs", "2", "--deadline-secs", "20"],
    );
    let started = Instant::now();
    assert_eq!(server.post(&alert("trickled")).0, 202);
    wait_until("the ending", || !finished(&server).is_empty());
    let took = started.elapsed();
    let ended = &finished(&server)[0];
    assert_eq!(ended["status"], "delivered", "{ended}");
    assert_eq!(ended["attempts"], 2, "{ended}");
    // Ended by the response deadline, not the call's: the log says which.
    eprintln!("a trickled answer: delivered after {took:?} (response deadline 2 s, call 20 s)");
    let logged = server.logged();
    assert!(
        logged.contains("did not complete within the 2s response deadline")
            && logged.contains("attempt failed; will retry alert=1 attempt=1")
            && logged.contains("(transport, retrying can help)"),
        "{logged}"
    );
    assert_eq!(slack.requests().len(), 2);
}

#[test]
fn a_response_deadline_not_below_the_call_deadline_is_refused() {
    let out = host_test(&[
        "serve",
        "--config",
        "/nonexistent.conf",
        "--listen",
        "127.0.0.1:0",
        "--spool",
        "/nonexistent/spool",
        "--response-deadline-secs",
        "90",
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "--response-deadline-secs 90 must be at least 1 and below --deadline-secs 90"
        ),
        "{said}"
    );
}

// ---------------------------------------------------------------------------
// The secrets sweep.

fn host_test(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Every file under `dir` but the configuration (which holds the secrets).
fn files_but(dir: &Path, config: &Path, found: &mut Vec<(PathBuf, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_but(&path, config, found);
        } else if path != config {
            let bytes = std::fs::read(&path).unwrap();
            found.push((path, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
}

#[test]
fn no_token_or_webhook_path_in_any_output_log_summary_or_spool_file() {
    let evidence = run_fault_script();
    let mut seen: Vec<(String, String)> = vec![
        ("serve's log".into(), evidence.logs.clone()),
        ("serve's GET /spool".into(), evidence.spool_shown.clone()),
    ];
    assert!(evidence.logs.contains(" alert=1 "), "serve logs its work");

    // The CLI, against a stand-in, for each kind of outcome.
    let slack = MockSlack::start().unwrap();
    let untrusted = pki::Ca::new("a CA nobody trusts");
    let tls = MockSlack::start_tls(pki::server(&untrusted.leaf(&["127.0.0.1"]), None)).unwrap();
    let down = crate::common::free_port();
    let dir = evidence.dir.path();
    std::fs::create_dir_all(dir.join("cli")).unwrap();
    let config = write_config(&dir.join("cli"), &config_text(&slack, &tls, down));
    let config = config.to_str().unwrap();
    let alert_file = dir.join("alert.json");
    std::fs::write(&alert_file, alert("cli")).unwrap();
    let alert_file = alert_file.to_str().unwrap();
    let send = |extra: &[&str]| {
        let mut args = vec!["send", "--config", config, "--alert", alert_file];
        args.extend_from_slice(extra);
        host_test(&args)
    };
    seen.push(("send".into(), text(&send(&[]))));
    seen.push(("send --json".into(), text(&send(&["--json"]))));
    seen.push(("send --dry-run".into(), text(&send(&["--dry-run"]))));
    seen.push((
        "send --dry-run to the webhook".into(),
        text(&send(&[
            "--dry-run",
            "--json",
            "--option",
            "workspace=hook",
        ])),
    ));
    slack.push_reply(ok_false("invalid_auth"));
    seen.push(("send, refused".into(), text(&send(&[]))));
    slack.push_reply(Reply::text(404, "channel_not_found"));
    seen.push((
        "send to the webhook, refused".into(),
        text(&send(&["--option", "workspace=hook", "--json"])),
    ));
    for _ in 0..3 {
        slack.push_reply(Reply::json(
            503,
            json!({"ok": false, "error": "service_unavailable"}),
        ));
    }
    seen.push((
        "send, retrying then out of time".into(),
        text(&send(&["--retry-for", "1"])),
    ));
    seen.push((
        "send, connection refused".into(),
        text(&send(&["--option", "workspace=down", "--retry-for", "0"])),
    ));
    seen.push((
        "send, TLS failure".into(),
        text(&send(&["--option", "workspace=tls", "--retry-for", "0"])),
    ));
    seen.push((
        "test".into(),
        text(&host_test(&["test", "--config", config])),
    ));
    seen.push((
        "route".into(),
        text(&host_test(&[
            "route", "--config", config, "--alert", alert_file, "--json",
        ])),
    ));
    let spool = dir.join("spool");
    let spool = spool.to_str().unwrap();
    seen.push(("spool".into(), text(&host_test(&["spool", "--dir", spool]))));
    seen.push((
        "spool --json".into(),
        text(&host_test(&["spool", "--dir", spool, "--json"])),
    ));

    // Configurations that are refused, with the secrets on the bad lines.
    for (name, bad) in [
        ("unknown key", format!("[slack]\nenabled = true\nurl = \"https://hooks.slack.com/services/T0/B0/{HOOK_SECRET}\"\ntoken = \"{TOKEN}\"\nbogus = 1\n")),
        ("url with another scheme", format!("[slack]\nenabled = true\nurl = \"ftp://hooks.slack.com/services/T0/B0/{HOOK_SECRET}\"\n")),
        ("unterminated token", format!("[slack]\nenabled = true\ntoken = \"{TOKEN}\nurl = \"https://slack.com/api\"\n")),
        ("token of the wrong type", format!("[slack]\nenabled = true\ntoken = [\"{TOKEN}\"]\n")),
        ("url not a url", format!("[slack]\nenabled = true\nurl = \"::{HOOK_SECRET}::\"\n")),
    ] {
        let path = dir.join("bad").join(format!("{}.toml", name.replace(' ', "-")));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bad).unwrap();
        let o = host_test(&[
            "send", "--config", path.to_str().unwrap(), "--alert", alert_file,
        ]);
        assert!(
            !o.status.success() && text(&o).contains("line"),
            "{name}: {}",
            text(&o)
        );
        seen.push((format!("refused config: {name}"), text(&o)));
        std::fs::remove_file(&path).unwrap();
    }

    // The component's own summary, through the library.
    let (_, summary) = crate::common::configured(&config_text(&slack, &tls, down));
    seen.push(("configure's summary".into(), format!("{summary:?}")));

    // And every file the runs left: spool journals, logs.
    let mut files = Vec::new();
    files_but(dir, &evidence.config, &mut files);
    let cli_config = PathBuf::from(config);
    for (path, contents) in files {
        if path != cli_config {
            seen.push((path.display().to_string(), contents));
        }
    }
    assert!(
        seen.iter().any(|(what, _)| what.ends_with("journal.jsonl")),
        "the spool journal was swept"
    );

    for (what, contents) in &seen {
        for secret in [TOKEN, HOOK_SECRET, "7f3c9e1a"] {
            assert!(
                !contents.contains(secret),
                "{what} shows a secret ({secret}):\n{contents}"
            );
        }
    }
    // The sweep looked at real output, not nothing.
    assert!(seen.len() >= 20, "{} outputs swept", seen.len());
    assert!(seen
        .iter()
        .any(|(what, c)| what == "send, refused" && c.contains("invalid_auth")));
}
