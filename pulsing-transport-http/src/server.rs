//! The serving side: one TCP listener, HTTP/1.1 and h2c on each connection (auto-detected), requests
//! routed to the [`InboundHandler`] as `docs/protocol.md` says.

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use pulsing_core::{ActorName, InboundHandler, Message, PulsingError};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::{Collected, WireBody};
use crate::codec;
use crate::codec::link::LINK_PREFACE;
use crate::config::HttpConfig;
use crate::link;
use crate::protocol::{self, Mode};
use crate::security::{buffered, NodeTls, TlsWriter, ALPN_LINK};

/// HTTP/2 flow-control windows: large enough that a 64 KiB reply or a burst of small ones never waits
/// for a window update on loopback or a LAN.
pub(crate) const STREAM_WINDOW: u32 = 1024 * 1024;
pub(crate) const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
mod handshakes;
use handshakes::Handshakes;

/// The first byte of a TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;
/// Concurrent HTTP/2 streams a client may open on one connection.
const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// What every connection of one server shares.
struct ServerState {
    handler: Arc<dyn InboundHandler>,
    config: HttpConfig,
    node_header: HeaderValue,
    /// With a cluster secret: TLS only, peers authenticated.
    tls: Option<Arc<NodeTls>>,
    /// Connections served now (bounded by `max_connections`).
    connections: Arc<Semaphore>,
    /// TLS handshakes in progress (bounded by `max_handshakes`).
    handshakes: Handshakes,
    /// Connections of callers without a node certificate (tokens, client certificates,
    /// plaintext `/health`): a quarter of `max_connections`, so they cannot crowd out members.
    strangers: Arc<Semaphore>,
    /// Bytes of refused requests' bodies being read (and dropped) at once, in bytes.
    refused_reads: Semaphore,
}

/// Who is on the other end of a connection, as far as calls are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// No cluster secret: anyone (as before).
    Open,
    /// TLS with a node certificate from the cluster CA: a member.
    Member,
    /// TLS with a client certificate from the cluster CA: calls, no gossip.
    Client,
    /// TLS without a client certificate: calls need an API token.
    External,
    /// Plaintext to a node with a secret: only `GET /health`.
    Plaintext,
}

/// One connection's context, shared by its requests.
struct ConnCtx {
    state: Arc<ServerState>,
    peer: SocketAddr,
    /// Set when the first request head has been read (ends the connection's header timer).
    started: AtomicBool,
    caller: Caller,
}

