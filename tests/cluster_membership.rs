//! Several actor systems in one process joined by `pulsing_cluster::Cluster` (the real tokio
//! driver) over an in-memory transport with a kill switch, and, for the scenarios that need no
//! kill switch, over real sockets on 127.0.0.1 with HTTP and (built with the `quic` feature) QUIC:
//! `<scenario>::over_memory`, `::over_http`, `::over_quic`. Killing a node over real sockets is
//! `tests/cluster_processes.rs` (OS processes, `kill -9`), on both transports.

#[path = "support/cluster_net.rs"]
mod cluster_net;
#[path = "support/transports.rs"]
mod transports;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster_net::Net;
use pulsing::{
    Actor, ActorError, ActorSystem, Context, Message, PulsingError, SpawnOptions, Transport,
};
use pulsing_cluster::{Cluster, ClusterConfig};
use transports::TransportKind;

const BOUND: Duration = Duration::from_secs(30);

struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        Ok(msg)
    }
}

/// What a test's nodes talk over.
enum Network {
    /// The in-memory [`Net`], with its kill switch.
    Memory(Arc<Net>),
    /// Real sockets on 127.0.0.1, each node with a transport of this kind.
    Real(TransportKind),
}

impl Network {
    /// Its name, for messages.
    fn name(&self) -> &'static str {
        match self {
            Network::Memory(_) => "memory",
            Network::Real(kind) => kind.name(),
        }
    }

    /// A transport for one more node.
    fn transport(&self) -> Arc<dyn Transport> {
        match self {
            Network::Memory(net) => Arc::new(net.transport()),
            Network::Real(kind) => kind.transport(),
        }
    }
}

/// `over_each_network!(scenario);` for an `async fn scenario(net: Network)`: a module `scenario`
/// with the tests `over_memory`, `over_http` and (with the `quic` feature) `over_quic`.
macro_rules! over_each_network {
    ($scenario:ident) => {
        mod $scenario {
            use super::{Net, Network, TransportKind};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn over_memory() {
                super::$scenario(Network::Memory(Net::new())).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn over_http() {
                super::$scenario(Network::Real(TransportKind::Http)).await;
            }

            #[cfg(feature = "quic")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn over_quic() {
                super::$scenario(Network::Real(TransportKind::Quic)).await;
            }
        }
    };
}

