//! The cluster secret across real OS processes (`examples/cluster_node.rs`) on 127.0.0.1: a
//! rotation from one secret to another by rolling restarts with no failed call, and a flood of
//! 5,000 bad connections that leaves the members served and lets a node join while it goes on.
#![cfg(all(feature = "http", feature = "cluster"))]

#[path = "support/processes.rs"]
mod processes;
#[path = "support/secret_nodes.rs"]
mod secret_nodes;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulsing::{ActorRef, ActorSystem, Message, PulsingError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use processes::{cluster_node_exit, eventually, members_seen_by, relay, run_within, NodeProcess};
use secret_nodes::*;

// ---------------------------------------------------------------------------------------------
// 3. Rotation

const SECRET_A: &str = "rotation-secret-a";
const SECRET_B: &str = "rotation-secret-b";

/// How long a restarted node stays away before it starts again (the two others keep calling).
const AWAY: Duration = Duration::from_millis(300);
/// How long all three nodes call each other after a restart, before the next one.
const BACK: Duration = Duration::from_secs(1);

/// What the background caller of the rotation test works with.
struct Rotation {
    /// This test's system, outside the cluster, with secrets every running node accepts.
    caller: ActorSystem,
    /// The nodes currently running and not being restarted: (actor name, address).
    running: Vec<(String, SocketAddr)>,
}

/// What the background caller counted.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: Mutex<Vec<String>>,
}

/// One round: every running node relays to every other running one.
async fn relay_round(state: &tokio::sync::Mutex<Rotation>, tally: &Tally) {
    // Held for the round: a node is taken out of `running` only between rounds, so no call of
    // this round involves a node that is stopping.
    let state = state.lock().await;
    for (from, from_addr) in &state.running {
        let via = state
            .caller
            .remote_ref(*from_addr, from)
            .expect("a valid name");
        for (to, to_addr) in &state.running {
            if to == from {
                continue;
            }
            let outcome = tokio::time::timeout(CALL_BOUND, relay(&via, to)).await;
            match outcome {
                Ok(Ok(at)) if at == *to_addr => {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(at)) => tally
                    .failed
                    .lock()
                    .unwrap()
                    .push(format!("{from}->{to}: answered by {at}, not {to_addr}")),
                Ok(Err(e)) => tally
                    .failed
                    .lock()
                    .unwrap()
                    .push(format!("{from}({from_addr})->{to}({to_addr}): {e}")),
                Err(_) => tally
                    .failed
                    .lock()
                    .unwrap()
                    .push(format!("{from}->{to}: no answer within {CALL_BOUND:?}")),
            }
        }
    }
}

