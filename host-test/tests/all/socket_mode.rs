//! Socket Mode's pump (`slack_alertd::interactions::socket_mode`) against
//! the Socket Mode stand-in on 127.0.0.1, with a test peer that reads
//! Slack's messages as the component does: envelopes acknowledged,
//! Slack's `disconnect` and lost connections reopened one at a time, a
//! failing `apps.connections.open` retried and reported without the token.
//! And the Slack stand-in's `apps.connections.open`.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use host_test::mock_slack::MockSlack;
use host_test::mock_socket_mode::SocketModeStandIn;
use host_test::slack_clicks::block_actions;
use serde_json::{json, Value};
use slack_alertd::interactions::socket_mode::{
    self, BoxFuture, Network, Next, Peer, SocketState, Timing,
};

use alert_handler_host::net::dial::Dialer;
use alert_handler_host::net::tls::{client_config, TlsSettings};
use alert_handler_host::NetSettings;

use crate::common::pki;
use crate::common::server::wait_until;

const TOKEN: &str = "xapp-1-A0SECRET-1234567890-c0ffee";

/// A peer that reads Slack's messages as the component does, opening the
/// stand-in (after the failures it was given).
struct TestPeer {
    /// `ws://127.0.0.1:PORT` or `wss://…`.
    stand_in: String,
    failures: Mutex<VecDeque<String>>,
    opens: Mutex<Vec<Instant>>,
    messages: Mutex<Vec<String>>,
}

impl TestPeer {
    fn new(stand_in: &SocketModeStandIn) -> Arc<TestPeer> {
        TestPeer::failing(stand_in, &[])
    }

    /// Its first opens fail with these errors.
    fn failing(stand_in: &SocketModeStandIn, failures: &[&str]) -> Arc<TestPeer> {
        Arc::new(TestPeer {
            stand_in: format!("{}://{}", stand_in.scheme(), stand_in.addr()),
            failures: Mutex::new(failures.iter().map(|f| f.to_string()).collect()),
            opens: Mutex::default(),
            messages: Mutex::default(),
        })
    }

    fn opens(&self) -> Vec<Instant> {
        self.opens.lock().unwrap().clone()
    }
}

impl Peer for TestPeer {
    fn open(&self) -> BoxFuture<'_, anyhow::Result<String>> {
        Box::pin(async move {
            let mut opens = self.opens.lock().unwrap();
            opens.push(Instant::now());
            match self.failures.lock().unwrap().pop_front() {
                Some(failure) => Err(anyhow::anyhow!(failure)),
                None => Ok(format!(
                    "{}/link/?ticket=test-ticket-{}",
                    self.stand_in,
                    opens.len()
                )),
            }
        })
    }

    fn message(&self, text: String) -> BoxFuture<'_, Next> {
        Box::pin(async move {
            let value: Value = serde_json::from_str(&text).unwrap_or_default();
            self.messages.lock().unwrap().push(text);
            match (value["type"].as_str(), value["envelope_id"].as_str()) {
                (Some("disconnect"), _) => Next {
                    reply: None,
                    reconnect: true,
                },
                (_, Some(id)) => Next {
                    reply: Some(json!({"envelope_id": id}).to_string()),
                    reconnect: false,
                },
                _ => Next::default(),
            }
        })
    }
}

