//! A QUIC node fed bad input on its UDP port: garbage datagrams, a client that opens thousands of
//! streams, a link whose first frame announces 4 GiB, a handshake with the wrong ALPN, streams
//! with an unknown preface. After each, the node still serves: an ask over a QUIC link from a raw
//! quinn client (proof that QUIC itself answers, not the TCP fallback), an ask from a Pulsing node
//! with the QUIC transport, and `GET /health` over TCP.
//!
//! The clients here are not Pulsing's: quinn with a rustls configuration of the test's own (ALPN
//! `pulsing/1`, any server certificate accepted), link frames written with `rmpv` as
//! `docs/protocol.md` §8 describes them.
#![cfg(feature = "quic")]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsing::quic::quinn::crypto::rustls::QuicClientConfig;
use pulsing::quic::quinn::rustls;
use pulsing::quic::{quinn, QuicConfig, QuicTransport, ALPN};
use pulsing::{Actor, ActorError, ActorSystem, Context, Message, SpawnOptions};
use rmpv::Value;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LINK_PREFACE: &[u8; 16] = b"PULSING-LINK/1\r\n";

/// Every test body runs under this bound, so a hang shows as a failure.
const BOUND: Duration = Duration::from_secs(60);
/// How long one exchange with the node (a handshake, a reply, a close) may take on loopback.
const PROMPT: Duration = Duration::from_secs(3);

/// One test at a time: the stream test measures the RSS of this process, where every test's node
/// lives, and the floods of one test would slow the others' bounded waits.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn bounded<F: Future<Output = ()>>(name: &str, body: F) {
    let start = Instant::now();
    if tokio::time::timeout(BOUND, body).await.is_err() {
        panic!("{name}: exceeded its time bound of {BOUND:?}");
    }
    eprintln!("{name}: passed in {:?}", start.elapsed());
}

/// xorshift64: a seeded RNG with no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

// --- the node under test ----------------------------------------------------------------------------

struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        Ok(msg)
    }
}

struct Node {
    system: ActorSystem,
    addr: SocketAddr,
}

/// A QUIC node on 127.0.0.1:0 (default `QuicConfig`) serving a public `echo`.
async fn node() -> Node {
    let system = ActorSystem::builder()
        .addr("127.0.0.1:0")
        .transport(QuicTransport::new(QuicConfig::default()).expect("a QUIC transport"))
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("a QUIC node on 127.0.0.1:0");
    system
        .spawn_with(Echo, "echo", SpawnOptions::new().public(true))
        .await
        .expect("spawn echo");
    let addr = system.addr().expect("serves");
    Node { system, addr }
}

/// The node answers on all three doors: a link over raw QUIC, a Pulsing QUIC node's ask, and
/// `GET /health` over TCP.
async fn serves(node: &Node, what: &str) {
    let start = Instant::now();
    let reply = link_ask(node.addr, b"raw quic").await;
    assert_eq!(reply, b"raw quic", "{what}: the raw QUIC link ask");

    let client = ActorSystem::builder()
        .addr("127.0.0.1:0")
        .transport(QuicTransport::new(QuicConfig::default()).expect("a QUIC transport"))
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("a client node");
    let to = client.remote_ref(node.addr, "echo").expect("a valid name");
    let r = tokio::time::timeout(PROMPT, to.ask(Message::single("ping", "from a node")))
        .await
        .unwrap_or_else(|_| panic!("{what}: a node's ask did not end within {PROMPT:?}"))
        .unwrap_or_else(|e| panic!("{what}: a node's ask: {e:?}"));
    let (t, p) = r.into_single().expect("a single reply");
    assert_eq!(
        (t.as_str(), &p[..]),
        ("ping", &b"from a node"[..]),
        "{what}"
    );
    client.shutdown().await;

    let health = tcp_get(node.addr, "/health").await;
    assert!(
        health.starts_with(b"HTTP/1.1 200"),
        "{what}: GET /health: {:?}",
        String::from_utf8_lossy(&health)
    );
    eprintln!("{what}: the node serves (checked in {:?})", start.elapsed());
}

