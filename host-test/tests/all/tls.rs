//! Per-workspace TLS, owned by the host: real TLS on 127.0.0.1 with
//! certificates made in the test. The component only sees wasi:http's
//! error codes, and reports a certificate failure as `tls`.

use crate::common::pki;

use std::sync::{Arc, Mutex};

use crate::common::{event, options, runtime};
use alert_handler_host::net::NetSettings;
use alert_handler_host::{HandlerError, Instance, Level};
use host_test::mock_slack::MockSlack;
use pki::{Ca, Leaf};

fn workspace(id: &str, url: &str, extra: &str, default: bool) -> String {
    format!(
        "[[slack]]\nenabled = true\ndefault = {default}\nworkspace = \"{id}\"\nurl = \"{url}/api/chat.postMessage\"\ntoken = \"xoxb-t\"\nchannel = \"#c\"\n{extra}\n"
    )
}

fn tls_keys(
    dir: &std::path::Path,
    prefix: &str,
    ca: Option<&str>,
    client: Option<&Leaf>,
) -> String {
    let mut keys = String::new();
    if let Some(ca) = ca {
        let path = pki::write(dir, &format!("{prefix}-ca.pem"), ca);
        keys += &format!("ssl-ca = \"{}\"\n", path.display());
    }
    if let Some(leaf) = client {
        let cert = pki::write(dir, &format!("{prefix}-client.pem"), &leaf.cert_pem);
        let key = pki::write(dir, &format!("{prefix}-client-key.pem"), &leaf.key_pem);
        keys += &format!(
            "ssl-cert = \"{}\"\nssl-key = \"{}\"\n",
            cert.display(),
            key.display()
        );
    }
    keys
}

/// An instance under a runtime whose host log is captured.
fn instance_logging() -> (Instance, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let net = NetSettings {
        log: Arc::new(move |l| sink.lock().unwrap().push(l.to_string())),
        ..NetSettings::default()
    };
    (
        runtime()
            .with_settings(net, runtime().host().limits())
            .instantiate()
            .unwrap(),
        lines,
    )
}

fn configure(plugin: &mut Instance, config: &str) {
    plugin
        .configure(config)
        .expect("no trap")
        .expect("configuration accepted");
}

fn send(
    plugin: &mut Instance,
    workspace: &str,
) -> Result<alert_handler_host::Delivery, HandlerError> {
    plugin
        .handle_alert(
            &event("tls", Level::Critical),
            &options(&[("workspace", workspace)]),
        )
        .expect("no trap")
}