/// The pump running on a thread of its own, its logs captured; stopped
/// when dropped.
struct Pumping {
    state: Arc<SocketState>,
    logs: Arc<Mutex<Vec<u8>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Pumping {
    /// Over the host's default networking, `ws://` allowed (the stand-in's).
    fn start(peer: Arc<TestPeer>, timing: Timing) -> Pumping {
        Pumping::start_over(peer, timing, network(client_tls(), true))
    }

    /// With `tls` for `wss://`.
    fn start_tls(peer: Arc<TestPeer>, timing: Timing, tls: Arc<rustls::ClientConfig>) -> Pumping {
        Pumping::start_over(peer, timing, network(tls, false))
    }

    fn start_over(peer: Arc<TestPeer>, timing: Timing, network: Network) -> Pumping {
        let state = Arc::new(SocketState::new());
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (pump_state, written) = (state.clone(), logs.clone());
        let thread = std::thread::spawn(move || {
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || Capture(written.clone()))
                .finish();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            tracing::subscriber::with_default(subscriber, || {
                runtime.block_on(socket_mode::run_with(
                    peer,
                    network,
                    pump_state,
                    timing,
                    async {
                        let _ = stopped.await;
                    },
                ))
            });
        });
        Pumping {
            state,
            logs,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn logs(&self) -> String {
        String::from_utf8_lossy(&self.logs.lock().unwrap()).into_owned()
    }

    /// Stops it and waits until it returned.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Pumping {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Unused by `ws://`; what `run` takes.
fn client_tls() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
    )
}

/// The host's default networking (no proxy, no deny-list) with `tls`.
fn network(tls: Arc<rustls::ClientConfig>, allow_ws: bool) -> Network {
    Network {
        dialer: Dialer::new(&NetSettings::default(), tls),
        allow_ws,
        allowlist: None,
    }
}

fn timing(first_backoff: Duration) -> Timing {
    Timing {
        first_backoff,
        max_backoff: Duration::from_secs(20),
        ..Timing::default()
    }
}

#[test]
fn envelopes_are_acknowledged_with_their_envelope_id() {
    let stand_in = SocketModeStandIn::start().unwrap();
    let peer = TestPeer::new(&stand_in);
    let pump = Pumping::start(peer.clone(), Timing::default());
    wait_until("a connection", || stand_in.ready() == 1);
    let ids = ["1d2c3b4a-0001", "1d2c3b4a-0002", "1d2c3b4a-0003"];
    for id in ids {
        stand_in.push_envelope(
            id,
            block_actions(
                "acknowledge",
                "cpu:web-1",
                "U0123",
                "CALERTS",
                "1700000000.000100",
                "",
            ),
        );
    }
    wait_until("three acknowledgements", || stand_in.acks().len() == 3);
    assert_eq!(stand_in.acks(), ids);
    assert_eq!(
        stand_in.frames()[0],
        json!({"envelope_id": ids[0]}).to_string()
    );
    // The peer saw Slack's hello, then the envelopes as sent.
    let messages = peer.messages.lock().unwrap().clone();
    assert_eq!(messages.len(), 4, "{messages:?}");
    let first: Value = serde_json::from_str(&messages[1]).unwrap();
    assert_eq!(first["payload"]["actions"][0]["value"], "cpu:web-1");
    let status = pump.state.status();
    assert!(status.connected);
    assert_eq!(
        (status.connections, status.reconnects, status.acked),
        (1, 0, 3)
    );
    assert_eq!(status.error, None);
    assert_eq!(stand_in.paths(), ["/link/?ticket=test-ticket-1"]);
    let logs = pump.logs();
    assert!(
        logs.contains(&format!("ws://{}/link/", stand_in.addr())),
        "{logs}"
    );
    assert!(!logs.contains("ticket"), "the ticket was logged: {logs}");
}

#[test]
fn slack_disconnect_reconnects_once_at_once_never_two_connections_open() {
    let stand_in = SocketModeStandIn::start().unwrap();
    // A backoff far longer than the wait below: the reconnect must not wait.
    let pump = Pumping::start(TestPeer::new(&stand_in), timing(Duration::from_secs(30)));
    wait_until("a connection", || stand_in.ready() == 1);
    let asked = Instant::now();
    stand_in.disconnect("refresh_requested");
    wait_until("a second connection", || {
        stand_in.connections() == 2 && stand_in.ready() == 1
    });
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "the reconnect waited a backoff"
    );
    stand_in.push_envelope(
        "after-refresh",
        block_actions("unsilence", "k", "U1", "C1", "1.2", ""),
    );
    // Acknowledged on the new connection: the event after which no other
    // reconnect is pending.
    wait_until("the acknowledgement", || {
        stand_in.acks() == ["after-refresh"]
    });
    assert_eq!(stand_in.connections(), 2, "more than one reconnect");
    assert_eq!(stand_in.max_open(), 1, "two connections were open at once");
    assert_eq!(pump.state.reconnects(), 1);
    assert_eq!(pump.state.connections(), 2);
    assert!(pump.state.connected());
}