async fn tcp_get(addr: SocketAddr, path: &str) -> Vec<u8> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        out
    };
    tokio::time::timeout(PROMPT, exchange)
        .await
        .expect("GET answered in time")
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// The `drops` column of `/proc/net/udp` for the socket bound to `addr` (IPv4).
fn udp_drops(addr: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!(":{:04X}", addr.port());
    table.lines().skip(1).find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        if cols.get(1)?.ends_with(&local) {
            cols.last()?.parse().ok()
        } else {
            None
        }
    })
}

// --- a QUIC client that is not Pulsing's ------------------------------------------------------------

/// Accepts any server certificate; still checks the handshake signature against it.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client endpoint on 127.0.0.1:0 offering `alpn` (TLS 1.3, ring, any server certificate).
fn raw_client(alpn: &[&[u8]]) -> quinn::Endpoint {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let crypto = QuicClientConfig::try_from(tls).expect("a QUIC TLS configuration");
    let mut endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().expect("an address")).expect("bind");
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    endpoint
}

/// A connection with ALPN `pulsing/1`, made within [`PROMPT`].
async fn raw_connect(addr: SocketAddr) -> (quinn::Endpoint, quinn::Connection) {
    let endpoint = raw_client(&[ALPN]);
    let connecting = endpoint.connect(addr, "pulsing").expect("connect");
    let conn = tokio::time::timeout(PROMPT, connecting)
        .await
        .expect("a handshake within the bound")
        .expect("a handshake with ALPN pulsing/1");
    (endpoint, conn)
}

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect(),
    )
}

/// One link frame: a 4-byte big-endian length, then the msgpack map.
fn frame(v: &Value) -> Vec<u8> {
    let mut body = Vec::new();
    rmpv::encode::write_value(&mut body, v).expect("encode");
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// Splits whole frames off the front of `buf`.
fn take_frames(buf: &mut Vec<u8>) -> Vec<Value> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u32::from_be_bytes(buf[..4].try_into().expect("4 bytes")) as usize;
        if buf.len() < 4 + len {
            break;
        }
        let mut body = &buf[4..4 + len];
        out.push(rmpv::decode::read_value(&mut body).expect("a msgpack frame"));
        buf.drain(..4 + len);
    }
    out
}

fn get<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

fn frame_type(v: &Value) -> &str {
    get(v, "t").and_then(Value::as_str).unwrap_or("?")
}

/// An ask of `echo` on a link over a fresh raw QUIC connection; returns the reply's payload.
async fn link_ask(addr: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (endpoint, conn) = raw_connect(addr).await;
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.expect("a stream");
        let mut out = LINK_PREFACE.to_vec();
        out.extend(frame(&map(&[
            ("t", "hello".into()),
            ("max_message", 1_000_000.into()),
        ])));
        out.extend(frame(&map(&[
            ("t", "ask".into()),
            ("id", 1.into()),
            ("to", "echo".into()),
            ("timeout_ms", 5000.into()),
            ("msg_type", "ping".into()),
            ("payload", Value::Binary(payload.to_vec())),
        ])));
        send.write_all(&out).await.expect("write");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            for f in take_frames(&mut buf) {
                match frame_type(&f) {
                    "hello" => {}
                    "reply" => {
                        let result = get(&f, "result").unwrap_or_else(|| panic!("{f}"));
                        return get(result, "payload")
                            .and_then(Value::as_slice)
                            .expect("a payload")
                            .to_vec();
                    }
                    other => panic!("unexpected frame {other}: {f}"),
                }
            }
            let n = recv
                .read(&mut chunk)
                .await
                .expect("read the link")
                .expect("the reply before the end of the stream");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    let reply = tokio::time::timeout(PROMPT, exchange)
        .await
        .expect("a link reply over QUIC within the bound");
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(PROMPT, endpoint.wait_idle()).await;
    reply
}

// --- the tests -----------------------------------------------------------------------------------

