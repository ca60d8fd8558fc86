//! The calling side: HTTP/2 with prior knowledge over a small pool of connections per peer.
//!
//! Each peer address gets up to `connections_per_peer` HTTP/2 connections (opened lazily, one at a
//! time), and requests are spread over them round-robin; each connection multiplexes any number of
//! requests. A connection found closed is dropped from the pool and replaced on the next call.
//!
//! # Keep-alives
//!
//! Every connection sends an HTTP/2 PING when it opens and then [`HttpConfig::keepalive_interval`]
//! after each answer; a PING unanswered for [`HttpConfig::keepalive_timeout`] ends the connection, so a
//! peer that stops answering without closing its sockets (a stopped process, a hung host) fails the
//! calls in flight to it within interval + timeout, not by their own timeout.
//! [`Client::peer_gone`] (the membership declared the peer down, or it left) sends a PING on each
//! connection to it at once and ends those unanswered within 1 s: a dead or hung peer's calls fail
//! then, while a leaving node that still runs keeps its connections and answers what it drains.
//! Either way the calls on it fail with [`PulsingError::NodeUnreachable`] giving that reason, and the
//! next call opens a fresh connection.
//!
//! # Retries
//!
//! None once bytes may have left. The only resend is of a request that the HTTP/2 connection handed
//! back unsent (it was found closed before the request was queued on it), which goes once on a fresh
//! connection. Everything else fails: a refused connect as [`PulsingError::NodeUnreachable`] with
//! [`Delivery::NotDelivered`], a connection lost after the request was handed over (or ended by a
//! keep-alive timeout or [`Client::peer_gone`]) as `NodeUnreachable` with [`Delivery::MaybeDelivered`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Ping, PingPong, RecvStream};
use http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri};
use pulsing_core::{Delivery, PulsingError};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::body::Collected;
use crate::codec::{self, Encoded, Reply};
use crate::config::HttpConfig;
use crate::protocol;
use crate::security::{refused_in, Io, NodeTls, TlsSlot};
use crate::server::{CONNECTION_WINDOW, STREAM_WINDOW};

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
    peers: Arc<Mutex<HashMap<SocketAddr, Arc<Peer>>>>,
    shutdown: CancellationToken,
    /// TLS (ALPN `h2`, mutual) once the transport serves with a cluster secret.
    tls: TlsSlot,
}

/// One pooled HTTP/2 connection.
#[derive(Clone)]
struct Conn {
    send: SendRequest<Bytes>,
    state: Arc<ConnState>,
}

impl Conn {
    fn is_closed(&self) -> bool {
        self.state.closed.load(Ordering::Relaxed)
    }
}

/// What a connection's task and its callers share.
struct ConnState {
    /// Set when the connection's task ended or a request found the connection closed.
    closed: AtomicBool,
    /// Why this side ended the connection (a keep-alive timeout, the peer declared gone); set
    /// before the connection is dropped, so a call failing because of the drop finds it.
    reason: OnceLock<String>,
    /// Notified to send a PING now (the membership declared the peer down); `gone` is the reason
    /// to give if that PING goes unanswered.
    check: tokio::sync::Notify,
    gone: Mutex<Option<String>>,
}

impl ConnState {
    fn new() -> ConnState {
        ConnState {
            closed: AtomicBool::new(false),
            reason: OnceLock::new(),
            check: tokio::sync::Notify::new(),
            gone: Mutex::new(None),
        }
    }

    /// Checks the connection with a PING now; if it goes unanswered, calls on it fail with `reason`.
    fn check(&self, reason: String) {
        *self.gone.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.check.notify_one();
    }