/// Binds `addr` and serves until `shutdown` is cancelled. Returns the bound address.
///
/// # Errors
///
/// [`PulsingError::Config`] if the address cannot be bound.
pub(crate) async fn serve(
    addr: SocketAddr,
    handler: Arc<dyn InboundHandler>,
    config: HttpConfig,
    shutdown: CancellationToken,
    connections: TaskTracker,
    tls: Option<Arc<NodeTls>>,
) -> Result<SocketAddr, PulsingError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| PulsingError::Config(format!("cannot bind {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| PulsingError::Config(format!("bound address of {addr}: {e}")))?;
    let node_header = HeaderValue::from_str(&handler.node_id().to_string())
        .map_err(|e| PulsingError::Config(format!("node id header: {e}")))?;
    let state = Arc::new(ServerState {
        handler,
        connections: Arc::new(Semaphore::new(config.max_connections)),
        handshakes: Handshakes::new(config.max_handshakes),
        strangers: Arc::new(Semaphore::new(config.max_connections.div_ceil(4))),
        refused_reads: Semaphore::new(REFUSED_READS),
        config,
        node_header,
        tls,
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.header_read_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .max_send_buf_size(1024 * 1024);
    let builder = Arc::new(builder);
    tokio::spawn(accept_loop(listener, state, builder, shutdown, connections));
    Ok(bound)
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<ServerState>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let Ok(permit) = state.connections.clone().try_acquire_owned() else {
                    // Over `max_connections`: closed at once (members keep their links).
                    tracing::debug!(%peer, "too many connections; closing a new one");
                    drop(stream);
                    continue;
                };
                let state = state.clone();
                let (builder, shutdown) = (builder.clone(), shutdown.clone());
                connections.spawn(async move {
                    serve_connection(stream, peer, state, builder, shutdown).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ServerState>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let header_timeout = state.config.header_read_timeout;
    let ctx = |caller| {
        Arc::new(ConnCtx {
            state: state.clone(),
            peer,
            started: AtomicBool::new(false),
            caller,
        })
    };
    if let Some(tls) = &state.tls {
        return match first_bytes(&stream, header_timeout).await {
            Opening::Tls => serve_tls(stream, peer, tls, &state, ctx, builder, shutdown).await,
            // Plaintext to a node with a secret: a link is closed, HTTP gets its refusal.
            Opening::Http => {
                let Ok(_stranger) = state.strangers.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "too many connections without a certificate; closing");
                    return;
                };
                serve_http(stream, ctx(Caller::Plaintext), builder, shutdown).await
            }
            Opening::Link => {
                tracing::debug!(%peer, "plaintext link to a node with a secret; closing")
            }
            Opening::Nothing => tracing::debug!(%peer, "nothing received in time; closing"),
        };
    }
    match first_bytes(&stream, header_timeout).await {
        Opening::Link => {
            link::serve_tcp_link(
                stream,
                peer,
                state.handler.clone(),
                state.config.clone(),
                shutdown,
            )
            .await
        }
        Opening::Http | Opening::Tls => {
            serve_http(stream, ctx(Caller::Open), builder, shutdown).await
        }
        Opening::Nothing => tracing::debug!(%peer, "nothing received in time; closing"),
    }
}

/// The TLS handshake (bounded in time and in number), then a link or HTTP by the ALPN chosen.
async fn serve_tls(
    stream: TcpStream,
    peer: SocketAddr,
    tls: &NodeTls,
    state: &ServerState,
    ctx: impl Fn(Caller) -> Arc<ConnCtx>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
) {
    let slot = state.handshakes.enter();
    let bound = state.config.tls_handshake_timeout;
    let accepted = tokio::select! {
        r = tokio::time::timeout(bound, tls.acceptor.accept(buffered(stream))) => r,
        () = slot.evicted() => {
            tracing::debug!(%peer, "closing an unfinished TLS handshake: newer connections need its place");
            return;
        }
    };
    let io = match accepted {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake not finished within {bound:?}; closing");
            return;
        }
    };
    drop(slot);
    let (_, session) = io.get_ref();
    // rustls verified any certificate presented against the cluster CAs; a node's is also for
    // server use (a client certificate is not).
    let certified = session.peer_certificates().filter(|c| !c.is_empty());
    let member = certified.is_some_and(|c| tls.identity.is_node(c));
    let caller = match (member, certified.is_some()) {
        (true, _) => Caller::Member,
        (false, true) => Caller::Client,
        (false, false) => Caller::External,
    };
    let _stranger = match caller {
        Caller::Member => None,
        _ => match state.strangers.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::debug!(%peer, "too many connections without a node certificate; closing");
                return;
            }
        },
    };
    let is_link = session.alpn_protocol() == Some(ALPN_LINK);
    let io = tokio_rustls::TlsStream::Server(io);
    if is_link {
        if !member {
            let why = "a link without a node certificate from the cluster CA";
            state.handler.bad_link(peer, why);
            return;
        }
        let (rd, wr) = TlsWriter::split(io);
        let (handler, config) = (state.handler.clone(), state.config.clone());
        return link::serve_link(rd, wr, peer, handler, config, shutdown).await;
    }
    serve_http(io, ctx(caller), builder, shutdown).await
}

