//! The cluster secret within one process over real sockets on 127.0.0.1 (HTTP transport): nodes
//! with the same secret join and call each other over mutual TLS; a node with another secret or
//! none is refused with `unauthorized`, naming the seed. (`tests/secret_processes.rs` does the
//! same across OS processes, with curl, rotation and a connection flood.)

mod support;

use std::time::{Duration, Instant};

use pulsing::{ActorSystem, ErrorKind, Message, PulsingError, SpawnOptions};
use support::{bounded, Echo};

async fn node(
    secrets: &[&str],
    seed: Option<std::net::SocketAddr>,
) -> Result<ActorSystem, PulsingError> {
    let mut b = pulsing::system_builder().addr("127.0.0.1:0");
    if !secrets.is_empty() {
        b = b.secrets(secrets.iter().copied());
    }
    if let Some(seed) = seed {
        b = b.seeds([seed.to_string()]);
    }
    b.build().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_secret_joins_and_calls_others_are_refused() {
    bounded(async {
        let a = node(&["alpha"], None).await.unwrap();
        let a_addr = a.addr().unwrap();
        a.spawn_with(Echo, "echo", SpawnOptions::new().public(true))
            .await
            .unwrap();
        let b = node(&["alpha"], Some(a_addr)).await.unwrap();
        let echo = b.find("echo").await.expect("found across the TLS cluster");
        let reply = echo.ask(Message::single("ping", "over tls")).await.unwrap();
        assert_eq!(reply.payload().unwrap().as_ref(), b"over tls");
        for _ in 0..100 {
            echo.tell(Message::single("t", "x")).await.unwrap();
        }
        echo.ask(Message::single("ping", "after tells"))
            .await
            .unwrap();

        let started = Instant::now();
        let e = node(&["beta"], Some(a_addr)).await.unwrap_err();
        println!("wrong secret: {e} ({:?})", started.elapsed());
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
        assert!(e.to_string().contains(&a_addr.to_string()), "{e}");

        let started = Instant::now();
        let e = node(&[], Some(a_addr)).await.unwrap_err();
        println!("no secret: {e} ({:?})", started.elapsed());
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");

        // A direct call by address from a node with another secret is refused.
        let other = node(&["beta"], None).await.unwrap();
        let r = other.remote_ref(a_addr, "echo").unwrap();
        let e = r.ask(Message::single("ping", "x")).await.unwrap_err();
        println!("wrong-secret ask: {e}");
        assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}");
        let plain = node(&[], None).await.unwrap();
        let r = plain.remote_ref(a_addr, "echo").unwrap();
        let e = r.ask(Message::single("ping", "x")).await.unwrap_err();
        println!("no-secret ask: {e}");

        tokio::time::sleep(Duration::from_millis(300)).await;
        let members = a.members();
        assert_eq!(members.len(), 2, "{members:?}");
        for s in [b, other, plain, a] {
            s.shutdown().await;
        }
    })
    .await;
}
