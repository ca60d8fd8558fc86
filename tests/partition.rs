//! A real network partition: three hosts of the test's own (network namespaces on one bridge,
//! `tests/support/netns.rs`), one node each. A, the seed, is this test's own system, run on a
//! thread inside A's namespace; B and C are `cluster_node` processes (`examples/cluster_node.rs`)
//! started with `ip netns exec`. C's link is cut (its bridge port set down: packets dropped,
//! sockets left open), then restored.
//!
//! Asks from A to C must fail with an error within 5 s of the cut, not hang until the ask timeout;
//! the membership then declares C down. Within 5 s of the link coming back asks to C succeed
//! again, and A and C see each other again (the membership rejoins, given longer).
//!
//! Built on Linux only. Where namespaces cannot be made (not root, no `ip`, `ip netns add`
//! refused) it prints `SKIPPED: partition test: <reason>` to stderr, past the harness's capture, and
//! passes.
#![cfg(all(feature = "http", feature = "cluster", target_os = "linux"))]

#[path = "support/netns.rs"]
mod netns;
#[path = "support/processes.rs"]
mod processes;
#[macro_use]
#[path = "support/transports.rs"]
mod transports;

use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use pulsing::{
    Actor, ActorError, ActorRef, ActorSystem, Context, MemberState, Message, PulsingError,
    SpawnOptions,
};

use netns::{Host, Lan};
use processes::{run_within, NodeProcess};
use transports::TransportKind;

/// Bound on the whole scenario (cluster forming, the cut, the heal).
const BOUND: Duration = Duration::from_secs(90);
const ASK_TIMEOUT: Duration = Duration::from_secs(30);
/// An ask to the cut node must fail within this (HTTP/2 keep-alive 1 s + 3 s; connect 3 s).
const FAIL_WITHIN: Duration = Duration::from_secs(5);
/// The membership declares a silent node down in about 4 s (`ClusterConfig`); slack for a busy
/// machine.
const DOWN_WITHIN: Duration = Duration::from_secs(15);
/// After the link returns, asks to C must succeed within this.
const RECOVER_WITHIN: Duration = Duration::from_secs(5);
/// After the link returns, A and C must see each other within this: down members are knocked on
/// every 5 s (`announce_down_interval`), then rejoin and sync.
const REJOIN_WITHIN: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(100);
/// Each ask while polling for the recovery is bounded by this.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Replies with what it receives: A's public actor, which C finds once it sees A.
struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        Ok(msg)
    }
}

/// Says, bypassing the test harness's capture so that it shows in a plain `cargo test` (and
/// `make test`), that the test did not run and why.
fn skip(reason: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: partition test: {reason}");
}

/// Starts `cluster_node --addr <host>:7000 --name <name> --seeds <seed>` inside `host`, off the
/// runtime's workers (it blocks until the node is ready, bounded by `READY_BOUND`).
async fn start_in(
    lan: &Lan,
    bin: &Path,
    host: &Host,
    name: &str,
    seed: SocketAddr,
    kind: TransportKind,
) -> NodeProcess {
    let addr = format!("{}:7000", host.ip);
    let (program, mut args) = lan.exec(host, bin);
    let seed = seed.to_string();
    args.extend(
        [
            "--addr",
            &addr,
            "--name",
            name,
            "--seeds",
            &seed,
            "--transport",
            kind.name(),
        ]
        .map(String::from),
    );
    let label = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        NodeProcess::start(&program, &label, &args)
    })
    .await
    .expect("the starting task")
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn echo(to: &ActorRef) -> Result<Message, PulsingError> {
    to.ask(Message::single("echo", "hello")).await
}

/// The address at which the node behind `via` finds `name` (`cluster_node`'s `find`), `None` if
/// it finds none or does not answer within [`PROBE_TIMEOUT`].
async fn seen_by(via: &ActorRef, name: &str) -> Option<SocketAddr> {
    let reply = via
        .ask_with_timeout(Message::single("find", name.to_owned()), PROBE_TIMEOUT)
        .await
        .ok()?;
    let (_, found) = reply.into_single().ok()?;
    std::str::from_utf8(&found).ok()?.parse().ok()
}