#[test]
fn a_dropped_connection_is_reopened_after_the_backoff() {
    let stand_in = SocketModeStandIn::start().unwrap();
    let first_backoff = Duration::from_millis(600);
    let pump = Pumping::start(TestPeer::new(&stand_in), timing(first_backoff));
    wait_until("a connection", || stand_in.ready() == 1);
    let dropped = Instant::now();
    stand_in.drop_connections();
    wait_until("a second connection", || {
        stand_in.ready() == 1 && stand_in.connections() == 2
    });
    let reopened = stand_in.connected_at()[1];
    assert!(
        reopened.duration_since(dropped) >= first_backoff,
        "reconnected after {:?}, before the backoff of {first_backoff:?}",
        reopened.duration_since(dropped)
    );
    assert_eq!(stand_in.max_open(), 1);
    // The stand-in counts a link once it sent its hello; the pump is
    // connected once it read it, a moment later.
    wait_until("the pump reading the hello", || pump.state.connected());
    assert_eq!(pump.state.reconnects(), 1);
    assert_eq!(pump.state.error(), None, "the error outlived the reconnect");
    assert!(pump.logs().contains("not connected"), "{}", pump.logs());
}

#[test]
fn a_connection_gone_silent_is_pinged_then_taken_as_lost_and_reopened() {
    let stand_in = SocketModeStandIn::start().unwrap();
    let timing = Timing {
        ping_every: Duration::from_millis(150),
        silent_for: Duration::from_millis(600),
        ..timing(Duration::from_millis(50))
    };
    let pump = Pumping::start(TestPeer::new(&stand_in), timing);
    wait_until("a connection", || stand_in.ready() == 1);
    // Nothing but hello comes from the peer: only the pongs to the pump's
    // pings are heard, and they keep the connection past `silent_for`.
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(stand_in.connections(), 1, "an answering peer is kept");
    // Silent from now on, its TCP connection still open.
    let frozen = Instant::now();
    stand_in.freeze();
    wait_until("a second connection", || stand_in.connections() == 2);
    let after = stand_in.connected_at()[1].duration_since(frozen);
    assert!(
        after >= Duration::from_millis(600),
        "taken as lost after {after:?}, before 600 ms of silence"
    );
    assert_eq!(pump.state.reconnects(), 1);
    assert!(pump.logs().contains("pings unanswered"), "{}", pump.logs());
    stand_in.drop_connections();
}

#[test]
fn a_failing_open_is_retried_with_backoff_and_reported_without_the_token() {
    let stand_in = SocketModeStandIn::start().unwrap();
    let failure = format!("invalid_auth: Slack refused the app-level token {TOKEN}");
    let peer = TestPeer::failing(&stand_in, &[&failure, &failure, &failure]);
    let first_backoff = Duration::from_millis(300);
    let pump = Pumping::start(peer.clone(), timing(first_backoff));
    wait_until("a second try", || peer.opens().len() >= 2);
    let status = pump.state.status();
    assert!(!status.connected);
    assert_eq!(status.connections, 0);
    let error = status.error.expect("the reason is shown");
    assert!(error.contains("invalid_auth"), "{error}");
    assert!(!error.contains("A0SECRET"), "the token is shown: {error}");
    wait_until("a connection at the fourth try", || stand_in.ready() == 1);
    let opens = peer.opens();
    assert_eq!(opens.len(), 4);
    for (n, pair) in opens.windows(2).enumerate() {
        let least = first_backoff * (1 << n);
        let waited = pair[1].duration_since(pair[0]);
        assert!(
            waited >= least,
            "try {} came after {waited:?}, before {least:?}",
            n + 2
        );
    }
    wait_until("the pump reading the hello", || pump.state.connected());
    assert_eq!(pump.state.error(), None);
    assert_eq!(
        pump.state.reconnects(),
        0,
        "a failed open is not a reconnect"
    );
    let logs = pump.logs();
    assert!(logs.contains("invalid_auth"), "{logs}");
    assert!(!logs.contains("A0SECRET"), "the token was logged: {logs}");
}

#[test]
fn a_ping_is_answered_with_a_pong() {
    let stand_in = SocketModeStandIn::start().unwrap();
    let _pump = Pumping::start(TestPeer::new(&stand_in), Timing::default());
    wait_until("a connection", || stand_in.ready() == 1);
    stand_in.ping();
    wait_until("a pong", || stand_in.pongs() == 1);
}

