//! Three cluster nodes as real OS processes (`examples/cluster_node.rs`) on 127.0.0.1, plus this
//! test's own node joined through the seed; one process is killed with SIGKILL (`kill -9`).
//! Every scenario runs over HTTP and, built with the `quic` feature, over QUIC (every node and the
//! test's own node on the same transport): `<scenario>::over_http`, `<scenario>::over_quic`.
#![cfg(all(feature = "http", feature = "cluster"))]

#[path = "support/processes.rs"]
mod processes;
#[macro_use]
#[path = "support/transports.rs"]
mod transports;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pulsing::{Actor, ActorError, ActorRef, ActorSystem, Context, Message, SpawnOptions};

use processes::{eventually, run_within, seen_by, NodeProcess};
use transports::TransportKind;

/// Bound on the async part of each test (the processes are started, bounded, before it).
const BOUND: Duration = Duration::from_secs(40);
/// A killed node must be forgotten everywhere within this (documented: about 4 s on loopback).
const DOWN_BOUND: Duration = Duration::from_secs(10);
/// An ask to a killed node must fail this much before the ask timeout.
const FAIL_FAST: Duration = Duration::from_secs(3);
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        Ok(msg)
    }
}

/// Runs `body` on a multi-thread runtime within [`BOUND`].
fn run<F: Future<Output = ()>>(body: F) {
    run_within(BOUND, body);
}

/// A `cluster_node` process over `kind` serving the actor `name`, joined through `seed` if any.
fn start(kind: TransportKind, name: &str, seed: Option<SocketAddr>) -> NodeProcess {
    processes::cluster_node(kind.name(), name, seed)
}

/// This test's node over `kind`, joined through `seed`.
async fn join(kind: TransportKind, seed: SocketAddr) -> ActorSystem {
    pulsing::system_builder()
        .addr("127.0.0.1:0")
        .transport_arc(kind.transport())
        .seeds([seed.to_string()])
        .ask_timeout(ASK_TIMEOUT)
        .build()
        .await
        .expect("join through the seed")
}

/// Asks `to` to echo `payload`; returns (the answering node's address, the echoed payload).
async fn ping(to: &ActorRef, payload: &str) -> Result<(String, String), pulsing::PulsingError> {
    let (node, echoed) = to
        .ask(Message::single("ping", payload.to_owned()))
        .await?
        .into_single()?;
    Ok((node, String::from_utf8_lossy(&echoed).into_owned()))
}

/// Waits (bounded, polling) until the seed's actor `seed_actor` at `seed` finds each of `names` at
/// its address; asks from a standalone system over `kind` that is not part of the cluster.
async fn seed_knows(
    kind: TransportKind,
    seed: SocketAddr,
    seed_actor: &str,
    names: &[(&str, SocketAddr)],
) -> Duration {
    let probe = ActorSystem::builder()
        .transport_arc(kind.transport())
        .build()
        .await
        .expect("a probe system");
    let via = probe.remote_ref(seed, seed_actor).expect("a valid name");
    let took = eventually(
        "the seed knows every actor",
        Duration::from_secs(5),
        || async {
            for (name, addr) in names {
                if seen_by(&via, name).await != Some(*addr) {
                    return false;
                }
            }
            true
        },
    )
    .await;
    probe.shutdown().await;
    took
}

async fn find_at(system: &ActorSystem, name: &str) -> Option<SocketAddr> {
    system.find(name).await.and_then(|r| r.remote_addr())
}

over_each_transport!(three_processes_find_each_other_and_forget_a_killed_one);

fn three_processes_find_each_other_and_forget_a_killed_one(kind: TransportKind) {
    let a = start(kind, "node-a", None);
    let mut b = start(kind, "node-b", Some(a.addr));
    let c = start(kind, "node-c", Some(a.addr));
    run(async {
        // b and c registered their actors as they started; the registration reaches the seed by
        // gossip (one random member first, then the next rounds), so the seed may not hold it yet
        // when c prints `ready`. A probe outside the cluster asks the seed what it sees until it
        // sees both: the precondition for "found right after the join".
        let known = [("node-b", b.addr), ("node-c", c.addr)];
        let waited = seed_knows(kind, a.addr, "node-a", &known).await;
        eprintln!(
            "[{}] the seed knew node-b and node-c {waited:?} after node-c was ready",
            kind.name()
        );

        let me = join(kind, a.addr).await;

        // Right after the join, no sleep: the actors the seed knew of are found, on the process
        // that runs them, and answer from there.
        let mut refs = Vec::new();
        for node in [&a, &b, &c] {
            let found = me
                .find(&node.label)
                .await
                .unwrap_or_else(|| panic!("{} found right after the join", node.label));
            assert_eq!(found.remote_addr(), Some(node.addr), "{}", node.label);
            let (at, echoed) = ping(&found, "hello").await.expect("answers");
            assert_eq!((at, echoed.as_str()), (node.addr.to_string(), "hello"));
            refs.push(found);
        }
        let [to_a, to_b, to_c] = <[ActorRef; 3]>::try_from(refs).expect("three refs");

        // An actor spawned after the join reaches the others by gossip: bounded poll.
        let my_addr = me.advertise_addr().expect("serves");
        me.spawn_with(Echo, "tester", SpawnOptions::new().public(true))
            .await
            .expect("spawn tester");
        eventually("a and c see tester", Duration::from_secs(5), || async {
            seen_by(&to_a, "tester").await == Some(my_addr)
                && seen_by(&to_c, "tester").await == Some(my_addr)
        })
        .await;

        b.kill();
        let killed = Instant::now();

        let started = Instant::now();
        let err = ping(&to_b, "are you there").await.unwrap_err();
        let took = started.elapsed();
        assert!(
            err.is_unreachable() || err.is_not_found(),
            "typed error: {err:?}"
        );
        // How fast it failed is checked last, so that a slow failure does not hide the rest.

        let down = eventually("node-b forgotten by a, c and me", DOWN_BOUND, || async {
            find_at(&me, "node-b").await.is_none()
                && me.find_all("node-b").await.is_empty()
                && seen_by(&to_a, "node-b").await.is_none()
                && seen_by(&to_c, "node-b").await.is_none()
        })
        .await;
        eprintln!(
            "[{}] kill -9: ask failed in {took:?} ({err}); node-b forgotten everywhere {:?} after \
             the kill ({down:?} of polling)",
            kind.name(),
            killed.elapsed()
        );

        // The third node (and the seed) keep answering, found afresh and through the old refs.
        for (node, old) in [(&c, &to_c), (&a, &to_a)] {
            assert_eq!(find_at(&me, &node.label).await, Some(node.addr));
            let (at, _) = ping(old, "still here").await.expect("keeps answering");
            assert_eq!(at, node.addr.to_string());
        }
        assert_eq!(seen_by(&to_a, "node-c").await, Some(c.addr));
        assert_eq!(seen_by(&to_c, "node-a").await, Some(a.addr));
        assert!(
            took < FAIL_FAST,
            "the ask to the killed node failed after {took:?}, not well before the ask timeout: \
             {err}"
        );
        me.shutdown().await;
    });
    for node in [c, a] {
        let label = node.label.clone();
        let status = node
            .stop(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "{label} left and exited: {status}");
    }
}

