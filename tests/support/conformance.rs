//! The harness of the transport conformance suite (`tests/transport_conformance.rs`): the probe
//! actor every test talks to, nodes on 127.0.0.1 port 0 (in the test's runtime, or on a thread of
//! their own that a test can freeze or crash), peers that refuse or never answer, and assertions on
//! an error's kind, delivery and timing.
//!
//! Nothing here knows a wire format or a transport: each node's transport comes from a [`Factory`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulsing::{
    Actor, ActorError, ActorRef, ActorSystem, ActorSystemBuilder, Context, Delivery, ErrorKind,
    MemberState, Message, MessageStream, PulsingError, SpawnOptions, Transport,
};
use tokio::sync::Semaphore;

/// Makes a fresh transport whose largest accepted message is the given number of bytes.
pub(crate) type Factory = fn(usize) -> Arc<dyn Transport>;

/// The message size limit every transport of the suite is built with.
pub(crate) const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Every test body runs under this bound, so a hang shows as a failure.
const BOUND: Duration = Duration::from_secs(20);
/// A refused connection fails at once: well within this.
pub(crate) const REFUSED_WITHIN: Duration = Duration::from_secs(1);
/// A call to a peer that accepts and never answers fails within this, not by the 30 s ask timeout.
pub(crate) const SILENT_WITHIN: Duration = Duration::from_secs(5);
/// A call in flight to a member that crashed or hung fails within this of the fault (the membership
/// declares a silent member down in about 4 s on loopback).
pub(crate) const DOWN_WITHIN: Duration = Duration::from_secs(8);
/// Slack for a loaded machine on top of a deadline a test sets itself.
pub(crate) const SLACK: Duration = Duration::from_millis(1500);
/// How long a node drains its actors at shutdown, unless a test says otherwise.
pub(crate) const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(300);
/// The `detail` a failing probe attaches to its errors: several lines, as a traceback.
pub(crate) const DETAIL: &str =
    "Traceback (most recent call last):\n  File \"probe.py\", line 1\nProbeError";

/// Runs one test body within [`BOUND`] and reports how long it took.
pub(crate) async fn run<F: Future<Output = ()>>(name: &str, body: F) {
    let start = Instant::now();
    if tokio::time::timeout(BOUND, body).await.is_err() {
        panic!("{name}: exceeded its time bound of {BOUND:?}");
    }
    eprintln!("{name}: passed in {:?}", start.elapsed());
}

// --- the probe actor --------------------------------------------------------------------------------

/// What a [`Probe`] saw, shared with the test (the serving node runs in the test's process).
pub(crate) struct Seen {
    /// Messages handled, of any type.
    handled: AtomicUsize,
    /// The numbers of the `record` messages, in the order handled.
    records: Mutex<Vec<u64>>,
    /// One permit per `hold` or `sleep` handler that started.
    entered: Semaphore,
    /// Permits for `hold` handlers to finish.
    gate: Semaphore,
    /// Set once the producer of an `endless` stream saw its consumer gone.
    pub(crate) producer_stopped: AtomicBool,
}

impl Seen {
    fn new() -> Arc<Seen> {
        Arc::new(Seen {
            handled: AtomicUsize::new(0),
            records: Mutex::new(Vec::new()),
            entered: Semaphore::new(0),
            gate: Semaphore::new(0),
            producer_stopped: AtomicBool::new(false),
        })
    }

    pub(crate) fn handled(&self) -> usize {
        self.handled.load(Ordering::SeqCst)
    }

    /// Waits until one more `hold` or `sleep` handler has started.
    pub(crate) async fn wait_entered(&self) {
        self.entered.acquire().await.expect("never closed").forget();
    }

