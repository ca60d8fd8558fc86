//! Benchmarks, one JSON object per line.
//!
//! ```text
//! cargo run --release --example bench -- --scenario local [--ops N] [--runtime multi|current]
//! cargo run --release --example bench -- --scenario remote --transport http [--ops N]
//!     [--runtime split|process|multi|current]
//! cargo run --release --example bench --features quic -- --scenario remote --transport http,quic
//!     [--secret S]
//! ```
//!
//! `--scenario` also takes one part of `local` or `remote` (`local_ask`, `remote_tell`, ...).
//! `--ops N` sets the operations of every scenario run (default: per scenario, below).
//! `--no-floors` runs `remote_ask` without its interleaved floors: for profiling the ask alone (its
//! instructions per round trip: the difference of two callgrind runs with different `--ops`).
//! `--transport` (remote only; default `http`) takes `http`, `quic` (needs `--features quic`) or a
//! comma-separated list: each transport runs every remote scenario in a block of its own, on fresh
//! nodes, one block after the other; every line says its `"transport"`.
//! `--secret S` (remote only) runs each transport's block twice: first as without it (plaintext),
//! then again on fresh nodes both built with `.secret(S)` (mutual TLS on every link; with
//! `--runtime process` the server process gets `--secret S` too). Every line then also says
//! `"tls":false` or `"tls":true`; without `--secret` the lines have no `"tls"` field. The
//! environment variable `PULSING_SECRET` must be unset with `--secret` (the plaintext block would
//! pick it up); without `--secret` it applies to every block, as to any system.
//!
//! Scenarios:
//! - `local`: `local_ask` (sequential asks to an echo actor in the same process: ops/s, p50, p99;
//!   1,000,000) and `local_tell` (tells as fast as one sender can push them, handled by one actor:
//!   msgs/s; 5,000,000).
//! - `remote` (`--transport http`): two actor systems, each with its own HTTP transport on 127.0.0.1
//!   (a real TCP connection over loopback, HTTP/2 from the caller). By default (`--runtime split`)
//!   each system runs on its own single-threaded Tokio runtime on its own OS thread, as two nodes on
//!   two cores would; `--runtime multi|current` shares one runtime; `--runtime process` runs the
//!   serving node in a second OS process, each process on a multi-thread runtime (as two nodes
//!   deploy). In order:
//!   - `tcp_floor` (50,000): a plain Tokio TCP ping-pong (`TCP_NODELAY` both ends) between the same
//!     two runtimes or processes, of length-prefixed frames holding the msgpack bodies `remote_ask`
//!     sends (33 bytes) and gets back (41 bytes); measured as `remote_ask` is: ops/s, p50, p99.
//!   - `remote_ask` (sequential asks, 50,000: ops/s, p50, p99, and `vs_tcp_floor`, its p50 over
//!     the floor's). It runs with `tcp_floor`, the two interleaved in rounds of 1,000 operations so
//!     that both meet the same scheduling (on 2 cores a ping-pong is several times slower when its
//!     ends sit on different cores, and the scheduler moves them); the ops/s of both are operations
//!     over the sum of their latencies.
//!   - `remote_ask_concurrent` (64 asks in flight, 300,000: ops/s, p50, p99).
//!   - `remote_tell` (1,000,000 tells of 32 bytes by one sender, each awaited as far as `tell`
//!     waits, timed until a final count ask shows the actor handled the last one: msgs/s, `handled`,
//!     `errors` (each failed tell's kind on stderr, the first few), `lost` (sent minus handled, and at
//!     least the failed tells; 0 expected)). If after 2 s fewer than 100,000 a second were sent, it
//!     stops there: `ops` is what was sent and `"stopped_early":true`.
//!   - `remote_stream` (one streamed reply of 500,000 items: items/s).
//! - `remote` with `--transport quic`: the same, each system with a `QuicTransport` (links ride
//!   QUIC streams over UDP on 127.0.0.1; the `tcp_floor` is still TCP, measured in that block's
//!   rounds). The block also runs `quic_floor` (as many operations as `remote_ask`, in the same
//!   rounds): a plain quinn ping-pong of the floor's frames on one bidirectional stream between the
//!   same two runtimes, with quinn's own endpoint and socket, its default settings and a
//!   self-signed certificate, nothing of Pulsing on its path; it prints `vs_tcp_floor`, and that
//!   block's `remote_ask` prints `vs_quic_floor` too, so what is quinn's and what is Pulsing's reads
//!   off one run. And `quic_proto_floor`, the same ping-pong with each side one task driving
//!   quinn-proto itself (socket, endpoint, connection and stream in one task, none of quinn's
//!   driver tasks): what a QUIC link driven by Pulsing could reach (`vs_tcp_floor`; `remote_ask`
//!   prints `vs_quic_proto_floor`). With `--runtime process` the server process serves the same transport. When both
//!   `http` and `quic` ran, a last line `{"scenario":"compare","quic_vs_http":{..}}` gives QUIC's
//!   figures over HTTP's: `remote_ask_p50` (below 1: QUIC is faster), `remote_ask_concurrent`,
//!   `remote_tell` and `remote_stream` (rates: above 1, QUIC is faster). With `--secret`, one
//!   such line for the plaintext blocks (`"tls":false`) and one for the TLS blocks (`"tls":true`).
//! - `remote` with `--secret S`: the `tcp_floor` of a TLS block is still plain TCP (its
//!   `vs_tcp_floor` includes the cost of TLS). After every block (and `compare`), a last line
//!   `{"scenario":"compare_tls","http":{..},"quic":{..},"tls_http_ask_p50_vs_plain_http":..}` gives,
//!   per transport, its TLS figures over its plaintext ones (`remote_ask_p50`: above 1, TLS is
//!   slower; `remote_ask_concurrent`, `remote_tell`, `remote_stream`: below 1, TLS is slower), and,
//!   per transport, `tls_<transport>_ask_p50_vs_plain_http`: its TLS `remote_ask` p50 over the
//!   plaintext HTTP p50 of the same run (the targets on a 2-core machine: that ≤ 1.3; TLS
//!   `remote_ask_concurrent` ≥ 0.7 × plaintext; TLS `remote_tell` ≥ 1,000,000 msgs/s). A block that
//!   fails (e.g. a transport that cannot use a secret) prints its error on standard error; the other
//!   blocks and the comparisons still run, and the bench exits with status 1.
//!
//! Latencies are measured per operation with `Instant::now()` around each ask (the two clock reads,
//! ~40 ns, are included in the figures). The first 10% of operations are a warm-up and not counted.