/// Random bytes of random sizes, a quarter of them shaped as QUIC v1 Initial packets (long header,
/// version 1, connection ids, padded to 1200 bytes) so they get past the first parse into
/// decryption.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_are_dropped_and_the_node_keeps_serving() {
    let _serial = SERIAL.lock().await;
    bounded("garbage datagrams", async {
        let node = node().await;
        serves(&node, "before the garbage").await;
        let sock = Arc::new(
            tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind"),
        );
        let answers = {
            let sock = sock.clone();
            tokio::spawn(async move {
                let (mut n, mut bytes) = (0u64, 0u64);
                let mut buf = [0u8; 2048];
                while let Ok(len) = sock.recv(&mut buf).await {
                    n += 1;
                    bytes += len as u64;
                }
                (n, bytes)
            })
        };
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let mut buf = [0u8; 1500];
        let mut sent = 0u64;
        let start = Instant::now();
        for i in 0..10_000 {
            let initial = i % 4 == 0;
            let len = if initial {
                rng.between(1200, 1500)
            } else {
                rng.between(1, 1500)
            };
            let d = &mut buf[..len];
            rng.fill(d);
            if initial {
                d[0] = 0xc0 | (d[0] & 0x03); // long header, Initial, packet number length
                d[1..5].copy_from_slice(&1u32.to_be_bytes()); // QUIC v1
                d[5] = 8; // destination connection id: 8 random bytes
                d[14] = 8; // source connection id: 8 random bytes
                d[23] = 0; // no token
                let rest = (len - 26) as u16; // the length varint (2 bytes), then random bytes
                d[24..26].copy_from_slice(&(0x4000 | rest).to_be_bytes());
            }
            sock.send_to(d, node.addr).await.expect("send");
            sent += len as u64;
            if i % 32 == 31 {
                // Paced, so the node reads them instead of the kernel dropping them.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        eprintln!(
            "sent 10000 garbage datagrams ({sent} bytes) in {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let dropped = udp_drops(node.addr).expect("the node's socket in /proc/net/udp");
        eprintln!("the kernel dropped {dropped} of them (the node's receive buffer was full)");
        assert!(
            dropped < 1_000,
            "most garbage reached the node, not the kernel's drop count: {dropped} dropped"
        );
        serves(&node, "after 10,000 garbage datagrams").await;
        answers.abort();
        let (n, bytes) = answers.await.unwrap_or_default();
        eprintln!("the node answered {n} datagrams ({bytes} bytes) to the garbage");
        // RFC 9000 §8: to an unvalidated address, at most 3 times the bytes received.
        assert!(
            bytes <= 3 * sent,
            "amplification: {bytes} bytes answered to {sent}"
        );
        node.system.shutdown().await;
    })
    .await;
}

/// A client that opens 10,000 streams, each sending 16 garbage bytes (or nothing: an empty
/// stream), then streams that send 1 byte of a preface and hold on, until the node's stream limit
/// stops it. Memory stays bounded and the node serves other connections meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_streams_keep_memory_bounded_and_the_node_serving() {
    let _serial = SERIAL.lock().await;
    bounded("10,000 streams", async {
        let node = node().await;
        serves(&node, "before the streams").await;
        let rss_before = rss_kib();
        let (endpoint, conn) = raw_connect(node.addr).await;
        let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);

        // Garbage: each stream is answered by a reset (or, when empty, closed) and gives its slot
        // back, so all 10,000 get through one by one though at most 256 may be open at once.
        const GARBAGE: usize = 10_000;
        let start = Instant::now();
        let (mut opened, mut reset, mut ended) = (0usize, 0usize, 0usize);
        let mut open_times = Vec::with_capacity(GARBAGE);
        for i in 0..GARBAGE {
            let t = Instant::now();
            let Ok(pair) = tokio::time::timeout(PROMPT, conn.open_bi()).await else {
                eprintln!("garbage stream {i}: not opened within {PROMPT:?}");
                break;
            };
            open_times.push(t.elapsed());
            let (mut send, mut recv) = pair.expect("a stream on a live connection");
            opened += 1;
            if i % 10 == 0 {
                send.finish().expect("finish");
            } else {
                let mut junk = [0u8; 16];
                rng.fill(&mut junk);
                send.write_all(&junk).await.expect("write");
                send.finish().expect("finish");
            }
            match tokio::time::timeout(PROMPT, recv.read_to_end(1024)).await {
                Ok(Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(_)))) => reset += 1,
                Ok(Ok(b)) if b.is_empty() => ended += 1,
                other => panic!("garbage stream {i}: expected a reset or an empty end: {other:?}"),
            }
        }
        open_times.sort();
        eprintln!(
            "garbage streams: {opened} opened, {reset} reset, {ended} ended empty in {:?}; \
             open p50 {:?} max {:?}",
            start.elapsed(),
            open_times.get(open_times.len() / 2),
            open_times.last(),
        );
        assert_eq!(opened, GARBAGE, "every garbage stream got a slot");
        let rss_garbage = rss_kib();

        // Slow openers: 1 byte of the link preface, then nothing. The node waits for the rest
        // (its header read timeout, 10 s) and its stream limit (256) stops the client.
        let mut held = Vec::new();
        let mut blocked = false;
        let start = Instant::now();
        for _ in 0..GARBAGE {
            match tokio::time::timeout(Duration::from_millis(500), conn.open_bi()).await {
                Ok(pair) => {
                    let (mut send, recv) = pair.expect("a stream on a live connection");
                    send.write_all(&LINK_PREFACE[..1]).await.expect("write");
                    held.push((send, recv));
                }
                Err(_) => {
                    blocked = true;
                    break;
                }
            }
        }
        eprintln!(
            "slow streams: {} opened before the limit ({:?})",
            held.len(),
            start.elapsed()
        );
        assert!(blocked, "the node's stream limit stopped the client");
        assert!(
            (200..=256).contains(&held.len()),
            "about max_streams (256) slow streams got through: {}",
            held.len()
        );
        serves(
            &node,
            &format!("while {} slow streams are held", held.len()),
        )
        .await;
        let rss_held = rss_kib();
        eprintln!(
            "VmRSS: {rss_before} KiB before, {rss_garbage} KiB after 10,000 garbage streams \
             (+{} KiB), {rss_held} KiB with the slow streams held (+{} KiB)",
            rss_garbage as i64 - rss_before as i64,
            rss_held as i64 - rss_before as i64,
        );
        // The node keeps nothing per finished stream and at most 256 open ones (a task, quinn's
        // stream state, a 16-byte preface buffer: a few KiB each, ~1 MiB in all). 32 MiB leaves
        // room for allocator caches and the client's own state in this process; a per-stream leak
        // of even 4 KiB over 10,000 streams would show as 40 MiB.
        assert!(
            rss_held.saturating_sub(rss_before) < 32 * 1024,
            "VmRSS grew from {rss_before} KiB to {rss_held} KiB"
        );
        drop(held);
        conn.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(PROMPT, endpoint.wait_idle()).await;
        serves(&node, "after the client left").await;
        node.system.shutdown().await;
    })
    .await;
}

