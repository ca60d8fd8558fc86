//! The calling side: HTTP/2 with prior knowledge over a small pool of connections per peer.
//!
//! Each peer address gets up to `connections_per_peer` HTTP/2 connections (opened lazily, one at a
//! time), and requests are spread over them round-robin; each connection multiplexes any number of
//! requests. A connection found closed is dropped from the pool and replaced on the next call.
//!
//! # Retries
//!
//! None once bytes may have left. The only resend is of a request that the HTTP/2 connection handed
//! back unsent (it was found closed before the request was queued on it), which goes once on a fresh
//! connection. Everything else fails: a refused connect as [`PulsingError::NodeUnreachable`] ("not
//! sent"), a connection lost after the request was handed over as `NodeUnreachable` ("may have been
//! delivered"), a silent peer by the call's timeout.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::RecvStream;
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use pulsing_core::{Message, MessageStream, PulsingError, RemoteTarget, StreamSender};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::body::Collected;
use crate::codec::{self, Encoded, FrameDecoder, Reply, StreamFrame};
use crate::config::HttpConfig;
use crate::protocol::{self, Mode};
use crate::server::{CONNECTION_WINDOW, STREAM_WINDOW};

/// Items buffered between the task reading a streamed reply and its consumer.
const STREAM_BUFFER: usize = 32;

/// Largest DATA chunk handed to h2 at once (h2 refuses a single chunk over 2^31 - 1 bytes).
const MAX_CHUNK: usize = 16 * 1024 * 1024;

/// The pooled HTTP/2 client of one transport.
///
/// It speaks HTTP/2 through the `h2` crate directly rather than hyper's client wrapper: the caller
/// queues the request's HEADERS and DATA itself, so both leave in one write, and awaits the response
/// on its own task (hyper's wrapper hands each request to a dispatch task and a per-request task,
/// which cost two extra wake-ups and a second write per request).
pub(crate) struct Client {
    config: HttpConfig,
    peers: Mutex<HashMap<SocketAddr, Arc<Peer>>>,
    shutdown: CancellationToken,
}

/// One pooled HTTP/2 connection.
#[derive(Clone)]
struct Conn {
    send: SendRequest<Bytes>,
    /// Set when the connection's task ended or a request found the connection closed.
    closed: Arc<AtomicBool>,
}

impl Conn {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// The connections to one peer address.
struct Peer {
    /// `ip:port` as the `:authority` of every request to this peer.
    authority: Authority,
    conns: Mutex<Vec<Conn>>,
    next: AtomicUsize,
    /// Held while a connection is being opened, so concurrent callers open one, not many.
    connecting: tokio::sync::Mutex<()>,
}

impl Peer {
    fn new(addr: SocketAddr) -> Peer {
        Peer {
            authority: Authority::try_from(addr.to_string()).expect("ip:port is an authority"),
            conns: Mutex::default(),
            next: AtomicUsize::new(0),
            connecting: tokio::sync::Mutex::new(()),
        }
    }

    /// Drops closed connections; returns how many are live and one of them, round-robin.
    fn pick(&self) -> (usize, Option<Conn>) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|c| !c.is_closed());
        if conns.is_empty() {
            return (0, None);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % conns.len();
        (conns.len(), Some(conns[i].clone()))
    }
}

/// A request ready to go: its head (rebuilt for a resend, as h2 consumes it) and its body.
struct Outgoing {
    path: PathAndQuery,
    headers: HeaderMap,
    body: Encoded,
}

impl Outgoing {
    fn new(
        path: &str,
        content_type: &'static str,
        body: Encoded,
    ) -> Result<Outgoing, PulsingError> {
        let path = PathAndQuery::try_from(path)
            .map_err(|e| PulsingError::BadMessage(format!("request path {path:?}: {e}")))?;
        let mut headers = HeaderMap::with_capacity(6);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        // As hyper's client does: lets the server refuse an oversized body before reading it.
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len() as u64));
        Ok(Outgoing {
            path,
            headers,
            body,
        })
    }

    fn head(&self, authority: &Authority) -> Request<()> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = Some(authority.clone());
        parts.path_and_query = Some(self.path.clone());
        let mut req = Request::new(());
        *req.method_mut() = Method::POST;
        *req.uri_mut() = Uri::from_parts(parts).expect("scheme, authority and path make a URI");
        *req.headers_mut() = self.headers.clone();
        req
    }

    /// Queues HEADERS and every DATA frame on `conn` without waiting: h2 buffers what the flow-control
    /// window does not yet allow, and the connection task writes HEADERS and DATA in one go.
    ///
    /// An `Err` means the request was not queued (the connection was found closed): nothing left.
    fn start(&self, conn: &Conn, authority: &Authority) -> Result<Started, h2::Error> {
        let mut send = conn.send.clone();
        let mut left = self.body.len();
        let (response, mut stream) = send.send_request(self.head(authority), left == 0)?;
        for chunk in [&self.body.head, &self.body.payload] {
            let mut rest = chunk.clone();
            while !rest.is_empty() {
                let piece = rest.split_to(rest.len().min(MAX_CHUNK));
                left -= piece.len();
                if let Err(e) = stream.send_data(piece, left == 0) {
                    return Ok(Started::Broken(e));
                }
            }
        }
        Ok(Started::Queued(response))
    }
}

