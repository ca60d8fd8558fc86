//! The `quic_floor` scenario: what quinn alone costs. A plain quinn ping-pong on one bidirectional
//! stream between the same two runtimes the QUIC block uses, with the frames of `tcp_floor`
//! ([`floor::frames`]), run interleaved with `tcp_floor` and `remote_ask`. Nothing of Pulsing is on
//! its path: quinn's own endpoint and socket, its default transport settings, and the transport's
//! self-signed TLS ([`Tls::self_signed`]). So `remote_ask` over QUIC compares with it as HTTP's
//! `remote_ask` compares with `tcp_floor`, and what is left between `quic_floor` and `tcp_floor` is
//! quinn's (and QUIC's encryption).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsing::quic::quinn;
use pulsing::quic::Tls;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use super::floor;

/// Reads one frame's body into `buf`; `false` at a clean end of the stream.
async fn read_frame(recv: &mut quinn::RecvStream, buf: &mut Vec<u8>) -> bool {
    let mut len = [0u8; 4];
    if recv.read_exact(&mut len).await.is_err() {
        return false;
    }
    buf.resize(u32::from_be_bytes(len) as usize, 0);
    recv.read_exact(buf).await.is_ok()
}

/// Binds UDP 127.0.0.1:0 and answers every request frame on every stream with the reply frame, on
/// the current runtime, until the runtime is dropped.
pub(crate) async fn serve() -> SocketAddr {
    let tls = Tls::self_signed().expect("a self-signed certificate");
    let crypto = QuicServerConfig::try_from(tls.server_config()).expect("QUIC server TLS");
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().expect("an address"))
        .expect("bind the QUIC floor");
    let addr = endpoint.local_addr().expect("bound address");
    tokio::spawn(async move {
        let reply = floor::frames().reply;
        while let Some(incoming) = endpoint.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                    let reply = reply.clone();
                    tokio::spawn(async move {
                        let mut buf = Vec::with_capacity(64);
                        while read_frame(&mut recv, &mut buf).await {
                            if send.write_all(&reply).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
        }
    });
    addr
}

/// A stream to [`serve`], making one round trip at a time.
pub(crate) struct Client {
    /// Kept so the connection lives as long as the client.
    _endpoint: quinn::Endpoint,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    frames: floor::Frames,
    buf: Vec<u8>,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Client {
        let tls = Tls::self_signed().expect("a self-signed certificate");
        let crypto = QuicClientConfig::try_from(tls.client_config()).expect("QUIC client TLS");
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("an address"))
            .expect("bind the QUIC floor client");
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
        let conn = endpoint
            .connect(addr, "pulsing")
            .expect("connect to the QUIC floor")
            .await
            .expect("QUIC floor handshake");
        let (send, recv) = conn.open_bi().await.expect("QUIC floor stream");
        Client {
            _endpoint: endpoint,
            send,
            recv,
            frames: floor::frames(),
            buf: Vec::with_capacity(64),
        }
    }

    /// Sends the request frame and reads the reply; returns the time between, measured as
    /// `remote_ask` measures an ask.
    pub(crate) async fn round_trip(&mut self) -> Duration {
        let t = Instant::now();
        self.send
            .write_all(&self.frames.request)
            .await
            .expect("QUIC floor write");
        let open = read_frame(&mut self.recv, &mut self.buf).await;
        let d = t.elapsed();
        assert!(
            open && self.buf[..] == self.frames.reply[4..],
            "the QUIC floor answers the reply"
        );
        d
    }
}