/// A link stream whose first frame announces 4 GiB: the node answers its hello, counts a bad link
/// and closes the stream both ways at once; other links are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_gib_frame_header_closes_the_link_stream_and_is_counted() {
    let _serial = SERIAL.lock().await;
    bounded("4 GiB frame", async {
        let node = node().await;
        serves(&node, "before the 4 GiB frame").await;
        let before = node.system.stats().bad_links;
        let (endpoint, conn) = raw_connect(node.addr).await;
        let (mut send, mut recv) = conn.open_bi().await.expect("a stream");
        let mut out = LINK_PREFACE.to_vec();
        out.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        let start = Instant::now();
        send.write_all(&out).await.expect("write");
        let got = tokio::time::timeout(PROMPT, recv.read_to_end(64 * 1024))
            .await
            .expect("the node ends the stream within the bound");
        let closed_in = start.elapsed();
        let mut bytes = got.expect("the node finishes its side (no reset)");
        let frames = take_frames(&mut bytes);
        assert!(bytes.is_empty(), "whole frames only: {bytes:?} left");
        let types: Vec<&str> = frames.iter().map(frame_type).collect();
        assert_eq!(types, ["hello"], "the node's hello, then the end");
        let stopped = tokio::time::timeout(PROMPT, send.stopped())
            .await
            .expect("the node stops reading within the bound");
        eprintln!("stream closed in {closed_in:?}; our side stopped with {stopped:?}");
        assert!(
            matches!(stopped, Ok(Some(_))),
            "the node stopped reading: {stopped:?}"
        );
        let deadline = Instant::now() + PROMPT;
        while node.system.stats().bad_links != before + 1 {
            assert!(
                Instant::now() < deadline,
                "bad_links: {} then {}",
                before,
                node.system.stats().bad_links
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            conn.close_reason().is_none(),
            "only the stream closes, not the connection: {:?}",
            conn.close_reason()
        );
        conn.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(PROMPT, endpoint.wait_idle()).await;
        serves(&node, "after the 4 GiB frame").await;
        node.system.shutdown().await;
    })
    .await;
}