/// A request handed to a connection.
enum Started {
    /// Queued whole; the response is awaited here.
    Queued(h2::client::ResponseFuture),
    /// The headers were queued but the body could not be: the stream or connection broke meanwhile.
    Broken(h2::Error),
}

/// A call's time: when it must end, and the timeout it was given (for the error).
#[derive(Debug, Clone, Copy)]
struct Budget {
    deadline: Instant,
    timeout: Duration,
}

impl Budget {
    fn new(timeout: Duration) -> Budget {
        Budget {
            deadline: Instant::now() + timeout,
            timeout,
        }
    }

    fn expired(self) -> PulsingError {
        PulsingError::Timeout(self.timeout)
    }
}

fn unreachable(addr: SocketAddr, reason: impl Into<String>) -> PulsingError {
    PulsingError::NodeUnreachable {
        addr: addr.to_string(),
        reason: reason.into(),
    }
}

impl Client {
    pub(crate) fn new(config: HttpConfig, shutdown: CancellationToken) -> Client {
        Client {
            config,
            peers: Mutex::default(),
            shutdown,
        }
    }

    /// Drops every pooled connection (their tasks end with the shutdown token).
    pub(crate) fn clear(&self) {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn peer(&self, addr: SocketAddr) -> Arc<Peer> {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers
            .entry(addr)
            .or_insert_with(|| Arc::new(Peer::new(addr)))
            .clone()
    }

    /// A connection to `addr`: a pooled one, or a new one while the pool is below its size.
    async fn conn(
        &self,
        peer: &Peer,
        addr: SocketAddr,
        budget: Budget,
    ) -> Result<Conn, PulsingError> {
        if self.shutdown.is_cancelled() {
            return Err(PulsingError::SystemShutdown);
        }
        let (live, pick) = peer.pick();
        if live >= self.config.connections_per_peer {
            if let Some(c) = pick {
                return Ok(c);
            }
        }
        let _guard = match peer.connecting.try_lock() {
            Ok(g) => g,
            Err(_) => match pick {
                // Someone is opening another connection; use a live one meanwhile.
                Some(c) => return Ok(c),
                None => tokio::time::timeout_at(budget.deadline, peer.connecting.lock())
                    .await
                    .map_err(|_| budget.expired())?,
            },
        };
        let (live, pick) = peer.pick();
        if live >= self.config.connections_per_peer {
            if let Some(c) = pick {
                return Ok(c);
            }
        }
        match self.connect(addr, budget).await {
            Ok(c) => {
                peer.conns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(c.clone());
                Ok(c)
            }
            // An extra connection failed but one still works: use it.
            Err(e) => pick.ok_or(e),
        }
    }

    async fn connect(&self, addr: SocketAddr, budget: Budget) -> Result<Conn, PulsingError> {
        let now = Instant::now();
        let by_connect = now + self.config.connect_timeout;
        let stream = match tokio::time::timeout_at(
            by_connect.min(budget.deadline),
            TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                return Err(unreachable(
                    addr,
                    format!("connect failed: {e}; the message was not sent"),
                ))
            }
            Err(_) if by_connect <= budget.deadline => {
                return Err(unreachable(
                    addr,
                    format!(
                        "connect timed out after {:?}; the message was not sent",
                        self.config.connect_timeout
                    ),
                ))
            }
            Err(_) => return Err(budget.expired()),
        };
        let _ = stream.set_nodelay(true);
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buffer_size(1024 * 1024)
            .max_header_list_size(64 * 1024)
            .enable_push(false);
        let (send, conn) =
            match tokio::time::timeout_at(budget.deadline, builder.handshake(stream)).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => {
                    return Err(unreachable(
                        addr,
                        format!("HTTP/2 handshake failed: {e}; the message was not sent"),
                    ))
                }
                Err(_) => return Err(budget.expired()),
            };
        let closed = Arc::new(AtomicBool::new(false));
        let (shutdown, ended) = (self.shutdown.clone(), closed.clone());
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%addr, error = %e, "HTTP/2 connection ended with an error");
                },
                _ = shutdown.cancelled() => {}
            }
            ended.store(true, Ordering::Relaxed);
        });
        Ok(Conn { send, closed })
    }

    /// Sends `req` (resending once only if the connection refused it unsent) and waits for the
    /// response head.
    async fn send(
        &self,
        addr: SocketAddr,
        req: &Outgoing,
        budget: Budget,
    ) -> Result<Response<RecvStream>, PulsingError> {
        let peer = self.peer(addr);
        let conn = self.conn(&peer, addr, budget).await?;
        let started = match req.start(&conn, &peer.authority) {
            Ok(s) => s,
            Err(_) => {
                // Found closed before the request was queued: one more try on a fresh connection.
                conn.closed.store(true, Ordering::Relaxed);
                let conn = self.conn(&peer, addr, budget).await?;
                req.start(&conn, &peer.authority).map_err(|e| {
                    conn.closed.store(true, Ordering::Relaxed);
                    unreachable(addr, format!("{e}; the message was not sent"))
                })?
            }
        };
        match started {
            Started::Queued(response) => response.await.map_err(|e| lost(addr, &e)),
            Started::Broken(e) => Err(lost(addr, &e)),
        }
    }

    fn actor_request(
        &self,
        target: &RemoteTarget,
        msg: Message,
        mode: Mode,
        budget: Budget,
    ) -> Result<Outgoing, PulsingError> {
        let (msg_type, payload) = msg.into_single().map_err(|_| {
            PulsingError::BadMessage(
                "a streamed request cannot be sent over HTTP; send single messages".into(),
            )
        })?;
        let path = format!("{}{}", protocol::ACTOR_PREFIX, target.name);
        let body = codec::encode_envelope(&msg_type, &payload);
        let mut req = Outgoing::new(&path, protocol::MSGPACK, body)?;
        let headers = &mut req.headers;
        let remaining = budget.deadline.saturating_duration_since(Instant::now());
        if let Ok(v) = HeaderValue::from_str(&protocol::timeout_header(remaining)) {
            headers.insert(protocol::HEADER_TIMEOUT_MS, v);
        }
        if mode == Mode::Tell {
            headers.insert(protocol::HEADER_MODE, HeaderValue::from_static("tell"));
        }
        if let Some(node) = target.node {
            if let Ok(v) = HeaderValue::from_str(&node.to_string()) {
                headers.insert(protocol::HEADER_NODE, v);
            }
        }
        Ok(req)
    }

    /// `POST /actor/{name}` and the reply.
    pub(crate) async fn ask(
        &self,
        target: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<Message, PulsingError> {
        let budget = Budget::new(timeout);
        let call = async {
            let req = self.actor_request(target, msg, Mode::Ask, budget)?;
            let resp = self.send(target.addr, &req, budget).await?;
            let is_stream = resp
                .headers()
                .get(CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes() == protocol::STREAM.as_bytes());
            if resp.status() == StatusCode::OK && is_stream {
                return Ok(Message::stream(self.read_stream(resp, target.addr)));
            }
            let status = resp.status();
            let body = self.read_body(resp, target.addr).await?;
            match codec::decode_reply(&body) {
                Ok(Reply::Result(env)) if status == StatusCode::OK => {
                    Ok(Message::single(env.msg_type, env.payload))
                }
                Ok(Reply::Error(e)) => Err(e.into_error()),
                Ok(Reply::Result(_)) => Err(protocol::error_from_status(status, "")),
                Err(e) if status == StatusCode::OK => Err(PulsingError::BadMessage(format!(
                    "undecodable reply from {}: {e}",
                    target.addr
                ))),
                Err(_) => Err(protocol::error_from_status(status, "")),
            }
        };
        tokio::time::timeout_at(budget.deadline, call)
            .await
            .unwrap_or_else(|_| Err(budget.expired()))
    }

    /// `POST /actor/{name}` with `x-pulsing-mode: tell`.
    pub(crate) async fn tell(
        &self,
        target: &RemoteTarget,
        msg: Message,
        timeout: Duration,
    ) -> Result<(), PulsingError> {
        let budget = Budget::new(timeout);
        let call = async {
            let req = self.actor_request(target, msg, Mode::Tell, budget)?;
            let resp = self.send(target.addr, &req, budget).await?;
            let status = resp.status();
            if status == StatusCode::ACCEPTED {
                return Ok(());
            }
            let body = self.read_body(resp, target.addr).await?;
            Err(error_body(status, &body))
        };
        tokio::time::timeout_at(budget.deadline, call)
            .await
            .unwrap_or_else(|_| Err(budget.expired()))
    }

    /// `POST /cluster/gossip`.
    pub(crate) async fn gossip(
        &self,
        to: SocketAddr,
        packet: Bytes,
        from: Option<SocketAddr>,
        timeout: Duration,
    ) -> Result<Bytes, PulsingError> {
        let budget = Budget::new(timeout);
        let call = async {
            let body = Encoded {
                head: packet,
                payload: Bytes::new(),
            };
            let mut req = Outgoing::new(protocol::GOSSIP_PATH, protocol::OCTET_STREAM, body)?;
            if let Some(from) = from {
                if let Ok(v) = HeaderValue::from_str(&from.to_string()) {
                    req.headers.insert(protocol::HEADER_FROM, v);
                }
            }
            let resp = self.send(to, &req, budget).await?;
            let status = resp.status();
            let body = self.read_body(resp, to).await?;
            if status == StatusCode::OK {
                Ok(body)
            } else {
                Err(error_body(status, &body))
            }
        };
        tokio::time::timeout_at(budget.deadline, call)
            .await
            .unwrap_or_else(|_| Err(budget.expired()))
    }

    /// Reads a reply body whole, at most `max_message_size` bytes (refused from `content-length`
    /// before reading when it announces more).
    async fn read_body(
        &self,
        resp: Response<RecvStream>,
        addr: SocketAddr,
    ) -> Result<Bytes, PulsingError> {
        let max = self.config.max_message_size;
        let too_large = || {
            PulsingError::TooLarge(format!(
                "reply from {addr} exceeds the limit of {max} bytes"
            ))
        };
        let announced = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok());
        if announced.is_some_and(|len| len > max as u64) {
            return Err(too_large());
        }
        let mut body = resp.into_body();
        let mut collected = Collected::default();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(|e| {
                unreachable(
                    addr,
                    format!("connection lost while reading the reply: {e}; the message may have been delivered"),
                )
            })?;
            let _ = body.flow_control().release_capacity(chunk.len());
            collected.push(chunk, max).map_err(|_| too_large())?;
        }
        Ok(collected.finish())
    }

    /// A stream fed by a task that reads the reply's frames.
    fn read_stream(&self, resp: Response<RecvStream>, addr: SocketAddr) -> MessageStream {
        let (tx, stream) = MessageStream::channel(STREAM_BUFFER);
        let max = self.config.max_message_size;
        tokio::spawn(pump_frames(resp.into_body(), tx, max, addr));
        stream
    }
}