/// Serves HTTP/1.1 or HTTP/2 on `io` until it closes or `shutdown`.
async fn serve_http<I>(
    io: I,
    ctx: Arc<ConnCtx>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let header_timeout = ctx.state.config.header_read_timeout;
    let svc_ctx = ctx.clone();
    let service = service_fn(move |req| handle(svc_ctx.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    // The auto builder waits for the first bytes to tell HTTP/1.1 from HTTP/2, with no bound of its
    // own: a connection that sends nothing (or half a preface) is closed once `header_timeout` passes
    // without a first request head.
    let first_request = tokio::time::sleep(header_timeout);
    tokio::pin!(first_request);
    let mut armed = true;
    loop {
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!(peer = %ctx.peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled() => return,
            _ = &mut first_request, if armed => {
                if !ctx.started.load(Ordering::Relaxed) {
                    tracing::debug!(peer = %ctx.peer, "no request head in time; closing");
                    return;
                }
                armed = false;
            }
        }
    }
}

/// How a connection starts.
enum Opening {
    /// With the link preface (`docs/protocol.md` §8).
    Link,
    /// With a TLS handshake record (`0x16`).
    Tls,
    /// With anything else: HTTP/1.1 or HTTP/2, for hyper to serve (or refuse).
    Http,
    /// With nothing within the header read timeout, or closed.
    Nothing,
}

/// Looks at a connection's first bytes without consuming them. A preface split over several
/// packets is waited for (in 1 ms steps; the bytes are already on their way), all within `bound`.
async fn first_bytes(stream: &TcpStream, bound: Duration) -> Opening {
    let deadline = tokio::time::Instant::now() + bound;
    let mut buf = [0u8; LINK_PREFACE.len()];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Opening::Nothing,
        };
        if buf[0] == TLS_HANDSHAKE {
            return Opening::Tls;
        }
        if buf[..n] != LINK_PREFACE[..n] {
            return Opening::Http;
        }
        if n == LINK_PREFACE.len() {
            return Opening::Link;
        }
        if tokio::time::Instant::now() >= deadline {
            return Opening::Nothing;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A refusal: the error to send, its status, and whether to close an HTTP/1.1 connection after it.
struct Refusal {
    status: StatusCode,
    err: PulsingError,
    close: bool,
    allow: Option<&'static str>,
}

impl From<PulsingError> for Refusal {
    fn from(err: PulsingError) -> Refusal {
        Refusal {
            status: protocol::status_of_error(&err),
            err,
            close: false,
            allow: None,
        }
    }
}

/// A request off the hot path, routed on a boxed future.
type Cold = Pin<Box<dyn Future<Output = Result<Response<WireBody>, Refusal>> + Send>>;

/// An actor call decided from the request head: what [`actor_call`] needs, without the head.
struct ActorCall {
    name: ActorName,
    mode: Mode,
    timeout: Option<Duration>,
    /// The `content-length` header, if any.
    announced: Option<u64>,
    body: Incoming,
}

/// The service. hyper moves the returned future into a task per HTTP/2 stream; so the hot path —
/// `POST /actor/{name}` with good headers — is decided here, synchronously, from the request head, and
/// its future keeps only the body and what the call needs (~500 bytes). A future holding the request
/// and every route's state was 2.5 KiB, and moving (or boxing) it was the largest single cost under
/// load. Every other request is routed on a boxed future.
fn handle(
    ctx: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Response<WireBody>, Infallible>> + Send + 'static {
    ctx.started.store(true, Ordering::Relaxed);
    let call: Result<ActorCall, Cold> = match protocol::actor_name(req.uri().path()) {
        _ if ctx.caller != Caller::Open && ctx.caller != Caller::Member => match denied(&ctx, &req)
        {
            Some(r) => {
                let ctx = ctx.clone();
                Err(Box::pin(
                    async move { Err(refuse_unread(&ctx, req, r).await) },
                ))
            }
            None => {
                let ctx = ctx.clone();
                Err(Box::pin(async move { route_or_call(&ctx, req).await }))
            }
        },
        Ok(Some(name)) if req.method() == Method::POST => {
            match check_headers(&ctx, req.headers()) {
                Ok((mode, timeout)) => Ok(ActorCall {
                    name,
                    mode,
                    timeout,
                    announced: content_length(req.headers()),
                    body: req.into_body(),
                }),
                Err(r) => {
                    let ctx = ctx.clone();
                    Err(Box::pin(async move { Err(drained(&ctx, req, r).await) }))
                }
            }
        }
        _ => {
            let ctx = ctx.clone();
            Err(Box::pin(async move { route(&ctx, req).await }))
        }
    };
    async move {
        let result = match call {
            Ok(call) => actor_call(&ctx, call).await,
            Err(cold) => cold.await,
        };
        let mut resp = result.unwrap_or_else(refuse);
        resp.headers_mut()
            .insert(protocol::HEADER_NODE, ctx.state.node_header.clone());
        Ok(resp)
    }
}

/// Why a request from a caller without a member's certificate is refused, if it is
/// (`docs/security.md`): `GET /health` is open; plaintext gets `400`; gossip needs a member's
/// certificate; the rest needs an API token.
fn denied(ctx: &ConnCtx, req: &Request<Incoming>) -> Option<Refusal> {
    if req.method() == Method::GET && req.uri().path() == protocol::HEALTH_PATH {
        return None;
    }
    let unauthorized = |status, text: &str| {
        Some(Refusal {
            status,
            err: PulsingError::Unauthorized(text.to_owned()),
            close: true,
            allow: None,
        })
    };
    match ctx.caller {
        Caller::Open | Caller::Member => None,
        Caller::Plaintext => unauthorized(
            StatusCode::BAD_REQUEST,
            "this node requires TLS (it has a cluster secret): call it with https:// and a client \
             certificate from the cluster CA or an API token (docs/security.md)",
        ),
        Caller::External | Caller::Client if req.uri().path() == protocol::GOSSIP_PATH => {
            unauthorized(
                StatusCode::UNAUTHORIZED,
                "gossip needs a node certificate from the cluster CA (a node with the same \
                 cluster secret)",
            )
        }
        Caller::Client => None,
        Caller::External => {
            let tls = ctx.state.tls.as_ref()?;
            let token = req.headers().get(http::header::AUTHORIZATION);
            if token.is_some_and(|t| tls.identity.token_ok(t.as_bytes())) {
                return None;
            }
            unauthorized(
                StatusCode::UNAUTHORIZED,
                "this node needs a client certificate from the cluster CA or an \
                 `Authorization: Bearer <token>` header with one of its API tokens \
                 (docs/security.md)",
            )
        }
    }
}

/// Largest body a refused caller's request is read for, so that its client gets the refusal
/// cleanly (an unread body resets an HTTP/2 stream, which some clients report instead of the
/// answer); a larger one is not read at all.
const REFUSED_BODY_READ: u64 = 64 * 1024;

/// Bytes of refused bodies read at once, over all connections: what callers without credentials
/// can make the node hold.
const REFUSED_READS: usize = 1024 * 1024;

/// Answers a refused caller: reads (and drops) a small announced body first, within
/// [`REFUSED_READS`] for all refused callers at once, else nothing.
async fn refuse_unread(ctx: &ConnCtx, req: Request<Incoming>, r: Refusal) -> Refusal {
    let announced = match content_length(req.headers()) {
        Some(n) if n <= REFUSED_BODY_READ => n as u32,
        // No length: HTTP/2 without one, or chunked; `end_stream` on the head means no body.
        None if req.body().is_end_stream() => 0,
        _ => return r,
    };
    if announced == 0 {
        return drained(ctx, req, r).await;
    }
    match ctx.state.refused_reads.try_acquire_many(announced) {
        Ok(_reading) => drained(ctx, req, r).await,
        Err(_) => r,
    }
}

/// A request that passed [`denied`]: an actor call or another route, as [`handle`] would.
async fn route_or_call(
    ctx: &ConnCtx,
    req: Request<Incoming>,
) -> Result<Response<WireBody>, Refusal> {
    match protocol::actor_name(req.uri().path()) {
        Ok(Some(name)) if req.method() == Method::POST => {
            let (mode, timeout) = match check_headers(ctx, req.headers()) {
                Ok(checked) => checked,
                Err(r) => return Err(drained(ctx, req, r).await),
            };
            let call = ActorCall {
                name,
                mode,
                timeout,
                announced: content_length(req.headers()),
                body: req.into_body(),
            };
            actor_call(ctx, call).await
        }
        _ => route(ctx, req).await,
    }
}

fn refuse(r: Refusal) -> Response<WireBody> {
    let body = codec::encode_error(&codec::WireError::from_error(&r.err));
    let mut resp = response(r.status, protocol::MSGPACK, WireBody::bytes(body));
    if let Some(allow) = r.allow {
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
    }
    if r.close {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn response(status: StatusCode, content_type: &'static str, body: WireBody) -> Response<WireBody> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn wrong_method(path: &str, allowed: &'static str) -> Refusal {
    Refusal {
        status: StatusCode::METHOD_NOT_ALLOWED,
        err: PulsingError::BadMessage(format!("{path} accepts only {allowed}")),
        close: false,
        allow: Some(allowed),
    }
}

async fn route(ctx: &ConnCtx, req: Request<Incoming>) -> Result<Response<WireBody>, Refusal> {
    let path = req.uri().path();
    if protocol::actor_name(path)?.is_some() {
        // `handle` serves `POST` itself; only another method reaches here.
        debug_assert!(req.method() != Method::POST);
        let r = wrong_method(path, "POST");
        return Err(drained(ctx, req, r).await);
    }
    let handler = &ctx.state.handler;
    let (method, get_only) = (req.method().clone(), path != protocol::GOSSIP_PATH);
    match path {
        protocol::GOSSIP_PATH
        | protocol::HEALTH_PATH
        | protocol::METRICS_PATH
        | protocol::ACTORS_PATH => {
            let expected = if get_only { Method::GET } else { Method::POST };
            if method != expected {
                let allowed = if get_only { "GET" } else { "POST" };
                let r = wrong_method(path, allowed);
                return Err(drained(ctx, req, r).await);
            }
        }
        _ => {
            let r = PulsingError::NotFound(format!("no such path: {path}")).into();
            return Err(drained(ctx, req, r).await);
        }
    }
    let text = |s: String, ct| Ok(response(StatusCode::OK, ct, WireBody::bytes(s.into())));
    match path {
        protocol::HEALTH_PATH => text("ok\n".into(), "text/plain; charset=utf-8"),
        protocol::METRICS_PATH => text(
            protocol::metrics_text(&handler.stats()),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        protocol::ACTORS_PATH => text(
            protocol::actors_json(&handler.public_actors()),
            "application/json",
        ),
        // Boxed, as a cold path: its state stays out of the per-request future (see `handle`).
        _ => Box::pin(gossip(ctx, req)).await,
    }
}

async fn gossip(ctx: &ConnCtx, req: Request<Incoming>) -> Result<Response<WireBody>, Refusal> {
    let from = req
        .headers()
        .get(protocol::HEADER_FROM)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<SocketAddr>().ok())
        .unwrap_or(ctx.peer);
    let body = read_body(ctx, req).await?;
    let answer = ctx.state.handler.gossip(Some(from), body).await?;
    Ok(response(
        StatusCode::OK,
        protocol::OCTET_STREAM,
        WireBody::bytes(answer),
    ))
}

async fn actor_call(ctx: &ConnCtx, call: ActorCall) -> Result<Response<WireBody>, Refusal> {
    let (name, mode, timeout) = (call.name.as_str(), call.mode, call.timeout);
    let body = read_limited(ctx, call.announced, call.body).await?;
    let env = codec::decode_envelope(&body).map_err(PulsingError::from)?;
    let msg = Message::single(env.msg_type, env.payload);
    let handler = &ctx.state.handler;
    if mode == Mode::Tell {
        handler.tell(name, msg).await?;
        return Ok(response(
            StatusCode::ACCEPTED,
            protocol::MSGPACK,
            WireBody::empty(),
        ));
    }
    match handler.ask(name, msg, timeout).await? {
        Message::Single { msg_type, payload } => Ok(response(
            StatusCode::OK,
            protocol::MSGPACK,
            WireBody::encoded(codec::encode_result(&msg_type, &payload)),
        )),
        Message::Stream(items) => {
            let items = match timeout {
                Some(t) => items.with_item_timeout(t),
                None => items,
            };
            Ok(response(
                StatusCode::OK,
                protocol::STREAM,
                WireBody::stream(items),
            ))
        }
    }
}

/// The request headers of an actor call, checked (protocol.md §3): mode and timeout.
fn check_headers(
    ctx: &ConnCtx,
    headers: &http::HeaderMap,
) -> Result<(Mode, Option<Duration>), Refusal> {
    match headers.get(CONTENT_TYPE) {
        Some(ct) if protocol::is_msgpack(ct.as_bytes()) => {}
        other => {
            return Err(PulsingError::BadMessage(format!(
                "content-type must be {}, got {:?}",
                protocol::MSGPACK,
                other.map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            ))
            .into())
        }
    }
    let mode = protocol::parse_mode(headers.get(protocol::HEADER_MODE).map(|v| v.as_bytes()))?;
    let timeout = protocol::parse_timeout_ms(
        headers
            .get(protocol::HEADER_TIMEOUT_MS)
            .map(|v| v.as_bytes()),
    )?;
    if let Some(v) = headers.get(protocol::HEADER_NODE) {
        let wanted = protocol::parse_node(v.as_bytes())?;
        let serving = ctx.state.handler.node_id();
        if wanted != serving {
            return Err(protocol::node_mismatch(wanted, serving).into());
        }
    }
    Ok((mode, timeout))
}

/// Reads and discards the request body (within the same limits as any body) before refusing with
/// `r`: a client still sending its body would otherwise see its stream reset (HTTP/2) or its
/// connection closed before it reads the answer.
///
/// Boxed, as a cold path: its state stays out of the per-request future (see [`handle`]).
fn drained(
    ctx: &ConnCtx,
    req: Request<Incoming>,
    r: Refusal,
) -> Pin<Box<dyn Future<Output = Refusal> + Send + '_>> {
    Box::pin(async move {
        match read_body(ctx, req).await {
            Ok(_) => r,
            // Too large or too slow: that answer (which closes the connection) takes precedence.
            Err(body_refusal) => body_refusal,
        }
    })
}

/// The `content-length` header, if it holds a number.
fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
}

/// Reads a request body whole: see [`read_limited`].
async fn read_body(ctx: &ConnCtx, req: Request<Incoming>) -> Result<Bytes, Refusal> {
    let announced = content_length(req.headers());
    read_limited(ctx, announced, req.into_body()).await
}

/// Reads a request body whole: refused from `content-length` (`announced`) before reading when it is
/// too large, cut at the limit otherwise (never buffering more), and bounded by the body read timeout.
async fn read_limited(
    ctx: &ConnCtx,
    announced: Option<u64>,
    mut body: Incoming,
) -> Result<Bytes, Refusal> {
    let max = ctx.state.config.max_message_size;
    let too_large = |what: String| Refusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        err: PulsingError::TooLarge(format!(
            "{what} exceeds this node's limit of {max} bytes; the message was not delivered"
        )),
        // The rest of the body is never read, so an HTTP/1.1 connection cannot be reused.
        close: true,
        allow: None,
    };
    if let Some(len) = announced {
        if len > max as u64 {
            return Err(too_large(format!("a body of {len} bytes")));
        }
    }
    let mut collect = pin!(collect_body(&mut body, max));
    // The usual request arrives whole with its head (HEADERS and DATA in one read) and is taken at
    // once, with no timer. Otherwise the read is bounded by the body read timeout, on a boxed future
    // so that its timer stays out of the per-request future (see `handle`).
    let first = poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let bound = ctx.state.config.body_read_timeout;
    let read = match first {
        Poll::Ready(r) => Ok(r),
        Poll::Pending => Box::pin(tokio::time::timeout(bound, collect)).await,
    };
    match read {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(BodyError::TooLarge)) => Err(too_large("the body".into())),
        Ok(Err(BodyError::Broken(e))) => {
            Err(PulsingError::BadMessage(format!("reading the request body: {e}")).into())
        }
        Err(_) => Err(Refusal {
            status: StatusCode::REQUEST_TIMEOUT,
            err: PulsingError::from_wire(
                "timeout",
                format!("the request body did not arrive within {bound:?}; the message was not delivered"),
            ),
            close: true,
            allow: None,
        }),
    }
}

/// Why a request body could not be read.
enum BodyError {
    /// It passed the size limit.
    TooLarge,
    /// The connection or stream broke.
    Broken(hyper::Error),
}

/// Reads `body` whole, failing once it passes `max` bytes (never buffering more; see [`Collected`]).
async fn collect_body(body: &mut Incoming, max: usize) -> Result<Bytes, BodyError> {
    let mut collected = Collected::default();
    while !body.is_end_stream() {
        let Some(frame) = body.frame().await else {
            break;
        };
        // Trailers are ignored.
        let Ok(chunk) = frame.map_err(BodyError::Broken)?.into_data() else {
            continue;
        };
        collected
            .push(chunk, max)
            .map_err(|_| BodyError::TooLarge)?;
    }
    Ok(collected.finish())
}