    /// Lets `n` more `hold` handlers finish.
    pub(crate) fn open(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

/// The actor every test talks to. By `msg_type`:
///
/// | type | payload | reply |
/// |---|---|---|
/// | `record` | a number (decimal) | records it; `recorded` with the count of records so far |
/// | `log` | — | `log`: every recorded number, 8 bytes little-endian each, in handling order |
/// | `stream` | `n` | a stream of `n` items `item` with payloads `0`..`n-1`, then its end |
/// | `stream_fail` | `n` | `n` items, then the error `ProbeError: stream broke` with [`DETAIL`] |
/// | `stream_forever` | — | one item, then nothing (never ends) |
/// | `endless` | — | items until the consumer is gone, then sets `producer_stopped` |
/// | `fail` | — | the error `ProbeError: fail requested` with [`DETAIL`] |
/// | `panic` | — | panics |
/// | `sleep` | `ms[ tag]` | waits `ms`, then echoes |
/// | `hold` | — | waits for a gate permit, then echoes |
/// | `grow` | `n` | `grown` with `n` bytes |
/// | anything else | any | echoed: the same type and payload |
struct Probe(Arc<Seen>);

fn number(payload: &[u8]) -> Result<u64, ActorError> {
    let text = std::str::from_utf8(payload)?;
    let first = text.split(' ').next().unwrap_or_default();
    Ok(first.parse()?)
}

fn probe_error(message: &str) -> ActorError {
    ActorError::with_type("ProbeError", message).with_detail(DETAIL)
}

impl Actor for Probe {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        let seen = &self.0;
        seen.handled.fetch_add(1, Ordering::SeqCst);
        let (msg_type, payload) = msg.into_single()?;
        match msg_type.as_str() {
            "record" => {
                let n = number(&payload)?;
                let mut records = seen.records.lock().unwrap();
                records.push(n);
                Ok(Message::single("recorded", records.len().to_string()))
            }
            "log" => {
                let records = seen.records.lock().unwrap();
                let bytes: Vec<u8> = records.iter().flat_map(|n| n.to_le_bytes()).collect();
                Ok(Message::single("log", bytes))
            }
            "stream" | "stream_fail" => {
                let n = number(&payload)?;
                let fails = msg_type == "stream_fail";
                let (tx, stream) = MessageStream::channel(8);
                tokio::spawn(async move {
                    for i in 0..n {
                        if tx
                            .send(Message::single("item", i.to_string()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    if fails {
                        tx.fail(probe_error("stream broke")).await;
                    } else {
                        tx.end().await;
                    }
                });
                Ok(Message::stream(stream))
            }
            "stream_forever" => {
                let (tx, stream) = MessageStream::channel(8);
                tokio::spawn(async move {
                    let _ = tx.send(Message::single("item", "0")).await;
                    // Never ends; the test cuts the stream.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    drop(tx);
                });
                Ok(Message::stream(stream))
            }
            "endless" => {
                let (tx, stream) = MessageStream::channel(8);
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut i = 0u64;
                    while tx
                        .send(Message::single("item", i.to_string()))
                        .await
                        .is_ok()
                    {
                        i += 1;
                    }
                    seen.producer_stopped.store(true, Ordering::SeqCst);
                });
                Ok(Message::stream(stream))
            }
            "fail" => Err(probe_error("fail requested")),
            "panic" => panic!("panic requested"),
            "sleep" => {
                seen.entered.add_permits(1);
                tokio::time::sleep(Duration::from_millis(number(&payload)?)).await;
                Ok(Message::single(msg_type, payload))
            }
            "hold" => {
                seen.entered.add_permits(1);
                seen.gate.acquire().await.expect("never closed").forget();
                Ok(Message::single(msg_type, payload))
            }
            "grow" => {
                let n = usize::try_from(number(&payload)?)?;
                Ok(Message::single("grown", vec![0x5a; n]))
            }
            _ => Ok(Message::single(msg_type, payload)),
        }
    }
}

pub(crate) fn public() -> SpawnOptions {
    SpawnOptions::new().public(true)
}

/// Spawns a [`Probe`] named `name` on `system`; returns what it sees.
pub(crate) async fn spawn_probe(system: &ActorSystem, name: &str, opts: SpawnOptions) -> Arc<Seen> {
    let seen = Seen::new();
    system
        .spawn_with(Probe(seen.clone()), name, opts)
        .await
        .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
    seen
}

// --- nodes --------------------------------------------------------------------------------------

/// The security of the suites over TLS: one cluster secret, the same for every node.
pub(crate) fn secured() -> pulsing::Security {
    let secret = pulsing::Secret::new("conformance secret").expect("a secret");
    pulsing::Security::new(vec![secret], vec![]).expect("security")
}

/// A standalone node on 127.0.0.1:0 with a transport from `make`, the default ask timeout (30 s) and
/// mailbox wait (5 s), and a short shutdown drain.
pub(crate) fn builder(make: Factory) -> ActorSystemBuilder {
    ActorSystem::builder()
        .addr("127.0.0.1:0")
        .transport_arc(make(MAX_MESSAGE_SIZE))
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
}

pub(crate) async fn node(make: Factory) -> ActorSystem {
    builder(make).build().await.expect("a node on 127.0.0.1:0")
}

/// A node serving one public [`Probe`] named `probe`.
pub(crate) struct Served {
    pub(crate) system: ActorSystem,
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Seen>,
}

pub(crate) async fn served(make: Factory) -> Served {
    served_by(builder(make)).await
}

pub(crate) async fn served_by(builder: ActorSystemBuilder) -> Served {
    let system = builder.build().await.expect("a node on 127.0.0.1:0");
    let seen = spawn_probe(&system, "probe", public()).await;
    let addr = system.addr().expect("serves");
    Served { system, addr, seen }
}

pub(crate) fn remote(me: &ActorSystem, at: SocketAddr, name: &str) -> ActorRef {
    let r = me.remote_ref(at, name).expect("a valid name");
    assert!(!r.is_local(), "{r:?} is remote");
    r
}

/// A port on 127.0.0.1 where nothing listens (it was free a moment ago).
pub(crate) fn dead_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("bound")
}

/// A node running on a thread and a single-thread runtime of its own, so a test can freeze it (its
/// runtime stops; the kernel still accepts connections and buffers bytes, as for a process stopped
/// with SIGSTOP) or crash it (its runtime is dropped with every task; the kernel closes its sockets,
/// as for `kill -9`). Dropping the handle crashes the node.
pub(crate) struct ForeignNode {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: Arc<Seen>,
    commands: tokio::sync::mpsc::UnboundedSender<Command>,
    /// Held while frozen; dropping it thaws the node.
    thaw: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

enum Command {
    /// Block the node's only thread until the sender of this channel is dropped.
    Freeze(std::sync::mpsc::Receiver<()>),
    /// Drop the node's runtime with everything in it, without shutting the system down.
    Crash,
}

impl ForeignNode {
    /// Starts a node serving a public [`Probe`] named `probe`; a cluster member joined through
    /// `seed` if one is given, else standalone.
    pub(crate) async fn start(make: Factory, seed: Option<SocketAddr>) -> ForeignNode {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (commands, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the foreign node");
            runtime.block_on(async move {
                let builder = match seed {
                    Some(seed) => pulsing::system_builder()
                        .addr("127.0.0.1:0")
                        .seeds([seed.to_string()])
                        .transport_arc(make(MAX_MESSAGE_SIZE))
                        .shutdown_timeout(SHUTDOWN_TIMEOUT),
                    None => builder(make),
                };
                let Served { system, addr, seen } = served_by(builder).await;
                let _ = ready_tx.send((addr, seen));
                while let Some(command) = rx.recv().await {
                    match command {
                        Command::Freeze(thaw) => {
                            // Blocks the runtime's only thread: no task of this node runs.
                            let _ = thaw.recv();
                        }
                        Command::Crash => break,
                    }
                }
                // No shutdown: the system goes down with its runtime, as a killed process does.
                drop(system);
            });
            runtime.shutdown_background();
        });
        let (addr, seen) = tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("the foreign node starts within 10 s")
            .expect("the foreign node starts");
        ForeignNode {
            addr,
            seen,
            commands,
            thaw: Mutex::new(None),
            thread: Some(thread),
        }
    }

