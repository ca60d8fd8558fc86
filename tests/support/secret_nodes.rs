//! Helpers of the cluster-secret process tests (`tests/secret_processes.rs`,
//! `tests/secret_rotation.rs`): this test's own system, `cluster_node` processes with secrets,
//! cluster views.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pulsing::ActorSystem;

use crate::processes::{
    self, cluster_node_with, eventually, members_seen_by, seen_by, NodeProcess,
};

/// Bound on how long cluster views take to settle after a join or a leave (gossip on loopback
/// takes well under a second; this is only the failure bound).
pub const SETTLE: Duration = Duration::from_secs(10);
/// Bound on one relayed call made by a background caller (a failure, not a hang, if exceeded).
pub const CALL_BOUND: Duration = Duration::from_secs(5);
/// Bound on a graceful stop (leave and exit).
pub const STOP_BOUND: Duration = Duration::from_secs(10);

/// A system of this test process presenting `secrets[0]`, accepting all of them; it joins `seed`
/// if given, else it serves alone (outside the cluster) and calls nodes by address.
pub async fn own_system(secrets: &[&str], seed: Option<SocketAddr>) -> ActorSystem {
    let mut builder = pulsing::system_builder()
        .addr("127.0.0.1:0")
        .secrets(secrets.iter().copied())
        .ask_timeout(Duration::from_secs(10));
    if let Some(seed) = seed {
        builder = builder.seeds([seed.to_string()]);
    }
    builder
        .build()
        .await
        .unwrap_or_else(|e| panic!("this test's system with {secrets:?}: {e}"))
}

/// Builds `cluster_node` (once per test binary) before a test's time bound starts: a build is not
/// what the bound is for.
pub fn build_node() {
    let started = Instant::now();
    let path = processes::example("cluster_node");
    println!("{} built in {:?}", path.display(), started.elapsed());
}

/// Starts a `cluster_node` on a blocking thread (starting one blocks until its `ready` line).
pub async fn start_node(name: &str, seed: Option<SocketAddr>, flags: &[&str]) -> NodeProcess {
    let name = name.to_owned();
    let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
    let started = Instant::now();
    let node = tokio::task::spawn_blocking(move || {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        cluster_node_with("http", &name, seed, &flags)
    })
    .await
    .expect("the starting thread");
    println!(
        "{}: ready at {} in {:?}",
        node.label,
        node.addr,
        started.elapsed()
    );
    node
}

/// Stops `node` gracefully (stdin closed: it leaves and exits) and checks that it exited 0.
pub async fn stop_node(node: NodeProcess) {
    let label = node.label.clone();
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || node.stop(STOP_BOUND))
        .await
        .expect("the stopping thread")
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{label}: left and exited in {:?}", started.elapsed());
    assert!(status.success(), "{label} left and exited: {status}");
}

/// The addresses `view` lists as `Alive`.
pub fn alive(view: &[(SocketAddr, String)]) -> BTreeSet<SocketAddr> {
    view.iter()
        .filter(|(_, state)| state == "Alive")
        .map(|(addr, _)| *addr)
        .collect()
}

/// Waits until every node of `nodes` sees exactly their addresses `Alive` and finds every other
/// one's actor at its address. Asks through `caller`.
pub async fn converged(caller: &ActorSystem, nodes: &[(String, SocketAddr)]) -> Duration {
    let expected: BTreeSet<SocketAddr> = nodes.iter().map(|(_, addr)| *addr).collect();
    eventually("every node sees every other", SETTLE, || async {
        for (name, addr) in nodes {
            let via = caller.remote_ref(*addr, name).expect("a valid name");
            if alive(&members_seen_by(&via).await) != expected {
                return false;
            }
            for (other, other_addr) in nodes {
                if seen_by(&via, other).await != Some(*other_addr) {
                    return false;
                }
            }
        }
        true
    })
    .await
}
