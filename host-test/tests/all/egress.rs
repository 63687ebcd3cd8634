//! The host's network settings applied to the real component: the
//! deny-list, proxies from the environment, connection reuse, and the
//! connect-to map.

use crate::common::proxy;

use std::sync::{Arc, Mutex};

use crate::common::{event, runtime, web_api_config};
use alert_handler_host::net::cidr::DenyList;
use alert_handler_host::net::proxy::ProxyConfig;
use alert_handler_host::net::{ConnectTo, NetSettings};
use alert_handler_host::{HandlerError, Instance, Level, Runtime};
use host_test::mock_slack::MockSlack;

fn logging(net: NetSettings) -> (Runtime, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let net = NetSettings {
        log: Arc::new(move |l| sink.lock().unwrap().push(l.to_string())),
        ..net
    };
    (
        runtime().with_settings(net, runtime().host().limits()),
        lines,
    )
}

fn configured_on(runtime: &Runtime, config: &str) -> Instance {
    let mut plugin = runtime.instantiate().unwrap();
    plugin.configure(config).unwrap().unwrap();
    plugin
}

#[test]
fn a_denied_address_range_is_refused_after_resolution() {
    let slack = MockSlack::start().unwrap();
    for spec in ["127.0.0.0/8", "private"] {
        let net = NetSettings {
            deny: DenyList::parse(spec).unwrap(),
            ..NetSettings::default()
        };
        let (runtime, log) = logging(net);
        // `localhost` resolves to a denied address: the check is on the address.
        let config = web_api_config(&slack).replace("127.0.0.1", "localhost");
        let mut plugin = configured_on(&runtime, &config);
        match plugin
            .handle_alert(&event("x", Level::Critical), &[])
            .unwrap()
        {
            Err(HandlerError::RequestDenied(m)) => assert!(m.contains("prohibited"), "{m}"),
            other => panic!("expected request-denied, got {other:?}"),
        }
        assert!(
            log.lock().unwrap().iter().any(|l| l.contains("is denied")),
            "{:?}",
            log.lock().unwrap()
        );
    }
    assert!(slack.requests().is_empty());
}

#[test]
fn requests_go_through_the_proxy_from_the_environment() {
    let slack = MockSlack::start().unwrap();
    let proxy = proxy::ConnectProxy::start(slack.addr());
    let env = [("HTTP_PROXY", format!("http://{}", proxy.addr))];
    let proxies =
        ProxyConfig::from_lookup(|k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone()))
            .unwrap();
    let (runtime, _) = logging(NetSettings {
        proxy: proxies,
        ..NetSettings::default()
    });
    // A name only the proxy knows: the host never resolves it itself.
    let config =
        web_api_config(&slack).replace(&slack.addr().to_string(), "slack.proxied.test:8080");
    let mut plugin = configured_on(&runtime, &config);
    plugin
        .handle_alert(&event("via proxy", Level::Critical), &[])
        .unwrap()
        .unwrap();
    assert_eq!(*proxy.targets.lock().unwrap(), ["slack.proxied.test:8080"]);
    assert_eq!(slack.requests()[0].host, "slack.proxied.test:8080");
}

#[test]
fn connections_are_reused_across_alerts_and_instances() {
    let slack = MockSlack::start().unwrap();
    let (reusing, _) = logging(NetSettings::default());
    for _ in 0..2 {
        let mut plugin = configured_on(&reusing, &web_api_config(&slack));
        for _ in 0..5 {
            plugin
                .handle_alert(&event("x", Level::Critical), &[])
                .unwrap()
                .unwrap();
        }
    }
    assert_eq!(reusing.net().connections_opened(), 1);

    let (fresh_each_time, _) = logging(NetSettings {
        reuse_connections: false,
        ..NetSettings::default()
    });
    let mut plugin = configured_on(&fresh_each_time, &web_api_config(&slack));
    for _ in 0..5 {
        plugin
            .handle_alert(&event("x", Level::Critical), &[])
            .unwrap()
            .unwrap();
    }
    assert_eq!(fresh_each_time.net().connections_opened(), 5);
    assert_eq!(slack.requests().len(), 15);
}