#[test]
fn a_server_signed_by_the_configured_ca_is_trusted() {
    let ca = Ca::new("CA A");
    let server = MockSlack::start_tls(pki::server(&ca.leaf(&["127.0.0.1"]), None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut plugin, _) = instance_logging();
    configure(
        &mut plugin,
        &workspace(
            "a",
            &server.url(),
            &tls_keys(dir.path(), "a", Some(&ca.pem), None),
            true,
        ),
    );
    send(&mut plugin, "a").expect("delivered over TLS");
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn an_untrusted_server_is_a_tls_certificate_error() {
    let ca = Ca::new("unknown CA");
    let server = MockSlack::start_tls(pki::server(&ca.leaf(&["127.0.0.1"]), None)).unwrap();
    let (mut plugin, _) = instance_logging();
    // No ssl-ca: the webpki roots, which do not know this CA.
    configure(&mut plugin, &workspace("a", &server.url(), "", true));
    match send(&mut plugin, "a") {
        Err(HandlerError::Tls(m)) => assert!(m.contains("not trusted"), "{m}"),
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(server.requests().is_empty());
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let ca = Ca::new("CA A");
    let server = MockSlack::start_tls(pki::server(&ca.leaf(&["slack.example"]), None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut plugin, _) = instance_logging();
    configure(
        &mut plugin,
        &workspace(
            "a",
            &server.url(),
            &tls_keys(dir.path(), "a", Some(&ca.pem), None),
            true,
        ),
    );
    assert!(matches!(send(&mut plugin, "a"), Err(HandlerError::Tls(_))));
}

#[test]
fn mutual_tls_presents_the_configured_client_certificate() {
    let server_ca = Ca::new("server CA");
    let client_ca = Ca::new("client CA");
    let server = MockSlack::start_tls(pki::server(
        &server_ca.leaf(&["127.0.0.1"]),
        Some(&client_ca),
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = client_ca.leaf(&["kapacitor.client"]);
    let with_cert = tls_keys(dir.path(), "with", Some(&server_ca.pem), Some(&client));
    let (mut plugin, _) = instance_logging();
    configure(
        &mut plugin,
        &workspace("a", &server.url(), &with_cert, true),
    );
    send(&mut plugin, "a").expect("the server accepts the client certificate");
    assert_eq!(server.requests().len(), 1);

    let without_cert = tls_keys(dir.path(), "without", Some(&server_ca.pem), None);
    let (mut plugin, _) = instance_logging();
    configure(
        &mut plugin,
        &workspace("a", &server.url(), &without_cert, true),
    );
    match send(&mut plugin, "a") {
        Err(HandlerError::Tls(m)) => assert!(m.contains("alert"), "{m}"),
        other => panic!("expected the server to refuse with a TLS alert, got {other:?}"),
    }
    assert_eq!(
        server.requests().len(),
        1,
        "nothing got through without a certificate"
    );
}

#[test]
fn insecure_skip_verify_accepts_a_self_signed_server_and_says_so() {
    let server =
        MockSlack::start_tls(pki::server(&pki::self_signed(&["127.0.0.1"]), None)).unwrap();
    let (mut plugin, log) = instance_logging();
    configure(
        &mut plugin,
        &workspace("lab", &server.url(), "insecure-skip-verify = true", true),
    );
    send(&mut plugin, "lab").expect("delivered without verification");
    let log = log.lock().unwrap();
    let warnings: Vec<_> = log
        .iter()
        .filter(|l| l.contains("insecure-skip-verify"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log:?}");
    assert!(warnings[0].contains("workspace \"lab\""));
}

#[test]
fn each_workspace_uses_its_own_ca() {
    let (ca_a, ca_b) = (Ca::new("CA A"), Ca::new("CA B"));
    let server_a = MockSlack::start_tls(pki::server(&ca_a.leaf(&["127.0.0.1"]), None)).unwrap();
    let server_b = MockSlack::start_tls(pki::server(&ca_b.leaf(&["127.0.0.1"]), None)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = tls_keys(dir.path(), "a", Some(&ca_a.pem), None);
    let b = tls_keys(dir.path(), "b", Some(&ca_b.pem), None);

    let (mut plugin, _) = instance_logging();
    let matched =
        workspace("a", &server_a.url(), &a, true) + &workspace("b", &server_b.url(), &b, false);
    configure(&mut plugin, &matched);
    send(&mut plugin, "a").expect("A's CA trusts server A");
    send(&mut plugin, "b").expect("B's CA trusts server B");

    let (mut plugin, _) = instance_logging();
    let crossed =
        workspace("a", &server_a.url(), &b, true) + &workspace("b", &server_b.url(), &a, false);
    configure(&mut plugin, &crossed);
    assert!(matches!(send(&mut plugin, "a"), Err(HandlerError::Tls(_))));
    assert!(matches!(send(&mut plugin, "b"), Err(HandlerError::Tls(_))));
    assert_eq!(server_a.requests().len() + server_b.requests().len(), 2);
}

#[test]
fn unreadable_or_malformed_tls_files_fail_at_configure_time() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |extra: &str| {
        let (mut plugin, _) = instance_logging();
        match plugin
            .configure(&workspace("a", "https://127.0.0.1:1", extra, true))
            .unwrap()
        {
            Err(HandlerError::InvalidConfig(m)) => m,
            other => panic!("expected invalid-config, got {other:?}"),
        }
    };
    let m = refused("ssl-ca = \"/nonexistent/ca.pem\"");
    assert!(
        m.contains("workspace \"a\": ssl-ca \"/nonexistent/ca.pem\": cannot read it"),
        "{m}"
    );
    let garbage = pki::write(dir.path(), "garbage.pem", "this is not a certificate\n");
    let m = refused(&format!("ssl-ca = \"{}\"", garbage.display()));
    assert!(
        m.contains("ssl-ca") && m.contains("holds no PEM certificate"),
        "{m}"
    );
    let ca = Ca::new("CA");
    let leaf = ca.leaf(&["x"]);
    let cert = pki::write(dir.path(), "c.pem", &leaf.cert_pem);
    let m = refused(&format!(
        "ssl-cert = \"{}\"\nssl-key = \"{}\"",
        cert.display(),
        garbage.display()
    ));
    assert!(
        m.contains("ssl-key") && m.contains("no usable PEM private key"),
        "{m}"
    );
    let other_key = pki::write(dir.path(), "k.pem", &ca.leaf(&["y"]).key_pem);
    let m = refused(&format!(
        "ssl-cert = \"{}\"\nssl-key = \"{}\"",
        cert.display(),
        other_key.display()
    ));
    assert!(m.contains("do not go together"), "{m}");
}

#[test]
fn an_x509_v1_client_certificate_works_for_mutual_tls_as_in_kapacitor() {
    let server_ca = Ca::new("server CA");
    let (config, presented) = pki::server_taking_any_client_cert(&server_ca.leaf(&["127.0.0.1"]));
    let server = MockSlack::start_tls(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/x509v1");
    let ca = pki::write(dir.path(), "server-ca.pem", &server_ca.pem);
    let keys = format!(
        "ssl-ca = \"{}\"\nssl-cert = \"{fixtures}/client.pem\"\nssl-key = \"{fixtures}/client.key\"\n",
        ca.display()
    );
    let (mut plugin, _) = instance_logging();
    configure(&mut plugin, &workspace("a", &server.url(), &keys, true));
    send(&mut plugin, "a").expect("the server took the v1 client certificate");
    assert_eq!(server.requests().len(), 1);
    use rustls::pki_types::pem::PemObject;
    let v1 = std::fs::read_to_string(format!("{fixtures}/client.pem")).unwrap();
    let v1 = rustls::pki_types::CertificateDer::from_pem_slice(v1.as_bytes()).unwrap();
    assert_eq!(presented.lock().unwrap().first(), Some(&v1.to_vec()));
}

#[test]
fn a_client_certificate_for_another_key_is_refused_at_configure() {
    let ca = Ca::new("client CA");
    let one = ca.leaf(&["one"]);
    let other = ca.leaf(&["other"]);
    let dir = tempfile::tempdir().unwrap();
    let cert = pki::write(dir.path(), "one.pem", &one.cert_pem);
    let key = pki::write(dir.path(), "other.key", &other.key_pem);
    let keys = format!(
        "ssl-cert = \"{}\"\nssl-key = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let (mut plugin, _) = instance_logging();
    let refused = plugin
        .configure(&workspace("a", "https://slack.example", &keys, true))
        .expect("no trap");
    match refused {
        Err(HandlerError::InvalidConfig(m)) => {
            assert!(
                m.contains("do not go together") && m.contains("another key"),
                "{m}"
            )
        }
        other => panic!("expected invalid-config, got {other:?}"),
    }
}