#[test]
fn stopping_closes_the_connection_and_returns() {
    let stand_in = SocketModeStandIn::start().unwrap();
    let mut pump = Pumping::start(TestPeer::new(&stand_in), Timing::default());
    wait_until("a connection", || stand_in.ready() == 1);
    pump.stop();
    wait_until("the connection closed", || stand_in.open() == 0);
    assert!(!pump.state.connected());
    assert_eq!(stand_in.connections(), 1);
}

/// `POST path` with `Authorization: Bearer token` to `addr`: the status
/// and the JSON body.
fn post(addr: SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = &answer[answer.find("\r\n\r\n").unwrap() + 4..];
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn the_slack_stand_in_opens_socket_mode_for_an_app_token() {
    let stand_in = SocketModeStandIn::start().unwrap();
    let slack = MockSlack::start().unwrap();
    slack.serve_socket_mode(&stand_in);
    let (status, answer) = post(slack.addr(), "/api/apps.connections.open", TOKEN);
    assert_eq!(status, 200);
    assert_eq!(answer["ok"], true, "{answer}");
    let url = answer["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("ws://{}/link/?ticket=", stand_in.addr())),
        "{url}"
    );
    let requests = slack.requests();
    assert_eq!(
        requests[0].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
    let (_, answer) = post(slack.addr(), "/api/apps.connections.open", "xoxb-1-bot");
    assert_eq!(
        answer,
        json!({"ok": false, "error": "not_allowed_token_type"})
    );
    assert!(slack.messages().is_empty(), "it was taken for a post");
}

/// The host's client configuration trusting `ca` (as a section's `ssl-ca`).
fn trusting(ca: &pki::Ca, dir: &std::path::Path) -> Arc<rustls::ClientConfig> {
    let ca_file = pki::write(dir, "ca.pem", &ca.pem);
    let settings = TlsSettings {
        ssl_ca: Some(ca_file.display().to_string()),
        ..TlsSettings::default()
    };
    client_config(&settings, "default").unwrap()
}

#[test]
fn wss_is_opened_with_the_hosts_tls_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("Socket Mode CA");
    let stand_in =
        SocketModeStandIn::start_tls(pki::server(&ca.leaf(&["127.0.0.1"]), None)).unwrap();
    let pump = Pumping::start_tls(
        TestPeer::new(&stand_in),
        Timing::default(),
        trusting(&ca, dir.path()),
    );
    wait_until("a connection", || stand_in.ready() == 1);
    stand_in.push_envelope(
        "over-tls",
        block_actions("acknowledge", "k", "U1", "C1", "1.2", ""),
    );
    wait_until("the acknowledgement", || stand_in.acks() == ["over-tls"]);
    assert!(pump.state.connected());
}

#[test]
fn an_untrusted_certificate_is_not_connected_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let untrusted = pki::Ca::new("Someone else");
    let stand_in =
        SocketModeStandIn::start_tls(pki::server(&untrusted.leaf(&["127.0.0.1"]), None)).unwrap();
    let peer = TestPeer::new(&stand_in);
    let pump = Pumping::start_tls(
        peer.clone(),
        timing(Duration::from_millis(100)),
        trusting(&pki::Ca::new("Socket Mode CA"), dir.path()),
    );
    wait_until("a second try", || peer.opens().len() >= 2);
    let error = pump.state.error().expect("the reason is shown");
    assert!(!pump.state.connected());
    assert!(error.contains("certificate"), "{error}");
    assert!(!error.contains("ticket="), "{error}");
    assert_eq!(stand_in.paths(), Vec::<String>::new());
}

// Through `serve`, with the real component in wasmtime: the component asks
// the Slack stand-in's `apps.connections.open` (through the host), and
// serve opens the WebSocket it names by the host's networking.

mod through_serve {
    use std::path::Path;

    use host_test::mock_slack::MockSlack;
    use host_test::mock_socket_mode::SocketModeStandIn;
    use serde_json::Value;

    use crate::common::server::{wait_until, write_config, Server};
    use crate::common::{pki, proxy, web_api_config};

    const APP_TOKEN: &str = "xapp-1-A0NET-1234-5e5e5e5e";

