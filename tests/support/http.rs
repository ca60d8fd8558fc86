//! Helpers for the HTTP transport tests: nodes on 127.0.0.1:0, clients that are not Pulsing's (curl, a
//! plain hyper client, raw TCP), and msgpack written and read without Pulsing's codec.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pulsing::http::{HttpConfig, HttpTransport};
use pulsing::{
    Actor, ActorError, ActorSystem, Context, Message, MessageStream, PulsingError, SpawnOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Every test body runs under this bound so a bug shows as a failure, not a hang.
pub const BOUND: Duration = Duration::from_secs(30);

/// Runs `fut` to completion within [`BOUND`] or panics.
pub async fn bounded<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(BOUND, fut)
        .await
        .expect("test exceeded its time bound")
}

/// The actor `echo` of `examples/echo_node.rs`: `fail` fails, `stream n` streams, `sleep ms` sleeps,
/// `hold` blocks until the test's gate opens, anything else is echoed as `echo`. Test-only types:
/// `fail_detail` fails with [`DETAIL`], `stream_fail_detail` streams one item and then that error.
pub struct Echo {
    pub gate: std::sync::Arc<tokio::sync::Semaphore>,
}

#[path = "../../examples/shared/echo.rs"]
mod echo;

impl Actor for Echo {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        let (msg_type, payload) = msg.into_single()?;
        match msg_type.as_str() {
            "fail_detail" => Err(detailed_error()),
            "stream_fail_detail" => {
                let (tx, stream) = MessageStream::channel(4);
                tokio::spawn(async move {
                    let _ = tx.send(Message::single("echo", "0")).await;
                    tx.fail(detailed_error()).await;
                });
                Ok(Message::stream(stream))
            }
            "stream_fail" => {
                let (tx, stream) = MessageStream::channel(4);
                tokio::spawn(async move {
                    let _ = tx.send(Message::single("echo", "0")).await;
                    tx.fail(ActorError::with_type("EchoError", "stream broke"))
                        .await;
                });
                Ok(Message::stream(stream))
            }
            "stream_forever" => {
                let (tx, stream) = MessageStream::channel(4);
                tokio::spawn(async move {
                    let _ = tx.send(Message::single("echo", "0")).await;
                    // Never ends: the test cuts the connection.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(tx);
                });
                Ok(Message::stream(stream))
            }
            "hold" => {
                self.gate.acquire().await.expect("gate open").forget();
                Ok(Message::single("echo", payload))
            }
            other => echo::reply(other, payload, 4).await,
        }
    }
}

/// The detail of the errors of `fail_detail` and `stream_fail_detail`: several lines, as a traceback.
pub const DETAIL: &str =
    "Traceback (most recent call last):\n  File \"echo.py\", line 1\nEchoError: with detail";

fn detailed_error() -> ActorError {
    ActorError::with_type("EchoError", "fail requested").with_detail(DETAIL)
}

/// A node as `examples/echo_node.rs` serves it, plus `small` (mailbox of 1) for overload tests.
pub struct Node {
    pub system: ActorSystem,
    pub addr: SocketAddr,
    /// Releases `hold` handlers of `echo` and `small`.
    pub gate: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Node {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

/// A test config: 1 MiB messages, short timeouts so slow-client tests end fast.
pub fn test_config() -> HttpConfig {
    HttpConfig::default()
        .max_message_size(1024 * 1024)
        .header_read_timeout(Duration::from_millis(500))
        .body_read_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_secs(2))
}

/// A system on 127.0.0.1:0 with the HTTP transport and no actors.
pub async fn system(config: HttpConfig, ask_timeout: Duration) -> ActorSystem {
    ActorSystem::builder()
        .addr("127.0.0.1:0")
        .transport(HttpTransport::new(config))
        .ask_timeout(ask_timeout)
        .mailbox_wait(Duration::from_millis(100))
        .shutdown_timeout(Duration::from_millis(200))
        .build()
        .await
        .expect("system with the HTTP transport")
}

/// The reference node: public `echo`, public `small` (mailbox 1), private `secret`.
pub async fn echo_node() -> Node {
    let system = system(test_config(), Duration::from_secs(10)).await;
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let public = SpawnOptions::new().public(true);
    system
        .spawn_with(Echo { gate: gate.clone() }, "echo", public.clone())
        .await
        .expect("spawn echo");
    system
        .spawn_with(
            Echo { gate: gate.clone() },
            "small",
            public.mailbox_capacity(1),
        )
        .await
        .expect("spawn small");
    system
        .spawn(Echo { gate: gate.clone() }, "secret")
        .await
        .expect("spawn secret");
    let addr = system.addr().expect("serves");
    Node { system, addr, gate }
}

// --- msgpack by hand (protocol.md §2–3), independent of Pulsing's codec ---------------------------

fn str_header(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=31 => out.push(0xa0 | len as u8),
        32..=255 => out.extend_from_slice(&[0xd9, len as u8]),
        _ => {
            out.push(0xda);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
    }
}

/// `{"msg_type": msg_type, "payload": payload}` with `payload` as bin.
pub fn envelope(msg_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x82];
    str_header(&mut out, 8);
    out.extend_from_slice(b"msg_type");
    str_header(&mut out, msg_type.len());
    out.extend_from_slice(msg_type.as_bytes());
    str_header(&mut out, 7);
    out.extend_from_slice(b"payload");
    if payload.len() < 256 {
        out.extend_from_slice(&[0xc4, payload.len() as u8]);
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    }
    out.extend_from_slice(payload);
    out
}

