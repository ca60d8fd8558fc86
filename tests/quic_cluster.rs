//! A cluster mixing QUIC and HTTP-only nodes, as OS processes (`examples/cluster_node.rs`) on
//! 127.0.0.1: a QUIC seed, an HTTP-only node and a QUIC node. A QUIC node calls its peers over QUIC,
//! gossip included; a peer that does not answer the QUIC handshake (the HTTP-only node) it calls
//! over TCP, and the HTTP-only node calls everyone over TCP. Every node must see every other as a
//! member, find every actor, and reach every other node (asks relayed by each node, so node-to-node
//! traffic is what is checked); after the HTTP-only node is killed with SIGKILL the QUIC nodes must
//! declare it down as fast as an all-HTTP cluster does.
#![cfg(all(feature = "quic", feature = "http", feature = "cluster"))]

#[path = "support/processes.rs"]
mod processes;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pulsing::{ActorRef, ActorSystem};

use processes::{cluster_node, eventually, members_seen_by, relay, run_within, seen_by};

/// Bound on the async part of the test (the processes are started, bounded, before it).
const BOUND: Duration = Duration::from_secs(60);
/// Every node sees every member alive and every actor within this after the last node is ready
/// (gossip rounds of 200 ms; a QUIC node's first call to the HTTP-only node waits out the 1 s
/// QUIC handshake timeout before it uses TCP).
const CONVERGE_BOUND: Duration = Duration::from_secs(10);
/// A killed node must be forgotten everywhere within this, as in `tests/cluster_processes.rs`
/// (about 4 s on loopback).
const DOWN_BOUND: Duration = Duration::from_secs(10);
/// An ask to the killed HTTP-only node (over TCP, refused) must fail within this.
const FAIL_FAST: Duration = Duration::from_secs(3);

/// A node of the test: its label (also its actor's name), address, and a ref to its actor from
/// the probe.
struct Node {
    label: &'static str,
    addr: SocketAddr,
    actor: ActorRef,
}

/// Whether the node behind `via` sees exactly `all` as members, every one alive.
async fn sees_all_alive(via: &ActorRef, all: &[SocketAddr]) -> bool {
    let view = members_seen_by(via).await;
    view.len() == all.len()
        && all
            .iter()
            .all(|a| view.iter().any(|(m, state)| m == a && state == "Alive"))
}

/// Whether the node behind `via` no longer counts `gone` as live (declared down, or forgotten)
/// and finds no actor `name` any more.
async fn has_dropped(via: &ActorRef, gone: SocketAddr, name: &str) -> bool {
    let view = members_seen_by(via).await;
    let live = view
        .iter()
        .any(|(m, state)| *m == gone && (state == "Alive" || state == "Suspect"));
    !live && seen_by(via, name).await.is_none()
}

/// Relays an ask from every node to every other one, both directions; returns each pair's time.
async fn relay_all_pairs(nodes: &[&Node]) -> Vec<String> {
    let mut times = Vec::new();
    for from in nodes {
        for to in nodes {
            if from.label == to.label {
                continue;
            }
            let started = Instant::now();
            let answered = relay(&from.actor, to.label)
                .await
                .unwrap_or_else(|e| panic!("{} -> {}: {e}", from.label, to.label));
            let took = started.elapsed();
            assert_eq!(answered, to.addr, "{} -> {}", from.label, to.label);
            times.push(format!("{}->{} {took:.1?}", from.label, to.label));
        }
    }
    times
}

#[test]
fn a_cluster_of_quic_and_http_only_nodes_works_and_forgets_a_killed_http_node() {
    let started = Instant::now();
    processes::example("cluster_node");
    let built = started.elapsed();
    let started = Instant::now();
    let seed = cluster_node("quic", "mix-seed", None);
    let mut http = cluster_node("http", "mix-http", Some(seed.addr));
    let quic = cluster_node("quic", "mix-quic", Some(seed.addr));
    let ready = started.elapsed();
    run_within(BOUND, async {
        // The probe is outside the cluster and asks over HTTP, which every node serves; what the
        // nodes do among themselves is what is checked.
        let probe = ActorSystem::builder()
            .transport(pulsing::http::HttpTransport::default())
            .build()
            .await
            .expect("a probe system");
        let node = |p: &processes::NodeProcess, label: &'static str| Node {
            label,
            addr: p.addr,
            actor: probe.remote_ref(p.addr, label).expect("a valid name"),
        };
        let (s, h, q) = (
            node(&seed, "mix-seed"),
            node(&http, "mix-http"),
            node(&quic, "mix-quic"),
        );
        let all = [s.addr, h.addr, q.addr];

        // Membership and registry converge on every node.
        let converged = eventually(
            "every node sees the three members alive and finds the three actors",
            CONVERGE_BOUND,
            || async {
                for via in [&s, &h, &q] {
                    if !sees_all_alive(&via.actor, &all).await {
                        return false;
                    }
                    for other in [&s, &h, &q] {
                        if seen_by(&via.actor, other.label).await != Some(other.addr) {
                            return false;
                        }
                    }
                }
                true
            },
        )
        .await;
        eprintln!(
            "mixed cluster: cluster_node built in {built:?}; three nodes ready in {ready:?}; every \
             node saw every member alive and found every actor {converged:?} later"
        );

        // Node to node, every pair, both directions, twice (the first round opens connections; a
        // QUIC node's first link to the HTTP-only node may wait out the QUIC handshake timeout).
        let first = relay_all_pairs(&[&s, &h, &q]).await;
        let second = relay_all_pairs(&[&s, &h, &q]).await;
        eprintln!(
            "mixed cluster: relayed asks, first round: {}",
            first.join(", ")
        );
        eprintln!(
            "mixed cluster: relayed asks, second round: {}",
            second.join(", ")
        );

        http.kill();
        let killed = Instant::now();

        // The QUIC nodes call the HTTP-only node over TCP: refused now, so their asks fail at once.
        for from in [&s, &q] {
            let started = Instant::now();
            let err = relay(&from.actor, h.label)
                .await
                .expect_err("the killed node does not answer");
            let took = started.elapsed();
            assert!(
                err.is_actor_error(),
                "{}: the relaying node answers with the failure: {err:?}",
                from.label
            );
            assert!(
                took < FAIL_FAST,
                "{} -> mix-http failed after {took:?}, not within {FAIL_FAST:?}: {err}",
                from.label
            );
            eprintln!(
                "mixed cluster: kill -9 of mix-http: {} -> mix-http failed in {took:?}: {err}",
                from.label
            );
        }

        let down = eventually(
            "mix-http declared down by mix-seed and mix-quic",
            DOWN_BOUND,
            || async {
                has_dropped(&s.actor, h.addr, h.label).await
                    && has_dropped(&q.actor, h.addr, h.label).await
            },
        )
        .await;
        eprintln!(
            "mixed cluster: mix-http declared down by both QUIC nodes {:?} after the kill \
             ({down:?} of polling)",
            killed.elapsed()
        );
        for via in [&s, &q] {
            let view = members_seen_by(&via.actor).await;
            assert!(
                view.iter()
                    .any(|(m, state)| *m == h.addr && state == "Down"),
                "{} lists mix-http as down: {view:?}",
                via.label
            );
        }

        // The QUIC nodes keep reaching each other.
        let after = relay_all_pairs(&[&s, &q]).await;
        eprintln!("mixed cluster: after the kill: {}", after.join(", "));
        probe.shutdown().await;
    });
    for node in [quic, seed] {
        let label = node.label.clone();
        let status = node
            .stop(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(status.success(), "{label} left and exited: {status}");
    }
}
