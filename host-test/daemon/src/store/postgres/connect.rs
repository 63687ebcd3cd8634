//! Where the database is (`postgres://USER[:PASSWORD]@HOST:PORT/DB`, on the
//! command line or in a file so the password is not) and how to reach it,
//! with libpq's `sslmode` and `sslrootcert` honoured. The password is never
//! shown: the URL is displayed with `***` in its place, and no error
//! repeats the text it was given.
//!
//! `sslmode`, as libpq means it:
//! - `disable`: no TLS;
//! - `prefer` (the default): TLS when the server offers it, certificate not
//!   checked;
//! - `require`: TLS or no connection, certificate not checked — unless
//!   `sslrootcert` names a file, then as `verify-ca`;
//! - `verify-ca`: TLS, the certificate signed by `sslrootcert`'s
//!   authorities (else the webpki roots), any name;
//! - `verify-full`: as `verify-ca`, and the certificate names the host.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio_postgres::Client;

use alert_handler_host::net::tls::{
    client_certificate, trusted_roots, unverified, ClientCertError,
};

/// How TLS to the database goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A database's address and credentials, shown without its password.
#[derive(Clone)]
pub struct StoreUrl {
    config: tokio_postgres::Config,
    ssl: SslMode,
    root_cert: Option<String>,
    /// The client certificate and its key (`sslcert`, `sslkey`: PEM files).
    client_cert: Option<(String, String)>,
    shown: String,
}

impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreUrl({})", self.shown)
    }
}

/// `url` with its password (in the user-info, or a `password` parameter)
/// replaced by `***`.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(not a postgres:// URL)".into();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => {
            let query: Vec<&str> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some(("password", _)) => "password=***",
                    _ => p,
                })
                .collect();
            (rest, format!("?{}", query.join("&")))
        }
        None => (rest, String::new()),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{user}{hidden}@{host}")
        }
        None => authority.to_string(),
    };
    format!("{scheme}://{authority}{path}{query}")
}

/// How long a connection may take to open (libpq's `connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one statement may run on the server (`statement_timeout`).
pub const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP keepalive: probes after this long idle (`keepalives_idle`), this far
/// apart (`keepalives_interval`), this many unanswered before the
/// connection is dropped (`keepalives_count`).
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
pub const KEEPALIVE_RETRIES: u32 = 3;
/// How long sent data may stay unacknowledged before the connection is
/// dropped (`tcp_user_timeout`): a database black-holed mid-request.
pub const TCP_USER_TIMEOUT: Duration = Duration::from_secs(15);

/// The timeouts above, where the URL did not set its own (libpq's keys:
/// `connect_timeout`, `keepalives_idle`, `keepalives_interval`,
/// `keepalives_retries`, `tcp_user_timeout`, and `statement_timeout`
/// through `options=-c statement_timeout=MS`). Without them a black-holed
/// database holds a node's requests for the kernel's two hours, and its
/// leases lapse while they wait.
fn with_timeouts(config: &mut tokio_postgres::Config) {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    // tokio-postgres' default idle is the kernel's two hours.
    config.keepalives(true);
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(KEEPALIVE_IDLE);
    }
    if config.get_keepalives_interval().is_none() {
        config.keepalives_interval(KEEPALIVE_INTERVAL);
    }
    if config.get_keepalives_retries().is_none() {
        config.keepalives_retries(KEEPALIVE_RETRIES);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    let mut options = config.get_options().unwrap_or_default().to_string();
    if !options.contains("statement_timeout") {
        let ms = STATEMENT_TIMEOUT.as_millis();
        options = format!("{options} -c statement_timeout={ms}");
    }
    // serve's statements are prepared once a connection and take batches
    // (`unnest` of arrays) joined to tables that grow from empty: a plan
    // cached while `alerts` was small (a hash join over a sequential
    // scan) is kept until autovacuum analyzes it, up to a minute later,
    // and each batch then reads the whole table. A plan made for each
    // execution sees the table as it is (tens to hundreds of
    // microseconds a batch, not an alert). The statements whose plan
    // cannot go wrong are planned once a connection (`pool::GENERIC`).
    if !options.contains("plan_cache_mode") {
        options = format!("{options} -c plan_cache_mode=force_custom_plan");
    }
    // Every statement of serve's reaches a few rows by their keys. Planned
    // on statistics that overstate a table (`origins` never analyzed,
    // 1,199 rows assumed), the arrivals read was costed at 1.4 million,
    // past `jit_above_cost`, and compiled each call: a second of the
    // database's CPU a read of 3 ms (auto_explain, the intake bench).
    if !options.contains("jit") {
        options = format!("{options} -c jit=off");
    }
    config.options(options.trim());
}

