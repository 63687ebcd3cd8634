//! TLS for one workspace endpoint, owned by the host: a rustls client built
//! from the workspace's `ssl-ca`, `ssl-cert`/`ssl-key` and
//! `insecure-skip-verify`, as Kapacitor's client applies them. Files are read
//! when the host is configured, so a bad path is reported then, naming the
//! key and the path, not at the first alert.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// A workspace's TLS settings, as the component's summary gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsSettings {
    pub ssl_ca: Option<String>,
    pub ssl_cert: Option<String>,
    pub ssl_key: Option<String>,
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
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        match &settings.ssl_ca {
            // As Kapacitor: a CA bundle replaces the default roots.
            Some(path) => {
                let certs = read_certificates(path).map_err(|e| at("ssl-ca", path, e))?;
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        at("ssl-ca", path, format!("not a usable CA certificate: {e}"))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&settings.ssl_cert, &settings.ssl_key) {
        (Some(cert), Some(key)) => {
            let chain = read_certificates(cert).map_err(|e| at("ssl-cert", cert, e))?;
            let key_der = read_key(key).map_err(|e| at("ssl-key", key, e))?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                format!("workspace \"{workspace}\": ssl-cert \"{cert}\" and ssl-key \"{key}\" do not go together: {e}")
            })?
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
