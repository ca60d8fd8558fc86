//! The `remote` scenarios of the bench: two systems over one transport (HTTP, or QUIC with the
//! `quic` feature; in one process, or in two with `--runtime process`), and the `tcp_floor` they
//! are measured against. Several transports run one after another, each its own block of every
//! scenario with fresh nodes; with `--secret`, each transport's plaintext block is followed by a
//! TLS block (both nodes built with the secret). After the blocks, `compare` gives QUIC's figures
//! over HTTP's, and with `--secret`, `compare_tls` each transport's TLS figures over its plaintext
//! ones.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsing::http::{HttpConfig, HttpTransport};
#[cfg(feature = "quic")]
use pulsing::quic::{QuicConfig, QuicTransport};
use pulsing::{ActorRef, ActorSystem, Message, MessageStream, SpawnOptions};

use super::{floor, percentile, Echo, Sink};

#[path = "process.rs"]
mod process;
use process::{client_process, serve_process};

/// The `--runtime` of this run, printed in every JSON line.
static RUNTIME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// `--no-floors`: `remote_ask` without the floors interleaved (for profiling the ask alone, e.g.
/// its instructions per round trip under callgrind; no `vs_` ratios then).
pub(crate) static NO_FLOORS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn rt_name() -> &'static str {
    RUNTIME.get().map_or("split", String::as_str)
}

/// The `--secret` of this run, which the nodes of its TLS blocks are built with.
static SECRET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Asks in flight for `remote_ask_concurrent`.
const IN_FLIGHT: usize = 64;

/// Operations per round of the interleaved `tcp_floor` and `remote_ask` (see [`sequential`]).
const ROUND: usize = 1000;

/// `remote_tell` stops early if, this long after its first tell, fewer than [`TELL_MIN_RATE`] per
/// second were sent: the whole scenario stays well under a minute on a slow transport.
const TELL_EARLY_CHECK: Duration = Duration::from_secs(2);

/// See [`TELL_EARLY_CHECK`].
const TELL_MIN_RATE: f64 = 100_000.0;

/// Failed tells printed to standard error, with their kind; the rest are only counted by kind.
const TELL_ERRORS_SHOWN: usize = 5;

/// A transport the remote scenarios run over (`--transport`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// [`HttpTransport`]: links over TCP.
    Http,
    /// [`QuicTransport`]: links over QUIC streams on one connection per peer.
    #[cfg(feature = "quic")]
    Quic,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Http => "http",
            #[cfg(feature = "quic")]
            Kind::Quic => "quic",
        }
    }

    fn parse(name: &str) -> Result<Kind, String> {
        match name {
            "http" => Ok(Kind::Http),
            #[cfg(feature = "quic")]
            "quic" => Ok(Kind::Quic),
            #[cfg(not(feature = "quic"))]
            "quic" => Err(
                "the quic transport is not in this build: build with --features quic \
                 (cargo run --release --example bench --features quic -- ...)"
                    .into(),
            ),
            other => Err(format!("unknown transport {other}; available: http, quic")),
        }
    }
}

/// The transports of `--transport`, a comma-separated list (`http`, `quic`, `http,quic`), in the
/// order given, each once.
///
/// # Errors
///
/// A message for standard error: an empty list, an unknown name, or `quic` in a build without the
/// `quic` feature.
pub(crate) fn parse_transports(list: &str) -> Result<Vec<Kind>, String> {
    let mut kinds = Vec::new();
    for name in list.split(',').map(str::trim) {
        let kind = Kind::parse(name)?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// One block of the run: every scenario over one transport, on fresh nodes, with or without the
/// secret. Displays as the fields every line of the block carries: `"transport":..,"runtime":..`,
/// and `"tls":..` when the run has a `--secret`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Block {
    kind: Kind,
    /// `None`: the run has no `--secret` (no `"tls"` field); `Some(true)`: the nodes use it.
    tls: Option<bool>,
}

impl Block {
    /// The secret this block's nodes are built with, if any.
    fn secret(self) -> Option<&'static str> {
        if self.tls == Some(true) {
            SECRET.get().map(String::as_str)
        } else {
            None
        }
    }

    /// For messages: `http`, `http with TLS`.
    fn describe(self) -> String {
        let tls = if self.tls == Some(true) {
            " with TLS"
        } else {
            ""
        };
        format!("{}{tls}", self.kind.name())
    }
}

