//! Any alert-handler plugin loads (issue 30): the example webhook plugin
//! (`examples/webhook-plugin/`), written to the `handler` interface alone
//! (world `alert-handler`), through the embed crate's API, `serve
//! --plugins` beside the Slack component, and the stock wasmtime CLI; and
//! it is contained as the Slack plugin is.

use std::path::Path;
use std::process::Command;

use alert_handler_host::{AlertEvent, Level, NetSettings, Runtime, Timestamp};
use host_test::mock_slack::MockSlack;
use host_test::WEBHOOK_COMPONENT_PATH;

use crate::common::server::{alert, wait_until, Server};
use crate::common::web_api_config;

/// A webhook section posting to the stand-in's `/hooks/ops` with a secret
/// header.
fn webhook_config(slack: &MockSlack) -> String {
    format!(
        "[[webhook]]\nurl = \"{}/hooks/ops\"\n[webhook.headers]\nAuthorization = \"Bearer hook-secret-42\"\n",
        slack.url()
    )
}

fn event(id: &str) -> AlertEvent {
    AlertEvent {
        id: id.into(),
        message: format!("{id} is \"down\""),
        details: String::new(),
        time: Timestamp {
            seconds: 1_764_500_000,
            nanoseconds: 0,
        },
        duration: 0,
        level: Level::Critical,
        previous_level: None,
        recoverable: true,
        topic: None,
        name: "disk".into(),
        task_name: String::new(),
        group: "nil".into(),
        tags: vec![("host".into(), "db1".into())],
        fields: Vec::new(),
        context: Vec::new(),
    }
}

/// The embed crate loads a handler-only component: it says it has no
/// interactions or storms, describes itself as `webhook`, configures,
/// delivers one alert as JSON with its header, previews it with the header
/// hidden, and a call it lacks is an error naming the interface.
#[test]
fn a_handler_only_plugin_loads_and_delivers_through_the_embed_crate() {
    let slack = MockSlack::start().unwrap();
    let runtime = Runtime::load(WEBHOOK_COMPONENT_PATH, NetSettings::default()).unwrap();
    assert!(!runtime.has_interactions() && !runtime.has_storms());
    let mut plugin = runtime.instantiate().unwrap();
    assert_eq!(plugin.describe().unwrap().kind, "webhook");
    let summary = plugin
        .configure(&webhook_config(&slack))
        .unwrap()
        .expect("configured");
    assert_eq!(summary.kind, "webhook");
    let delivered = plugin.handle_alert(&event("disk-db1"), &[]).unwrap();
    assert!(delivered.is_ok(), "{delivered:?}");
    let got = &slack.requests()[0];
    assert_eq!(got.path, "/hooks/ops");
    assert_eq!(got.header("authorization"), Some("Bearer hook-secret-42"));
    assert_eq!(
        got.json()["message"],
        "disk-db1 is \"down\"",
        "{}",
        got.json()
    );
    let preview = plugin
        .preview_alert(&event("disk-db1"), &[])
        .unwrap()
        .unwrap();
    assert!(
        !format!("{preview:?}").contains("hook-secret-42"),
        "{preview:?}"
    );
    let refused = plugin.interaction(
        &[],
        b"",
        Timestamp {
            seconds: 0,
            nanoseconds: 0,
        },
    );
    let Err(why) = refused else {
        panic!("a plugin without interactions answered a click");
    };
    let why = format!("{why:#}");
    assert!(why.contains("interactions"), "{why}");
}

