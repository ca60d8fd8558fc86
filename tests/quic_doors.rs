//! Which door a QUIC node's calls take: QUIC between QUIC nodes (gossip included, nothing over
//! TCP), TCP to a node that serves HTTP only. Read from `QuicTransport::calls_by_door`.
#![cfg(all(feature = "quic", feature = "http", feature = "cluster"))]

use std::sync::Arc;
use std::time::Duration;

use pulsing::quic::{QuicConfig, QuicTransport};
use pulsing::{Actor, ActorError, ActorSystem, Context, Message, SpawnOptions, Transport};

struct Echo;

impl Actor for Echo {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        Ok(msg)
    }
}

async fn node(transport: Arc<dyn Transport>, seed: Option<String>) -> ActorSystem {
    let mut b = pulsing::system_builder()
        .addr("127.0.0.1:0")
        .transport_arc(transport);
    if let Some(seed) = seed {
        b = b.seeds([seed]);
    }
    b.build().await.expect("a node")
}

fn quic() -> Arc<QuicTransport> {
    Arc::new(QuicTransport::new(QuicConfig::default()).expect("a QUIC transport"))
}

/// `from` finds `name` through the cluster, then tells and asks it 100 times each.
async fn exercise(from: &ActorSystem, name: &str) {
    let mut r = None;
    for _ in 0..100 {
        r = from.find(name).await;
        if r.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = r.expect("found through the cluster");
    for i in 0..100 {
        r.tell(Message::single("t", i.to_string()))
            .await
            .expect("tell");
        r.ask(Message::single("a", i.to_string()))
            .await
            .expect("ask");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_quic_nodes_send_nothing_over_tcp() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (qa, qb) = (quic(), quic());
        let a = node(qa.clone(), None).await;
        let b = node(qb.clone(), Some(a.addr().unwrap().to_string())).await;
        let public = SpawnOptions::new().public(true);
        b.spawn_with(Echo, "on-b", public.clone()).await.unwrap();
        a.spawn_with(Echo, "on-a", public).await.unwrap();
        exercise(&a, "on-b").await;
        exercise(&b, "on-a").await;
        // A few gossip rounds (200 ms each) more.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (da, db) = (qa.calls_by_door(), qb.calls_by_door());
        eprintln!("two QUIC nodes: a {da:?}, b {db:?}");
        assert!(
            da.quic >= 200 && db.quic >= 200,
            "calls and gossip over QUIC"
        );
        assert_eq!((da.tcp, db.tcp), (0, 0), "nothing over TCP");
        b.shutdown().await;
        a.shutdown().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quic_node_calls_an_http_only_node_over_tcp() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let http_only = node(Arc::new(pulsing::http::HttpTransport::default()), None).await;
        let q = quic();
        let a = node(q.clone(), Some(http_only.addr().unwrap().to_string())).await;
        let public = SpawnOptions::new().public(true);
        http_only.spawn_with(Echo, "on-h", public).await.unwrap();
        exercise(&a, "on-h").await;
        let d = q.calls_by_door();
        eprintln!("QUIC node to an HTTP-only node: {d:?}");
        assert!(d.tcp >= 200, "calls over TCP: {d:?}");
        a.shutdown().await;
        http_only.shutdown().await;
    })
    .await
    .expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_udp_port_fails_the_build_and_frees_the_tcp_port() {
    tokio::time::timeout(Duration::from_secs(30), async {
        // Take a UDP port, then ask a QUIC node to serve the same number.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let e = ActorSystem::builder()
            .addr(addr.to_string())
            .transport_arc(quic())
            .build()
            .await
            .expect_err("the UDP port is taken");
        assert!(e.to_string().contains("UDP"), "{e}");
        // The TCP door it opened first was given back: the port can be bound again.
        let mut freed = false;
        for _ in 0..50 {
            if std::net::TcpListener::bind(addr).is_ok() {
                freed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(freed, "TCP {addr} is free again");
    })
    .await
    .expect("bounded");
}