impl fmt::Display for Block {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\"transport\":\"{}\",\"runtime\":\"{}\"",
            self.kind.name(),
            rt_name()
        )?;
        match self.tls {
            Some(tls) => write!(f, ",\"tls\":{tls}"),
            None => Ok(()),
        }
    }
}

/// The figures of one block that `compare` sets side by side; `None` for a scenario not run.
#[derive(Clone, Copy, Default, Debug)]
struct Figures {
    /// `remote_ask` p50, µs.
    ask_p50: Option<f64>,
    /// `remote_ask_concurrent` asks/s.
    ask_concurrent: Option<f64>,
    /// `remote_tell` msgs/s.
    tell: Option<f64>,
    /// `remote_stream` items/s.
    stream: Option<f64>,
}

/// What the server side of a run serves.
#[derive(Clone, Copy)]
struct Served {
    /// The server node's address (its transport's: TCP for HTTP, UDP and TCP for QUIC).
    node: SocketAddr,
    /// The plain TCP echo of [`floor::serve`], on the server node's runtime.
    floor: SocketAddr,
    /// In a QUIC block, the plain quinn echo of `quic_floor::serve`, on the same runtime.
    quic_floor: Option<SocketAddr>,
    /// In a QUIC block, the one-task quinn-proto echo of `quic_proto_floor::serve`.
    quic_proto_floor: Option<SocketAddr>,
}

/// Replies to `stream` with a stream of `n` items (payload: `n` as decimal text).
struct Streamer;

impl pulsing::Actor for Streamer {
    async fn receive(
        &mut self,
        msg: Message,
        _: &mut pulsing::Context,
    ) -> Result<Message, pulsing::ActorError> {
        let (_, payload) = msg.into_single()?;
        let n: u64 = std::str::from_utf8(&payload)?.parse()?;
        let (tx, stream) = MessageStream::channel(256);
        let item = bytes::Bytes::from_static(b"token");
        tokio::spawn(async move {
            for _ in 0..n {
                if tx.send(Message::single("tok", item.clone())).await.is_err() {
                    return;
                }
            }
            tx.end().await;
        });
        Ok(Message::stream(stream))
    }
}

/// A node on `block`'s transport, with its secret if it has one; `PULSING_BENCH_CONNECTIONS=n` sets
/// the client's HTTP/2 connections per peer (for QUIC, those of its TCP door).
async fn node(block: Block) -> ActorSystem {
    let kind = block.kind;
    let mut config = HttpConfig::default();
    if let Some(n) = std::env::var("PULSING_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config = config.connections_per_peer(n);
    }
    let builder = ActorSystem::builder()
        .addr("127.0.0.1:0")
        .mailbox_capacity(4096);
    let builder = match kind {
        Kind::Http => builder.transport(HttpTransport::new(config)),
        #[cfg(feature = "quic")]
        Kind::Quic => builder.transport(
            QuicTransport::new(QuicConfig::default().http(config)).expect("the QUIC transport"),
        ),
    };
    let builder = match block.secret() {
        Some(secret) => builder.secret(secret),
        None => builder,
    };
    builder.build().await.unwrap_or_else(|e| {
        panic!("a system on {}: {e}", block.describe());
    })
}

/// Prints one latency line; `extra` (`,"key":value...` or empty) is appended to its fields.
/// Returns the p50, µs.
fn report(
    scenario: &str,
    block: Block,
    ops: usize,
    total: Duration,
    lat: &mut [Duration],
    extra: &str,
) -> f64 {
    lat.sort_unstable();
    let p50 = percentile(lat, 0.50);
    println!(
        "{{\"scenario\":\"{scenario}\",{block},\"ops\":{ops},\"ops_per_s\":{:.0},\"p50_us\":{p50:.3},\"p99_us\":{:.3}{extra}}}",
        ops as f64 / total.as_secs_f64(),
        percentile(lat, 0.99),
    );
    p50
}