use std::time::{Duration, Instant};

use pulsing::{Actor, ActorError, ActorSystem, Context, Message, SpawnOptions};

struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        Ok(msg)
    }
}

/// Counts told messages; answers "count" with the total so far.
struct Sink(u64);

impl Actor for Sink {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        if msg.msg_type() == Some("count") {
            return Ok(Message::single("count", self.0.to_string()));
        }
        self.0 += 1;
        Ok(Message::single("", bytes::Bytes::new()))
    }
}

struct Args {
    scenario: String,
    ops: usize,
    runtime: Option<String>,
    transport: String,
    secret: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        scenario: "local".into(),
        ops: 0,
        runtime: None,
        transport: "http".into(),
        secret: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--scenario" => args.scenario = val(),
            "--ops" => args.ops = val().parse().expect("--ops takes a number"),
            "--runtime" => args.runtime = Some(val()),
            "--transport" => args.transport = val(),
            "--secret" => args.secret = Some(val()),
            "--no-floors" => remote::NO_FLOORS.store(true, std::sync::atomic::Ordering::Relaxed),
            "-h" | "--help" => {
                eprintln!(
                    "usage: bench --scenario local|remote|<one of their parts> \
                     [--transport http|quic|http,quic] [--secret S] [--ops N] [--no-floors] \
                     [--runtime multi|current|split|process]; see the doc comment of \
                     examples/bench.rs"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}; see --help"),
        }
    }
    args
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_nanos() as f64 / 1000.0
}

