use std::sync::Arc;

use pulsing_core::{Secret, Security};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn security(secrets: &[&str], tokens: &[&str]) -> Security {
    Security::new(
        secrets.iter().map(|s| Secret::new(*s).unwrap()).collect(),
        tokens.iter().map(|s| Secret::new(*s).unwrap()).collect(),
    )
    .unwrap()
}

#[test]
fn the_same_secret_derives_the_same_ca_and_another_a_different_one() {
    let a1 = ClusterCa::derive(&Secret::new("alpha").unwrap()).unwrap();
    let a2 = ClusterCa::derive(&Secret::new("alpha").unwrap()).unwrap();
    let b = ClusterCa::derive(&Secret::new("beta").unwrap()).unwrap();
    assert_eq!(
        a1.der(),
        a2.der(),
        "the CA certificate is the same bytes on every node"
    );
    assert_eq!(a1.id(), a2.id());
    assert_ne!(a1.der(), b.der());
    assert_ne!(a1.id(), b.id());
}

/// A TLS handshake between a client with `client` and a server with `server`, over an in-memory
/// pipe, then one byte each way; `Err` with the side's error if it fails.
async fn handshake(client: &Identity, server: &Identity, required: bool) -> Result<(), String> {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Arc::new(server.server_config(&[b"x"], required).unwrap()));
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(client.client_config(&[b"x"]).unwrap()));
    let server = tokio::spawn(async move {
        let mut tls = acceptor
            .accept(s)
            .await
            .map_err(|e| format!("server: {e}"))?;
        let mut b = [0u8; 1];
        tls.read_exact(&mut b)
            .await
            .map_err(|e| format!("server read: {e}"))?;
        tls.write_all(&b)
            .await
            .map_err(|e| format!("server write: {e}"))?;
        tls.flush()
            .await
            .map_err(|e| format!("server flush: {e}"))?;
        Ok::<_, String>(())
    });
    let name = ServerName::try_from(SERVER_NAME).unwrap();
    let client = async {
        let mut tls = connector
            .connect(name, c)
            .await
            .map_err(|e| format!("client: {e}"))?;
        tls.write_all(b"!")
            .await
            .map_err(|e| format!("client write: {e}"))?;
        tls.flush()
            .await
            .map_err(|e| format!("client flush: {e}"))?;
        let mut b = [0u8; 1];
        tls.read_exact(&mut b)
            .await
            .map_err(|e| format!("client read: {e}"))?;
        Ok::<_, String>(())
    };
    let c = client.await;
    let s = server.await.unwrap();
    c.and(s)
}

#[tokio::test]
async fn nodes_with_the_same_secret_authenticate_each_other_and_others_are_refused() {
    let a = Identity::new(&security(&["alpha"], &[]), &[]).unwrap();
    let a2 = Identity::new(&security(&["alpha"], &[]), &[]).unwrap();
    let b = Identity::new(&security(&["beta"], &[]), &[]).unwrap();
    handshake(&a, &a2, true).await.unwrap();
    let e = handshake(&b, &a, true).await.unwrap_err();
    assert!(e.contains("client"), "{e}");
    // Rotation, phase 1: [alpha, beta] presents alpha and accepts both: it works with alpha-only
    // nodes both ways (and beta-only nodes refuse it: that is why phases are needed).
    let ab = Identity::new(&security(&["alpha", "beta"], &[]), &[]).unwrap();
    handshake(&ab, &a, true).await.unwrap();
    handshake(&a, &ab, true).await.unwrap();
    assert!(handshake(&ab, &b, true).await.is_err());
    // Phase 2: [beta, alpha] presents beta, accepts both: works with phase-1 nodes both ways.
    let ba = Identity::new(&security(&["beta", "alpha"], &[]), &[]).unwrap();
    handshake(&ba, &ab, true).await.unwrap();
    handshake(&ab, &ba, true).await.unwrap();
    handshake(&ba, &b, true).await.unwrap();
    handshake(&b, &ba, true).await.unwrap();
    // An alpha-only node does not accept beta's certificate.
    assert!(handshake(&ba, &a, true).await.is_err());
}

#[test]
fn a_client_certificate_chains_to_the_ca_of_its_secret() {
    let c = client_certificate("alpha").unwrap();
    let ca = ClusterCa::derive(&Secret::new("alpha").unwrap()).unwrap();
    assert_eq!(c.ca_pem, ca.pem());
    assert!(c.key_pem.contains("PRIVATE KEY"));
    assert!(client_certificate("").is_err());
}

#[test]
fn node_certificates_are_told_from_client_certificates() {
    let a = Identity::new(&security(&["alpha"], &[]), &[]).unwrap();
    let a2 = Identity::new(&security(&["alpha"], &[]), &[]).unwrap();
    let b = Identity::new(&security(&["beta"], &[]), &[]).unwrap();
    assert!(a.is_node(&a2.chain));
    assert!(!a.is_node(&b.chain), "another cluster's node");
    let client = client_certificate("alpha").unwrap();
    let der =
        rustls::pki_types::pem::PemObject::from_pem_slice(client.cert_pem.as_bytes()).unwrap();
    assert!(!a.is_node(&[der]), "a client certificate is not a node's");
    assert!(!a.is_node(&[]));
}

#[test]
fn tokens_match_exactly() {
    let id = Identity::new(&security(&["alpha"], &["t0k3n", "other"]), &[]).unwrap();
    assert!(id.token_ok(b"Bearer t0k3n"));
    assert!(id.token_ok(b"Bearer other"));
    assert!(!id.token_ok(b"Bearer t0k3"));
    assert!(!id.token_ok(b"Bearer t0k3nn"));
    assert!(!id.token_ok(b"t0k3n"));
    assert!(!id.token_ok(b"Basic dDBrM24="));
    let none = Identity::new(&security(&["alpha"], &[]), &[]).unwrap();
    assert!(!none.token_ok(b"Bearer "));
}

#[test]
fn only_a_judged_identity_is_unauthorized() {
    let addr: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let alert = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
    );
    assert!(handshake_error(addr, &alert).is_unauthorized());
    let bad_cert = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
    );
    assert!(handshake_error(addr, &bad_cert).is_unauthorized());
    // Another alert (a broken record, say) is not a verdict on identity.
    let other = std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        rustls::Error::AlertReceived(rustls::AlertDescription::BadRecordMac),
    );
    assert!(!handshake_error(addr, &other).is_unauthorized());
    assert!(!is_tls_refusal(&other));
    assert!(refused_in("h2: received fatal alert: UnknownCA"));
    assert!(!refused_in("h2: received fatal alert: BadRecordMac"));
    // Hung up before any certificate was judged (over its handshake limit, shutting down): the
    // caller may try again; a join keeps asking.
    let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
    let e = handshake_error(addr, &eof);
    assert_eq!(e.kind(), pulsing_core::ErrorKind::Unreachable, "{e}");
    assert_eq!(e.delivery(), pulsing_core::Delivery::NotDelivered);
}