    /// The error of a call whose request was handed over and whose stream then broke with `e`.
    fn lost(&self, addr: SocketAddr, what: &str, e: &h2::Error) -> PulsingError {
        let text = e.to_string();
        if refused_in(&text) {
            return PulsingError::Unauthorized(format!(
                "the node at {addr} refused this node's identity ({text}): its cluster secret \
                 differs from this node's"
            ));
        }
        match self.reason.get() {
            Some(reason) => maybe_delivered(addr, reason.clone()),
            None => maybe_delivered(addr, format!("{what}: {e}")),
        }
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

    /// Checks every pooled connection with a PING; those that do not answer end with `reason`.
    fn check_all(&self, reason: &str) {
        for c in self.conns.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            c.state.check(reason.to_owned());
        }
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
    fn start(
        &self,
        mut send: SendRequest<Bytes>,
        authority: &Authority,
    ) -> Result<Started, h2::Error> {
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

/// Opens a TCP connection to `addr` with `TCP_NODELAY`, bounded by `connect_timeout` and by
/// `deadline`. A refused connect, or one past `connect_timeout`, fails as not sent; `Ok(None)` when
/// `deadline` came first (the caller's own time ran out: its error to give).
pub(crate) async fn connect_tcp(
    addr: SocketAddr,
    connect_timeout: Duration,
    deadline: Instant,
) -> Result<Option<TcpStream>, PulsingError> {
    let by_connect = Instant::now() + connect_timeout;
    match tokio::time::timeout_at(by_connect.min(deadline), TcpStream::connect(addr)).await {
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(Some(s))
        }
        Ok(Err(e)) => Err(not_sent(addr, format!("connect failed: {e}"))),
        Err(_) if by_connect <= deadline => Err(not_sent(
            addr,
            format!("connect timed out after {connect_timeout:?}"),
        )),
        Err(_) => Ok(None),
    }
}

/// `addr` unreachable before the request was handed to a connection: nothing was sent.
pub(crate) fn not_sent(addr: SocketAddr, reason: impl Into<String>) -> PulsingError {
    PulsingError::NodeUnreachable {
        addr: addr.to_string(),
        reason: reason.into(),
        delivery: Delivery::NotDelivered,
    }
}

/// `addr` unreachable after the request was handed to a connection: it may have been delivered.
pub(crate) fn maybe_delivered(addr: SocketAddr, reason: impl Into<String>) -> PulsingError {
    PulsingError::NodeUnreachable {
        addr: addr.to_string(),
        reason: reason.into(),
        delivery: Delivery::MaybeDelivered,
    }
}

impl Client {
    pub(crate) fn new(config: HttpConfig, shutdown: CancellationToken, tls: TlsSlot) -> Client {
        Client {
            config,
            peers: Arc::default(),
            shutdown,
            tls,
        }
    }

    /// Peer addresses with pooled connections.
    pub(crate) fn pooled(&self) -> usize {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Drops every pooled connection (their tasks end with the shutdown token).
    pub(crate) fn clear(&self) {
        self.peers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Checks the connections to `addr` with a PING each: those not answering within
    /// [`GONE_CHECK_TIMEOUT`] end (their calls in flight fail with `NodeUnreachable` giving
    /// `reason`; the next call connects afresh). A peer that still answers keeps its connections,
    /// so a node leaving gracefully still answers the calls it drains. Does not block.
    pub(crate) fn peer_gone(&self, addr: SocketAddr, reason: &str) {
        let peer = self
            .peers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&addr)
            .cloned();
        if let Some(peer) = peer {
            tracing::debug!(%addr, reason, "ending the connections to a peer gone");
            peer.check_all(reason);
        }
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
            // An extra connection failed but one still works: use it (not one that closed
            // meanwhile: that would cost the call a second connect).
            Err(e) => match pick.filter(|c| !c.is_closed()) {
                Some(c) => Ok(c),
                None => {
                    // No connection to it: the peer leaves the pool (the next call makes a new
                    // entry), so addresses that never answered leave nothing behind.
                    let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
                    if peers.get(&addr).is_some_and(|p| p.pick().0 == 0) {
                        peers.remove(&addr);
                    }
                    Err(e)
                }
            },
        }
    }

    async fn connect(&self, addr: SocketAddr, budget: Budget) -> Result<Conn, PulsingError> {
        let stream = connect_tcp(addr, self.config.connect_timeout, budget.deadline)
            .await?
            .ok_or_else(|| budget.expired())?;
        let stream: Box<dyn Io> = match self.tls.for_dial()? {
            Some(tls) => {
                let bound = self.config.client_handshake_bound();
                let io = NodeTls::connect(&tls.h2, addr, stream, bound, budget.deadline)
                    .await?
                    .ok_or_else(|| budget.expired())?;
                Box::new(io)
            }
            None => Box::new(stream),
        };
        let mut builder = h2::client::Builder::new();
        builder
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_send_buffer_size(1024 * 1024)
            .max_header_list_size(64 * 1024)
            .enable_push(false);
        let (send, mut conn) =
            match tokio::time::timeout_at(budget.deadline, builder.handshake(stream)).await {
                Ok(Ok(pair)) => pair,
                Ok(Err(e)) => return Err(not_sent(addr, format!("HTTP/2 handshake failed: {e}"))),
                Err(_) => return Err(budget.expired()),
            };
        let state = Arc::new(ConnState::new());
        let shutdown = self.shutdown.clone();
        let pings = conn.ping_pong();
        let (interval, timeout) = (
            self.config.keepalive_interval,
            self.config.keepalive_timeout,
        );
        let task_state = state.clone();
        let peers = Arc::downgrade(&self.peers);
        tokio::spawn(async move {
            let state = task_state;
            tokio::select! {
                r = &mut conn => if let Err(e) = r {
                    tracing::debug!(%addr, error = %e, "HTTP/2 connection ended with an error");
                },
                reason = keep_alive(pings, interval, timeout, &state) => {
                    tracing::debug!(%addr, %reason, "HTTP/2 connection dropped");
                    let _ = state.reason.set(reason);
                },
                _ = shutdown.cancelled() => {}
            }
            state.closed.store(true, Ordering::Relaxed);
            // Dropping the connection fails every stream on it (after `reason` was set).
            drop(conn);
            // A peer with no live connection leaves the pool (the next call makes a new entry).
            if let Some(peers) = peers.upgrade() {
                let mut peers = peers.lock().unwrap_or_else(|p| p.into_inner());
                if peers.get(&addr).is_some_and(|p| p.pick().0 == 0) {
                    peers.remove(&addr);
                }
            }
        });
        Ok(Conn { send, state })
    }

    /// Waits (by the call's deadline) until the connection can take one more stream within the
    /// peer's concurrency limit, so no request queues unbounded inside h2.
    async fn ready(
        &self,
        conn: &Conn,
        addr: SocketAddr,
        budget: Budget,
    ) -> Result<SendRequest<Bytes>, PulsingError> {
        match tokio::time::timeout_at(budget.deadline, conn.send.clone().ready()).await {
            Ok(Ok(send)) => Ok(send),
            Ok(Err(e)) => Err(not_sent(addr, e.to_string())),
            Err(_) => Err(budget.expired()),
        }
    }

    /// Sends `req` (resending once only if the connection refused it unsent) and waits for the
    /// response head; also returns the connection's state, for errors while reading the body.
    async fn send(
        &self,
        addr: SocketAddr,
        req: &Outgoing,
        budget: Budget,
    ) -> Result<(Response<RecvStream>, Arc<ConnState>), PulsingError> {
        let peer = self.peer(addr);
        let mut conn = self.conn(&peer, addr, budget).await?;
        let started = match self
            .ready(&conn, addr, budget)
            .await
            .map(|send| req.start(send, &peer.authority))
        {
            Ok(Ok(s)) => s,
            Err(e @ PulsingError::Timeout(_)) => return Err(e),
            Ok(Err(_)) | Err(_) => {
                // Found closed before the request was queued: one more try on a fresh connection.
                conn.state.closed.store(true, Ordering::Relaxed);
                conn = self.conn(&peer, addr, budget).await?;
                let send = self.ready(&conn, addr, budget).await?;
                req.start(send, &peer.authority).map_err(|e| {
                    conn.state.closed.store(true, Ordering::Relaxed);
                    not_sent(addr, e.to_string())
                })?
            }
        };
        let state = conn.state;
        match started {
            Started::Queued(response) => match response.await {
                Ok(resp) => Ok((resp, state)),
                Err(e) => Err(state.lost(addr, "connection lost", &e)),
            },
            Started::Broken(e) => Err(state.lost(addr, "connection lost", &e)),
        }
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
            let (resp, conn) = self.send(to, &req, budget).await?;
            let status = resp.status();
            let body = self.read_body(resp, to, &conn).await?;
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
        conn: &ConnState,
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
            let chunk = chunk
                .map_err(|e| conn.lost(addr, "connection lost while reading the reply", &e))?;
            let _ = body.flow_control().release_capacity(chunk.len());
            collected.push(chunk, max).map_err(|_| too_large())?;
        }
        Ok(collected.finish())
    }
}

/// How long a connection to a member declared down may take to answer the PING that checks it.
const GONE_CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends a PING at once, then `interval` after each answer (never again when `interval` is zero),
/// and one more whenever [`ConnState::check`] is notified; returns why the connection should be
/// dropped once one goes unanswered for `timeout` (a checked one: for at most
/// [`GONE_CHECK_TIMEOUT`]). Never returns while the peer answers, or once the connection is closing
/// (its own future reports that).
///
/// The first PING goes with the handshake, so a call on a fresh connection to a peer whose kernel
/// accepts but whose process is silent fails within `timeout`.
async fn keep_alive(
    pings: Option<PingPong>,
    interval: Duration,
    timeout: Duration,
    state: &ConnState,
) -> String {
    let Some(mut pings) = pings else {
        return std::future::pending().await;
    };
    let mut next = if interval.is_zero() {
        None
    } else {
        Some(Duration::ZERO)
    };
    loop {
        let checked = tokio::select! {
            _ = async {
                match next {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => false,
            _ = state.check.notified() => true,
        };
        next = (!interval.is_zero()).then_some(interval);
        let bound = if checked {
            timeout.min(GONE_CHECK_TIMEOUT)
        } else {
            timeout
        };
        match tokio::time::timeout(bound, pings.ping(Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => {
                if let Some(reason) = state.gone.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    return reason;
                }
                return format!(
                    "the peer stopped answering HTTP/2 keep-alives (no PING answer within \
                     {bound:?})"
                );
            }
        }
    }
}

fn error_body(status: StatusCode, body: &Bytes) -> PulsingError {
    match codec::decode_reply(body) {
        Ok(Reply::Error(e)) => e.into_error(),
        _ => protocol::error_from_status(status, ""),
    }
}