    pub(crate) fn freeze(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        *self.thaw.lock().unwrap() = Some(tx);
        self.commands
            .send(Command::Freeze(rx))
            .expect("the foreign node runs");
    }

    pub(crate) fn crash(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        drop(self.thaw.lock().unwrap().take());
        let _ = self.commands.send(Command::Crash);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ForeignNode {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// A seed node (cluster membership on) with a transport from `make`.
pub(crate) async fn seed_node(make: Factory) -> ActorSystem {
    pulsing::system_builder()
        .addr("127.0.0.1:0")
        .transport_arc(make(MAX_MESSAGE_SIZE))
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .build()
        .await
        .expect("a seed node")
}

/// Polls `cond` every 50 ms until it holds; panics after `limit`.
pub(crate) async fn eventually(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// Accepts connections (the kernel completes the handshake) and never reads or writes.
pub(crate) async fn silent_listener() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("bound");
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, holder)
}

/// A cluster of this test's node (the seed) and a foreign node `b` that joined it, with an ask from
/// here in `b`'s handler.
pub(crate) async fn cluster_with_call_in_flight(
    make: Factory,
) -> (
    ActorSystem,
    ForeignNode,
    tokio::task::JoinHandle<Result<Message, PulsingError>>,
) {
    let a = seed_node(make).await;
    let b = ForeignNode::start(make, a.addr()).await;
    let b_addr = b.addr;
    eventually("a sees b alive", Duration::from_secs(10), || {
        a.members()
            .iter()
            .any(|m| m.addr == b_addr && m.state == MemberState::Alive)
    })
    .await;
    let to = remote(&a, b.addr, "probe");
    single(
        "before the fault",
        to.ask(Message::single("ping", "warm")).await,
    );
    let in_flight = tokio::spawn(async move { to.ask(Message::single("hold", "")).await });
    b.seen.wait_entered().await;
    (a, b, in_flight)
}

// --- assertions ---------------------------------------------------------------------------------

/// Awaits `fut`, failing the test if it takes `within` or longer; returns its output and duration.
pub(crate) async fn ends_within<F: Future>(
    what: &str,
    within: Duration,
    fut: F,
) -> (F::Output, Duration) {
    let start = Instant::now();
    match tokio::time::timeout(within, fut).await {
        Ok(out) => (out, start.elapsed()),
        Err(_) => panic!("{what}: did not end within {within:?}"),
    }
}

/// The error of `r`, which must have `kind` and `delivery`.
#[track_caller]
pub(crate) fn failed<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, PulsingError>,
    kind: ErrorKind,
    delivery: Delivery,
) -> PulsingError {
    let e = match r {
        Ok(v) => panic!("{what}: expected a {kind} error, got {v:?}"),
        Err(e) => e,
    };
    assert_eq!(e.kind(), kind, "{what}: kind of {e:?}");
    assert_eq!(e.delivery(), delivery, "{what}: delivery of {e:?}");
    e
}

/// `(msg_type, payload)` of a single reply.
#[track_caller]
pub(crate) fn single(what: &str, r: Result<Message, PulsingError>) -> (String, Vec<u8>) {
    let m = r.unwrap_or_else(|e| panic!("{what}: {e:?}"));
    let (t, p) = m.into_single().unwrap_or_else(|e| panic!("{what}: {e}"));
    (t, p.to_vec())
}

pub(crate) fn text(payload: &[u8]) -> String {
    String::from_utf8_lossy(payload).into_owned()
}

/// The numbers in a `log` reply.
pub(crate) fn records(what: &str, r: Result<Message, PulsingError>) -> Vec<u64> {
    let (t, p) = single(what, r);
    assert_eq!(t, "log", "{what}");
    assert_eq!(p.len() % 8, 0, "{what}: whole records");
    p.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

pub(crate) fn record(n: u64) -> Message {
    Message::single("record", n.to_string())
}

pub(crate) fn log() -> Message {
    Message::single("log", "")
}
