//! The driver on its own, between two endpoints on loopback: streams both ways, their ends and
//! resets, a connection closed when its last handle goes, a closed endpoint. Each test bounds its
//! own time.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{ClientConfig, ConnectionError, ServerConfig, VarInt};

use super::{Connection, Endpoint, StreamError};
use crate::tls::{Tls, SERVER_NAME};

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within 10 s"))
}

fn endpoint(server: Option<ServerConfig>) -> (Endpoint, SocketAddr) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let socket = quinn::Runtime::wrap_udp_socket(&quinn::TokioRuntime, socket).unwrap();
    (Endpoint::new(socket, server), addr)
}

/// Asserts that the peer closed the connection with `code`.
fn closed_with(why: ConnectionError, code: u32) {
    assert!(
        matches!(why, ConnectionError::ApplicationClosed(ref c) if c.error_code == VarInt::from_u32(code)),
        "{why:?}"
    );
}

/// A serving endpoint and a calling one, connected; the connection from each side.
async fn pair() -> (Endpoint, Connection, Endpoint, Connection) {
    let tls = Tls::self_signed().unwrap();
    let server = ServerConfig::with_crypto(Arc::new(
        QuicServerConfig::try_from(tls.server_config()).unwrap(),
    ));
    let client = ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(tls.client_config()).unwrap(),
    ));
    let (s, s_addr) = endpoint(Some(server));
    let (c, _) = endpoint(None);
    let connecting = c.connect(client, s_addr, SERVER_NAME).unwrap();
    let accepted = async {
        let incoming = s.accept().await.expect("an attempt");
        incoming.accept().expect("accepted").await
    };
    let (cc, sc) = bounded("the handshake", async {
        tokio::join!(connecting, accepted)
    })
    .await;
    (s, sc.expect("server side"), c, cc.expect("client side"))
}

#[tokio::test(flavor = "current_thread")]
async fn a_stream_carries_bytes_both_ways_and_its_end() {
    let (_s, sc, _c, cc) = pair().await;
    let (mut send, mut recv) = cc.open_bi().await.unwrap();
    send.write_all(b"hello").await.unwrap();
    send.finish().unwrap();
    let (mut s_send, mut s_recv) = bounded("accept", sc.accept_bi()).await.unwrap();
    let got = bounded("read", s_recv.read_to_end(1024)).await.unwrap();
    assert_eq!(got, b"hello");
    // 1 MiB back: more than one flight, flow control and several packets.
    let big = vec![7u8; 1 << 20];
    s_send.write_all(&big).await.unwrap();
    s_send.finish().unwrap();
    let back = bounded("read back", recv.read_to_end(2 << 20))
        .await
        .unwrap();
    assert_eq!(back.len(), big.len());
    assert!(back.iter().all(|&b| b == 7));
    // The end is seen again by a later read, not an error.
    assert_eq!(recv.read_to_end(16).await.unwrap(), b"");
    assert_eq!(bounded("stopped", s_send.stopped()).await.unwrap(), None);
}

#[tokio::test(flavor = "current_thread")]
async fn a_reset_fails_the_peers_read_with_its_code_and_too_long_is_refused() {
    let (_s, sc, _c, cc) = pair().await;
    let (mut send, mut recv) = cc.open_bi().await.unwrap();
    send.write_all(b"0123456789").await.unwrap();
    send.finish().unwrap();
    let (mut s_send, mut s_recv) = bounded("accept", sc.accept_bi()).await.unwrap();
    assert_eq!(
        bounded("read", s_recv.read_to_end(4)).await,
        Err(StreamError::TooLong)
    );
    s_send.write_all(b"partial").await.unwrap();
    s_send.reset(VarInt::from_u32(7)).unwrap();
    let r = bounded("read", recv.read_to_end(1024)).await;
    assert_eq!(r, Err(StreamError::Reset(VarInt::from_u32(7))));
}

#[tokio::test(flavor = "current_thread")]
async fn the_last_handle_gone_closes_the_connection_for_the_peer() {
    let (_s, sc, _c, cc) = pair().await;
    let (send, recv) = cc.open_bi().await.unwrap();
    let extra = cc.clone();
    drop((cc, send, recv));
    assert!(sc.close_reason().is_none(), "a handle is left");
    drop(extra);
    closed_with(bounded("closed", sc.closed()).await, 0);
    // Streams of a closed connection fail at once.
    assert!(sc.open_bi().await.is_err());
}

#[tokio::test(flavor = "current_thread")]
async fn a_closed_endpoint_ends_its_accepts_and_its_connections() {
    let (s, sc, _c, cc) = pair().await;
    s.close(VarInt::from_u32(3), b"bye");
    assert!(bounded("accept", s.accept()).await.is_none());
    assert_eq!(sc.close_reason(), Some(ConnectionError::LocallyClosed));
    closed_with(bounded("closed", cc.closed()).await, 3);
    assert!(matches!(
        cc.open_bi().await,
        Err(ConnectionError::ApplicationClosed(_))
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn readers_of_the_socket_get_their_bytes_and_gone_leave_the_socket_to_the_driver() {
    use tokio::io::AsyncReadExt;
    let (_s, sc, _c, cc) = pair().await;
    let (mut send, mut recv) = cc.open_bi().await.unwrap();
    recv.reads_socket();
    send.write_all(b"ping").await.unwrap();
    let (mut s_send, mut s_recv) = bounded("accept", sc.accept_bi()).await.unwrap();
    s_recv.reads_socket();
    // Ping-pong, as a link's asks and replies: each side's reader parks on its socket between
    // messages and is woken by the next datagram.
    let mut buf = [0u8; 4];
    for _ in 0..200 {
        bounded("ping", s_recv.read_exact(&mut buf)).await.unwrap();
        assert_eq!(&buf, b"ping");
        s_send.write_all(b"pong").await.unwrap();
        bounded("pong", recv.read_exact(&mut buf)).await.unwrap();
        assert_eq!(&buf, b"pong");
        send.write_all(b"ping").await.unwrap();
    }
    bounded("ping", s_recv.read_exact(&mut buf)).await.unwrap();
    // The server's reader parks (a read finds nothing) and goes away: the driver reads the socket
    // again, so another stream still gets its bytes.
    tokio::select! {
        biased;
        _ = s_recv.read_exact(&mut buf) => panic!("nothing was sent"),
        () = tokio::task::yield_now() => {}
    }
    drop(s_recv);
    let (mut other, _other_recv) = cc.open_bi().await.unwrap();
    other.write_all(b"more").await.unwrap();
    let (_o_send, mut o_recv) = bounded("accept", sc.accept_bi()).await.unwrap();
    bounded("the other stream", o_recv.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf, b"more");
    // The same after a parked reader stops its stream and is kept.
    tokio::select! {
        biased;
        _ = recv.read_exact(&mut buf) => panic!("nothing was sent"),
        () = tokio::task::yield_now() => {}
    }
    recv.stop(VarInt::from_u32(0)).unwrap();
    let (mut third, _) = sc.open_bi().await.unwrap();
    third.write_all(b"last").await.unwrap();
    let (_t_send, mut t_recv) = bounded("accept", cc.accept_bi()).await.unwrap();
    bounded("the third stream", t_recv.read_exact(&mut buf))
        .await
        .unwrap();
    assert_eq!(&buf, b"last");
    drop(recv);
}