impl StoreUrl {
    /// Parses `postgres://…` (or `postgresql://…`); an error names what is
    /// wrong and shows the URL without its password.
    pub fn parse(url: &str) -> Result<StoreUrl, String> {
        let url = url.trim();
        let shown = redacted(url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!(
                "the store {shown} is not a postgres://USER@HOST:PORT/DB URL"
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut ssl = SslMode::Prefer;
        let mut root_cert = None;
        let (mut cert_file, mut key_file) = (None, None);
        let mut rest = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    ssl = match value {
                        "disable" => SslMode::Disable,
                        "allow" | "prefer" => SslMode::Prefer,
                        "require" => SslMode::Require,
                        "verify-ca" => SslMode::VerifyCa,
                        "verify-full" => SslMode::VerifyFull,
                        other => {
                            return Err(format!(
                                "the store {shown}: sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"
                            ))
                        }
                    }
                }
                // A path may be written percent-encoded.
                "sslrootcert" => root_cert = Some(crate::percent::decode(value)),
                "sslcert" => cert_file = Some(crate::percent::decode(value)),
                "sslkey" => key_file = Some(crate::percent::decode(value)),
                _ => rest.push(pair),
            }
        }
        let client_cert = match (cert_file, key_file) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(format!(
                "the store {shown}: sslcert is given without sslkey (the client certificate's key)"
            ))
            }
            (None, Some(_)) => {
                return Err(format!(
                    "the store {shown}: sslkey is given without sslcert (the client certificate)"
                ))
            }
        };
        if ssl == SslMode::Require && root_cert.is_some() {
            // libpq: a root certificate makes `require` verify the chain.
            ssl = SslMode::VerifyCa;
        }
        // tokio-postgres is told only whether TLS is wanted; how it is
        // checked is ours (the connector below).
        rest.push(match ssl {
            SslMode::Disable => "sslmode=disable",
            SslMode::Prefer => "sslmode=prefer",
            _ => "sslmode=require",
        });
        let mut config: tokio_postgres::Config = format!("{base}?{}", rest.join("&"))
            .parse()
            .map_err(|e: tokio_postgres::Error| format!("the store {shown}: {e}"))?;
        with_timeouts(&mut config);
        Ok(StoreUrl {
            config,
            ssl,
            root_cert,
            client_cert,
            shown,
        })
    }

    /// Reads the URL from `path` (`--store-url-file`): the password stays
    /// out of the command line and the process list.
    pub fn read(path: &Path) -> Result<StoreUrl, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the store's URL from {}: {e}", path.display()))?;
        StoreUrl::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// How TLS goes.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl
    }

    /// Connects; the connection is driven by a task on the current
    /// runtime. An error says why, without the password.
    pub async fn connect(&self) -> Result<Client, String> {
        let failed = |e: tokio_postgres::Error| {
            // The causes too (a TLS failure says which certificate check).
            let mut said = format!("connecting to the store {self}: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                said += &format!(": {cause}");
                source = cause.source();
            }
            said
        };
        if self.ssl == SslMode::Disable {
            let (client, connection) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed)?;
            tokio::spawn(connection);
            return Ok(client);
        }
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
        let (client, connection) = self.config.connect(tls).await.map_err(failed)?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Connects and listens on `channel` (`LISTEN`): `heard` is called for
    /// each notification, and `gone` once when the connection ends. The
    /// client must be kept for the listening to go on.
    pub async fn listen(
        &self,
        channel: &str,
        heard: impl Fn(&str) + Send + Sync + 'static,
        gone: impl FnOnce() + Send + 'static,
    ) -> Result<Client, String> {
        let failed = |e: tokio_postgres::Error| format!("listening on the store {self}: {e}");
        let client = if self.ssl == SslMode::Disable {
            let (client, connection) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(failed)?;
            tokio::spawn(drive(connection, heard, gone));
            client
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
            let (client, connection) = self.config.connect(tls).await.map_err(failed)?;
            tokio::spawn(drive(connection, heard, gone));
            client
        };
        client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(failed)?;
        Ok(client)
    }

    fn tls_config(&self) -> Result<ClientConfig, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("the store {self}: TLS: {e}"))?;
        let verifier: Arc<dyn ServerCertVerifier> = match self.ssl {
            SslMode::Prefer | SslMode::Require => unverified(),
            _ => {
                let roots = trusted_roots(self.root_cert.as_deref()).map_err(|(path, e)| {
                    format!("the store {self}: sslrootcert \"{path}\": {e}")
                })?;
                let full = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| format!("the store {self}: TLS: {e}"))?;
                if self.ssl == SslMode::VerifyFull {
                    full
                } else {
                    Arc::new(AnyName(full))
                }
            }
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        Ok(match &self.client_cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let identity = client_certificate(cert, key).map_err(|e| match e {
                    ClientCertError::Cert(what) => {
                        format!("the store {self}: sslcert \"{cert}\": {what}")
                    }
                    ClientCertError::Key(what) => {
                        format!("the store {self}: sslkey \"{key}\": {what}")
                    }
                    ClientCertError::Mismatch => format!(
                        "the store {self}: sslcert \"{cert}\" and sslkey \"{key}\" do not go together: the certificate is for another key"
                    ),
                })?;
                builder.with_client_cert_resolver(identity)
            }
        })
    }
}