async fn local_ask(system: &ActorSystem, ops: usize, runtime: &str) {
    let echo = system.spawn(Echo, "echo").await.expect("spawn");
    let warmup = ops / 10;
    let mut lat = Vec::with_capacity(ops);
    let payload = bytes::Bytes::from_static(b"ping");
    let start_all = Instant::now();
    let mut start_measured = start_all;
    for i in 0..ops + warmup {
        if i == warmup {
            start_measured = Instant::now();
        }
        let t = Instant::now();
        let reply = echo
            .ask(Message::single("ping", payload.clone()))
            .await
            .expect("ask");
        let d = t.elapsed();
        std::hint::black_box(reply);
        if i >= warmup {
            lat.push(d);
        }
    }
    let total = start_measured.elapsed();
    lat.sort_unstable();
    println!(
        "{{\"scenario\":\"local_ask\",\"runtime\":\"{runtime}\",\"ops\":{ops},\"ops_per_s\":{:.0},\"p50_us\":{:.3},\"p99_us\":{:.3}}}",
        ops as f64 / total.as_secs_f64(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
    );
}

/// Tells `ops` events to a [`Sink`] one after another, then asks it for its count (FIFO per sender:
/// once "count" is answered every event before it has been handled) and checks that none was lost.
/// Returns the time from the first tell to the count's reply.
async fn tell_and_count(sink: &pulsing::ActorRef, ops: usize) -> Duration {
    let payload = bytes::Bytes::from_static(b"event");
    let start = Instant::now();
    for _ in 0..ops {
        sink.tell(Message::single("event", payload.clone()))
            .await
            .expect("tell");
    }
    let reply = sink
        .ask(Message::single("count", bytes::Bytes::new()))
        .await
        .expect("count");
    let elapsed = start.elapsed();
    let handled: usize = std::str::from_utf8(reply.payload().expect("single"))
        .expect("utf8")
        .parse()
        .expect("count");
    assert_eq!(handled, ops, "every told message is handled");
    elapsed
}

async fn local_tell(system: &ActorSystem, ops: usize, runtime: &str) {
    let sink = system
        .spawn_with(Sink(0), "sink", SpawnOptions::new().mailbox_capacity(4096))
        .await
        .expect("spawn");
    let elapsed = tell_and_count(&sink, ops).await;
    println!(
        "{{\"scenario\":\"local_tell\",\"runtime\":\"{runtime}\",\"ops\":{ops},\"ops_per_s\":{:.0}}}",
        ops as f64 / elapsed.as_secs_f64(),
    );
}

#[path = "bench/floor.rs"]
mod floor;
#[cfg(feature = "quic")]
#[path = "bench/quic_floor.rs"]
mod quic_floor;
#[cfg(feature = "quic")]
#[path = "bench/quic_proto_floor.rs"]
mod quic_proto_floor;
#[path = "bench/remote.rs"]
mod remote;

fn main() {
    let args = parse_args();
    if args.scenario.starts_with("remote") || ["tcp_floor", "__serve"].contains(&&*args.scenario) {
        let transports = remote::parse_transports(&args.transport).unwrap_or_else(|e| {
            eprintln!("bench: {e}");
            std::process::exit(2);
        });
        let runtime = args.runtime.as_deref().unwrap_or("split");
        remote::main(
            &args.scenario,
            args.ops,
            runtime,
            &transports,
            args.secret.as_deref(),
        );
        return;
    }
    if args.secret.is_some() {
        eprintln!("bench: --secret is for the remote scenarios");
        std::process::exit(2);
    }
    let runtime = args.runtime.unwrap_or_else(|| "multi".into());
    let rt = match runtime.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
    }
    .expect("tokio runtime");
    rt.block_on(async {
        let system = ActorSystem::builder().build().await.expect("system");
        match args.scenario.as_str() {
            "local" | "local_ask" | "local_tell" => {
                // Run on a spawned task, as application code does under #[tokio::main].
                let s = system.clone();
                let runtime = runtime.clone();
                let ask_ops = if args.ops == 0 { 1_000_000 } else { args.ops };
                let tell_ops = if args.ops == 0 { 5_000_000 } else { args.ops };
                let which = args.scenario.clone();
                tokio::spawn(async move {
                    if which != "local_tell" {
                        local_ask(&s, ask_ops, &runtime).await;
                    }
                    if which != "local_ask" {
                        local_tell(&s, tell_ops, &runtime).await;
                    }
                })
                .await
                .expect("bench task");
            }
            other => {
                eprintln!("unknown scenario {other}; available: local, remote");
                std::process::exit(2);
            }
        }
        system.shutdown().await;
    });
}