async fn node(net: &Network, seeds: Vec<String>, actor: &str) -> Result<ActorSystem, PulsingError> {
    let system = ActorSystem::builder()
        .transport_arc(net.transport())
        .membership(Cluster::new(ClusterConfig::default()))
        .addr("127.0.0.1:0")
        .seeds(seeds)
        .build()
        .await?;
    system
        .spawn_with(Echo, actor, SpawnOptions::new().public(true))
        .await?;
    Ok(system)
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_find_each_other_and_forget_a_killed_one() {
    tokio::time::timeout(BOUND, async {
        let mem = Net::new();
        let net = Network::Memory(mem.clone());
        let a = node(&net, vec![], "echo-a").await.unwrap();
        let seed = a.addr().unwrap().to_string();
        let b = node(&net, vec![seed.clone()], "echo-b").await.unwrap();
        // A DNS name as seed: every address it resolves to is tried (here ::1 fails, 127.0.0.1
        // answers).
        let port = a.addr().unwrap().port();
        let c = node(&net, vec![format!("localhost:{port}")], "echo-c")
            .await
            .unwrap();

        // Right after its join, c sees the actors that existed before it: no sleep.
        assert!(c.has_actor("echo-a").await);
        assert!(c.has_actor("echo-b").await);
        wait_for("b sees c's actor", Duration::from_secs(5), || {
            futures_util::FutureExt::now_or_never(b.has_actor("echo-c")).unwrap_or(false)
        })
        .await;
        assert_eq!(a.members().len(), 3);

        let to_c = b.find("echo-c").await.unwrap();
        to_c.ask(Message::single("ping", "1")).await.unwrap();

        mem.kill(c.addr().unwrap());
        let started = Instant::now();
        let err = to_c.ask(Message::single("ping", "2")).await.unwrap_err();
        assert!(matches!(err, PulsingError::NodeUnreachable { .. }), "{err}");
        assert_eq!(
            err.delivery(),
            pulsing::Delivery::NotDelivered,
            "refused: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "failed fast, not by the ask timeout"
        );

        let took = wait_for("c forgotten by a and b", Duration::from_secs(10), || {
            let gone = |s: &ActorSystem| {
                futures_util::FutureExt::now_or_never(s.find("echo-c"))
                    .flatten()
                    .is_none()
            };
            gone(&a) && gone(&b)
        })
        .await;
        assert!(
            took < Duration::from_secs(6),
            "declared down after {took:?}"
        );

        let reply = a
            .find("echo-b")
            .await
            .unwrap()
            .ask(Message::single("ping", "3"))
            .await
            .unwrap();
        assert_eq!(reply.payload().unwrap().as_ref(), b"3");
        a.shutdown().await;
        b.shutdown().await;
        c.shutdown().await;
    })
    .await
    .expect("bounded");
}

over_each_network!(a_graceful_shutdown_is_seen_at_once);

async fn a_graceful_shutdown_is_seen_at_once(net: Network) {
    tokio::time::timeout(BOUND, async {
        let a = node(&net, vec![], "echo-a").await.unwrap();
        let b = node(&net, vec![a.addr().unwrap().to_string()], "echo-b")
            .await
            .unwrap();
        assert!(b.has_actor("echo-a").await);
        wait_for("a sees b", Duration::from_secs(5), || {
            futures_util::FutureExt::now_or_never(a.has_actor("echo-b")).unwrap_or(false)
        })
        .await;
        b.shutdown().await;
        let took = wait_for("a forgets b", Duration::from_secs(10), || {
            !futures_util::FutureExt::now_or_never(a.has_actor("echo-b")).unwrap_or(true)
        })
        .await;
        assert!(
            took < ClusterConfig::default().suspicion_timeout,
            "took {took:?}"
        );
        eprintln!(
            "[{}] graceful shutdown: forgotten {took:?} after it returned",
            net.name()
        );
        a.shutdown().await;
    })
    .await
    .expect("bounded");
}

over_each_network!(joining_through_a_silent_seed_fails_in_bounded_time_naming_it);

async fn joining_through_a_silent_seed_fails_in_bounded_time_naming_it(net: Network) {
    tokio::time::timeout(BOUND, async {
        let started = Instant::now();
        let err = ActorSystem::builder()
            .transport_arc(net.transport())
            .membership(Cluster::new(ClusterConfig {
                join_timeout: Duration::from_secs(1),
                ..ClusterConfig::default()
            }))
            .addr("127.0.0.1:0")
            .seeds(["127.0.0.1:1"])
            .build()
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}: {err}");
        eprintln!(
            "[{}] join through a seed that is not there: failed in {took:?}: {err}",
            net.name()
        );
        match err {
            PulsingError::NodeUnreachable {
                addr,
                reason,
                delivery,
            } => {
                assert_eq!(delivery, pulsing::Delivery::MaybeDelivered);
                assert!(addr.contains("127.0.0.1:1"), "{addr}");
                assert!(reason.contains("127.0.0.1:1"), "{reason}");
            }
            other => panic!("expected unreachable, got {other}"),
        }
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gossip_is_refused_as_bad_message() {
    use pulsing::Membership;
    tokio::time::timeout(BOUND, async {
        let net = Net::new();
        let cluster = Arc::new(Cluster::default());
        let a = ActorSystem::builder()
            .transport(net.transport())
            .membership_arc(cluster.clone())
            .addr("127.0.0.1:0")
            .build()
            .await
            .unwrap();
        for packet in [&b""[..], b"\x07\x01", b"\x01\x09", b"\x01\x01\xff\xff"] {
            let err = cluster
                .handle_gossip(None, bytes::Bytes::copy_from_slice(packet))
                .await
                .unwrap_err();
            assert!(matches!(err, PulsingError::BadMessage(_)), "{err}");
        }
        a.shutdown().await;
    })
    .await
    .expect("bounded");
}
