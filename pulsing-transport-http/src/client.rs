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
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use pulsing_core::{Message, MessageStream, PulsingError, RemoteTarget, StreamSender};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::body::WireBody;
use crate::codec::{self, FrameDecoder, Reply, StreamFrame};
use crate::config::HttpConfig;
use crate::protocol::{self, Mode};
use crate::server::{CONNECTION_WINDOW, STREAM_WINDOW};

type Sender = http2::SendRequest<WireBody>;

/// Items buffered between the task reading a streamed reply and its consumer.
const STREAM_BUFFER: usize = 32;

/// The pooled HTTP/2 client of one transport.
pub(crate) struct Client {
    config: HttpConfig,
    peers: Mutex<HashMap<SocketAddr, Arc<Peer>>>,
    shutdown: CancellationToken,
}

/// The connections to one peer address.
#[derive(Default)]
struct Peer {
    conns: Mutex<Vec<Sender>>,
    next: AtomicUsize,
    /// Held while a connection is being opened, so concurrent callers open one, not many.
    connecting: tokio::sync::Mutex<()>,
}

impl Peer {
    /// Drops closed connections; returns how many are live and one of them, round-robin.
    fn pick(&self) -> (usize, Option<Sender>) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|c| !c.is_closed());
        if conns.is_empty() {
            return (0, None);
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % conns.len();
        (conns.len(), Some(conns[i].clone()))
    }
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
        peers.entry(addr).or_default().clone()
    }

    /// A connection to `addr`: a pooled one, or a new one while the pool is below its size.
    async fn sender(&self, addr: SocketAddr, budget: Budget) -> Result<Sender, PulsingError> {
        if self.shutdown.is_cancelled() {
            return Err(PulsingError::SystemShutdown);
        }
        let peer = self.peer(addr);
        let (live, pick) = peer.pick();
        if live >= self.config.connections_per_peer {
            if let Some(s) = pick {
                return Ok(s);
            }
        }
        let _guard = match peer.connecting.try_lock() {
            Ok(g) => g,
            Err(_) => match pick {
                // Someone is opening another connection; use a live one meanwhile.
                Some(s) => return Ok(s),
                None => tokio::time::timeout_at(budget.deadline, peer.connecting.lock())
                    .await
                    .map_err(|_| budget.expired())?,
            },
        };
        let (live, pick) = peer.pick();
        if live >= self.config.connections_per_peer {
            if let Some(s) = pick {
                return Ok(s);
            }
        }
        match self.connect(addr, budget).await {
            Ok(s) => {
                peer.conns
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(s.clone());
                Ok(s)
            }
            // An extra connection failed but one still works: use it.
            Err(e) => pick.ok_or(e),
        }
    }

    async fn connect(&self, addr: SocketAddr, budget: Budget) -> Result<Sender, PulsingError> {
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
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buf_size(1024 * 1024);
        let (sender, conn) =
            match tokio::time::timeout_at(budget.deadline, builder.handshake(TokioIo::new(stream)))
                .await
            {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => {
                    return Err(unreachable(
                        addr,
                        format!("HTTP/2 handshake failed: {e}; the message was not sent"),
                    ))
                }
                Err(_) => return Err(budget.expired()),
            };
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = conn => if let Err(e) = r {
                    tracing::debug!(%addr, error = %e, "HTTP/2 connection ended with an error");
                },
                _ = shutdown.cancelled() => {}
            }
        });
        Ok(sender)
    }

    /// Sends `req` (resending once only if it came back unsent) and waits for the response head.
    async fn send(
        &self,
        addr: SocketAddr,
        req: Request<WireBody>,
        budget: Budget,
    ) -> Result<Response<Incoming>, PulsingError> {
        let mut sender = self.sender(addr, budget).await?;
        let err = match sender.try_send_request(req).await {
            Ok(resp) => return Ok(resp),
            Err(mut e) => match e.take_message() {
                Some(req) => req,
                None => return Err(lost(addr, e.error())),
            },
        };
        // Handed back unsent: the connection closed under us. One more try on a fresh connection.
        let mut sender = self.sender(addr, budget).await?;
        sender.try_send_request(err).await.map_err(|e| {
            if e.message().is_some() {
                unreachable(addr, format!("{}; the message was not sent", e.error()))
            } else {
                lost(addr, e.error())
            }
        })
    }

    fn request(
        &self,
        uri_path: &str,
        target_addr: SocketAddr,
        body: WireBody,
        content_type: &'static str,
    ) -> Result<Request<WireBody>, PulsingError> {
        let uri = Uri::builder()
            .scheme("http")
            .authority(target_addr.to_string())
            .path_and_query(uri_path)
            .build()
            .map_err(|e| PulsingError::BadMessage(format!("request URI: {e}")))?;
        let mut req = Request::new(body);
        *req.method_mut() = Method::POST;
        *req.uri_mut() = uri;
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Ok(req)
    }

    fn actor_request(
        &self,
        target: &RemoteTarget,
        msg: Message,
        mode: Mode,
        budget: Budget,
    ) -> Result<Request<WireBody>, PulsingError> {
        let (msg_type, payload) = msg.into_single().map_err(|_| {
            PulsingError::BadMessage(
                "a streamed request cannot be sent over HTTP; send single messages".into(),
            )
        })?;
        let path = format!("{}{}", protocol::ACTOR_PREFIX, target.name);
        let body = WireBody::encoded(codec::encode_envelope(&msg_type, &payload));
        let mut req = self.request(&path, target.addr, body, protocol::MSGPACK)?;
        let headers = req.headers_mut();
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
            let resp = self.send(target.addr, req, budget).await?;
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
                Ok(Reply::Error(e)) => Err(PulsingError::from_wire(&e.kind, e.message)),
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
            let resp = self.send(target.addr, req, budget).await?;
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
            let mut req = self.request(
                protocol::GOSSIP_PATH,
                to,
                WireBody::bytes(packet),
                protocol::OCTET_STREAM,
            )?;
            if let Some(from) = from {
                if let Ok(v) = HeaderValue::from_str(&from.to_string()) {
                    req.headers_mut().insert(protocol::HEADER_FROM, v);
                }
            }
            let resp = self.send(to, req, budget).await?;
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

    async fn read_body(
        &self,
        resp: Response<Incoming>,
        addr: SocketAddr,
    ) -> Result<Bytes, PulsingError> {
        let max = self.config.max_message_size;
        match Limited::new(resp.into_body(), max).collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(PulsingError::TooLarge(
                format!("reply from {addr} exceeds the limit of {max} bytes"),
            )),
            Err(e) => Err(unreachable(
                addr,
                format!("connection lost while reading the reply: {e}; the message may have been delivered"),
            )),
        }
    }

    /// A stream fed by a task that reads the reply's frames.
    fn read_stream(&self, resp: Response<Incoming>, addr: SocketAddr) -> MessageStream {
        let (tx, stream) = MessageStream::channel(STREAM_BUFFER);
        let max = self.config.max_message_size;
        tokio::spawn(pump_frames(resp.into_body(), tx, max, addr));
        stream
    }
}

/// Reads frames from `body` into `tx` until the end marker, an error frame, or a broken body. Dropping
/// `tx` without `end()` makes the consumer see [`PulsingError::StreamTruncated`]; a consumer that went
/// away stops the task, which drops (and so resets) the HTTP/2 stream.
async fn pump_frames(mut body: Incoming, tx: StreamSender, max: usize, addr: SocketAddr) {
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
                    tx.fail(PulsingError::from_wire(&e.kind, e.message)).await;
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
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    decoder.push(&data);
                }
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

fn lost(addr: SocketAddr, e: &hyper::Error) -> PulsingError {
    unreachable(
        addr,
        format!("connection lost: {e}; the message may have been delivered"),
    )
}

fn error_body(status: StatusCode, body: &Bytes) -> PulsingError {
    match codec::decode_reply(body) {
        Ok(Reply::Error(e)) => PulsingError::from_wire(&e.kind, e.message),
        _ => protocol::error_from_status(status, ""),
    }
}