/// One plugin directory with the Slack component and the webhook plugin,
/// each with its configuration and egress file: both load (nothing in
/// `/healthz`'s `broken`), and the Slack plugin serves `POST /`.
#[test]
fn serve_loads_the_slack_and_webhook_plugins_from_one_directory() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let install = |name: &str, wasm: &str, config: String| {
        std::fs::copy(wasm, plugins.join(format!("{name}.wasm"))).unwrap();
        std::fs::write(plugins.join(format!("{name}.toml")), config).unwrap();
        std::fs::write(
            plugins.join(format!("{name}.egress.toml")),
            format!("allow = [\"{}\"]\n", slack.url()),
        )
        .unwrap();
    };
    install("slack", host_test::COMPONENT_PATH, web_api_config(&slack));
    install("webhook", WEBHOOK_COMPONENT_PATH, webhook_config(&slack));
    let server = Server::start_with(
        &["--plugins", plugins.to_str().unwrap()],
        &dir.path().join("spool"),
        &[],
    );
    let (status, health) =
        server.request("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200);
    // `broken` is left out when every plugin loaded.
    assert!(
        health["broken"].as_array().is_none_or(Vec::is_empty),
        "{health}"
    );
    assert_eq!(health["status"], "ready", "{health}");
    assert_eq!(server.post(&alert("p")).0, 202);
    wait_until("the Slack delivery", || slack.requests().len() == 1);
    // `describe` says what each is and what it exports.
    for (wasm, kind, exports) in [
        ("webhook.wasm", "webhook", serde_json::json!(["handler"])),
        (
            "slack.wasm",
            "slack",
            serde_json::json!(["handler", "interactions", "storms"]),
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_host-test"))
            .args(["describe", "--json", "--component"])
            .arg(plugins.join(wasm))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let described: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(described["kind"], kind);
        assert_eq!(described["exports"], exports);
    }
}

/// A handler-only plugin is contained as the Slack one is: a configuration
/// that names a destination off its egress file is refused when it loads
/// (named in `/healthz`), so it never reaches it.
#[test]
fn a_handler_only_plugin_reaches_only_what_its_egress_file_allows() {
    let slack = MockSlack::start().unwrap();
    let elsewhere = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(WEBHOOK_COMPONENT_PATH, plugins.join("webhook.wasm")).unwrap();
    std::fs::write(plugins.join("webhook.toml"), webhook_config(&elsewhere)).unwrap();
    std::fs::write(
        plugins.join("webhook.egress.toml"),
        format!("allow = [\"{}\"]\n", slack.url()),
    )
    .unwrap();
    std::fs::copy(host_test::COMPONENT_PATH, plugins.join("slack.wasm")).unwrap();
    std::fs::write(plugins.join("slack.toml"), web_api_config(&slack)).unwrap();
    std::fs::write(
        plugins.join("slack.egress.toml"),
        format!("allow = [\"{}\"]\n", slack.url()),
    )
    .unwrap();
    let server = Server::start_with(
        &["--plugins", plugins.to_str().unwrap()],
        &dir.path().join("spool"),
        &[],
    );
    let (_, health) =
        server.request("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let broken = health["broken"].to_string();
    assert!(broken.contains("webhook.wasm"), "{health}");
    assert_eq!(elsewhere.requests().len(), 0);
}

/// The stock wasmtime CLI runs the handler-only component: `describe`
/// answers its kind.
#[test]
fn the_stock_wasmtime_cli_runs_the_handler_only_plugin() {
    let cli = crate::render::stock_wasmtime();
    let out = Command::new(&cli)
        .args(["run", "-S", "http", "--invoke", "describe()"])
        .arg(Path::new(WEBHOOK_COMPONENT_PATH))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("kind: \"webhook\""),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The plugin directory of `serve_loads_...`: the Slack component and the
/// webhook plugin, both allowed to reach the stand-in.
fn slack_and_webhook(slack: &MockSlack, dir: &Path) -> std::path::PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for (name, wasm, config) in [
        ("slack", host_test::COMPONENT_PATH, web_api_config(slack)),
        ("webhook", WEBHOOK_COMPONENT_PATH, webhook_config(slack)),
    ] {
        std::fs::copy(wasm, plugins.join(format!("{name}.wasm"))).unwrap();
        std::fs::write(plugins.join(format!("{name}.toml")), config).unwrap();
        std::fs::write(
            plugins.join(format!("{name}.egress.toml")),
            format!("allow = [\"{}\"]\n", slack.url()),
        )
        .unwrap();
    }
    plugins
}

/// Topic handler files route by kind, as Kapacitor's do: one topic with a
/// `slack` handler and a `webhook` handler delivers the alert to Slack
/// through the Slack component and to the webhook through the webhook
/// plugin; each ends on its own in `GET /spool`, the webhook's options
/// naming its plugin.
#[test]
fn a_topic_delivers_through_the_plugin_of_each_handler_files_kind() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugins = slack_and_webhook(&slack, dir.path());
    let handlers = dir.path().join("handlers");
    std::fs::create_dir(&handlers).unwrap();
    std::fs::write(
        handlers.join("ops.yaml"),
        "id: ops\ntopic: disk\nkind: slack\n",
    )
    .unwrap();
    std::fs::write(
        handlers.join("hook.yaml"),
        "id: hook\ntopic: disk\nkind: webhook\n",
    )
    .unwrap();
    let server = Server::start_with(
        &["--plugins", plugins.to_str().unwrap()],
        &dir.path().join("spool"),
        &["--handlers", handlers.to_str().unwrap()],
    );
    let (status, answer) = server.post_with("topic=disk", &alert("disk-db1"));
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["ids"].as_array().map(Vec::len), Some(2), "{answer}");
    wait_until("both deliveries", || slack.requests().len() == 2);
    let requests = slack.requests();
    let hook = requests
        .iter()
        .find(|r| r.path == "/hooks/ops")
        .expect("the webhook got it");
    assert_eq!(hook.json()["id"], "disk-db1");
    assert_eq!(hook.header("authorization"), Some("Bearer hook-secret-42"));
    assert!(
        requests
            .iter()
            .any(|r| r.path.ends_with("chat.postMessage")),
        "Slack got it: {requests:#?}"
    );
    wait_until("both ended", || {
        server.spool()["finished"].as_array().map(Vec::len) == Some(2)
    });
    let metrics = server.metrics();
    for plugin in ["slack", "webhook"] {
        assert!(
            metrics.contains(&format!(
                "slack_handler_plugin_alerts_total{{plugin=\"{plugin}\",status=\"delivered\"}} 1"
            )),
            "{metrics}"
        );
    }
    let finished = server.spool()["finished"].clone();
    assert!(
        finished
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["status"] == "delivered"),
        "{finished:#}"
    );
}

/// A handler file whose kind no plugin of the directory offers stops the
/// start, naming the file and the kinds on offer.
#[test]
fn a_handler_file_of_a_kind_no_plugin_offers_is_refused_at_start() {
    let slack = MockSlack::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let plugins = slack_and_webhook(&slack, dir.path());
    let handlers = dir.path().join("handlers");
    std::fs::create_dir(&handlers).unwrap();
    std::fs::write(
        handlers.join("mail.yaml"),
        "id: mail\ntopic: disk\nkind: email\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_host-test"))
        .args(["serve", "--listen", "127.0.0.1:0", "--plugins"])
        .arg(&plugins)
        .arg("--handlers")
        .arg(&handlers)
        .arg("--spool")
        .arg(dir.path().join("spool"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("mail.yaml")
            && said.contains("unknown kind `email`")
            && said.contains("slack, webhook, aggregate, publish"),
        "{said}"
    );
}