/// `verify-ca`: the chain must lead to a trusted authority; the name on the
/// certificate is not checked.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Drives a listening connection: `heard` for each notification, `gone`
/// when it ends.
async fn drive<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    heard: impl Fn(&str) + Send + Sync + 'static,
    gone: impl FnOnce() + Send + 'static,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
        match message {
            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => heard(n.payload()),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    gone();
}

#[cfg(test)]
mod tests {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    use super::*;
    use testdb::{Setup, TestDb};

    const PASSWORD: &str = "s3cret-p@ss";
    /// As it stands in a URL (`@` percent-encoded).
    const IN_URL: &str = "s3cret-p%40ss";

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    /// A CA, and a server certificate it signs for `names`: (CA PEM, cert
    /// PEM, key PEM).
    fn certificates(names: &[&str]) -> (String, String, String) {
        let (ca_pem, issuer) = authority();
        let (cert, key) = signed(&issuer, names, None);
        (ca_pem, cert, key)
    }

    /// A certificate authority: its certificate (PEM), and it to sign with.
    fn authority() -> (String, Issuer<'static, KeyPair>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        (ca_pem, Issuer::new(ca, ca_key))
    }

    /// A certificate for `names` (and the common name `cn`) signed by
    /// `issuer`, and its key (PEM).
    fn signed(issuer: &Issuer<'_, KeyPair>, names: &[&str], cn: Option<&str>) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let leaf = params.signed_by(&key, issuer).unwrap();
        (leaf.pem(), key.serialize_pem())
    }

