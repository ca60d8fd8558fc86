//! The serving side: one TCP listener, HTTP/1.1 and h2c on each connection (auto-detected), requests
//! routed to the [`InboundHandler`] as `docs/protocol.md` says.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use pulsing_core::{InboundHandler, Message, PulsingError};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::body::WireBody;
use crate::codec;
use crate::config::HttpConfig;
use crate::protocol::{self, Mode};

/// HTTP/2 flow-control windows: large enough that a 64 KiB reply or a burst of small ones never waits
/// for a window update on loopback or a LAN.
pub(crate) const STREAM_WINDOW: u32 = 1024 * 1024;
pub(crate) const CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;
/// Concurrent HTTP/2 streams a client may open on one connection.
const MAX_CONCURRENT_STREAMS: u32 = 1024;

/// What every connection of one server shares.
struct ServerState {
    handler: Arc<dyn InboundHandler>,
    config: HttpConfig,
    node_header: HeaderValue,
}

/// One connection's context, shared by its requests.
struct ConnCtx {
    state: Arc<ServerState>,
    peer: SocketAddr,
    /// Set when the first request head has been read (ends the connection's header timer).
    started: AtomicBool,
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
        config,
        node_header,
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
    tokio::spawn(accept_loop(listener, state, builder, shutdown));
    Ok(bound)
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<ServerState>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let ctx = Arc::new(ConnCtx {
                    state: state.clone(),
                    peer,
                    started: AtomicBool::new(false),
                });
                tokio::spawn(serve_connection(
                    stream,
                    ctx,
                    builder.clone(),
                    shutdown.clone(),
                ));
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
    ctx: Arc<ConnCtx>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let header_timeout = ctx.state.config.header_read_timeout;
    let svc_ctx = ctx.clone();
    let service = service_fn(move |req| handle(svc_ctx.clone(), req));
    let conn = builder.serve_connection(TokioIo::new(stream), service);
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

async fn handle(
    ctx: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Result<Response<WireBody>, Infallible> {
    ctx.started.store(true, Ordering::Relaxed);
    // Boxed: hyper moves this future into a task per HTTP/2 stream, and the routing future is large;
    // a pointer moves cheaply (measured: the move was the largest single cost under load).
    let mut resp = match Box::pin(route(&ctx, req)).await {
        Ok(resp) => resp,
        Err(refusal) => refuse(refusal),
    };
    resp.headers_mut()
        .insert(protocol::HEADER_NODE, ctx.state.node_header.clone());
    Ok(resp)
}

fn refuse(r: Refusal) -> Response<WireBody> {
    let body = codec::encode_error(protocol::wire_kind(&r.err), &r.err.wire_message());
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
    if let Some(name) = protocol::actor_name(path)? {
        if req.method() != Method::POST {
            let r = wrong_method(path, "POST");
            return Err(drained(ctx, req, r).await);
        }
        return actor_call(ctx, name.as_str(), req).await;
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
        _ => gossip(ctx, req).await,
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

async fn actor_call(
    ctx: &ConnCtx,
    name: &str,
    req: Request<Incoming>,
) -> Result<Response<WireBody>, Refusal> {
    let (mode, timeout) = match check_headers(ctx, req.headers()) {
        Ok(checked) => checked,
        Err(r) => return Err(drained(ctx, req, r).await),
    };
    let body = read_body(ctx, req).await?;
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
async fn drained(ctx: &ConnCtx, req: Request<Incoming>, r: Refusal) -> Refusal {
    match read_body(ctx, req).await {
        Ok(_) => r,
        // Too large or too slow: that answer (which closes the connection) takes precedence.
        Err(body_refusal) => body_refusal,
    }
}

/// Reads a request body whole: refused from `content-length` before reading when it is too large,
/// cut at the limit otherwise (never buffering more), and bounded by the body read timeout.
async fn read_body(ctx: &ConnCtx, req: Request<Incoming>) -> Result<Bytes, Refusal> {
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
    let announced = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok());
    if let Some(len) = announced {
        if len > max as u64 {
            return Err(too_large(format!("a body of {len} bytes")));
        }
    }
    let limited = Limited::new(req.into_body(), max);
    let bound = ctx.state.config.body_read_timeout;
    match tokio::time::timeout(bound, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(too_large("the body".into()))
        }
        Ok(Err(e)) => Err(PulsingError::BadMessage(format!("reading the request body: {e}")).into()),
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