/// Reads one msgpack value with `rmpv`, requiring that nothing follows it.
pub fn value(bytes: &[u8]) -> rmpv::Value {
    let mut rd = bytes;
    let v = rmpv::decode::read_value(&mut rd).expect("one msgpack value");
    assert!(rd.is_empty(), "trailing bytes after the msgpack value");
    v
}

/// `map[key]`.
pub fn get<'a>(v: &'a rmpv::Value, key: &str) -> &'a rmpv::Value {
    v.as_map()
        .unwrap_or_else(|| panic!("expected a map, got {v}"))
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no key {key} in {v}"))
}

/// `(msg_type, payload)` of `{"result": {..}}`.
pub fn result(body: &[u8]) -> (String, Vec<u8>) {
    let v = value(body);
    let r = get(&v, "result");
    (
        get(r, "msg_type").as_str().expect("str").to_owned(),
        get(r, "payload").as_slice().expect("bin").to_vec(),
    )
}

/// `detail` of `{"error": {..}}` (of a body or of a stream frame), `None` when the key is absent.
pub fn error_detail(v: &rmpv::Value) -> Option<String> {
    get(v, "error")
        .as_map()
        .expect("error is a map")
        .iter()
        .find(|(k, _)| k.as_str() == Some("detail"))
        .map(|(_, d)| d.as_str().expect("detail is a str").to_owned())
}

/// `(kind, message)` of `{"error": {..}}`.
pub fn error(body: &[u8]) -> (String, String) {
    let v = value(body);
    let e = get(&v, "error");
    (
        get(e, "kind").as_str().expect("str").to_owned(),
        get(e, "message").as_str().expect("str").to_owned(),
    )
}

/// Splits a stream body into its frames (4-byte big-endian length + msgpack), each decoded.
pub fn frames(mut body: &[u8]) -> Vec<rmpv::Value> {
    let mut out = Vec::new();
    while !body.is_empty() {
        assert!(body.len() >= 4, "partial length prefix");
        let n = u32::from_be_bytes(body[..4].try_into().expect("4 bytes")) as usize;
        out.push(value(&body[4..4 + n]));
        body = &body[4 + n..];
    }
    out
}

// --- clients that are not Pulsing's ----------------------------------------------------------------

/// A response as seen by a test client.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Which HTTP version curl speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curl {
    Http11,
    H2PriorKnowledge,
}

/// Runs `curl` (a blocking child process, on a blocking thread) and parses its `-i` output.
pub async fn curl(
    version: Curl,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Resp {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "20", "-X", method]);
    cmd.arg(match version {
        Curl::Http11 => "--http1.1",
        Curl::H2PriorKnowledge => "--http2-prior-knowledge",
    });
    for (k, v) in headers {
        cmd.arg("-H").arg(format!("{k}: {v}"));
    }
    if body.is_some() {
        cmd.args(["--data-binary", "@-"]);
    }
    cmd.arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().expect("curl is installed (see the Makefile)");
        let mut stdin = child.stdin.take().expect("piped");
        if let Some(b) = body {
            stdin.write_all(&b).expect("write curl stdin");
        }
        drop(stdin);
        child.wait_with_output().expect("curl ran")
    })
    .await
    .expect("curl thread");
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_http_response(&out.stdout)
}

/// Parses `HTTP/x status\r\nheaders\r\n\r\nbody` (curl `-i` output or a raw HTTP/1.1 response).
pub fn parse_http_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a blank line after the headers");
    let head = std::str::from_utf8(&raw[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .expect("status code")
        .parse()
        .expect("numeric status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// A plain hyper client (HTTP/1.1 or HTTP/2 prior knowledge), one connection per request.
pub async fn hyper_request(
    addr: SocketAddr,
    http2: bool,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Resp {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let io = TokioIo::new(stream);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body))).expect("request");
    let resp = if http2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        send.send_request(req).await.expect("h2 response")
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        send.send_request(req).await.expect("h1 response")
    };
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

/// Writes `request` on a fresh TCP connection and reads until the server closes it or `wait` passes.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    out
}

/// A good ask over a plain hyper HTTP/2 connection: proves the node still serves.
pub async fn still_serves(addr: SocketAddr) {
    let r = hyper_request(
        addr,
        true,
        "POST",
        "/actor/echo",
        &[("content-type", "application/msgpack")],
        envelope("ping", b"alive"),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(result(&r.body), ("echo".into(), b"alive".to_vec()));
}

/// Whether an error is the one of a given kind, for readable asserts.
pub fn kind(e: &PulsingError) -> &'static str {
    e.kind().as_str()
}
