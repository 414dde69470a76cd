//! TLS configuration (rustls) for `wss://` servers and clients.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

use crate::error::{Error, Failure, Result};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn load_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = rustls_pemfile::certs(&mut &pem[..])
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(Failure::caused_by("reading certificates", e)))?;
    if certs.is_empty() {
        return Err(Error::Tls(Failure::new("no certificate found in PEM")));
    }
    Ok(certs)
}

/// A server configuration from a PEM certificate chain and a PEM private
/// key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>> {
    let certs = load_certs(cert_pem)?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| Error::Tls(Failure::caused_by("reading private key", e)))?
        .ok_or_else(|| Error::Tls(Failure::new("no private key found in PEM")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(Failure::caused_by("protocol versions", e)))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(Failure::caused_by("certificate and key", e)))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Extra root certificates to trust besides the platform's and the
    /// Mozilla roots (DER).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Accept any certificate. Only for testing against self-signed
    /// servers: it removes all protection TLS gives.
    pub insecure: bool,
}

/// A client configuration: the platform's roots plus the Mozilla roots
/// plus `options.extra_roots`, or no verification at all when
/// `options.insecure` is set.
pub fn client_config(options: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(Failure::caused_by("protocol versions", e)))?;
    let mut config = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        for cert in &options.extra_roots {
            roots
                .add(cert.clone())
                .map_err(|e| Error::Tls(Failure::caused_by("adding a root certificate", e)))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The verifier behind [`TlsOptions::insecure`]: signatures are still
/// checked to be well-formed, the certificate and name are not.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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

/// The error of a failed client TLS handshake with `host`, in words a user
/// can act on: a rejected certificate is marked ([`Failure::is_certificate`]), with
/// what is wrong with it, and a server that answers in plain text (HTTP
/// where TLS was expected) is said to be one, instead of rustls's
/// internal names for either.
pub(crate) fn handshake_error(host: &str, error: std::io::Error) -> Error {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        if error.kind() == std::io::ErrorKind::UnexpectedEof {
            return Error::Tls(Failure::caused_by(
                format!("{host} closed the connection during the TLS handshake (is it a plain ws:// server?)"),
                error,
            ));
        }
        return Error::Tls(Failure::caused_by("handshake", error));
    };
    match tls {
        rustls::Error::InvalidCertificate(why) => {
            let what = certificate_problem(why);
            let tls = tls.clone();
            Error::Tls(
                Failure::caused_by(format!("the certificate of {host} {what}"), tls).certificate(),
            )
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            Error::Tls(Failure::new(format!(
                "{host} did not answer with TLS: it looks like a plain ws:// server"
            )))
        }
        _ => Error::Tls(Failure::caused_by("handshake", error)),
    }
}

/// What is wrong with a rejected certificate, as the end of a sentence.
fn certificate_problem(why: &rustls::CertificateError) -> String {
    use rustls::CertificateError as E;
    match why {
        E::UnknownIssuer => "is signed by an issuer that is not trusted".into(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "is not valid for this host name".into()
        }
        E::Expired | E::ExpiredContext { .. } => "has expired".into(),
        E::NotValidYet | E::NotValidYetContext { .. } => "is not valid yet".into(),
        E::Revoked => "has been revoked".into(),
        E::BadSignature => "has a bad signature".into(),
        E::BadEncoding => "cannot be parsed".into(),
        E::InvalidPurpose | E::InvalidPurposeContext { .. } => {
            "is not meant for a TLS server".into()
        }
        // webpki's reasons arrive boxed in `Other`; their Debug names are
        // the only handle on them.
        E::Other(other) if format!("{other:?}").contains("CaUsedAsEndEntity") => {
            "is a CA certificate, not a server certificate".into()
        }
        other => format!("was rejected ({other})"),
    }
}
