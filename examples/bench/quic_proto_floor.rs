//! The `quic_proto_floor` scenario: what QUIC costs when one task drives quinn-proto. The same
//! ping-pong as `quic_floor` (the floor's frames, one bidirectional stream, the transport's
//! self-signed TLS), but each side is a single task owning its UDP socket, its
//! `quinn_proto::Endpoint` and its one connection: a datagram is read, handled, the stream read and
//! the answer's packets sent in one go, with none of quinn's endpoint task, connection task and
//! stream wake-ups between. A measurement of what a Pulsing-driven QUIC link could reach, not a
//! transport: one connection, one stream, no flow-control or loss handling beyond quinn-proto's own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pulsing::quic::Tls;
use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{
    ClientConfig, Connection, ConnectionHandle, DatagramEvent, Dir, Endpoint, EndpointConfig,
    Event, ServerConfig, StreamEvent, StreamId,
};
use tokio::net::UdpSocket;

use super::floor;

/// One side: its socket, endpoint, connection and stream, driven by whoever holds it.
struct Side {
    socket: UdpSocket,
    endpoint: Endpoint,
    conn: Option<(ConnectionHandle, Connection)>,
    stream: Option<StreamId>,
    /// Stream bytes read and not yet consumed.
    read: Vec<u8>,
    datagram: Vec<u8>,
    out: Vec<u8>,
}

impl Side {
    fn bind(server: Option<ServerConfig>) -> Side {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the QUIC proto floor");
        socket.set_nonblocking(true).expect("non-blocking");
        Side {
            socket: UdpSocket::from_std(socket).expect("a Tokio socket"),
            endpoint: Endpoint::new(
                Arc::new(EndpointConfig::default()),
                server.map(Arc::new),
                true,
                None,
            ),
            conn: None,
            stream: None,
            read: Vec::with_capacity(256),
            datagram: vec![0; 65536],
            out: Vec::with_capacity(2048),
        }
    }

    fn conn(&mut self) -> &mut Connection {
        &mut self.conn.as_mut().expect("connected").1
    }

    /// Sends every packet the connection has ready.
    fn send(&mut self) {
        let now = Instant::now();
        let Some((_, conn)) = self.conn.as_mut() else {
            return;
        };
        loop {
            self.out.clear();
            let Some(t) = conn.poll_transmit(now, 1, &mut self.out) else {
                return;
            };
            // Loopback: a full socket buffer only loses the packet, which quinn-proto resends.
            let _ = self.socket.try_send_to(&self.out[..t.size], t.destination);
        }
    }

    /// Passes endpoint events both ways, takes the peer's stream once it opens, and reads what
    /// the stream has into `read`. Whether the connection is still up.
    fn events(&mut self) -> bool {
        let Some((handle, conn)) = self.conn.as_mut() else {
            return true;
        };
        while let Some(e) = conn.poll_endpoint_events() {
            if let Some(back) = self.endpoint.handle_event(*handle, e) {
                conn.handle_event(back);
            }
        }
        while let Some(e) = conn.poll() {
            match e {
                Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
                    self.stream = conn.streams().accept(Dir::Bi);
                }
                Event::ConnectionLost { .. } => return false,
                _ => {}
            }
        }
        if let Some(id) = self.stream {
            let mut recv = conn.recv_stream(id);
            let chunks = recv.read(true);
            if let Ok(mut chunks) = chunks {
                while let Ok(Some(chunk)) = chunks.next(usize::MAX) {
                    self.read.extend_from_slice(&chunk.bytes);
                }
                let _ = chunks.finalize();
            }
        }
        true
    }

    /// Waits for a datagram or the connection's timer, handles it and sends what follows.
    /// Whether the connection is still up.
    async fn turn(&mut self) -> bool {
        let deadline = self.conn.as_mut().and_then(|(_, c)| c.poll_timeout());
        let timer = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            got = self.socket.recv_from(&mut self.datagram) => {
                let Ok((n, from)) = got else { return false };
                let now = Instant::now();
                let data = BytesMut::from(&self.datagram[..n]);
                self.out.clear();
                match self.endpoint.handle(now, from, None, None, data, &mut self.out) {
                    Some(DatagramEvent::ConnectionEvent(_, e)) => {
                        if let Some((_, conn)) = self.conn.as_mut() {
                            conn.handle_event(e);
                        }
                    }
                    Some(DatagramEvent::NewConnection(incoming)) if self.conn.is_none() => {
                        self.out.clear();
                        if let Ok(accepted) = self.endpoint.accept(incoming, now, &mut self.out, None) {
                            self.conn = Some(accepted);
                        }
                    }
                    Some(DatagramEvent::NewConnection(incoming)) => {
                        self.out.clear();
                        let t = self.endpoint.refuse(incoming, &mut self.out);
                        let _ = self.socket.try_send_to(&self.out[..t.size], t.destination);
                    }
                    Some(DatagramEvent::Response(t)) => {
                        let _ = self.socket.try_send_to(&self.out[..t.size], t.destination);
                    }
                    None => {}
                }
            }
            () = timer => {
                if let Some((_, conn)) = self.conn.as_mut() {
                    conn.handle_timeout(Instant::now());
                }
            }
        }
        let up = self.events();
        self.send();
        up
    }
}