/// A handshake offering `h3` (or no ALPN at all) is refused within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_with_another_alpn_is_refused() {
    let _serial = SERIAL.lock().await;
    bounded("wrong ALPN", async {
        let node = node().await;
        let cases: [(&str, &[&[u8]]); 3] = [
            ("h3", &[b"h3"]),
            ("h3 and hq-interop", &[b"h3", b"hq-interop"]),
            ("no ALPN", &[]),
        ];
        for (what, alpn) in cases {
            let endpoint = raw_client(alpn);
            let start = Instant::now();
            let connecting = endpoint.connect(node.addr, "pulsing").expect("connect");
            let r = tokio::time::timeout(PROMPT, connecting)
                .await
                .unwrap_or_else(|_| panic!("{what}: no answer within {PROMPT:?}"));
            eprintln!("{what}: {:?} after {:?}", r.as_ref().err(), start.elapsed());
            assert!(r.is_err(), "{what}: the handshake is refused");
            endpoint.close(0u32.into(), b"done");
            serves(&node, &format!("after a handshake with {what}")).await;
        }
        node.system.shutdown().await;
    })
    .await;
}

/// Streams whose first 16 bytes are no preface the node knows are reset (and stopped), the
/// connection stays up, and the node serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_with_an_unknown_preface_is_reset() {
    let _serial = SERIAL.lock().await;
    bounded("unknown preface", async {
        let node = node().await;
        let before = node.system.stats().bad_links;
        let (endpoint, conn) = raw_connect(node.addr).await;
        let prefaces: [&[u8; 16]; 4] = [
            b"PULSING-LUNK/1\r\n",
            b"PULSING-LINK/2\r\n",
            b"GET / HTTP/1.1\r\n",
            &[0u8; 16],
        ];
        for preface in prefaces {
            let what = String::from_utf8_lossy(preface).escape_debug().to_string();
            let (mut send, mut recv) = conn.open_bi().await.expect("a stream");
            let start = Instant::now();
            send.write_all(preface).await.expect("write");
            let read = tokio::time::timeout(PROMPT, recv.read_to_end(1024))
                .await
                .unwrap_or_else(|_| panic!("{what}: not reset within {PROMPT:?}"));
            let took = start.elapsed();
            assert!(
                matches!(
                    read,
                    Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(_)))
                ),
                "{what}: the node resets its side: {read:?}"
            );
            let stopped = tokio::time::timeout(PROMPT, send.stopped())
                .await
                .unwrap_or_else(|_| panic!("{what}: not stopped within {PROMPT:?}"));
            assert!(
                matches!(stopped, Ok(Some(_))),
                "{what}: the node stops reading: {stopped:?}"
            );
            eprintln!("{what}: reset in {took:?} ({read:?}), stopped with {stopped:?}");
            assert!(
                conn.close_reason().is_none(),
                "{what}: only the stream ends: {:?}",
                conn.close_reason()
            );
        }
        eprintln!(
            "bad_links after unknown prefaces: {} (before {before})",
            node.system.stats().bad_links
        );
        conn.close(0u32.into(), b"done");
        let _ = tokio::time::timeout(PROMPT, endpoint.wait_idle()).await;
        serves(&node, "after unknown prefaces").await;
        node.system.shutdown().await;
    })
    .await;
}