/// Where `system` finds `name`, `None` if nowhere or only locally.
async fn finds(system: &ActorSystem, name: &str) -> Option<SocketAddr> {
    system.find(name).await.and_then(|r| r.remote_addr())
}

/// The state of the member at `addr` in `system`'s view: `Alive` if any entry there is (a node
/// that rejoined under a renewed identity may sit beside its old, down entry), else the first
/// entry's, `None` if it is not a member.
fn state_of(system: &ActorSystem, addr: SocketAddr) -> Option<MemberState> {
    let states: Vec<_> = system
        .members()
        .into_iter()
        .filter(|m| m.addr == addr)
        .map(|m| m.state)
        .collect();
    if states.contains(&MemberState::Alive) {
        Some(MemberState::Alive)
    } else {
        states.into_iter().next()
    }
}

/// Polls `check` every [`POLL`] until it returns `Ok`; panics after `limit` with `what` and the
/// last thing `check` found missing. Returns the time it took.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        let missing = match check().await {
            Ok(()) => return start.elapsed(),
            Err(missing) => missing,
        };
        assert!(
            start.elapsed() < limit,
            "{what}: not within {limit:?}; still missing: {missing}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `Ok` if every condition holds, else the names of those that do not.
fn all(conditions: &[(&str, bool)]) -> Result<(), String> {
    let missing: Vec<&str> = conditions
        .iter()
        .filter(|(_, holds)| !holds)
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}

/// One ask to the cut node: it must fail, typed as unreachable, within [`FAIL_WITHIN`].
async fn fails_fast(what: &str, to: &ActorRef) -> Duration {
    let sent = Instant::now();
    let r = echo(to).await;
    failed_fast(what, r, sent.elapsed())
}

/// Checks that `r`, which took `took`, is a typed unreachable error within [`FAIL_WITHIN`].
fn failed_fast(what: &str, r: Result<Message, PulsingError>, took: Duration) -> Duration {
    let err = match r {
        Ok(reply) => panic!("{what}: the cut node answered: {reply:?}"),
        Err(e) => e,
    };
    eprintln!("partition: {what} failed in {took:?}: {err}");
    assert!(
        err.is_unreachable(),
        "{what}: a typed unreachable error: {err:?}"
    );
    assert!(
        took < FAIL_WITHIN,
        "{what}: failed after {took:?}, not within {FAIL_WITHIN:?}: {err}"
    );
    took
}

over_each_transport!(asks_to_a_node_cut_off_fail_fast_and_succeed_again_once_its_link_returns);

fn asks_to_a_node_cut_off_fail_fast_and_succeed_again_once_its_link_returns(kind: TransportKind) {
    let lan = match Lan::new(3) {
        Ok(lan) => lan,
        Err(reason) => return skip(&reason),
    };
    let bin = processes::example("cluster_node");
    let [host_a, host_b, host_c] = <[Host; 3]>::try_from(lan.hosts().to_vec()).expect("3 hosts");
    lan.run_in(&host_a, || {
        run_within(BOUND, async {
            let a = pulsing::system_builder()
                .addr(format!("{}:7000", host_a.ip))
                .transport_arc(kind.transport())
                .ask_timeout(ASK_TIMEOUT)
                .build()
                .await
                .expect("A, the seed");
            let a_addr = a.advertise_addr().expect("A serves");
            a.spawn_with(Echo, "part-a", SpawnOptions::new().public(true))
                .await
                .expect("spawn part-a");
            let b = start_in(&lan, &bin, &host_b, "part-b", a_addr, kind).await;
            let c = start_in(&lan, &bin, &host_c, "part-c", a_addr, kind).await;
            let to_b = a.remote_ref(b.addr, "part-b").expect("a valid name");
            let to_c = a.remote_ref(c.addr, "part-c").expect("a valid name");

            // The cluster forms: A finds C's actor there, C finds A's, C is alive in A's view.
            let formed = eventually("the cluster forms", Duration::from_secs(10), || async {
                all(&[
                    ("A finds part-c", finds(&a, "part-c").await == Some(c.addr)),
                    (
                        "C finds part-a",
                        seen_by(&to_c, "part-a").await == Some(a_addr),
                    ),
                    (
                        "B finds part-c",
                        seen_by(&to_b, "part-c").await == Some(c.addr),
                    ),
                    (
                        "C alive at A",
                        state_of(&a, c.addr) == Some(MemberState::Alive),
                    ),
                ])
            })
            .await;
            eprintln!("partition: the cluster formed {formed:?} after C was ready");
            let found = a.find("part-c").await.expect("A finds part-c");
            echo(&found).await.expect("C answers A before the cut");

            // One ask in flight as the link goes (C's handler spins 1.5 s, the cut comes 300 ms
            // in); then, while A's membership is watched, one ask on the connection that was live
            // a moment ago and one on a fresh connection.
            let in_flight = async {
                let r = found.ask(Message::single("burn", "1500")).await;
                (r, Instant::now())
            };
            let cut_and_ask = async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                lan.cut(&host_c);
                let cut = Instant::now();
                let asks = async {
                    let first = fails_fast("the first ask after the cut", &found).await;
                    let second = fails_fast("the second ask after the cut", &found).await;
                    (first, second)
                };
                let down = eventually("A declares C down", DOWN_WITHIN, || async {
                    match state_of(&a, c.addr) {
                        Some(MemberState::Down) | None => Ok(()),
                        Some(state) => Err(format!("C is {state:?} at A")),
                    }
                });
                let forgotten = eventually("B forgets C's actor", DOWN_WITHIN, || async {
                    all(&[("B forgets part-c", seen_by(&to_b, "part-c").await.is_none())])
                });
                let (asks, down, forgotten) = tokio::join!(asks, down, forgotten);
                eprintln!(
                    "partition: A declared C down {down:?} and B forgot part-c {forgotten:?} \
                     after the cut"
                );
                (cut, asks, down)
            };
            let ((r, ended), (cut, (first, second), down)) = tokio::join!(in_flight, cut_and_ask);
            let in_flight = failed_fast("the ask in flight at the cut", r, ended - cut);
            let third = fails_fast("an ask while C is down", &to_c).await;
            eprintln!("partition: the link was cut for {:?}", cut.elapsed());

            lan.restore(&host_c);
            let up = Instant::now();
            let mut failures = Vec::new();
            let recovered = loop {
                match to_c
                    .ask_with_timeout(Message::single("echo", "back"), PROBE_TIMEOUT)
                    .await
                {
                    Ok(_) => break up.elapsed(),
                    Err(e) => failures.push(format!("{:?}: {e}", up.elapsed())),
                }
                assert!(
                    up.elapsed() < RECOVER_WITHIN,
                    "no answer from C within {RECOVER_WITHIN:?} of the link's return; {} failed \
                     asks: {failures:#?}",
                    failures.len()
                );
                tokio::time::sleep(POLL).await;
            };
            eprintln!(
                "partition: C answered {recovered:?} after the link returned ({} asks failed \
                 first{})",
                failures.len(),
                failures
                    .last()
                    .map(|f| format!(", the last at {f}"))
                    .unwrap_or_default()
            );

            eventually("A and C see each other again", REJOIN_WITHIN, || async {
                all(&[
                    (
                        "C alive at A",
                        state_of(&a, c.addr) == Some(MemberState::Alive),
                    ),
                    ("A finds part-c", finds(&a, "part-c").await == Some(c.addr)),
                    (
                        "C finds part-a",
                        seen_by(&to_c, "part-a").await == Some(a_addr),
                    ),
                ])
            })
            .await;
            let rejoined = up.elapsed();
            eprintln!(
                "partition: A and C saw each other again {rejoined:?} after the link returned"
            );

            // Healed for good: asks keep succeeding, through the old ref and a fresh find.
            let refound = a.find("part-c").await.expect("A finds part-c again");
            for i in 0..20 {
                for to in [&to_c, &refound] {
                    let r = to
                        .ask_with_timeout(Message::single("echo", i.to_string()), PROBE_TIMEOUT)
                        .await;
                    if let Err(e) = r {
                        panic!(
                            "ask {i} after the heal ({:?} after the link returned): {e}",
                            up.elapsed()
                        );
                    }
                }
            }
            eprintln!(
                "partition figures: asks failed in {in_flight:?} (in flight), {first:?}, \
                 {second:?} (after the cut), {third:?} (C down); C down after {down:?}; asks \
                 succeeded {recovered:?} and members rejoined {rejoined:?} after the link returned"
            );
            a.shutdown().await;
        });
    });
}
