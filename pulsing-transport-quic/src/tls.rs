//! TLS for QUIC, behind [`Tls`]: by default a self-signed certificate per node and a verifier that
//! accepts any peer certificate (encrypted, **not authenticated**); with a cluster secret
//! ([`ClusterTls`]) a certificate from the cluster CA and mutual authentication against it.

use std::sync::Arc;

use pulsing_core::{PulsingError, Security};
use pulsing_transport_http::security::{provider, Identity, ALPN_LINK};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// The ALPN id of Pulsing over QUIC (`docs/protocol.md` §9). A handshake offering anything else
/// fails.
pub const ALPN: &[u8] = b"pulsing/1";

/// The server name every node presents and expects (node certificates are not tied to addresses):
/// the one the cluster CA's node certificates carry.
pub(crate) const SERVER_NAME: &str = pulsing_transport_http::security::SERVER_NAME;

/// The TLS side of a QUIC transport: what a node presents and how it checks its peers.
///
/// [`Tls::self_signed`] (the default) makes a fresh self-signed certificate and accepts any peer's:
/// traffic is encrypted, but a node does not know who it talks to. [`Tls::custom`] takes rustls
/// configurations built elsewhere (e.g. from a CA of the deployment's own). A cluster secret on the
/// system builder needs neither: the transport then makes its TLS from the cluster CA itself
/// (`docs/security.md`), and a [`QuicConfig::tls`](crate::QuicConfig::tls) set too is refused.
#[derive(Clone)]
pub struct Tls {
    pub(crate) server: Arc<rustls::ServerConfig>,
    pub(crate) client: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

fn config_error(what: &str, e: impl std::fmt::Display) -> PulsingError {
    PulsingError::Config(format!("QUIC TLS: {what}: {e}"))
}

impl Tls {
    /// A fresh self-signed certificate for this node, and acceptance of any peer certificate.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if the certificate cannot be made.
    pub fn self_signed() -> Result<Tls, PulsingError> {
        let provider = provider();
        let made = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
            .map_err(|e| config_error("making a self-signed certificate", e))?;
        let cert = CertificateDer::from(made.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| config_error("server protocol versions", e))?
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .map_err(|e| config_error("server certificate", e))?;
        server.alpn_protocols = vec![ALPN.to_vec()];
        let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| config_error("client protocol versions", e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyPeer(provider)))
            .with_no_client_auth();
        client.alpn_protocols = vec![ALPN.to_vec()];
        Ok(Tls {
            server: Arc::new(server),
            client: Arc::new(client),
        })
    }

    /// TLS from rustls configurations built by the caller (TLS 1.3; their ALPN is set to
    /// [`ALPN`]). The client side verifies server certificates for the name `pulsing`.
    pub fn custom(server: rustls::ServerConfig, client: rustls::ClientConfig) -> Tls {
        let (mut server, mut client) = (server, client);
        server.alpn_protocols = vec![ALPN.to_vec()];
        client.alpn_protocols = vec![ALPN.to_vec()];
        Tls {
            server: Arc::new(server),
            client: Arc::new(client),
        }
    }

    /// The rustls configuration of the serving side (ALPN [`ALPN`]), e.g. for a plain quinn
    /// endpoint beside the transport (the bench's `quic_floor`).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server.clone()
    }

    /// The rustls configuration of the calling side (ALPN [`ALPN`]; server name `pulsing`).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.client.clone()
    }
}

/// What a QUIC transport with a cluster secret uses (`docs/security.md`): QUIC TLS from this node's
/// [`Identity`] (a peer must present a certificate from an accepted cluster CA, both ways), and the
/// client side of the TLS that the TCP sentinel speaks to the peer's TCP door ([`ALPN_LINK`]).
pub(crate) struct ClusterTls {
    pub(crate) quic: Tls,
    pub(crate) sentinel: Arc<rustls::ClientConfig>,
    /// For telling a node's certificate from a client certificate of the same CA.
    pub(crate) identity: Identity,
}

impl ClusterTls {
    /// This node's certificate from the first secret's CA, every secret's CA accepted.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] without a secret or if a certificate cannot be made.
    pub(crate) fn new(security: &Security) -> Result<ClusterTls, PulsingError> {
        // Node certificates are checked by the CA and the name `pulsing`, not by address: no IPs.
        let identity = Identity::new(security, &[])?;
        let server = identity.server_config(&[ALPN], true)?;
        let client = identity.client_config(&[ALPN])?;
        Ok(ClusterTls {
            quic: Tls::custom(server, client),
            sentinel: Arc::new(identity.client_config(&[ALPN_LINK])?),
            identity,
        })
    }
}

/// Accepts any server certificate, while still checking that the handshake was signed by the key
/// of the certificate presented (so the session is encrypted to whoever holds that key).
#[derive(Debug)]
struct AnyPeer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyPeer {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
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
