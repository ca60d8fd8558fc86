//! The cluster secret with the QUIC transport, within one process over real sockets on 127.0.0.1:
//! nodes with the same secret join and call each other over mutually authenticated QUIC (and
//! nothing goes over TCP); a node with another secret or none cannot join (`unauthorized`, naming
//! the seed) and never becomes a member; a direct call from a node with another secret or none is
//! refused with `unauthorized`; a node at its QUIC connection limit refuses more, and the caller
//! uses the (TLS) TCP door instead; the TCP sentinel, which speaks TLS to a TLS-only TCP door,
//! still notices a peer process killed with SIGKILL at once.
#![cfg(all(feature = "quic", feature = "http", feature = "cluster"))]

#[path = "support/processes.rs"]
mod processes;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pulsing::quic::{QuicConfig, QuicTransport, Tls};
use pulsing::{ActorRef, ActorSystem, ErrorKind, Message, PulsingError, SpawnOptions, Transport};
use support::{bounded, Echo};

/// A build refused by every seed fails at once; this leaves room for a loaded machine (the
/// cluster's join timeout is 5 s).
const REFUSED_WITHIN: Duration = Duration::from_secs(4);

fn quic(config: QuicConfig) -> Arc<QuicTransport> {
    Arc::new(QuicTransport::new(config).expect("a QUIC transport"))
}

async fn node(
    transport: Arc<dyn Transport>,
    secret: Option<&str>,
    seed: Option<SocketAddr>,
) -> Result<ActorSystem, PulsingError> {
    let mut b = pulsing::system_builder()
        .addr("127.0.0.1:0")
        .transport_arc(transport);
    if let Some(secret) = secret {
        b = b.secret(secret);
    }
    if let Some(seed) = seed {
        b = b.seeds([seed.to_string()]);
    }
    b.build().await
}

/// A QUIC node with `secret` serving a public `echo`.
async fn seed_node(secret: &str, config: QuicConfig) -> (ActorSystem, Arc<QuicTransport>) {
    let q = quic(config);
    let a = node(q.clone(), Some(secret), None).await.expect("the seed");
    a.spawn_with(Echo, "echo", SpawnOptions::new().public(true))
        .await
        .unwrap();
    (a, q)
}

