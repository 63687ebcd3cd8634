//! TLS for one workspace endpoint, owned by the host: a rustls client built
//! from the workspace's `ssl-ca`, `ssl-cert`/`ssl-key` and
//! `insecure-skip-verify`, as Kapacitor's client applies them. Files are read
//! when the host is configured, so a bad path is reported then, naming the
//! key and the path, not at the first alert.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// A workspace's TLS settings, as the component's summary gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    /// A PEM file of the certificate authorities to trust instead of the webpki roots.
    pub ssl_ca: Option<String>,
    /// A PEM client certificate to present.
    pub ssl_cert: Option<String>,
    /// The PEM key of `ssl_cert`.
    pub ssl_key: Option<String>,
    /// Accept any server certificate (logged once).
    pub insecure_skip_verify: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration for `settings`; `workspace` names it in errors.
/// No settings: the webpki roots, as a browser would trust.
pub fn client_config(settings: &TlsSettings, workspace: &str) -> Result<Arc<ClientConfig>, String> {
    let at = |key: &str, path: &str, what: String| {
        format!("workspace \"{workspace}\": {key} \"{path}\": {what}")
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("workspace \"{workspace}\": TLS: {e}"))?;
    let builder = if settings.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(unverified())
    } else {
        let roots = trusted_roots(settings.ssl_ca.as_deref())
            .map_err(|(path, e)| at("ssl-ca", &path, e))?;
        builder.with_root_certificates(roots)
    };
    let config = match (&settings.ssl_cert, &settings.ssl_key) {
        (Some(cert), Some(key)) => {
            let identity = client_certificate(cert, key).map_err(|e| match e {
                ClientCertError::Cert(what) => at("ssl-cert", cert, what),
                ClientCertError::Key(what) => at("ssl-key", key, what),
                ClientCertError::Mismatch => format!("workspace \"{workspace}\": ssl-cert \"{cert}\" and ssl-key \"{key}\" do not go together: the certificate is for another key"),
            })?;
            builder.with_client_cert_resolver(identity)
        }
        (Some(_), None) => {
            return Err(format!("workspace \"{workspace}\": Must provide both key and cert files: only cert file provided."))
        }
        (None, Some(_)) => {
            return Err(format!("workspace \"{workspace}\": Must provide both key and cert files: only key file provided."))
        }
        (None, None) => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The certificate authorities to trust: those of a PEM file (which, as
/// Kapacitor and libpq do, replaces the default roots), else the webpki
/// roots a browser would trust. An error names the file and what is wrong.
pub fn trusted_roots(ca_file: Option<&str>) -> Result<RootCertStore, (String, String)> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = read_certificates(path).map_err(|e| (path.to_string(), e))?;
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    (
                        path.to_string(),
                        format!("not a usable CA certificate: {e}"),
                    )
                })?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// A verifier that accepts any server certificate and name, still checking
/// the handshake's signatures (so the session is with the holder of the
/// presented key): Kapacitor's `insecure-skip-verify`, libpq's
/// `sslmode=require` without a root certificate.
pub fn unverified() -> Arc<dyn ServerCertVerifier> {
    Arc::new(NoVerification(provider()))
}

/// What is wrong with a client certificate and its key, for the caller
/// to say with the names its user wrote them under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertError {
    /// The certificate file, and what is wrong with it.
    Cert(String),
    /// The key file, and what is wrong with it.
    Key(String),
    /// The certificate is for another key.
    Mismatch,
}

/// The client certificate of the PEM files `cert` (its chain) and `key`,
/// presented whatever the server asks for: Kapacitor's `ssl-cert` and
/// `ssl-key`, libpq's `sslcert` and `sslkey`.
pub fn client_certificate(
    cert: &str,
    key: &str,
) -> Result<Arc<dyn ResolvesClientCert>, ClientCertError> {
    let chain = read_certificates(cert).map_err(ClientCertError::Cert)?;
    let key_der = read_key(key).map_err(ClientCertError::Key)?;
    let signer = provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| ClientCertError::Key(format!("not a usable private key: {e}")))?;
    // Compared by hand: rustls's own check parses the certificate with
    // webpki, which takes only X.509 v3, and a v1 certificate (`openssl
    // x509 -req` without extensions) works with Kapacitor.
    match (certificate_key(&chain[0]), signer.public_key()) {
        (Some(in_cert), Some(of_key)) if in_cert != of_key.as_ref() => {
            return Err(ClientCertError::Mismatch)
        }
        (None, _) => {
            return Err(ClientCertError::Cert(
                "its first certificate is not a well-formed X.509 certificate".to_string(),
            ))
        }
        _ => {}
    }
    Ok(Arc::new(ClientCertificate(Arc::new(CertifiedKey::new(
        chain, signer,
    )))))
}

/// The one client certificate presented, whatever the server asks for (as
/// Go's client does with one certificate).
#[derive(Debug)]
struct ClientCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The `subjectPublicKeyInfo` of a DER certificate, whole (tag and length
/// included), for X.509 v1 as for v3: the seventh field of the
/// `tbsCertificate` when the optional `[0] version` is there, the sixth
/// when it is not (v1).
pub fn certificate_key(der: &[u8]) -> Option<&[u8]> {
    /// Splits one DER element off `input`: (the whole element, its content,
    /// the rest).
    fn element(input: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
        let (_tag, rest) = input.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let (len, rest) = if len < 0x80 {
            (usize::from(len), rest)
        } else {
            let n = usize::from(len & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |a, b| (a << 8) | usize::from(*b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let header = input.len() - rest.len();
        Some((&input[..header + len], &rest[..len], &rest[len..]))
    }
    let (_, certificate, _) = element(der).filter(|(whole, _, _)| whole[0] == 0x30)?;
    let (_, tbs, _) = element(certificate).filter(|(whole, _, _)| whole[0] == 0x30)?;
    let mut fields = tbs;
    // `[0] EXPLICIT Version`: absent in v1.
    if fields.first() == Some(&0xa0) {
        fields = element(fields)?.2;
    }
    // serialNumber, signature, issuer, validity, subject.
    for _ in 0..5 {
        fields = element(fields)?.2;
    }
    let (spki, _, _) = element(fields).filter(|(whole, _, _)| whole[0] == 0x30)?;
    Some(spki)
}

fn read(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(Path::new(path)).map_err(|e| format!("cannot read it: {e}"))
}

fn read_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("malformed PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".to_string());
    }
    Ok(certs)
}

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| format!("holds no usable PEM private key: {e}"))
}

/// `insecure-skip-verify`: any certificate and name are accepted; the
/// handshake's signatures are still checked, so the session is at least
/// with the holder of the presented key.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::certificate_key;

    #[test]
    fn the_key_of_a_v3_and_of_a_v1_certificate_is_found() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        use rcgen::PublicKeyData;
        assert_eq!(
            certificate_key(cert.der()),
            Some(&key.subject_public_key_info()[..])
        );

        use rustls::pki_types::pem::PemObject;
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/x509v1");
        let v1 =
            rustls::pki_types::CertificateDer::from_pem_file(format!("{dir}/client.pem")).unwrap();
        let key =
            rustls::pki_types::PrivateKeyDer::from_pem_file(format!("{dir}/client.key")).unwrap();
        let signer = super::provider()
            .key_provider
            .load_private_key(key)
            .unwrap();
        assert_eq!(
            certificate_key(&v1),
            Some(signer.public_key().unwrap().as_ref())
        );
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01\x00",
        ] {
            assert_eq!(certificate_key(bytes), None, "{bytes:?}");
        }
    }
}