over_each_transport!(the_cluster_outlives_its_killed_seed);

fn the_cluster_outlives_its_killed_seed(kind: TransportKind) {
    let mut a = start(kind, "seed-a", None);
    let b = start(kind, "seed-b", Some(a.addr));
    let c = start(kind, "seed-c", Some(a.addr));
    run(async {
        // Joined through b this time: any member is a seed.
        let me = join(kind, b.addr).await;
        // b's own actor and a's (which b synced at its join) are there at once; c's reaches b by
        // gossip from c or a, so it gets a bounded poll.
        let to_b = me.find("seed-b").await.expect("b found after the join");
        assert_eq!(find_at(&me, "seed-a").await, Some(a.addr));
        eventually("c known through b", Duration::from_secs(5), || async {
            find_at(&me, "seed-c").await == Some(c.addr)
        })
        .await;
        let to_c = me.find("seed-c").await.expect("c found");

        a.kill();
        let killed = Instant::now();
        eventually("the seed forgotten by b, c and me", DOWN_BOUND, || async {
            find_at(&me, "seed-a").await.is_none()
                && seen_by(&to_b, "seed-a").await.is_none()
                && seen_by(&to_c, "seed-a").await.is_none()
        })
        .await;
        eprintln!(
            "[{}] kill -9 of the seed: forgotten by b, c and me {:?} after the kill",
            kind.name(),
            killed.elapsed()
        );

        assert_eq!(seen_by(&to_b, "seed-c").await, Some(c.addr));
        assert_eq!(seen_by(&to_c, "seed-b").await, Some(b.addr));
        let (at, _) = ping(&to_c, "after the seed").await.expect("c answers");
        assert_eq!(at, c.addr.to_string());
        me.shutdown().await;
    });
}

over_each_transport!(a_node_busy_at_full_cpu_is_not_declared_down);

fn a_node_busy_at_full_cpu_is_not_declared_down(kind: TransportKind) {
    let a = start(kind, "busy-a", None);
    let b = start(kind, "busy-b", Some(a.addr));
    run(async {
        let me = join(kind, a.addr).await;
        let to_a = me.find("busy-a").await.expect("a found");
        // b's registration may still be on its way to the seed (see the first test).
        eventually("b known", Duration::from_secs(5), || async {
            find_at(&me, "busy-b").await == Some(b.addr)
        })
        .await;
        let to_b = me.find("busy-b").await.expect("b found");
        // b's actor spins one of b's worker threads for 8 s: longer than the probe period, the
        // probe timeout and the suspicion timeout together.
        let burn = Duration::from_secs(8);
        to_b.tell(Message::single("burn", burn.as_millis().to_string()))
            .await
            .expect("burn queued");
        let start = Instant::now();
        while start.elapsed() < burn + Duration::from_secs(1) {
            assert_eq!(
                find_at(&me, "busy-b").await,
                Some(b.addr),
                "b forgotten {:?} into its busy spell",
                start.elapsed()
            );
            assert_eq!(
                seen_by(&to_a, "busy-b").await,
                Some(b.addr),
                "the seed forgot b {:?} into its busy spell",
                start.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let down: Vec<_> = me
            .members()
            .into_iter()
            .filter(|m| m.addr == b.addr && m.state != pulsing::MemberState::Alive)
            .collect();
        assert!(down.is_empty(), "b is not alive here: {down:?}");
        eprintln!(
            "[{}] busy for {burn:?}: found and alive throughout ({:?} of checks)",
            kind.name(),
            start.elapsed()
        );
        me.shutdown().await;
    });
}