/// Reads frames from `body` into `tx` until the end marker, an error frame, or a broken body. Dropping
/// `tx` without `end()` makes the consumer see [`PulsingError::StreamTruncated`]; a consumer that went
/// away stops the task, which drops (and so resets) the HTTP/2 stream.
async fn pump_frames(mut body: RecvStream, tx: StreamSender, max: usize, addr: SocketAddr) {
    let mut decoder = FrameDecoder::new(max);
    loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(StreamFrame::Item(e))) => {
                    if tx
                        .send(Message::single(e.msg_type, e.payload))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(Some(StreamFrame::Error(e))) => {
                    tx.fail(e.into_error()).await;
                    return;
                }
                Ok(Some(StreamFrame::End)) => {
                    tx.end().await;
                    return;
                }
                Ok(None) => break,
                Err(e) => {
                    tx.fail(PulsingError::StreamTruncated(format!(
                        "bad stream frame from {addr}: {e}"
                    )))
                    .await;
                    return;
                }
            }
        }
        match body.data().await {
            Some(Ok(data)) => {
                decoder.push(&data);
                let _ = body.flow_control().release_capacity(data.len());
            }
            Some(Err(e)) => {
                tx.fail(PulsingError::StreamTruncated(format!(
                    "connection to {addr} lost mid-stream: {e}"
                )))
                .await;
                return;
            }
            None => {
                tx.fail(PulsingError::StreamTruncated(format!(
                    "the stream from {addr} ended without its end marker"
                )))
                .await;
                return;
            }
        }
    }
}

fn lost(addr: SocketAddr, e: &h2::Error) -> PulsingError {
    unreachable(
        addr,
        format!("connection lost: {e}; the message may have been delivered"),
    )
}

fn error_body(status: StatusCode, body: &Bytes) -> PulsingError {
    match codec::decode_reply(body) {
        Ok(Reply::Error(e)) => e.into_error(),
        _ => protocol::error_from_status(status, ""),
    }
}
