//! Shared by the integration tests: the component is compiled once per test
//! binary; each test gets fresh instances and its own Slack stand-in.

pub mod pki;
pub mod proxy;
pub mod server;

use std::sync::OnceLock;

use alert_handler_host::net::NetSettings;
use alert_handler_host::{AlertEvent, ConfigSummary, Instance, Level, Runtime, Timestamp};
use host_test::mock_slack::MockSlack;

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        host_test::load_default(NetSettings::default()).expect("the component loads")
    })
}

pub fn instance() -> Instance {
    runtime().instantiate().expect("instantiates")
}

/// An instance configured with `config`; panics if the configuration is refused.
pub fn configured(config: &str) -> (Instance, ConfigSummary) {
    let mut plugin = instance();
    let summary = plugin
        .configure(config)
        .expect("no trap")
        .expect("configuration accepted");
    (plugin, summary)
}

pub fn event(message: &str, level: Level) -> AlertEvent {
    AlertEvent {
        id: "cpu:nil".into(),
        message: message.into(),
        details: String::new(),
        time: Timestamp {
            seconds: 0,
            nanoseconds: 0,
        },
        duration: 0,
        level,
        previous_level: Some(Level::Ok),
        recoverable: true,
        topic: None,
        name: "cpu".into(),
        task_name: "cpu_alert".into(),
        group: "nil".into(),
        tags: vec![],
        fields: vec![],
        context: vec![],
    }
}

pub fn options(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A port on 127.0.0.1 where nothing listens (bound, then let go).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One enabled Web API workspace `alerts` at the stand-in, with a token.
pub fn web_api_config(slack: &MockSlack) -> String {
    format!(
        r##"[[slack]]
enabled = true
default = true
workspace = "alerts"
url = "{}/api/chat.postMessage"
token = "xoxb-test-token"
channel = "#alerts"
username = "AlertBot"
"##,
        slack.url()
    )
}

/// One enabled legacy-webhook workspace at the stand-in.
pub fn webhook_config(slack: &MockSlack) -> String {
    format!(
        "[slack]\nenabled = true\nurl = \"{}/services/T000/B000/XXXXXXXX\"\nchannel = \"#hooks\"\n",
        slack.url()
    )
}

/// For a test that cannot run here for want of `what` (`root`,
/// `wasm-opt`): fails, naming it and `how` to get it, unless the developer
/// named `what` in `HOST_TEST_WITHOUT` (comma-separated), knowingly; then it
/// says the test is skipped and returns, and the caller returns too. CI
/// (`.ci/run`) clears `HOST_TEST_WITHOUT`: there such a test runs or fails.
pub fn lacking(what: &str, how: &str) {
    let without = std::env::var("HOST_TEST_WITHOUT").unwrap_or_default();
    if without.split(',').any(|w| w.trim() == what) {
        eprintln!("skipped, as HOST_TEST_WITHOUT names {what}: this test needs {what}: {how}");
        return;
    }
    panic!(
        "this test needs {what}: {how} (to skip it knowingly, set HOST_TEST_WITHOUT={what}; CI never does)"
    );
}