/// The latencies of one sequential scenario; its first `ops / 10` operations are a warm-up, not kept.
struct Sequential {
    warmup: usize,
    left: usize,
    lat: Vec<Duration>,
}

impl Sequential {
    /// `ops` measured operations.
    fn new(ops: usize) -> Sequential {
        Sequential {
            warmup: ops / 10,
            left: ops + ops / 10,
            lat: Vec::with_capacity(ops),
        }
    }

    fn push(&mut self, d: Duration) {
        self.left -= 1;
        match self.warmup.checked_sub(1) {
            Some(w) => self.warmup = w,
            None => self.lat.push(d),
        }
    }

    fn p50(&mut self) -> f64 {
        self.lat.sort_unstable();
        percentile(&self.lat, 0.50)
    }

    /// Prints the line, with ops/s over the sum of the kept latencies (one operation at a time).
    /// Returns the p50, µs.
    fn report(mut self, scenario: &str, block: Block, extra: &str) -> f64 {
        let total = self.lat.iter().sum();
        report(scenario, block, self.lat.len(), total, &mut self.lat, extra)
    }
}

/// A plain ping-pong that `remote_ask` is measured against.
enum Floor {
    Tcp(floor::Client),
    #[cfg(feature = "quic")]
    Quic(super::quic_floor::Client),
    #[cfg(feature = "quic")]
    QuicProto(Box<super::quic_proto_floor::Client>),
}

impl Floor {
    async fn round_trip(&mut self) -> Duration {
        match self {
            Floor::Tcp(c) => c.round_trip().await,
            #[cfg(feature = "quic")]
            Floor::Quic(c) => c.round_trip().await,
            #[cfg(feature = "quic")]
            Floor::QuicProto(c) => c.round_trip().await,
        }
    }
}

/// The floors of `served`, by scenario name: `tcp_floor`, and in a QUIC block `quic_floor` and
/// `quic_proto_floor`.
async fn floors(served: Served) -> Vec<(&'static str, Floor)> {
    let mut floors = Vec::with_capacity(3);
    floors.push((
        "tcp_floor",
        Floor::Tcp(floor::Client::connect(served.floor).await),
    ));
    #[cfg(feature = "quic")]
    {
        if let Some(at) = served.quic_floor {
            let c = super::quic_floor::Client::connect(at).await;
            floors.push(("quic_floor", Floor::Quic(c)));
        }
        if let Some(at) = served.quic_proto_floor {
            let c = super::quic_proto_floor::Client::connect(at).await;
            floors.push(("quic_proto_floor", Floor::QuicProto(Box::new(c))));
        }
    }
    floors
}

/// `tcp_floor` (in a QUIC block also `quic_floor` and `quic_proto_floor`) and, if `ask`,
/// `remote_ask` (`ops` each), interleaved in rounds of [`ROUND`] operations so that all meet the
/// same conditions: on a small machine a ping-pong's latency depends on whether the scheduler put
/// its two ends on one core or on two, and that changes from one second to the next. All time each
/// operation alike; every other floor and `remote_ask` print `vs_tcp_floor`, their p50 over the TCP
/// floor's, and `remote_ask` also `vs_<floor>` over each other floor's. Returns `remote_ask`'s p50
/// (µs), if it ran.
async fn sequential(
    block: Block,
    echo: &ActorRef,
    served: Served,
    ops: usize,
    ask: bool,
) -> Option<f64> {
    let mut floors: Vec<_> = floors(served)
        .await
        .into_iter()
        .filter(|_| !NO_FLOORS.load(std::sync::atomic::Ordering::Relaxed))
        .map(|(name, f)| (name, f, Sequential::new(ops)))
        .collect();
    let mut a = Sequential::new(if ask { ops } else { 0 });
    let payload = bytes::Bytes::from_static(b"ping");
    while floors.iter().map(|f| f.2.left).sum::<usize>() + a.left > 0 {
        for (_, floor, lat) in &mut floors {
            for _ in 0..ROUND.min(lat.left) {
                lat.push(floor.round_trip().await);
            }
        }
        for _ in 0..ROUND.min(a.left) {
            let t = Instant::now();
            let reply = echo
                .ask(Message::single("ping", payload.clone()))
                .await
                .expect("remote ask");
            let d = t.elapsed();
            std::hint::black_box(reply);
            a.push(d);
        }
    }
    let mut p50s = Vec::new();
    for (name, _, mut lat) in floors {
        let p50 = lat.p50();
        let extra = match p50s.first() {
            None => {
                let frames = floor::frames();
                format!(
                    ",\"request_bytes\":{},\"reply_bytes\":{}",
                    frames.request.len(),
                    frames.reply.len()
                )
            }
            Some((_, tcp)) => format!(",\"vs_tcp_floor\":{:.2}", p50 / tcp),
        };
        lat.report(name, block, &extra);
        p50s.push((name, p50));
    }
    ask.then(|| {
        let p50 = a.p50();
        let extra: String = p50s
            .iter()
            .map(|(name, floor)| format!(",\"vs_{name}\":{:.2}", p50 / floor))
            .collect();
        a.report("remote_ask", block, &extra)
    })
}

