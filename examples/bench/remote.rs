//! The `remote` scenarios of the bench: two systems in one process over the HTTP transport.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsing::http::{HttpConfig, HttpTransport};
use pulsing::{ActorRef, ActorSystem, Message, MessageStream, SpawnOptions};

use super::{percentile, tell_and_count, Echo, Sink};

/// The `--runtime` of this run, printed in every JSON line.
static RUNTIME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn rt_name() -> &'static str {
    RUNTIME.get().map_or("split", String::as_str)
}

/// Asks in flight for `remote_ask_concurrent`.
const IN_FLIGHT: usize = 64;

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

/// A node; `PULSING_BENCH_CONNECTIONS=n` sets the client's HTTP/2 connections per peer.
async fn node() -> ActorSystem {
    let mut config = HttpConfig::default();
    if let Some(n) = std::env::var("PULSING_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config = config.connections_per_peer(n);
    }
    ActorSystem::builder()
        .addr("127.0.0.1:0")
        .transport(HttpTransport::new(config))
        .mailbox_capacity(4096)
        .build()
        .await
        .expect("system with the HTTP transport")
}

fn report(scenario: &str, ops: usize, total: Duration, lat: &mut [Duration]) {
    lat.sort_unstable();
    println!(
        "{{\"scenario\":\"{scenario}\",\"transport\":\"http\",\"runtime\":\"{rt}\",\"ops\":{ops},\"ops_per_s\":{:.0},\"p50_us\":{:.3},\"p99_us\":{:.3}}}",
        ops as f64 / total.as_secs_f64(),
        percentile(lat, 0.50),
        percentile(lat, 0.99),
        rt = rt_name(),
    );
}

async fn ask_sequential(echo: &ActorRef, ops: usize) {
    let warmup = ops / 10;
    let payload = bytes::Bytes::from_static(b"ping");
    let mut lat = Vec::with_capacity(ops);
    let mut start = Instant::now();
    for i in 0..ops + warmup {
        if i == warmup {
            start = Instant::now();
        }
        let t = Instant::now();
        let reply = echo
            .ask(Message::single("ping", payload.clone()))
            .await
            .expect("remote ask");
        let d = t.elapsed();
        std::hint::black_box(reply);
        if i >= warmup {
            lat.push(d);
        }
    }
    report("remote_ask", ops, start.elapsed(), &mut lat);
}

async fn ask_concurrent(echo: &ActorRef, ops: usize) {
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
    report("remote_ask_concurrent", ops, start.elapsed(), &mut lat);
}

async fn tell(sink: &ActorRef, ops: usize) {
    let elapsed = tell_and_count(sink, ops).await;
    println!(
        "{{\"scenario\":\"remote_tell\",\"transport\":\"http\",\"runtime\":\"{rt}\",\"ops\":{ops},\"ops_per_s\":{:.0}}}",
        ops as f64 / elapsed.as_secs_f64(),
        rt = rt_name(),
    );
}

async fn stream(streamer: &ActorRef, items: usize) {
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
    println!(
        "{{\"scenario\":\"remote_stream\",\"transport\":\"http\",\"runtime\":\"{rt}\",\"items\":{items},\"items_per_s\":{:.0}}}",
        items as f64 / elapsed.as_secs_f64(),
        rt = rt_name(),
    );
}

async fn spawn_server_actors(server: &ActorSystem) {
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
}

async fn run_client(client: &ActorSystem, addr: SocketAddr, which: &str, ops: usize) {
    let at = |name| Arc::new(client.remote_ref(addr, name).expect("valid name"));
    let (echo, sink, streamer) = (at("echo"), at("sink"), at("streamer"));
    let pick = |default: usize| if ops == 0 { default } else { ops };
    let all = which == "remote";
    if all || which == "remote_ask" {
        ask_sequential(&echo, pick(50_000)).await;
    }
    if all || which == "remote_ask_concurrent" {
        ask_concurrent(&echo, pick(300_000)).await;
    }
    if all || which == "remote_tell" {
        tell(&sink, pick(50_000)).await;
    }
    if all || which == "remote_stream" {
        stream(&streamer, pick(500_000)).await;
    }
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

/// Runs `which` (`remote` for all four) with `ops` operations (0: the defaults).
///
/// `runtime`: `split` (default) gives each system its own single-threaded Tokio runtime on its own OS
/// thread, as two nodes on two cores would run; `multi` and `current` run both systems on one shared
/// runtime of that kind.
pub(crate) fn main(which: &str, ops: usize, runtime_kind: &str) {
    let _ = RUNTIME.set(runtime_kind.to_owned());
    if which == "__serve" {
        return serve_process();
    }
    if runtime_kind == "process" {
        return client_process(which, ops);
    }
    if runtime_kind != "split" {
        runtime(runtime_kind).block_on(async {
            let server = node().await;
            let client = node().await;
            spawn_server_actors(&server).await;
            let addr = server.addr().expect("server serves");
            let (c, w) = (client.clone(), which.to_owned());
            tokio::spawn(async move { run_client(&c, addr, &w, ops).await })
                .await
                .expect("bench task");
            client.shutdown().await;
            server.shutdown().await;
        });
        return;
    }
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        runtime("current").block_on(async {
            let server = node().await;
            spawn_server_actors(&server).await;
            addr_tx
                .send(server.addr().expect("server serves"))
                .expect("bench main thread waits");
            let _ = stop_rx.await;
            server.shutdown().await;
        });
    });
    let addr = addr_rx.recv().expect("server started");
    runtime("current").block_on(async {
        let client = node().await;
        run_client(&client, addr, which, ops).await;
        client.shutdown().await;
    });
    let _ = stop_tx.send(());
    server.join().expect("server thread");
}

/// The server half of `--runtime process`: a node on a multi-thread runtime, in its own OS process;
/// prints its address, serves until standard input closes.
fn serve_process() {
    runtime("multi").block_on(async {
        let server = node().await;
        spawn_server_actors(&server).await;
        println!("{}", server.addr().expect("server serves"));
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .read_line(&mut sink)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
        })
        .await;
        server.shutdown().await;
    });
}

/// `--runtime process`: two OS processes, each with a multi-thread runtime, as two nodes run.
fn client_process(which: &str, ops: usize) {
    use std::io::BufRead as _;
    let exe = std::env::current_exe().expect("own path");
    let mut child = std::process::Command::new(exe)
        .args([
            "--scenario",
            "__serve",
            "--transport",
            "http",
            "--runtime",
            "multi",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the server process");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("server address");
    let addr: SocketAddr = line.trim().parse().expect("server prints its address");
    runtime("multi").block_on(async {
        let client = node().await;
        let (c, w) = (client.clone(), which.to_owned());
        tokio::spawn(async move { run_client(&c, addr, &w, ops).await })
            .await
            .expect("bench task");
        client.shutdown().await;
    });
    drop(child.stdin.take());
    let _ = child.wait();
}
