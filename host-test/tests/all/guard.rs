//! The host's limits hold against a guest that misbehaves: the probe test
//! guest (`probe/`) tries destinations the configuration does not name,
//! spins forever, and allocates without end.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{configured, event, runtime, web_api_config};
use alert_handler_host::net::{NetPolicy, NetSettings};
use alert_handler_host::{destinations, ConfigSummary, Level};
use alert_handler_host::{Host, Limits, State};
use host_test::mock_slack::MockSlack;
use wasmtime::component::Component;
use wasmtime::Store;
use wasmtime_wasi::WasiCtx;

// Async exports, as the host's linker (async WASI) needs; called here
// through `block`, as the embedding's own sync methods are.
wasmtime::component::bindgen!({ world: "probe", path: "probe/wit", exports: { default: async } });

use wasmtime_wasi::runtime::in_tokio as block;

const PROBE_PATH: &str = env!("PROBE_WASM");

/// A probe instance under `host`, with the egress policy `policy`.
struct Subject {
    host: Arc<Host>,
    store: Store<State>,
    probe: Probe,
}

impl Subject {
    fn new(host: Arc<Host>, policy: NetPolicy) -> Subject {
        let component = Component::from_file(host.engine(), PROBE_PATH).unwrap();
        let pre = ProbePre::new(host.linker().instantiate_pre(&component).unwrap()).unwrap();
        let mut store = host.store(WasiCtx::builder().build(), Arc::new(policy));
        host.arm(&mut store);
        let probe = block(pre.instantiate_async(&mut store)).unwrap();
        Subject { host, store, probe }
    }

    fn fetch(&mut self, url: &str) -> Result<u16, String> {
        self.host.arm(&mut self.store);
        block(self.probe.call_fetch(&mut self.store, url)).expect("no trap")
    }
}

/// A host whose log is captured.
fn logging_host(limits: Limits) -> (Arc<Host>, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let net = NetSettings {
        log: Arc::new(move |l| sink.lock().unwrap().push(l.to_string())),
        ..NetSettings::default()
    };
    (Host::new(net, limits).unwrap(), lines)
}

/// The summary of an instance nobody configured: no workspaces.
fn unconfigured() -> ConfigSummary {
    ConfigSummary {
        kind: String::new(),
        workspaces: vec![],
    }
}

/// The policy the host applies to an instance configured like `summary`.
fn policy(host: &Host, summary: &ConfigSummary) -> NetPolicy {
    NetPolicy::for_destinations(&destinations(summary), host.net()).unwrap()
}

#[test]
fn a_guest_reaches_only_its_enabled_workspaces_endpoints() {
    let slack = MockSlack::start().unwrap();
    let elsewhere = MockSlack::start().unwrap();
    let disabled = MockSlack::start().unwrap();
    let config = format!(
        "{}\n[[slack]]\nenabled = false\nworkspace = \"off\"\nurl = \"{}/api/chat.postMessage\"\n",
        web_api_config(&slack),
        disabled.url()
    );
    let (_, summary) = configured(&config);
    let (host, log) = logging_host(Limits::default());
    let mut probe = Subject::new(host.clone(), policy(&host, &summary));

    // The configured endpoint answers (the stand-in refuses GET with 405).
    assert_eq!(
        probe.fetch(&format!("{}/api/chat.postMessage", slack.url())),
        Ok(405)
    );
    for url in [
        format!("{}/", elsewhere.url()),
        format!("{}/api/chat.postMessage", disabled.url()),
        format!("https://{}/api/chat.postMessage", slack.addr()),
        "http://localhost:1/".to_string(),
    ] {
        let answer = probe.fetch(&url);
        assert_eq!(
            answer,
            Err("ErrorCode::HttpRequestDenied".to_string()),
            "{url}"
        );
    }
    assert!(elsewhere.requests().is_empty() && disabled.requests().is_empty());
    let log = log.lock().unwrap();
    assert_eq!(
        log.iter().filter(|l| l.contains("egress: denied")).count(),
        4,
        "{log:?}"
    );
}

#[test]
fn an_unconfigured_instance_reaches_nothing() {
    let slack = MockSlack::start().unwrap();
    let (host, _) = logging_host(Limits::default());
    let mut probe = Subject::new(host.clone(), policy(&host, &unconfigured()));
    assert_eq!(
        probe.fetch(&format!("{}/", slack.url())),
        Err("ErrorCode::HttpRequestDenied".into())
    );
    assert!(slack.requests().is_empty());
}

#[test]
fn a_runaway_guest_is_stopped_at_its_deadline_and_the_host_goes_on() {
    let limits = Limits {
        call_deadline: Duration::from_millis(300),
        ..Limits::default()
    };
    let (host, _) = logging_host(limits);
    let mut probe = Subject::new(host.clone(), policy(&host, &unconfigured()));
    let started = Instant::now();
    host.arm(&mut probe.store);
    let error = block(probe.probe.call_spin(&mut probe.store)).unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "stopped after {elapsed:?}"
    );
    let said = host.explain(error).to_string();
    assert!(said.contains("ran past its 300ms deadline"), "{said}");

    // The same host serves the next instance.
    let mut again = Subject::new(host.clone(), policy(&host, &unconfigured()));
    host.arm(&mut again.store);
    assert_eq!(
        block(again.probe.call_grow(&mut again.store, 1)).unwrap(),
        1
    );
}