/// Returns the asks per second.
async fn ask_concurrent(block: Block, echo: &ActorRef, ops: usize) -> f64 {
    let per_task = ops.div_ceil(IN_FLIGHT);
    let ops = per_task * IN_FLIGHT;
    // Warm up every pooled connection first.
    let warm: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let echo = echo.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    echo.ask(Message::single("ping", "w"))
                        .await
                        .expect("warm-up");
                }
            })
        })
        .collect();
    for w in warm {
        w.await.expect("warm-up task");
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let echo = echo.clone();
            tokio::spawn(async move {
                let payload = bytes::Bytes::from_static(b"ping");
                let mut lat = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    let t = Instant::now();
                    let reply = echo
                        .ask(Message::single("ping", payload.clone()))
                        .await
                        .expect("remote ask");
                    lat.push(t.elapsed());
                    std::hint::black_box(reply);
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(ops);
    for t in tasks {
        lat.extend(t.await.expect("ask task"));
    }
    let elapsed = start.elapsed();
    report("remote_ask_concurrent", block, ops, elapsed, &mut lat, "");
    ops as f64 / elapsed.as_secs_f64()
}

/// The count of messages the [`Sink`] has handled, asked after every tell this sender made before.
async fn sink_count(sink: &ActorRef) -> u64 {
    let reply = sink
        .ask(Message::single("count", bytes::Bytes::new()))
        .await
        .expect("count");
    std::str::from_utf8(reply.payload().expect("single"))
        .expect("utf8")
        .parse()
        .expect("count")
}

/// `remote_tell`: one sender tells `ops` 32-byte events to the [`Sink`] one after another (each
/// `tell` awaited, none waits for the handler), stopping early below [`TELL_MIN_RATE`]; then asks
/// for the count. The time runs from the first tell to the count that shows the last one handled.
/// `lost` is the sent tells the sink did not handle, and at least the tells that returned an error.
/// Returns the tells per second.
async fn tell(block: Block, sink: &ActorRef, ops: usize) -> f64 {
    let before = sink_count(sink).await;
    let payload = bytes::Bytes::from_static(b"0123456789abcdef0123456789abcdef");
    let mut errors = std::collections::BTreeMap::<&'static str, u64>::new();
    let (mut sent, mut failed, mut stopped_early, mut checked) = (0u64, 0u64, false, false);
    let start = Instant::now();
    while sent < ops as u64 {
        let result = sink.tell(Message::single("event", payload.clone())).await;
        sent += 1;
        if let Err(e) = result {
            failed += 1;
            if failed <= TELL_ERRORS_SHOWN as u64 {
                eprintln!("remote_tell: tell {sent} failed ({}): {e}", e.kind());
            }
            *errors.entry(e.kind().as_str()).or_default() += 1;
        }
        if !checked && sent % 1024 == 0 && start.elapsed() >= TELL_EARLY_CHECK {
            checked = true;
            if (sent as f64) / start.elapsed().as_secs_f64() < TELL_MIN_RATE {
                stopped_early = true;
                break;
            }
        }
    }
    let handled = handled_since(sink, before, sent).await;
    let elapsed = start.elapsed();
    if failed > 0 {
        eprintln!("remote_tell: {failed} tells failed, by kind: {errors:?}");
    }
    let lost = sent.saturating_sub(handled).max(failed);
    let rate = sent as f64 / elapsed.as_secs_f64();
    println!(
        "{{\"scenario\":\"remote_tell\",{block},\"ops\":{sent},\"ops_per_s\":{rate:.0},\"handled\":{handled},\"errors\":{failed},\"lost\":{lost},\"stopped_early\":{stopped_early}}}",
    );
    rate
}

/// How many messages the sink handled since its count was `before`, once `sent` should all be in.
///
/// One count ask suffices when the transport keeps one sender's tells and asks in order (then the
/// count is answered after every tell before it). If the count is short, asks again every 20 ms
/// until it stops growing for 200 ms (at most 5 s), and says so on standard error: a count that
/// catches up later means the ask overtook tells; one that never does means tells were lost.
async fn handled_since(sink: &ActorRef, before: u64, sent: u64) -> u64 {
    let mut handled = sink_count(sink).await - before;
    if handled >= sent {
        return handled;
    }
    let first = handled;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut unchanged = 0;
    while handled < sent && unchanged < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = sink_count(sink).await - before;
        unchanged = if now == handled { unchanged + 1 } else { 0 };
        handled = now;
    }
    eprintln!(
        "remote_tell: the count ask answered {first} of {sent} handled; \
         {handled} after asking again"
    );
    handled
}

/// Returns the items per second.
async fn stream(block: Block, streamer: &ActorRef, items: usize) -> f64 {
    let start = Instant::now();
    let mut s = streamer
        .ask_stream(Message::single("stream", items.to_string()))
        .await
        .expect("remote stream");
    let mut n = 0usize;
    while let Some(item) = s.next().await {
        std::hint::black_box(item.expect("stream item"));
        n += 1;
    }
    let elapsed = start.elapsed();
    assert_eq!(n, items, "every item arrives");
    let rate = items as f64 / elapsed.as_secs_f64();
    println!(
        "{{\"scenario\":\"remote_stream\",{block},\"items\":{items},\"items_per_s\":{rate:.0}}}"
    );
    rate
}

/// Spawns the server's actors and starts the [`floor`] echo (and in a QUIC block the plain quinn
/// one) on the current runtime.
async fn serve(server: &ActorSystem, block: Block) -> Served {
    let public = SpawnOptions::new().public(true);
    server
        .spawn_with(Echo, "echo", public.clone())
        .await
        .expect("spawn echo");
    server
        .spawn_with(Sink(0), "sink", public.clone().mailbox_capacity(4096))
        .await
        .expect("spawn sink");
    server
        .spawn_with(Streamer, "streamer", public)
        .await
        .expect("spawn streamer");
    Served {
        node: server.addr().expect("server serves"),
        floor: floor::serve().await,
        quic_floor: match block.kind {
            Kind::Http => None,
            #[cfg(feature = "quic")]
            Kind::Quic => Some(super::quic_floor::serve().await),
        },
        quic_proto_floor: match block.kind {
            Kind::Http => None,
            #[cfg(feature = "quic")]
            Kind::Quic => Some(super::quic_proto_floor::serve().await),
        },
    }
}

/// Runs the scenarios of `which` against `served`, in `block`.
async fn run_client(
    block: Block,
    client: &ActorSystem,
    served: Served,
    which: &str,
    ops: usize,
) -> Figures {
    let at = |name| Arc::new(client.remote_ref(served.node, name).expect("valid name"));
    let (echo, sink, streamer) = (at("echo"), at("sink"), at("streamer"));
    let pick = |default: usize| if ops == 0 { default } else { ops };
    let all = which == "remote";
    let ask = all || which == "remote_ask";
    let mut figures = Figures::default();
    if ask || which == "tcp_floor" {
        figures.ask_p50 = sequential(block, &echo, served, pick(50_000), ask).await;
    }
    if all || which == "remote_ask_concurrent" {
        figures.ask_concurrent = Some(ask_concurrent(block, &echo, pick(300_000)).await);
    }
    if all || which == "remote_tell" {
        figures.tell = Some(tell(block, &sink, pick(1_000_000)).await);
    }
    if all || which == "remote_stream" {
        figures.stream = Some(stream(block, &streamer, pick(500_000)).await);
    }
    figures
}

fn runtime(kind: &str) -> tokio::runtime::Runtime {
    match kind {
        "multi" => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
    }
    .expect("tokio runtime")
}

/// Runs `which` (`remote` for all: `tcp_floor`, `remote_ask`, `remote_ask_concurrent`,
/// `remote_tell`, `remote_stream`; `remote_ask` runs `tcp_floor` first) with `ops` operations (0:
/// the defaults), once per transport of `transports`, in that order, each block on fresh nodes
/// (and, with `--runtime process`, a fresh server process serving that transport). With `secret`,
/// each transport's block runs twice: plaintext, then with both nodes built with the secret. With
/// both HTTP and QUIC, then prints `compare` (with `secret`: once for the plaintext blocks, once for
/// the TLS ones); with `secret`, then `compare_tls`. A block that panics is reported on standard
/// error and skipped; the process then exits with status 1 after the comparisons.
///
/// `which == "__serve"` is the server process of `--runtime process` (one transport; `secret`:
/// serve with it).
///
/// `runtime`: `split` (default) gives each system its own single-threaded Tokio runtime on its own OS
/// thread, as two nodes on two cores would run; `multi` and `current` run both systems on one shared
/// runtime of that kind.
pub(crate) fn main(
    which: &str,
    ops: usize,
    runtime_kind: &str,
    transports: &[Kind],
    secret: Option<&str>,
) {
    let _ = RUNTIME.set(runtime_kind.to_owned());
    if let Some(secret) = secret {
        let _ = SECRET.set(secret.to_owned());
    }
    if which == "__serve" {
        let [kind] = transports else {
            panic!("the server process serves one transport, not {transports:?}");
        };
        return serve_process(Block {
            kind: *kind,
            tls: Some(secret.is_some()),
        });
    }
    if secret.is_some() && std::env::var_os(pulsing::SECRET_ENV).is_some() {
        eprintln!(
            "bench: unset {} to run with --secret: the plaintext blocks would use it",
            pulsing::SECRET_ENV
        );
        std::process::exit(2);
    }
    let modes: &[Option<bool>] = match secret {
        Some(_) => &[Some(false), Some(true)],
        None => &[None],
    };
    let mut blocks: Vec<(Block, Figures)> = Vec::new();
    let mut failed = false;
    for &kind in transports {
        for &tls in modes {
            let block = Block { kind, tls };
            match std::panic::catch_unwind(|| run_block(block, which, ops, runtime_kind)) {
                Ok(figures) => blocks.push((block, figures)),
                Err(_) => {
                    failed = true;
                    eprintln!(
                        "bench: the {} block failed (the panic above); the others go on",
                        block.describe()
                    );
                }
            }
        }
    }
    #[cfg(feature = "quic")]
    for &tls in modes {
        compare(&blocks, tls);
    }
    compare_tls(&blocks);
    if failed {
        std::process::exit(1);
    }
}

/// One block: every scenario of `which`, on two fresh nodes.
fn run_block(block: Block, which: &str, ops: usize, runtime_kind: &str) -> Figures {
    if runtime_kind == "process" {
        return client_process(block, which, ops);
    }
    if runtime_kind != "split" {
        return runtime(runtime_kind).block_on(async {
            let server = node(block).await;
            let client = node(block).await;
            let served = serve(&server, block).await;
            let (c, w) = (client.clone(), which.to_owned());
            let figures = tokio::spawn(async move { run_client(block, &c, served, &w, ops).await })
                .await
                .expect("bench task");
            client.shutdown().await;
            server.shutdown().await;
            figures
        });
    }
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        runtime("current").block_on(async {
            let server = node(block).await;
            addr_tx
                .send(serve(&server, block).await)
                .expect("bench main thread waits");
            let _ = stop_rx.await;
            server.shutdown().await;
        });
    });
    let served = addr_rx.recv().expect("server started");
    let figures = runtime("current").block_on(async {
        let client = node(block).await;
        let figures = run_client(block, &client, served, which, ops).await;
        client.shutdown().await;
        figures
    });
    let _ = stop_tx.send(());
    server.join().expect("server thread");
    figures
}

