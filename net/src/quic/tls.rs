//! TLS for the QUIC transport: a fresh self-signed certificate per endpoint, and a client that
//! accepts any server certificate but checks the TLS handshake signatures.
//!
//! Skipping certificate validation is sound here because TLS is not what identifies a node: the
//! secp256k1 handshake that follows signs a value exported from *this* TLS session
//! (RFC 5705), so a man in the middle, which would hold two different TLS sessions, cannot
//! replay a node's signature from one to the other. TLS still provides confidentiality,
//! integrity and forward secrecy.

use crate::error::NetError;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// The TLS server name every node presents and every client asks for.
pub(crate) const SERVER_NAME: &str = "hearsay";
/// The ALPN protocol id of the gossip protocol (version 1).
pub(crate) const ALPN: &[u8] = b"hearsay/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn config_error(what: &str, e: impl std::fmt::Display) -> NetError {
    NetError::Config(format!("{what}: {e}"))
}

/// A server-side TLS configuration with a freshly generated self-signed certificate.
pub(crate) fn server_crypto() -> Result<QuicServerConfig, NetError> {
    let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
        .map_err(|e| config_error("certificate", e))?;
    let key = PrivatePkcs8KeyDer::from(certified.key_pair.serialize_der());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_error("tls", e))?
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key.into())
        .map_err(|e| config_error("tls certificate", e))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    QuicServerConfig::try_from(tls).map_err(|e| config_error("quic tls", e))
}

/// A client-side TLS configuration that accepts any server certificate (see the module docs).
pub(crate) fn client_crypto() -> Result<QuicClientConfig, NetError> {
    let provider = provider();
    let verifier = Arc::new(AnyCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| config_error("tls", e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    QuicClientConfig::try_from(tls).map_err(|e| config_error("quic tls", e))
}

/// Accepts any certificate chain, but verifies the handshake signature made with the
/// certificate's key (so the server does hold the key of the certificate it sent).
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