    /// A server that asks TLS clients for a certificate its authority
    /// signed, naming the user: `sslcert` and `sslkey` present one, and
    /// without them (or with one of them) the store says what is missing.
    #[test]
    fn a_client_certificate_is_presented_when_the_server_asks_for_one() {
        let (ca, cert, key) = certificates(&["db.example"]);
        let (client_ca, clients) = authority();
        let (client_cert, client_key) = signed(&clients, &[], Some("postgres"));
        let (_, strangers) = authority();
        let (stranger_cert, stranger_key) = signed(&strangers, &[], Some("postgres"));
        let db = TestDb::start_with(Setup {
            tls: Some((cert, key)),
            client_ca: Some(client_ca),
            ..Setup::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, pem: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path.display().to_string()
        };
        let (ca, cert, key) = (
            file("ca.pem", &ca),
            file("client.pem", &client_cert),
            file("client.key", &client_key),
        );
        let (stranger_cert, stranger_key) = (
            file("stranger.pem", &stranger_cert),
            file("stranger.key", &stranger_key),
        );
        let rt = runtime();
        let connect = |query: String| {
            let url = StoreUrl::parse(&format!(
                "postgres://postgres@127.0.0.1:{}/alerts?{query}",
                db.port()
            ))?;
            rt.block_on(url.connect())
        };
        connect(format!(
            "sslmode=verify-ca&sslrootcert={ca}&sslcert={cert}&sslkey={key}"
        ))
        .expect("the certificate the server's authority signed");
        let e = connect(format!("sslmode=verify-ca&sslrootcert={ca}")).unwrap_err();
        assert!(e.contains("requires a valid client certificate"), "{e}");
        let e = connect(format!(
            "sslmode=verify-ca&sslrootcert={ca}&sslcert={stranger_cert}&sslkey={stranger_key}"
        ))
        .unwrap_err();
        // Refused in the handshake.
        assert!(
            e.contains("connecting to the store") && e.contains("alert"),
            "{e}"
        );
        let e = connect(format!("sslmode=require&sslcert={cert}")).unwrap_err();
        assert!(e.contains("sslcert is given without sslkey"), "{e}");
        let e = connect(format!(
            "sslmode=require&sslcert={cert}&sslkey={stranger_key}"
        ))
        .unwrap_err();
        assert!(e.contains("do not go together"), "{e}");
        let e = connect(format!(
            "sslmode=require&sslcert={cert}&sslkey=/nonexistent.key"
        ))
        .unwrap_err();
        assert!(e.contains("sslkey \"/nonexistent.key\""), "{e}");
    }

    #[test]
    fn the_password_is_never_shown() {
        for url in [
            format!("postgres://serve:{IN_URL}@db.example:5432/alerts"),
            format!("postgresql://serve:{PASSWORD}@db.example/alerts?sslmode=verify-full"),
            format!("postgres://serve@db.example/alerts?password={IN_URL}&sslmode=require"),
            format!("postgres://db.example/alerts?user=serve&password={IN_URL}"),
        ] {
            let parsed = StoreUrl::parse(&url).unwrap();
            for shown in [parsed.to_string(), format!("{parsed:?}")] {
                assert!(!shown.contains(PASSWORD), "{shown}");
                assert!(shown.contains("db.example"), "{shown}");
            }
        }
        // Nor in an error about the URL.
        for bad in [
            format!("postgres://serve:{PASSWORD}@db.example/alerts?sslmode=maybe"),
            format!("postgres://serve:{PASSWORD}@db.example:notaport/alerts"),
            format!("mysql://serve:{PASSWORD}@db.example/alerts"),
            format!("postgres://serve:{PASSWORD}@db.example/alerts?colour=blue"),
        ] {
            let e = StoreUrl::parse(&bad).unwrap_err();
            assert!(!e.contains(PASSWORD), "{e}");
        }
        let e = StoreUrl::parse("postgres://u:p@h/d?sslmode=maybe").unwrap_err();
        assert!(e.contains("sslmode `maybe`"), "{e}");
    }

    #[test]
    fn sslmode_is_read_as_libpq_reads_it() {
        let mode = |q: &str| {
            StoreUrl::parse(&format!("postgres://u@h/d{q}"))
                .unwrap()
                .ssl_mode()
        };
        assert_eq!(mode(""), SslMode::Prefer);
        assert_eq!(mode("?sslmode=disable"), SslMode::Disable);
        assert_eq!(mode("?sslmode=require"), SslMode::Require);
        // A root certificate makes `require` check the chain.
        assert_eq!(
            mode("?sslmode=require&sslrootcert=%2Fetc%2Fca.pem"),
            SslMode::VerifyCa
        );
        assert_eq!(mode("?sslmode=verify-full"), SslMode::VerifyFull);
    }

    #[test]
    fn a_password_from_a_file_connects_and_a_wrong_one_is_refused_without_showing_it() {
        let db = TestDb::start_with(Setup {
            passwords: true,
            ..Setup::default()
        });
        db.psql(&format!("CREATE ROLE serve LOGIN PASSWORD '{PASSWORD}'"));
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("store-url");
        std::fs::write(
            &file,
            format!(
                "postgres://serve:{IN_URL}@127.0.0.1:{}/alerts?sslmode=disable\n",
                db.port()
            ),
        )
        .unwrap();
        let rt = runtime();
        let url = StoreUrl::read(&file).unwrap();
        let client = rt.block_on(url.connect()).unwrap();
        let one: i32 = rt
            .block_on(client.query_one("SELECT 1", &[]))
            .unwrap()
            .get(0);
        assert_eq!(one, 1);
        let wrong = StoreUrl::parse(&format!(
            "postgres://serve:not-{IN_URL}@127.0.0.1:{}/alerts?sslmode=disable",
            db.port()
        ))
        .unwrap();
        let e = rt.block_on(wrong.connect()).unwrap_err();
        assert!(e.contains("password authentication failed"), "{e}");
        assert!(!e.contains(PASSWORD) && !e.contains(IN_URL), "{e}");
    }

    #[test]
    fn tls_is_required_checked_by_chain_or_by_name_as_sslmode_says() {
        // The server's certificate names db.example, not 127.0.0.1.
        let (ca, cert, key) = certificates(&["db.example"]);
        let (other_ca, _, _) = certificates(&["db.example"]);
        let db = TestDb::start_with(Setup {
            tls: Some((cert, key)),
            ..Setup::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca).unwrap();
        let other_file = dir.path().join("other.pem");
        std::fs::write(&other_file, other_ca).unwrap();
        let rt = runtime();
        let connect = |query: String| {
            let url = StoreUrl::parse(&format!(
                "postgres://postgres@127.0.0.1:{}/alerts?{query}",
                db.port()
            ))
            .unwrap();
            rt.block_on(url.connect())
        };
        let ca = ca_file.display();
        // Not checked: any certificate.
        connect("sslmode=require".into()).unwrap();
        // The chain checked, not the name.
        connect(format!("sslmode=verify-ca&sslrootcert={ca}")).unwrap();
        connect(format!("sslmode=require&sslrootcert={ca}")).unwrap();
        let e = connect(format!(
            "sslmode=verify-ca&sslrootcert={}",
            other_file.display()
        ))
        .unwrap_err();
        assert!(e.contains("certificate"), "{e}");
        // The name checked too: 127.0.0.1 is not db.example.
        let e = connect(format!("sslmode=verify-full&sslrootcert={ca}")).unwrap_err();
        assert!(e.contains("certificate"), "{e}");
        // A server without TLS and a client that requires it.
        let plain = TestDb::start();
        let url = StoreUrl::parse(&format!(
            "postgres://postgres@127.0.0.1:{}/alerts?sslmode=require",
            plain.port()
        ))
        .unwrap();
        let e = rt.block_on(url.connect()).unwrap_err();
        assert!(
            e.contains("TLS") || e.contains("SSL") || e.contains("tls"),
            "{e}"
        );
    }
}