/// The figures of `block`, if it ran (and did not fail).
fn figures_of(blocks: &[(Block, Figures)], block: Block) -> Option<Figures> {
    blocks.iter().find(|(b, _)| *b == block).map(|(_, f)| *f)
}

/// `"remote_ask_p50":..,"remote_ask_concurrent":..,"remote_tell":..,"remote_stream":..`: each of
/// `over`'s figures over `base`'s, of the scenarios both ran.
fn ratios(base: Figures, over: Figures) -> String {
    let ratios: Vec<String> = [
        ("remote_ask_p50", base.ask_p50, over.ask_p50),
        (
            "remote_ask_concurrent",
            base.ask_concurrent,
            over.ask_concurrent,
        ),
        ("remote_tell", base.tell, over.tell),
        ("remote_stream", base.stream, over.stream),
    ]
    .into_iter()
    .filter_map(|(name, b, o)| Some(format!("\"{name}\":{:.2}", o? / b?)))
    .collect();
    ratios.join(",")
}

/// The `compare` line of the blocks with `tls`: each of QUIC's figures over HTTP's (for
/// `remote_ask_p50`, below 1 is QUIC faster; for the rates, above 1), of the scenarios both blocks
/// ran; nothing unless both ran.
#[cfg(feature = "quic")]
fn compare(blocks: &[(Block, Figures)], tls: Option<bool>) {
    let of = |kind| figures_of(blocks, Block { kind, tls });
    let (Some(http), Some(quic)) = (of(Kind::Http), of(Kind::Quic)) else {
        return;
    };
    let tls = tls.map_or(String::new(), |tls| format!(",\"tls\":{tls}"));
    println!(
        "{{\"scenario\":\"compare\",\"runtime\":\"{}\"{tls},\"quic_vs_http\":{{{}}}}}",
        rt_name(),
        ratios(http, quic)
    );
}