#[test]
fn a_guest_over_its_memory_cap_is_stopped() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let (host, _) = logging_host(limits);
    let mut probe = Subject::new(host.clone(), policy(&host, &unconfigured()));
    host.arm(&mut probe.store);
    assert_eq!(
        block(probe.probe.call_grow(&mut probe.store, 8)).unwrap(),
        8
    );
    host.arm(&mut probe.store);
    let error = block(probe.probe.call_grow(&mut probe.store, 64)).unwrap_err();
    let said = host.explain(error).to_string();
    assert!(said.contains("more than 32 MiB of memory"), "{said}");
}

#[test]
fn the_handler_runs_under_the_same_limits_and_recovers_after_a_trap() {
    let slack = MockSlack::start().unwrap();
    let tight = runtime().with_settings(
        NetSettings::default(),
        Limits {
            memory_bytes: 8 << 20,
            ..Limits::default()
        },
    );
    let mut plugin = tight.instantiate().unwrap();
    plugin.configure(&web_api_config(&slack)).unwrap().unwrap();
    // A message far larger than 8 MiB of guest memory can hold.
    let huge = "x".repeat(12 << 20);
    let error = plugin
        .handle_alert(&event(&huge, Level::Critical), &[])
        .unwrap_err();
    assert!(
        error.to_string().contains("more than 8 MiB of memory"),
        "{error}"
    );
    let again = plugin
        .handle_alert(&event("small", Level::Critical), &[])
        .unwrap_err();
    assert!(
        again.to_string().contains("stopped by an earlier trap"),
        "{again}"
    );

    let mut fresh = tight.instantiate().unwrap();
    fresh.configure(&web_api_config(&slack)).unwrap().unwrap();
    fresh
        .handle_alert(&event("small", Level::Critical), &[])
        .unwrap()
        .unwrap();
    assert_eq!(slack.requests().len(), 1);
}

#[test]
fn the_compiled_component_is_cached_and_a_changed_wasm_recompiles() {
    use alert_handler_host::cache::Source;
    use alert_handler_host::Runtime;
    use host_test::COMPONENT_PATH;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("slack.wasm");
    std::fs::copy(COMPONENT_PATH, &plugin).unwrap();
    let cache = dir.path().join("cache");
    let host = runtime().host().clone();

    let first = Runtime::open(host.clone(), &plugin, Some(&cache)).unwrap();
    let warm = Runtime::open(host.clone(), &plugin, Some(&cache)).unwrap();
    assert_eq!(
        (first.source(), warm.source()),
        (Source::Compiled, Source::Cached)
    );
    let slack = MockSlack::start().unwrap();
    let mut instance = warm.instantiate().unwrap();
    instance
        .configure(&web_api_config(&slack))
        .unwrap()
        .unwrap();
    instance
        .handle_alert(&event("from the cache", Level::Ok), &[])
        .unwrap()
        .unwrap();

    // Another wasm at the same path is compiled, not served stale.
    let mut changed = std::fs::read(COMPONENT_PATH).unwrap();
    changed.extend_from_slice(&[0, 6, 5, b'x', b'-', b'v', b'2', 1]); // a custom section
    std::fs::write(&plugin, changed).unwrap();
    let third = Runtime::open(host, &plugin, Some(&cache)).unwrap();
    assert_eq!(third.source(), Source::Compiled);
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
}

/// The component built into the binary (`slack_alertd::COMPONENT`) is the
/// one built from this checkout, byte for byte; it loads from its bytes,
/// compiled once and then from the cache, keyed by those bytes; and it
/// sends as the file does.
#[test]
fn the_built_in_component_is_the_checkouts_and_is_cached_by_its_bytes() {
    use alert_handler_host::cache::Source;
    use alert_handler_host::Runtime;
    use std::path::Path;
    assert_eq!(
        slack_alertd::COMPONENT,
        std::fs::read(host_test::COMPONENT_PATH).unwrap().as_slice(),
        "the binary carries the component built with it"
    );
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let host = runtime().host().clone();
    let name = Path::new(slack_alertd::BUILT_IN);
    let open = || Runtime::open_bytes(host.clone(), name, slack_alertd::COMPONENT, Some(&cache));
    let (first, warm) = (open().unwrap(), open().unwrap());
    assert_eq!(
        (first.source(), warm.source()),
        (Source::Compiled, Source::Cached)
    );
    assert_eq!(warm.path(), name);
    let slack = MockSlack::start().unwrap();
    let mut instance = warm.instantiate().unwrap();
    instance
        .configure(&web_api_config(&slack))
        .unwrap()
        .unwrap();
    instance
        .handle_alert(&event("built in", Level::Critical), &[])
        .unwrap()
        .unwrap();
    assert_eq!(slack.requests().len(), 1);
    let cached: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(
        cached[0].starts_with("built-in_slack_alert_handler-") && cached[0].ends_with(".cwasm"),
        "{cached:?}"
    );
}