fn crypto() -> (ServerConfig, ClientConfig) {
    let tls = Tls::self_signed().expect("a self-signed certificate");
    let server = QuicServerConfig::try_from(tls.server_config()).expect("QUIC server TLS");
    let client = QuicClientConfig::try_from(tls.client_config()).expect("QUIC client TLS");
    (
        ServerConfig::with_crypto(Arc::new(server)),
        ClientConfig::new(Arc::new(client)),
    )
}

/// Binds UDP 127.0.0.1:0 and answers each request (the floor's request frame, by its length) on
/// the first connection's stream with the reply frame, on a task of the current runtime, until
/// the connection or the runtime ends.
pub(crate) async fn serve() -> SocketAddr {
    let mut side = Side::bind(Some(crypto().0));
    let addr = side.socket.local_addr().expect("bound address");
    let frames = floor::frames();
    tokio::spawn(async move {
        while side.turn().await {
            let mut answered = false;
            while side.read.len() >= frames.request.len() {
                side.read.drain(..frames.request.len());
                let Some(id) = side.stream else { break };
                if side.conn().send_stream(id).write(&frames.reply).is_err() {
                    return;
                }
                answered = true;
            }
            if answered {
                side.send();
            }
        }
    });
    addr
}

/// A connection to [`serve`], making one round trip at a time.
pub(crate) struct Client {
    side: Side,
    id: StreamId,
    frames: floor::Frames,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Client {
        let mut side = Side::bind(None);
        let now = Instant::now();
        let conn = side
            .endpoint
            .connect(now, crypto().1, addr, "pulsing")
            .expect("connect to the QUIC proto floor");
        side.conn = Some(conn);
        side.send();
        while side.conn().is_handshaking() {
            assert!(side.turn().await, "QUIC proto floor handshake");
        }
        let id = side.conn().streams().open(Dir::Bi).expect("a stream");
        side.stream = Some(id);
        Client {
            side,
            id,
            frames: floor::frames(),
        }
    }

    /// Sends the request frame and reads the reply; returns the time between, measured as
    /// `remote_ask` measures an ask.
    pub(crate) async fn round_trip(&mut self) -> Duration {
        let t = Instant::now();
        let (id, side) = (self.id, &mut self.side);
        side.conn()
            .send_stream(id)
            .write(&self.frames.request)
            .expect("QUIC proto floor write");
        side.send();
        while side.read.len() < self.frames.reply.len() {
            assert!(side.turn().await, "the QUIC proto floor connection ended");
        }
        let d = t.elapsed();
        let reply: Vec<u8> = side.read.drain(..self.frames.reply.len()).collect();
        assert!(
            reply == self.frames.reply,
            "the QUIC proto floor answers the reply"
        );
        d
    }
}
