//! Cluster identity (`docs/security.md`): a cluster CA derived from the secret, a certificate per
//! node, the rustls configurations of mutual TLS, API tokens, and client certificates for `curl`.
//!
//! Every node with the same secret derives the same CA: HKDF-SHA256 over the secret (salt
//! [`CA_SALT`], info [`CA_INFO`]) gives the 32-byte seed of an Ed25519 key, and the CA certificate
//! has a fixed subject, serial and validity, so its bytes are the same everywhere (Ed25519
//! signatures are deterministic). A node makes a fresh ECDSA P-256 key at start and a certificate
//! signed by the CA. Holding the secret is membership: whoever has it can mint certificates.
//!
//! Why rcgen and ring directly: rcgen makes and signs certificates (the one well-kept crate for it;
//! quinn's examples use it), ring gives HKDF and SHA-256 and is already rustls's provider here.

mod io;

pub(crate) use io::{buffered, Io};
pub use io::{TlsIo, TlsWriter};

use std::net::IpAddr;
use std::sync::Arc;

use pulsing_core::{PulsingError, Secret, Security};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::hkdf;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

/// HKDF salt of the cluster CA key.
pub const CA_SALT: &[u8] = b"pulsing cluster ca";
/// HKDF info of the cluster CA key: the derivation's version.
pub const CA_INFO: &[u8] = b"pulsing/ca/v1";
/// The DNS name every node certificate carries and every node expects of its peers (node
/// certificates are not tied to addresses: the CA is what is checked).
pub const SERVER_NAME: &str = "pulsing";
/// ALPN id of a node-to-node link over TLS (`docs/protocol.md` §8).
pub const ALPN_LINK: &[u8] = b"pulsing-link/1";

/// The crypto provider: ring builds with a C compiler alone (aws-lc-rs needs cmake on some
/// machines). Its TLS 1.3 suites with AES-128-GCM first (ring's default puts AES-256-GCM first):
/// 10 AES rounds instead of 14 on every packet, at a strength TLS 1.3 requires every peer to offer.
pub fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(p)
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> PulsingError {
    PulsingError::Config(format!("cluster TLS: {what}: {e}"))
}

/// A cluster CA, derived from a secret.
pub struct ClusterCa {
    key: KeyPair,
    cert: rcgen::Certificate,
    id: String,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").field("id", &self.id).finish()
    }
}

impl ClusterCa {
    /// The CA of `secret`: the same on every node, every run.
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if the certificate cannot be made (not expected).
    pub fn derive(secret: &Secret) -> Result<ClusterCa, PulsingError> {
        let mut seed = [0u8; 32];
        hkdf::Salt::new(hkdf::HKDF_SHA256, CA_SALT)
            .extract(secret.expose().as_bytes())
            .expand(&[CA_INFO], Len32)
            .and_then(|okm| okm.fill(&mut seed))
            .map_err(|_| tls_error("deriving the CA key", "HKDF failed"))?;
        // PKCS#8 v1 of an Ed25519 key (RFC 8410): a fixed prefix, then the 32-byte seed.
        let mut pkcs8 = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        pkcs8.extend_from_slice(&seed);
        let key = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8),
            &rcgen::PKCS_ED25519,
        )
        .map_err(|e| tls_error("the CA key", e))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key_raw());
        let id: String = digest.as_ref()[..4]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut params = CertificateParams::default();
        params.distinguished_name = name(&format!("Pulsing cluster CA {id}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(SerialNumber::from_slice(&digest.as_ref()[..8]));
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let cert = params
            .self_signed(&key)
            .map_err(|e| tls_error("the CA certificate", e))?;
        Ok(ClusterCa { key, cert, id })
    }

    /// A short id of this CA (8 hex digits of its public key's SHA-256), for logs.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// The CA certificate, PEM (for `curl --cacert`).
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A fresh key and a certificate for it signed by this CA. `node`: a node certificate (server
    /// and client use, names [`SERVER_NAME`], `localhost`, loopback and `ips`); otherwise a client
    /// certificate for HTTP clients.
    fn issue(
        &self,
        node: bool,
        ips: &[IpAddr],
    ) -> Result<(rcgen::Certificate, KeyPair), PulsingError> {
        let key = KeyPair::generate().map_err(|e| tls_error("a key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name(if node {
            "pulsing node"
        } else {
            "pulsing client"
        });
        let mut serial = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut serial)
            .map_err(|_| tls_error("a serial number", "no randomness"))?;
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if node {
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let mut sans = vec![
                SanType::DnsName(SERVER_NAME.try_into().map_err(|e| tls_error("a name", e))?),
                SanType::DnsName("localhost".try_into().map_err(|e| tls_error("a name", e))?),
                SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
                SanType::IpAddress(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])),
            ];
            for ip in ips {
                if !ip.is_loopback() && !ip.is_unspecified() {
                    sans.push(SanType::IpAddress(*ip));
                }
            }
            params.subject_alt_names = sans;
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .map_err(|e| tls_error("signing a certificate", e))?;
        Ok((cert, key))
    }
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