#[test]
fn connect_to_maps_an_origin_and_keeps_the_host_header() {
    let slack = MockSlack::start().unwrap();
    let mut connect_to = ConnectTo::default();
    connect_to.add("https://slack.com", &slack.url()).unwrap();
    let (runtime, _) = logging(NetSettings::with_connect_to(connect_to));
    let config = web_api_config(&slack).replace(&slack.url(), "https://slack.com");
    let mut plugin = configured_on(&runtime, &config);
    plugin
        .handle_alert(&event("x", Level::Critical), &[])
        .unwrap()
        .unwrap();
    let got = &slack.requests()[0];
    assert_eq!(
        (got.host.as_str(), got.path.as_str()),
        ("slack.com", "/api/chat.postMessage")
    );
}

/// A server that reads the request, then answers with `reply` and stalls.
fn stalling_server(reply: &'static [u8]) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(reply);
                std::thread::sleep(std::time::Duration::from_secs(30));
            });
        }
    });
    addr
}

#[test]
fn the_host_caps_response_timeouts_for_silent_and_stalling_servers() {
    let net = NetSettings {
        response_timeout: std::time::Duration::from_millis(300),
        ..NetSettings::default()
    };
    let (runtime, _) = logging(net);
    let silent = b"";
    let stalling = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"ok\":";
    for (reply, expected) in [
        (&silent[..], "timed out waiting for the answer"),
        (&stalling[..], "failed: connection read timeout"),
    ] {
        let addr = stalling_server(reply);
        let config = format!(
            "[slack]\nenabled = true\nurl = \"http://{addr}/api/chat.postMessage\"\ntoken = \"xoxb-t\"\nchannel = \"#c\"\n"
        );
        let mut plugin = configured_on(&runtime, &config);
        match plugin
            .handle_alert(&event("x", Level::Critical), &[])
            .unwrap()
        {
            Err(HandlerError::Transport(m)) => {
                assert!(m.contains(expected), "{m}");
                assert_eq!(m.lines().count(), 1, "one line, no backtrace: {m}");
            }
            other => panic!("expected a transport timeout, got {other:?}"),
        }
    }
}

/// A server that reads the request, then sends `head` and `body`, the part
/// named by `trickled` a byte every 100 ms (far inside any between-bytes
/// timeout).
fn trickling_server(trickled: &'static str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = r#"{"ok":true,"channel":"CC","ts":"1.000001","message":{"text":"a long enough answer to trickle"}}"#;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Padding: {}\r\nContent-Length: {}\r\n\r\n",
        "p".repeat(40),
        body.len()
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let head = head.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let _ = stream.read(&mut buf);
                for (part, text) in [("head", head.as_str()), ("body", body)] {
                    if part != trickled {
                        let _ = stream.write_all(text.as_bytes());
                        continue;
                    }
                    for b in text.bytes() {
                        if stream.write_all(&[b]).is_err() {
                            return;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn an_answer_trickled_past_the_response_deadline_is_a_transport_error() {
    let net = NetSettings {
        response_deadline: std::time::Duration::from_millis(800),
        ..NetSettings::default()
    };
    let (runtime, log) = logging(net);
    for (trickled, said) in [
        (
            "head",
            "the answer did not complete within the host's response deadline",
        ),
        ("body", "HTTP response timeout"),
    ] {
        let addr = trickling_server(trickled);
        let config = format!(
            "[slack]\nenabled = true\nurl = \"http://{addr}/api/chat.postMessage\"\ntoken = \"xoxb-t\"\nchannel = \"#c\"\n"
        );
        let mut plugin = configured_on(&runtime, &config);
        let started = std::time::Instant::now();
        let outcome = plugin
            .handle_alert(&event("x", Level::Critical), &[])
            .unwrap();
        let took = started.elapsed();
        match outcome {
            Err(HandlerError::Transport(m)) => assert!(m.contains(said), "{trickled}: {m}"),
            other => panic!("{trickled}: expected a transport error, got {other:?}"),
        }
        assert!(
            took < std::time::Duration::from_secs(5),
            "{trickled}: ended after {took:?}"
        );
        let log = log.lock().unwrap();
        assert!(
            log.iter().any(|l| l.contains(&format!(
                "did not complete within the 800ms response deadline (its {trickled} was still arriving)"
            ))),
            "{log:?}"
        );
    }
}