/// The `compare_tls` line, if any TLS block ran: per transport with both blocks, its TLS figures
/// over its plaintext ones (`"http":{..}`, as [`ratios`]); then per TLS block,
/// `tls_<transport>_ask_p50_vs_plain_http`, its `remote_ask` p50 over the plaintext HTTP block's.
fn compare_tls(blocks: &[(Block, Figures)]) {
    let tls: Vec<(Kind, Figures)> = blocks
        .iter()
        .filter(|(b, _)| b.tls == Some(true))
        .map(|(b, f)| (b.kind, *f))
        .collect();
    if tls.is_empty() {
        return;
    }
    let plain = |kind| {
        figures_of(
            blocks,
            Block {
                kind,
                tls: Some(false),
            },
        )
    };
    let mut fields = String::new();
    for &(kind, figures) in &tls {
        if let Some(p) = plain(kind) {
            fields += &format!(",\"{}\":{{{}}}", kind.name(), ratios(p, figures));
        }
    }
    let plain_http_p50 = plain(Kind::Http).and_then(|f| f.ask_p50);
    for &(kind, figures) in &tls {
        if let (Some(t), Some(h)) = (figures.ask_p50, plain_http_p50) {
            fields += &format!(
                ",\"tls_{}_ask_p50_vs_plain_http\":{:.2}",
                kind.name(),
                t / h
            );
        }
    }
    println!(
        "{{\"scenario\":\"compare_tls\",\"runtime\":\"{}\"{fields}}}",
        rt_name()
    );
}