    /// The Web API section at `slack` (with `keys` added) and the app
    /// token, written in `dir`; the stand-in's `apps.connections.open`
    /// names `stand_in`.
    fn setup(
        slack: &MockSlack,
        stand_in: &SocketModeStandIn,
        dir: &Path,
        keys: &str,
    ) -> (std::path::PathBuf, String) {
        slack.serve_socket_mode(stand_in);
        let config = write_config(
            dir,
            &format!(
                "{}layout = \"blocks\"\nactions = \"acknowledge\"\n{keys}",
                web_api_config(slack)
            ),
        );
        let token = dir.join("app-token");
        std::fs::write(&token, format!("{APP_TOKEN}\n")).unwrap();
        (config, token.to_str().unwrap().to_string())
    }

    fn health(server: &Server) -> Value {
        server
            .request("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .1
    }

    /// Waits until `/healthz` shows Socket Mode connected.
    fn connected(server: &Server) {
        wait_until("/healthz showing Socket Mode connected", || {
            health(server)["socket_mode"]["connected"] == true
        });
    }

    /// The error `/healthz` shows for Socket Mode, once there is one.
    fn socket_error(server: &Server) -> String {
        let error = std::cell::RefCell::new(String::new());
        wait_until("Socket Mode's error in /healthz", || {
            *error.borrow_mut() = health(server)["socket_mode"]["error"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            !error.borrow().is_empty()
        });
        error.into_inner()
    }

    /// Nothing secret in what serve showed.
    fn nothing_secret(server: &Server, error: &str) {
        let shown = format!("{}{error}", server.logged());
        assert!(!shown.contains("A0NET"), "the app token is shown: {shown}");
        assert!(
            !shown.contains("stand-in-ticket"),
            "the ticket is shown: {shown}"
        );
    }

    #[test]
    fn a_ws_url_is_refused_unless_the_operator_allows_it() {
        let slack = MockSlack::start().unwrap();
        let stand_in = SocketModeStandIn::start().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (config, token) = setup(&slack, &stand_in, dir.path(), "");
        let server = Server::start(
            &config,
            &dir.path().join("refused"),
            &["--slack-app-token-file", &token],
        );
        let error = socket_error(&server);
        assert!(
            error.contains(&format!("ws://{}/link/", stand_in.addr()))
                && error.contains("no TLS")
                && error.contains("--insecure-allow-ws"),
            "{error}"
        );
        assert_eq!(stand_in.connections(), 0, "a ws:// URL was opened");
        assert!(server.logged().contains("--insecure-allow-ws"));
        nothing_secret(&server, &error);
        server.kill();

        // The operator's explicit choice: then it connects.
        let allowed = Server::start(
            &config,
            &dir.path().join("allowed"),
            &["--slack-app-token-file", &token, "--insecure-allow-ws"],
        );
        wait_until("the Socket Mode connection", || stand_in.ready() == 1);
        connected(&allowed);
    }

    #[test]
    fn socket_mode_goes_through_the_https_proxy_with_the_sections_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = pki::Ca::new("Socket Mode CA");
        // A name only the proxy knows: the host never resolves it itself.
        let stand_in =
            SocketModeStandIn::start_tls(pki::server(&ca.leaf(&["wss-primary.slack.test"]), None))
                .unwrap()
                .advertised_as("wss://wss-primary.slack.test");
        let proxy = proxy::ConnectProxy::start(stand_in.addr());
        let slack = MockSlack::start().unwrap();
        let ca_file = pki::write(dir.path(), "ca.pem", &ca.pem);
        let (config, token) = setup(
            &slack,
            &stand_in,
            dir.path(),
            &format!("ssl-ca = \"{}\"\n", ca_file.display()),
        );
        let proxy_url = format!("http://{}", proxy.addr);
        let server = Server::start_env(
            &config,
            &dir.path().join("spool"),
            &["--slack-app-token-file", &token],
            &[("HTTPS_PROXY", &proxy_url), ("NO_PROXY", "")],
        );
        wait_until("the Socket Mode connection", || stand_in.ready() == 1);
        // One tunnel, to the URL's host (the Web API on 127.0.0.1 goes
        // direct, as loopback always does).
        assert_eq!(
            *proxy.targets.lock().unwrap(),
            ["wss-primary.slack.test:443"]
        );
        assert_eq!(stand_in.hosts(), ["wss-primary.slack.test"]);
        assert_eq!(stand_in.paths().len(), 1);
        assert!(stand_in.paths()[0].starts_with("/link/?ticket=stand-in-ticket-"));
        connected(&server);
        nothing_secret(&server, "");
    }

    #[test]
    fn socket_mode_is_refused_by_deny_cidrs_naming_the_address_and_the_rule() {
        let slack = MockSlack::start().unwrap();
        // On 127.0.0.2: Slack's stand-in on 127.0.0.1 stays reachable.
        let stand_in = SocketModeStandIn::start_on([127, 0, 0, 2].into()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (config, token) = setup(&slack, &stand_in, dir.path(), "");
        let server = Server::start(
            &config,
            &dir.path().join("spool"),
            &[
                "--slack-app-token-file",
                &token,
                "--insecure-allow-ws",
                "--deny-cidrs",
                "10.0.0.0/8,127.0.0.2/32",
            ],
        );
        let error = socket_error(&server);
        assert!(
            error.contains("refused by --deny-cidrs: address 127.0.0.2 is in 127.0.0.2/32"),
            "{error}"
        );
        assert!(server.logged().contains("--deny-cidrs"));
        assert_eq!(stand_in.connections(), 0, "a denied address was reached");
        // The Web API (127.0.0.1) was asked: only the WebSocket was refused.
        assert!(slack
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/apps.connections.open")));
        nothing_secret(&server, &error);
    }

    #[test]
    fn socket_mode_follows_the_connect_to_map() {
        let slack = MockSlack::start().unwrap();
        let stand_in = SocketModeStandIn::start()
            .unwrap()
            .advertised_as("wss://wss-primary.slack.test");
        let dir = tempfile::tempdir().unwrap();
        let (config, token) = setup(&slack, &stand_in, dir.path(), "");
        // Slack's wss:// origin sent to the plain stand-in: the operator's
        // choice, so no --insecure-allow-ws.
        let route = format!("wss://wss-primary.slack.test=ws://{}", stand_in.addr());
        let server = Server::start(
            &config,
            &dir.path().join("spool"),
            &["--slack-app-token-file", &token, "--connect-to", &route],
        );
        wait_until("the Socket Mode connection", || stand_in.ready() == 1);
        // Headers unchanged, as for the component's requests.
        assert_eq!(stand_in.hosts(), ["wss-primary.slack.test"]);
        connected(&server);
    }

    #[test]
    fn a_plugins_socket_mode_url_must_be_on_the_operators_egress_allowlist() {
        let slack = MockSlack::start().unwrap();
        let stand_in = SocketModeStandIn::start().unwrap();
        slack.serve_socket_mode(&stand_in);
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        std::fs::copy(host_test::COMPONENT_PATH, plugins.join("slack.wasm")).unwrap();
        std::fs::write(plugins.join("slack.toml"), web_api_config(&slack)).unwrap();
        let allowlist = plugins.join("slack.egress.toml");
        // The Web API only.
        std::fs::write(&allowlist, format!("allow = [\"{}\"]\n", slack.url())).unwrap();
        let token = dir.path().join("app-token");
        std::fs::write(&token, format!("{APP_TOKEN}\n")).unwrap();
        let args = [
            "--slack-app-token-file",
            token.to_str().unwrap(),
            "--insecure-allow-ws",
        ];
        let target = ["--plugins", plugins.to_str().unwrap()];
        let server = Server::start_with(&target, &dir.path().join("refused"), &args);
        let error = socket_error(&server);
        let origin = stand_in.origin();
        assert!(
            error.contains(&format!("\"{origin}\" to its `allow`"))
                && error.contains(&allowlist.display().to_string()),
            "{error}"
        );
        assert_eq!(
            stand_in.connections(),
            0,
            "an origin off the list was reached"
        );
        nothing_secret(&server, &error);
        server.kill();

        // The operator lists it: then it connects.
        std::fs::write(
            &allowlist,
            format!("allow = [\"{}\", \"{origin}\"]\n", slack.url()),
        )
        .unwrap();
        let allowed = Server::start_with(&target, &dir.path().join("allowed"), &args);
        wait_until("the Socket Mode connection", || stand_in.ready() == 1);
        connected(&allowed);
    }
}
