//! The `tcp_floor` scenario: a plain Tokio TCP ping-pong between the same two runtimes (or processes)
//! the remote scenarios use, in the same run: the floor the HTTP path is measured against.
//!
//! Each request and each reply is a length-prefixed frame (4-byte big-endian length, then the body)
//! whose body is the msgpack bytes `remote_ask` puts in its HTTP bodies (`docs/protocol.md` §3): the
//! request is the envelope `{"msg_type": "ping", "payload": b"ping"}` (29 bytes, 33 framed), the reply
//! `{"result": <that envelope>}` (37 bytes, 41 framed). The HTTP/2 frame headers and HPACK fields of
//! the real path are not in it: they are part of what the floor is measured against. Both ends set
//! `TCP_NODELAY`; the server reads each request whole and answers with the reply bytes, decoding
//! nothing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rmpv::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The framed request and reply, each a 4-byte big-endian length and a msgpack body.
pub(crate) struct Frames {
    pub(crate) request: Vec<u8>,
    pub(crate) reply: Vec<u8>,
}

/// `{"msg_type": "ping", "payload": b"ping"}`, what `remote_ask` sends and gets back.
fn envelope() -> Value {
    Value::Map(vec![
        (Value::from("msg_type"), Value::from("ping")),
        (Value::from("payload"), Value::Binary(b"ping".to_vec())),
    ])
}

fn framed(body: &Value) -> Vec<u8> {
    let mut out = vec![0; 4];
    rmpv::encode::write_value(&mut out, body).expect("writing msgpack into a Vec cannot fail");
    let len = u32::try_from(out.len() - 4).expect("a small frame");
    out[..4].copy_from_slice(&len.to_be_bytes());
    out
}

pub(crate) fn frames() -> Frames {
    Frames {
        request: framed(&envelope()),
        reply: framed(&Value::Map(vec![(Value::from("result"), envelope())])),
    }
}

/// Reads one frame into `buf` (its body only); `false` at a clean end of the stream.
async fn read_frame(conn: &mut BufReader<TcpStream>, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut len = [0u8; 4];
    match conn.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    buf.resize(u32::from_be_bytes(len) as usize, 0);
    conn.read_exact(buf).await?;
    Ok(true)
}

/// Binds 127.0.0.1:0 and answers every request frame with the reply frame, on the current runtime,
/// until the runtime is dropped (or, per connection, the client closes it).
pub(crate) async fn serve() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the TCP floor");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        let reply = frames().reply;
        while let Ok((conn, _)) = listener.accept().await {
            conn.set_nodelay(true).expect("TCP_NODELAY");
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut conn = BufReader::new(conn);
                let mut buf = Vec::with_capacity(64);
                while let Ok(true) = read_frame(&mut conn, &mut buf).await {
                    if conn.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// A connection to [`serve`], making one round trip at a time.
pub(crate) struct Client {
    conn: BufReader<TcpStream>,
    frames: Frames,
    buf: Vec<u8>,
}

impl Client {
    pub(crate) async fn connect(addr: SocketAddr) -> Client {
        let conn = TcpStream::connect(addr)
            .await
            .expect("connect to the TCP floor");
        conn.set_nodelay(true).expect("TCP_NODELAY");
        Client {
            conn: BufReader::new(conn),
            frames: frames(),
            buf: Vec::with_capacity(64),
        }
    }

    /// Sends the request frame and reads the reply; returns the time between, measured as
    /// `remote_ask` measures an ask (`Instant::now()` around it).
    pub(crate) async fn round_trip(&mut self) -> Duration {
        let t = Instant::now();
        self.conn
            .write_all(&self.frames.request)
            .await
            .expect("TCP floor write");
        let open = read_frame(&mut self.conn, &mut self.buf)
            .await
            .expect("TCP floor read");
        let d = t.elapsed();
        assert!(
            open && self.buf[..] == self.frames.reply[4..],
            "the floor answers the reply"
        );
        d
    }
}