/// A client certificate from a cluster's CA, for HTTP clients (`curl --cert --key --cacert`).
#[derive(Clone)]
pub struct ClientCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key (PKCS#8), PEM. Whoever holds it can call the cluster's public actors.
    pub key_pem: String,
    /// The cluster CA's certificate, PEM: what node certificates chain to.
    pub ca_pem: String,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate").finish_non_exhaustive()
    }
}

/// A fresh client certificate from the CA of `secret`, valid until the cluster's secret changes.
///
/// # Errors
///
/// [`PulsingError::Config`] for an empty secret.
///
/// # Examples
///
/// ```
/// let c = pulsing_transport_http::security::client_certificate("s3cret").unwrap();
/// assert!(c.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// ```
pub fn client_certificate(secret: &str) -> Result<ClientCertificate, PulsingError> {
    let ca = ClusterCa::derive(&Secret::new(secret)?)?;
    let (cert, key) = ca.issue(false, &[])?;
    Ok(ClientCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        ca_pem: ca.pem(),
    })
}

/// What a node with a cluster secret holds: its certificate (from the first secret's CA), the CAs
/// it accepts (every secret's), and the API tokens' digests.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    /// The accepted CAs' certificates (for telling node certificates from client ones).
    cas: Vec<CertificateDer<'static>>,
    key: KeyPair,
    roots: Arc<RootCertStore>,
    tokens: Vec<[u8; 32]>,
    presented: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("presented", &self.presented)
            .field("accepted", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// The identity of a node with `security` (which must have a secret), whose certificate also
    /// names `ips` (for HTTP clients that check the address they dialled).
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] without a secret, or if a certificate cannot be made.
    pub fn new(security: &Security, ips: &[IpAddr]) -> Result<Identity, PulsingError> {
        let mut cas = security
            .secrets()
            .iter()
            .map(ClusterCa::derive)
            .collect::<Result<Vec<_>, _>>()?;
        if cas.is_empty() {
            return Err(PulsingError::Config(
                "a cluster identity needs a secret".into(),
            ));
        }
        let mut roots = RootCertStore::empty();
        let ca_ders: Vec<_> = cas.iter().map(ClusterCa::der).collect();
        for ca in &cas {
            roots
                .add(ca.der())
                .map_err(|e| tls_error("the CA certificate", e))?;
        }
        let first = cas.remove(0);
        let (cert, key) = first.issue(true, ips)?;
        Ok(Identity {
            chain: vec![cert.der().clone(), first.der()],
            cas: ca_ders,
            key,
            roots: Arc::new(roots),
            tokens: security
                .api_tokens()
                .iter()
                .map(|t| digest(t.expose().as_bytes()))
                .collect(),
            presented: first.id().to_owned(),
        })
    }

    /// The id of the CA this node's certificate is from.
    pub fn presented_ca(&self) -> &str {
        &self.presented
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }

    /// A server configuration presenting this node's certificate, with `alpn`. `required`: every
    /// client must present a certificate from an accepted CA (QUIC); otherwise a client may
    /// present none (then only a token lets it call; HTTP).
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if rustls refuses the configuration (not expected).
    pub fn server_config(
        &self,
        alpn: &[&[u8]],
        required: bool,
    ) -> Result<rustls::ServerConfig, PulsingError> {
        let provider = provider();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider.clone());
        let verifier = if required {
            verifier
        } else {
            verifier.allow_unauthenticated()
        }
        .build()
        .map_err(|e| tls_error("the client verifier", e))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error("protocol versions", e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key_der())
            .map_err(|e| tls_error("the node certificate", e))?;
        config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        Ok(config)
    }

    /// A client configuration for node-to-node connections (TLS 1.3): presents this node's
    /// certificate and accepts servers whose certificate chains to an accepted CA and names
    /// [`SERVER_NAME`].
    ///
    /// # Errors
    ///
    /// [`PulsingError::Config`] if rustls refuses the configuration (not expected).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<rustls::ClientConfig, PulsingError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| tls_error("protocol versions", e))?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(self.chain.clone(), self.key_der())
            .map_err(|e| tls_error("the node certificate", e))?;
        config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        Ok(config)
    }

    /// Whether `chain` (a peer's, which rustls verified against the accepted CAs) is a **node's**:
    /// a certificate from an accepted CA for server use as well. Client certificates
    /// ([`client_certificate`]) are for client use only: they let an HTTP client call actors, not
    /// open links or gossip.
    pub fn is_node(&self, chain: &[CertificateDer<'_>]) -> bool {
        // id-kp-serverAuth, 1.3.6.1.5.5.7.3.1, DER-encoded.
        const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
        let Some((leaf, rest)) = chain.split_first() else {
            return false;
        };
        let Ok(leaf) = webpki::EndEntityCert::try_from(leaf) else {
            return false;
        };
        let anchors: Vec<_> = self
            .cas
            .iter()
            .filter_map(|ca| webpki::anchor_from_trusted_cert(ca).ok())
            .collect();
        leaf.verify_for_usage(
            provider().signature_verification_algorithms.all,
            &anchors,
            rest,
            rustls::pki_types::UnixTime::now(),
            webpki::KeyUsage::required(SERVER_AUTH),
            None,
            None,
        )
        .is_ok()
    }

    /// Whether an `Authorization` header value is `Bearer <one of the API tokens>` (compared by
    /// SHA-256 digest, in time independent of where they differ).
    pub fn token_ok(&self, authorization: &[u8]) -> bool {
        let Some(token) = authorization
            .strip_prefix(b"Bearer ")
            .or_else(|| authorization.strip_prefix(b"bearer "))
        else {
            return false;
        };
        let got = digest(token.trim_ascii());
        self.tokens.iter().fold(false, |ok, t| {
            ok | (t.iter().zip(&got).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0)
        })
    }
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// What a failed TLS handshake with `addr` means for the caller, as an error to report:
/// [`PulsingError::Unauthorized`] when a certificate was refused (by either side) or the peer does
/// not speak TLS, [`PulsingError::NodeUnreachable`] (not delivered) otherwise.
pub fn handshake_error(addr: std::net::SocketAddr, e: &std::io::Error) -> PulsingError {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let why = match inner {
        Some(rustls::Error::InvalidCertificate(c)) => format!(
            "the node at {addr} presented a certificate that is not from this cluster's CA ({c:?}): \
             its cluster secret differs from this node's"
        ),
        Some(rustls::Error::AlertReceived(a)) if is_certificate_alert(*a) => format!(
            "the node at {addr} refused this node's identity (TLS alert {a:?}): its cluster \
             secret differs from this node's"
        ),
        Some(rustls::Error::InvalidMessage(_)) | Some(rustls::Error::InappropriateMessage { .. }) => {
            format!(
                "the node at {addr} does not speak TLS: it has no cluster secret (every node of a \
                 cluster needs the same one)"
            )
        }
        // Closed or failed before any certificate was judged: a node over its handshake limit, one
        // shutting down, a plaintext node that hung up on our hello. Not a verdict on who we are,
        // so the caller may try again (a join keeps asking its seeds).
        _ => {
            return PulsingError::NodeUnreachable {
                addr: addr.to_string(),
                reason: format!(
                    "the TLS handshake failed before certificates were checked ({e}): the node \
                     may be over its handshake limit, shutting down, or without a cluster secret"
                ),
                delivery: pulsing_core::Delivery::NotDelivered,
            }
        }
    };
    PulsingError::Unauthorized(why)
}

/// The TLS side of an HTTP transport with a cluster secret, made when it starts serving.
pub(crate) struct NodeTls {
    pub(crate) identity: Identity,
    /// Serves TLS on the HTTP port: ALPN `h2`, `http/1.1` and [`ALPN_LINK`]; a client certificate
    /// is optional at this level (HTTP clients may use a token instead) and checked per use.
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    /// Opens links ([`ALPN_LINK`]).
    pub(crate) link: tokio_rustls::TlsConnector,
    /// Opens HTTP/2 connections for gossip (ALPN `h2`).
    pub(crate) h2: tokio_rustls::TlsConnector,
}

/// Where an HTTP transport keeps its [`NodeTls`] once serving (empty without a secret).
pub(crate) type TlsSlot = Arc<TlsState>;

/// The TLS of a transport: none (no secret), required (a secret, not serving yet), or made.
#[derive(Default)]
pub(crate) struct TlsState {
    tls: std::sync::OnceLock<Arc<NodeTls>>,
    required: std::sync::atomic::AtomicBool,
}

impl TlsState {
    /// A secret was given: from now on nothing is sent without TLS.
    pub(crate) fn require(&self) {
        self.required
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Sets the TLS made at serve.
    pub(crate) fn set(&self, tls: Arc<NodeTls>) {
        let _ = self.tls.set(tls);
    }

    /// The TLS made, if any.
    pub(crate) fn current(&self) -> Option<&Arc<NodeTls>> {
        self.tls.get()
    }

    /// The TLS to dial with: `None` without a secret; an error for a secret whose TLS is not
    /// made yet (the transport does not serve yet), so nothing goes out in plaintext.
    pub(crate) fn for_dial(&self) -> Result<Option<&Arc<NodeTls>>, PulsingError> {
        match self.tls.get() {
            Some(tls) => Ok(Some(tls)),
            None if self.required.load(std::sync::atomic::Ordering::Acquire) => {
                Err(PulsingError::Config(
                    "this transport has a cluster secret but does not serve yet, so it has no \
                     certificate: it sends nothing before it serves (build the system first)"
                        .into(),
                ))
            }
            None => Ok(None),
        }
    }
}

impl NodeTls {
    pub(crate) fn new(security: &Security, ips: &[IpAddr]) -> Result<NodeTls, PulsingError> {
        let identity = Identity::new(security, ips)?;
        let acceptor = identity.server_config(&[b"h2", b"http/1.1", ALPN_LINK], false)?;
        let link = identity.client_config(&[ALPN_LINK])?;
        let h2 = identity.client_config(&[b"h2"])?;
        Ok(NodeTls {
            identity,
            acceptor: Arc::new(acceptor).into(),
            link: Arc::new(link).into(),
            h2: Arc::new(h2).into(),
        })
    }

    /// Runs the client side of a TLS handshake with `addr` on `stream` by `connector`, bounded by
    /// `bound` and `deadline`. `Ok(None)`: `deadline` came first (the caller's own time ran out).
    pub(crate) async fn connect(
        connector: &tokio_rustls::TlsConnector,
        addr: std::net::SocketAddr,
        stream: tokio::net::TcpStream,
        bound: std::time::Duration,
        deadline: tokio::time::Instant,
    ) -> Result<Option<TlsIo>, PulsingError> {
        let name = rustls::pki_types::ServerName::try_from(SERVER_NAME)
            .map_err(|e| tls_error("the server name", e))?;
        let by = tokio::time::Instant::now() + bound;
        match tokio::time::timeout_at(by.min(deadline), connector.connect(name, buffered(stream)))
            .await
        {
            Ok(Ok(io)) => Ok(Some(tokio_rustls::TlsStream::Client(io))),
            Ok(Err(e)) => Err(handshake_error(addr, &e)),
            Err(_) if by <= deadline => Err(PulsingError::NodeUnreachable {
                addr: addr.to_string(),
                reason: format!(
                    "the peer accepted the connection but did not finish the TLS handshake within \
                     {bound:?}: it may be stopped or hung"
                ),
                delivery: pulsing_core::Delivery::NotDelivered,
            }),
            Err(_) => Ok(None),
        }
    }
}

/// The alerts a peer sends when it refuses a certificate (or its absence): a verdict on identity,
/// sent during the handshake, so nothing of a call was read. Any other alert is not one.
const CERTIFICATE_ALERTS: [rustls::AlertDescription; 8] = [
    rustls::AlertDescription::BadCertificate,
    rustls::AlertDescription::UnsupportedCertificate,
    rustls::AlertDescription::CertificateRevoked,
    rustls::AlertDescription::CertificateExpired,
    rustls::AlertDescription::CertificateUnknown,
    rustls::AlertDescription::UnknownCA,
    rustls::AlertDescription::AccessDenied,
    rustls::AlertDescription::CertificateRequired,
];

fn is_certificate_alert(a: rustls::AlertDescription) -> bool {
    CERTIFICATE_ALERTS.contains(&a)
}

/// Whether an IO error on a TLS stream is the peer refusing (or us refusing) the other's identity.
pub(crate) fn is_tls_refusal(e: &std::io::Error) -> bool {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(a)) => is_certificate_alert(*a),
        Some(rustls::Error::InvalidCertificate(_)) => true,
        Some(_) => false,
        None => refused_in(&e.to_string()),
    }
}

/// Whether an error's text says a TLS peer refused our certificate (in TLS 1.3 a server checks the
/// client's certificate after the client considers the handshake done, so its refusal arrives on
/// the first read, through layers, such as h2's errors, that keep only the text).
pub(crate) fn refused_in(text: &str) -> bool {
    CERTIFICATE_ALERTS
        .iter()
        .any(|a| text.contains(&format!("received fatal alert: {a:?}")))
}

#[cfg(test)]
mod tests;