#[test]
fn rotation_without_outage() {
    build_node();
    run_within(Duration::from_secs(120), async {
        let test_started = Instant::now();
        let n0 = start_node("n0", None, &["--secrets", SECRET_A]).await;
        let n1 = start_node("n1", Some(n0.addr), &["--secrets", SECRET_A]).await;
        let n2 = start_node("n2", Some(n0.addr), &["--secrets", SECRET_A]).await;
        let mut nodes: Vec<Option<NodeProcess>> = vec![Some(n0), Some(n1), Some(n2)];
        let running: Vec<(String, SocketAddr)> = nodes
            .iter()
            .flatten()
            .map(|n| (n.label.clone(), n.addr))
            .collect();
        let caller = own_system(&[SECRET_A, SECRET_B], None).await;
        let took = converged(&caller, &running).await;
        println!("three nodes with [A] converged in {took:?}");

        let state = Arc::new(tokio::sync::Mutex::new(Rotation { caller, running }));
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let background = tokio::spawn({
            let (state, tally, stop) = (state.clone(), tally.clone(), stop.clone());
            async move {
                let mut rounds = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    relay_round(&state, &tally).await;
                    rounds += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                rounds
            }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;

        let phases: [(&str, Vec<&str>); 3] = [
            ("[A, B]", vec![SECRET_A, SECRET_B]),
            ("[B, A]", vec![SECRET_B, SECRET_A]),
            ("[B]", vec![SECRET_B]),
        ];
        for (phase, secrets) in phases {
            if secrets == [SECRET_B] {
                // From here on nodes accept only B: the caller must present B (every node runs
                // `[B, A]` now, so it accepts the new caller).
                let new_caller = own_system(&[SECRET_B, SECRET_A], None).await;
                let old = std::mem::replace(&mut state.lock().await.caller, new_caller);
                old.shutdown().await;
            }
            let flag = secrets.join(",");
            for i in 0..nodes.len() {
                let restart_started = Instant::now();
                let node = nodes[i].take().expect("running");
                let name = node.label.clone();
                let old_addr = node.addr;
                state.lock().await.running.retain(|(n, _)| *n != name);
                stop_node(node).await;
                // The other two keep calling each other while this one is away.
                tokio::time::sleep(AWAY).await;
                // Join through one of the two others, alternately.
                let others: Vec<SocketAddr> = nodes.iter().flatten().map(|n| n.addr).collect();
                let seed = others[i % others.len()];
                let node = start_node(&name, Some(seed), &["--secrets", &flag]).await;
                let ready = restart_started.elapsed();
                let new_addr = node.addr;
                nodes[i] = Some(node);
                let all: Vec<(String, SocketAddr)> = nodes
                    .iter()
                    .flatten()
                    .map(|n| (n.label.clone(), n.addr))
                    .collect();
                let caller = state.lock().await.caller.clone();
                let via = caller.remote_ref(new_addr, &name).expect("a valid name");
                let expected: BTreeSet<SocketAddr> = all.iter().map(|(_, a)| *a).collect();
                let sees_three = eventually("the restarted node sees 3 alive", SETTLE, || async {
                    alive(&members_seen_by(&via).await) == expected
                })
                .await;
                let settled = converged(&caller, &all).await;
                assert_eq!(
                    relay(&via, &all[(i + 1) % 3].0).await.ok(),
                    Some(all[(i + 1) % 3].1)
                );
                state.lock().await.running.push((name.clone(), new_addr));
                // All three call each other, across the secrets they now hold, for a while.
                tokio::time::sleep(BACK).await;
                println!(
                    "phase {phase}: {name} {old_addr} -> {new_addr} via {seed}: ready {ready:?}, \
                     sees 3 alive {sees_three:?} later, all converged {settled:?}, total {:?}; \
                     calls so far ok {} failed {}",
                    restart_started.elapsed(),
                    tally.ok.load(Ordering::Relaxed),
                    tally.failed.lock().unwrap().len()
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let rounds = background.await.expect("the background caller");
        let ok = tally.ok.load(Ordering::Relaxed);
        let failed = tally.failed.lock().unwrap().clone();
        println!(
            "rotation A -> B in {:?}: {rounds} rounds, {ok} relays succeeded, {} failed",
            test_started.elapsed(),
            failed.len()
        );
        assert!(
            failed.is_empty(),
            "failed relays between running nodes: {failed:#?}"
        );
        assert!(ok > 0);

        // A node with only A can no longer join.
        let seed = nodes[0].as_ref().expect("running").addr;
        let refused = tokio::task::spawn_blocking(move || {
            cluster_node_exit(
                "http",
                "old",
                Some(seed),
                &["--secrets", SECRET_A],
                &[("PULSING_SECRET", None)],
                Duration::from_secs(15),
            )
        })
        .await
        .expect("thread")
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(!refused.status.success(), "{refused:?}");
        assert!(refused.stderr.contains("unauthorized"), "{refused:?}");
        println!(
            "after the rotation, [A] is refused: {}",
            refused.stderr.trim()
        );

        let caller = state.lock().await.caller.clone();
        caller.shutdown().await;
        for node in nodes.into_iter().flatten() {
            stop_node(node).await;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 4. Connection flood

/// Connection attempts in the flood.
const FLOOD: usize = 5_000;
/// Flood connections open at once: about twice the node's `max_handshakes` (256) in half
/// handshakes, so the bound is reached and older half handshakes are closed to make room.
const FLOOD_CONCURRENCY: usize = 1000;
/// How long a half handshake is held open at most (the node's handshake timeout is 5 s).
const HOLD: Duration = Duration::from_secs(6);
/// The first bytes of a TLS ClientHello record, announcing far more than is sent.
const PARTIAL_HELLO: [u8; 9] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];

/// What became of the flood's connections.
#[derive(Default, Debug)]
struct Flood {
    connect_failed: AtomicU64,
    garbage_sent: AtomicU64,
    /// Half handshakes closed by the node within 100 ms (the bound reached: newer ones took their
    /// place).
    hello_closed_at_once: AtomicU64,
    /// Half handshakes closed by the node later (the handshake timeout).
    hello_closed_later: AtomicU64,
    /// Half handshakes still open when this test closed them, after [`HOLD`].
    hello_held: AtomicU64,
    /// The longest a half handshake stayed open before the node closed it, in ms.
    hello_longest_ms: AtomicU64,
}

/// xorshift64*: garbage that differs per connection.
fn garbage(seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let len = 16 + (next() % 496) as usize;
    (0..len).map(|_| next() as u8).collect()
}

async fn flood_one(target: SocketAddr, i: usize, flood: &Flood) {
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(target)).await
    else {
        flood.connect_failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    if i.is_multiple_of(2) {
        let _ = s.write_all(&garbage(i as u64)).await;
        flood.garbage_sent.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let sent = Instant::now();
    if s.write_all(&PARTIAL_HELLO).await.is_err() {
        flood.hello_closed_at_once.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut sink = [0u8; 512];
    let closed = tokio::time::timeout(HOLD, async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    let open_for = sent.elapsed();
    match closed {
        Err(_) => {
            flood.hello_held.fetch_add(1, Ordering::Relaxed);
        }
        Ok(()) if open_for < Duration::from_millis(100) => {
            flood.hello_closed_at_once.fetch_add(1, Ordering::Relaxed);
        }
        Ok(()) => {
            flood.hello_closed_later.fetch_add(1, Ordering::Relaxed);
            flood
                .hello_longest_ms
                .fetch_max(open_for.as_millis() as u64, Ordering::Relaxed);
        }
    }
}

/// One check of the members' service: `b` relays to `a`, and sees `a` alive.
async fn members_served(to_b: &ActorRef, a: SocketAddr, check_view: bool) -> Result<(), String> {
    match tokio::time::timeout(CALL_BOUND, relay(to_b, "a")).await {
        Ok(Ok(at)) if at == a => {}
        Ok(Ok(at)) => return Err(format!("b->a answered by {at}")),
        Ok(Err(e)) => return Err(format!("b->a: {e}")),
        Err(_) => return Err(format!("b->a: no answer within {CALL_BOUND:?}")),
    }
    if check_view {
        let view = tokio::time::timeout(CALL_BOUND, to_b.ask(Message::single("members", "")))
            .await
            .map_err(|_| format!("b's members: no answer within {CALL_BOUND:?}"))?
            .and_then(Message::into_single)
            .map_err(|e: PulsingError| format!("b's members: {e}"))?;
        let view = String::from_utf8_lossy(&view.1).into_owned();
        if !view.lines().any(|l| l == format!("{a} Alive")) {
            return Err(format!("b does not see a alive: {view:?}"));
        }
    }
    Ok(())
}

#[test]
fn connection_flood_leaves_members_served() {
    build_node();
    run_within(Duration::from_secs(150), async {
        let a = start_node("a", None, &["--secrets", "alpha"]).await;
        let b = start_node("b", Some(a.addr), &["--secrets", "alpha"]).await;
        let caller = own_system(&["alpha"], None).await;
        let to_b = caller.remote_ref(b.addr, "b").expect("a valid name");
        let took = eventually("b relays to a", SETTLE, || async {
            members_served(&to_b, a.addr, true).await.is_ok()
        })
        .await;
        println!("b relays to a {took:?} after b was ready");

        let stop = Arc::new(AtomicBool::new(false));
        let checks = tokio::spawn({
            let (stop, to_b, a_addr) = (stop.clone(), to_b.clone(), a.addr);
            async move {
                let (mut ok, mut failed, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    match members_served(&to_b, a_addr, n.is_multiple_of(25)).await {
                        Ok(()) => ok += 1,
                        Err(e) => failed.push(format!("after {:?}: {e}", started.elapsed())),
                    }
                    slowest = slowest.max(started.elapsed());
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (ok, failed, slowest)
            }
        });

        let flood = Arc::new(Flood::default());
        let permits = Arc::new(tokio::sync::Semaphore::new(FLOOD_CONCURRENCY));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(FLOOD);
        let mut joining = None;
        for i in 0..FLOOD {
            if i == FLOOD / 4 {
                // A node joins while the seed's handshake slots are taken by half handshakes: its
                // own handshakes may be cut off, which it retries as unreachable (not refused).
                let joined = Instant::now();
                let a_addr = a.addr;
                joining = Some(tokio::spawn(async move {
                    let d = start_node("d", Some(a_addr), &["--secrets", "alpha"]).await;
                    (d, joined.elapsed())
                }));
            }
            let permit = permits.clone().acquire_owned().await.expect("open");
            let (flood, target) = (flood.clone(), a.addr);
            tasks.push(tokio::spawn(async move {
                flood_one(target, i, &flood).await;
                drop(permit);
            }));
        }
        for t in tasks {
            t.await.expect("a flood task");
        }
        let flood_took = started.elapsed();
        // A moment after the flood, still served.
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, Ordering::Relaxed);
        let (ok, failed, slowest) = checks.await.expect("the checking task");
        println!(
            "flood of {FLOOD} connections ({FLOOD_CONCURRENCY} at a time) in {flood_took:?}: \
             {flood:?}"
        );
        println!(
            "during the flood: {ok} b->a relays ok, {} failed, slowest {slowest:?}",
            failed.len()
        );
        assert!(
            failed.is_empty(),
            "members not served during the flood: {failed:#?}"
        );
        assert!(ok > 0);
        let flood = Arc::try_unwrap(flood).expect("the flood is over");
        assert_eq!(
            flood.hello_held.load(Ordering::Relaxed),
            0,
            "every half handshake is dropped by the node within {HOLD:?}: {flood:?}"
        );

        assert!(
            flood.hello_closed_at_once.load(Ordering::Relaxed) > 0,
            "the handshake bound was reached and some were closed at once: {flood:?}"
        );

        // The member that joined during the flood got in and relays to a.
        let (d, took) = joining
            .expect("d started")
            .await
            .expect("d's starting task");
        let to_d = caller.remote_ref(d.addr, "d").expect("a valid name");
        eventually("d relays to a", SETTLE, || async {
            relay(&to_d, "a").await.ok() == Some(a.addr)
        })
        .await;
        println!("during the flood, d joined a in {took:?}");

        // A new member with the right secret still joins a.
        let joined_started = Instant::now();
        let c = start_node("c", Some(a.addr), &["--secrets", "alpha"]).await;
        let to_c = caller.remote_ref(c.addr, "c").expect("a valid name");
        eventually("c relays to a", SETTLE, || async {
            relay(&to_c, "a").await.ok() == Some(a.addr)
        })
        .await;
        println!(
            "after the flood, c joined a and relays to it in {:?}",
            joined_started.elapsed()
        );

        caller.shutdown().await;
        for node in [d, c, b, a] {
            stop_node(node).await;
        }
    });
}