async fn find(system: &ActorSystem, name: &str) -> ActorRef {
    for _ in 0..100 {
        if let Some(r) = system.find(name).await {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{name} not found through the cluster");
}

async fn ask(r: &ActorRef, text: &str) -> Result<Vec<u8>, PulsingError> {
    let reply = r.ask(Message::single("ping", text.to_owned())).await?;
    Ok(reply.payload().expect("a single reply").to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_nodes_with_the_same_secret_join_and_call_over_quic() {
    bounded(async {
        let (a, qa) = seed_node("alpha", QuicConfig::default()).await;
        let a_addr = a.addr().unwrap();
        let qb = quic(QuicConfig::default());
        let b = node(qb.clone(), Some("alpha"), Some(a_addr))
            .await
            .expect("joins with the same secret");
        b.spawn_with(Echo, "echo-b", SpawnOptions::new().public(true))
            .await
            .unwrap();
        let echo = find(&b, "echo").await;
        assert_eq!(ask(&echo, "over quic").await.unwrap(), b"over quic");
        for i in 0..100 {
            echo.tell(Message::single("t", i.to_string()))
                .await
                .unwrap();
        }
        assert_eq!(ask(&echo, "after tells").await.unwrap(), b"after tells");
        let back = find(&a, "echo-b").await;
        assert_eq!(ask(&back, "the other way").await.unwrap(), b"the other way");

        // The TCP sentinel beside each QUIC connection speaks TLS to the TLS-only TCP door: it
        // must not take the peer's refusal of plaintext for the peer's death and close the QUIC
        // connection. The link and the connection are still there a while later.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(qb.pooled_peers() >= 2, "link and connection kept: {qb:?}");
        assert_eq!(ask(&echo, "later").await.unwrap(), b"later");

        let (da, db) = (qa.calls_by_door(), qb.calls_by_door());
        println!("same secret: a {da:?}, b {db:?}");
        assert!(db.quic >= 103 && da.quic >= 1, "calls and gossip over QUIC");
        assert_eq!((da.tcp, db.tcp), (0, 0), "nothing over TCP");
        assert_eq!(a.members().len(), 2, "{:?}", a.members());
        b.shutdown().await;
        a.shutdown().await;
    })
    .await;
}

/// A join refused for its identity: `unauthorized`, naming the seed `at` and the secret, within
/// [`REFUSED_WITHIN`] of `started`.
fn refused_join(what: &str, e: &PulsingError, at: SocketAddr, started: Instant) {
    println!("{what}: {e} ({:?})", started.elapsed());
    assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
    assert!(e.to_string().contains(&at.to_string()), "{e}");
    assert!(e.to_string().contains("secret"), "{e}");
    assert!(
        started.elapsed() < REFUSED_WITHIN,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_node_with_another_secret_or_none_cannot_join() {
    bounded(async {
        let (a, _) = seed_node("alpha", QuicConfig::default()).await;
        let a_addr = a.addr().unwrap();

        let q = quic(QuicConfig::default());
        let started = Instant::now();
        let e = node(q.clone(), Some("beta"), Some(a_addr))
            .await
            .expect_err("another secret is refused");
        refused_join("another secret", &e, a_addr, started);
        assert_eq!(q.calls_by_door().tcp, 0, "not retried over TCP");

        let started = Instant::now();
        let e = node(quic(QuicConfig::default()), None, Some(a_addr))
            .await
            .expect_err("no secret is refused");
        refused_join("no secret", &e, a_addr, started);

        // Gossip from the refused nodes never reached the membership.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(a.members().len(), 1, "{:?}", a.members());
        a.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_call_without_the_secret_is_unauthorized() {
    bounded(async {
        let (a, _) = seed_node("alpha", QuicConfig::default()).await;
        let a_addr = a.addr().unwrap();

        // Another secret: this node refuses the seed's certificate during the handshake.
        let q = quic(QuicConfig::default());
        let other = node(q.clone(), Some("beta"), None).await.unwrap();
        let r = other.remote_ref(a_addr, "echo").unwrap();
        for _ in 0..2 {
            let e = ask(&r, "x").await.expect_err("refused");
            println!("another secret, direct ask: {e}");
            assert!(matches!(e, PulsingError::Unauthorized(_)), "{e:?}");
            assert!(e.to_string().contains(&a_addr.to_string()), "{e}");
        }
        assert_eq!(q.calls_by_door().tcp, 0, "not retried over TCP: {q:?}");

        // No secret: the seed refuses this node's (missing) certificate after the client took
        // the handshake for done, on the link's first read.
        let plain = node(quic(QuicConfig::default()), None, None).await.unwrap();
        let r = plain.remote_ref(a_addr, "echo").unwrap();
        let e = ask(&r, "x").await.expect_err("refused");
        println!("no secret, direct ask: {e}");
        assert!(matches!(e, PulsingError::Unauthorized(_)), "{e:?}");
        assert!(e.to_string().contains(&a_addr.to_string()), "{e}");

        assert_eq!(a.members().len(), 1, "{:?}", a.members());
        for s in [other, plain, a] {
            s.shutdown().await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_at_its_quic_connection_limit_refuses_more_and_tcp_is_used() {
    bounded(async {
        let (a, _) = seed_node("alpha", QuicConfig::default().max_connections(1)).await;
        let a_addr = a.addr().unwrap();
        let qb = quic(QuicConfig::default());
        let b = node(qb.clone(), Some("alpha"), None).await.unwrap();
        let rb = b.remote_ref(a_addr, "echo").unwrap();
        assert_eq!(ask(&rb, "first").await.unwrap(), b"first");
        assert_eq!(qb.calls_by_door().quic, 1, "{:?}", qb.calls_by_door());

        // b holds the one connection a serves: c's handshake is refused at once, and c calls
        // a over its TCP door (TLS with the same secret).
        let qc = quic(QuicConfig::default());
        let c = node(qc.clone(), Some("alpha"), None).await.unwrap();
        let rc = c.remote_ref(a_addr, "echo").unwrap();
        let started = Instant::now();
        assert_eq!(ask(&rc, "second").await.unwrap(), b"second");
        println!(
            "over the limit: {:?} in {:?}",
            qc.calls_by_door(),
            started.elapsed()
        );
        assert_eq!(qc.calls_by_door().tcp, 1, "{:?}", qc.calls_by_door());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused at once"
        );
        for s in [b, c, a] {
            s.shutdown().await;
        }
    })
    .await;
}

/// The TCP sentinel beside each QUIC connection (`QuicConfig::tcp_sentinel`) speaks TLS to the
/// peer's TLS-only TCP door: when the peer's process is killed, its kernel closes that connection
/// and the QUIC connection ends at once, so the next call fails at once (the TCP probe of a new
/// connection is refused) instead of after the link keep-alive (4 s).
#[test]
fn a_killed_peer_is_noticed_at_once_through_the_tls_sentinel() {
    let mut seed = processes::cluster_node_with("quic", "echo", None, &["--secrets", "alpha"]);
    let seed_addr = seed.addr;
    processes::run_within(Duration::from_secs(20), async move {
        let q = quic(QuicConfig::default());
        let b = node(q.clone(), Some("alpha"), None).await.unwrap();
        let r = b.remote_ref(seed_addr, "echo").unwrap();
        for _ in 0..3 {
            assert_eq!(ask(&r, "up").await.unwrap(), b"up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(q.calls_by_door().tcp, 0, "{:?}", q.calls_by_door());
        seed.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let e = ask(&r, "down").await.expect_err("the peer is gone");
        let took = started.elapsed();
        println!("ask after kill -9 failed in {took:?}: {e}");
        assert!(took < Duration::from_millis(1500), "{took:?}: {e}");
        b.shutdown().await;
    });
}

#[tokio::test]
async fn quic_tls_and_a_cluster_secret_conflict() {
    let config = QuicConfig::default().tls(Tls::self_signed().unwrap());
    let e = node(quic(config), Some("alpha"), None)
        .await
        .expect_err("conflict");
    println!("{e}");
    assert!(matches!(e, PulsingError::Config(_)), "{e:?}");
    assert!(e.to_string().contains("conflict"), "{e}");
}
