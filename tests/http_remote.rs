//! Remote `ActorRef`s over the HTTP transport: two systems in one process on 127.0.0.1, errors keeping
//! their kind, and dead, silent and restarted peers failing fast with typed errors.

#[path = "support/http.rs"]
mod http_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_support::*;
use pulsing::http::{HttpConfig, HttpTransport};
use pulsing::{
    Actor, ActorError, ActorName, Context, Delivery, ErrorKind, Message, NodeId, PulsingError,
    RemoteTarget, Responder, SpawnOptions, Transport,
};
use tokio::sync::Semaphore;

async fn caller(ask_timeout: Duration) -> pulsing::ActorSystem {
    system(test_config(), ask_timeout).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_tell_and_stream_cross_two_systems() {
    bounded(async {
        let node = echo_node().await;
        let me = caller(Duration::from_secs(10)).await;
        let echo = me.remote_ref(node.addr, "echo").unwrap();
        assert!(!echo.is_local());
        let reply = echo.ask(Message::single("ping", "hello")).await.unwrap();
        assert_eq!(reply.msg_type(), Some("echo"));
        assert_eq!(reply.payload().unwrap().as_ref(), b"hello");
        // A large payload goes out and back whole.
        let big = vec![7u8; 300_000];
        let reply = echo
            .ask(Message::single("ping", big.clone()))
            .await
            .unwrap();
        assert_eq!(reply.payload().unwrap().as_ref(), &big[..]);
        echo.tell(Message::single("ping", "told")).await.unwrap();
        let items = echo
            .ask_stream(Message::single("stream", "20"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let got: Vec<String> = items
            .iter()
            .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
            .collect();
        let want: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        assert_eq!(got, want);
        // Many asks at once share the pooled connections.
        let calls = (0..200).map(|i| {
            let echo = echo.clone();
            async move { echo.ask(Message::single("ping", i.to_string())).await }
        });
        for (i, r) in futures_util::future::join_all(calls)
            .await
            .into_iter()
            .enumerate()
        {
            assert_eq!(
                r.unwrap().payload().unwrap().as_ref(),
                i.to_string().as_bytes()
            );
        }
        me.shutdown().await;
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_errors_keep_their_kind() {
    bounded(async {
        let node = echo_node().await;
        let me = caller(Duration::from_secs(10)).await;
        let at = |name| me.remote_ref(node.addr, name).unwrap();

        let e = at("nobody")
            .ask(Message::single("ping", ""))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        let e = at("secret")
            .ask(Message::single("ping", ""))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "private actors are not reachable: {e}");
        // A tell is pipelined: it returns once queued on the link, and the serving node, which
        // cannot deliver it, counts a dead letter of the kind it would have answered.
        at("secret")
            .tell(Message::single("ping", ""))
            .await
            .unwrap();
        let not_found_dead_letters = || {
            node.system
                .stats()
                .dead_letters
                .iter()
                .find(|(k, _)| *k == ErrorKind::NotFound)
                .map_or(0, |(_, n)| *n)
        };
        let waited = Instant::now();
        while not_found_dead_letters() == 0 && waited.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(not_found_dead_letters(), 1);

        let e = at("echo")
            .ask(Message::single("fail", ""))
            .await
            .unwrap_err();
        assert!(e.is_actor_error(), "{e}");
        match &e {
            PulsingError::Actor(a) => {
                assert_eq!(a.type_name(), Some("EchoError"));
                assert_eq!(a.message(), "fail requested");
            }
            other => panic!("{other:?}"),
        }

        let e = at("echo")
            .ask(Message::single("ping", vec![0u8; 2 * 1024 * 1024]))
            .await
            .unwrap_err();
        assert!(e.is_too_large(), "{e}");

        let stream = at("echo")
            .ask_stream(Message::single("stream_fail", ""))
            .await
            .unwrap();
        let e = stream.collect().await.unwrap_err();
        assert!(e.is_actor_error(), "{e}");

        // The remote side bounds its wait by the caller's remaining time: a remote timeout.
        let e = at("echo")
            .ask_with_timeout(Message::single("sleep", "5000"), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        // Whichever timer fired first, the local one or the remote node's, the kind is `timeout`.
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e:?}");
        assert_eq!(e.delivery(), Delivery::MaybeDelivered, "{e:?}");

        // Overloaded: `small` holds one handler and one queued message. Pipelined tells beyond
        // that are dead letters on the serving node (after its 100 ms mailbox wait each); an ask
        // behind them reports the full mailbox to its caller.
        let small = at("small");
        for _ in 0..5 {
            small.tell(Message::single("hold", "")).await.unwrap();
        }
        let e = small.ask(Message::single("hold", "")).await.unwrap_err();
        assert!(e.is_mailbox_full(), "{e}");
        assert_eq!(e.delivery(), Delivery::NotDelivered, "{e:?}");
        let overloaded = node
            .system
            .stats()
            .dead_letters
            .iter()
            .find(|(k, _)| *k == ErrorKind::Overloaded)
            .map_or(0, |(_, n)| *n);
        assert_eq!(overloaded, 3, "tells 3 to 5 found the mailbox full");
        node.gate.add_permits(100);

        me.shutdown().await;
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_unreachable_at_once() {
    bounded(async {
        // A port that was just free: nothing listens there.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let me = caller(Duration::from_secs(20)).await;
        let r = me.remote_ref(dead, "echo").unwrap();
        let started = Instant::now();
        let e = r.ask(Message::single("ping", "")).await.unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        assert_eq!(e.delivery(), Delivery::NotDelivered, "{e:?}");
        // Not by the 20 s ask timeout (a loose bound: this is not a performance assertion).
        assert!(started.elapsed() < Duration::from_secs(10));
        let e = r.tell(Message::single("ping", "")).await.unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        assert_eq!(e.delivery(), Delivery::NotDelivered, "{e:?}");
        me.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_accepts_but_never_answers_fails_asks_by_their_timeout_and_tells_as_unreachable(
) {
    bounded(async {
        // Accepts connections (the kernel completes the handshake) and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((c, _)) = silent.accept().await {
                conns.push(c);
            }
        });
        let me = caller(Duration::from_millis(300)).await;
        let r = me.remote_ref(addr, "echo").unwrap();
        let e = r.ask(Message::single("ping", "")).await.unwrap_err();
        assert!(e.is_timeout(), "{e}");
        // A tell waits for the link to open (the peer's hello) at most the mailbox wait bound
        // (100 ms here), and never longer than the connect timeout.
        let started = Instant::now();
        let e = r.tell(Message::single("ping", "")).await.unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        assert_eq!(e.delivery(), Delivery::NotDelivered, "{e:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        me.shutdown().await;
        held.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_for_another_run_of_the_node_is_not_found() {
    bounded(async {
        let node = echo_node().await;
        let client = HttpTransport::new(HttpConfig::default());
        let target = |node_id| RemoteTarget {
            addr: node.addr,
            name: ActorName::new("echo").unwrap(),
            node: Some(node_id),
        };
        let right = target(node.system.node_id());
        let reply = client
            .ask(&right, Message::single("ping", "x"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(reply.msg_type(), Some("echo"));
        let wrong = target(NodeId(node.system.node_id().0.wrapping_add(1)));
        let e = client
            .ask(&wrong, Message::single("ping", "x"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("node restarted"), "{e}");
        let e = client
            .tell(&wrong, Message::single("ping", "x"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        client.shutdown().await;
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_on_the_same_port_is_reached_again_through_the_pool() {
    bounded(async {
        let first = echo_node().await;
        let addr = first.addr;
        let me = caller(Duration::from_secs(5)).await;
        let r = me.remote_ref(addr, "echo").unwrap();
        r.ask(Message::single("ping", "")).await.unwrap();
        first.system.shutdown().await;
        let e = r.ask(Message::single("ping", "")).await.unwrap_err();
        assert!(e.is_unreachable() || e.is_stopped(), "{e}");
        // A new run on the same port, without `echo`: the pooled connection is replaced, and the
        // old name is not found there.
        let mut second = None;
        for _ in 0..40 {
            let built = pulsing::ActorSystem::builder()
                .addr(addr.to_string())
                .transport(HttpTransport::new(test_config()))
                .build()
                .await;
            if let Ok(s) = built {
                second = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // If this machine does not give the port back in time, a fresh port still shows the rest.
        let second = match second {
            Some(s) => s,
            None => system(test_config(), Duration::from_secs(5)).await,
        };
        let r2 = me.remote_ref(second.addr().unwrap(), "echo").unwrap();
        let e = r2.ask(Message::single("ping", "")).await.unwrap_err();
        assert!(e.is_not_found(), "{e}");
        second.shutdown().await;
        me.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_mid_stream_is_a_truncated_stream() {
    bounded(async {
        let node = echo_node().await;
        let me = caller(Duration::from_secs(10)).await;
        let echo = me.remote_ref(node.addr, "echo").unwrap();
        let mut stream = echo
            .ask_stream(Message::single("stream_forever", ""))
            .await
            .unwrap();
        assert!(stream.next().await.unwrap().is_ok());
        // The serving node goes away while the stream is open.
        node.system.shutdown().await;
        let e = stream.next().await.unwrap().unwrap_err();
        assert!(matches!(e, PulsingError::StreamTruncated(_)), "{e:?}");
        me.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_requests_are_refused_before_sending() {
    bounded(async {
        let node = echo_node().await;
        let me = caller(Duration::from_secs(5)).await;
        let echo = me.remote_ref(node.addr, "echo").unwrap();
        let s = pulsing::MessageStream::from_items(vec![Message::single("a", "")]);
        let e = echo.ask(Message::stream(s)).await.unwrap_err();
        assert!(e.is_bad_message(), "{e}");
        assert_eq!(kind(&e), "bad_request");
        me.shutdown().await;
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_actor_error_keeps_its_type_message_and_detail() {
    bounded(async {
        let node = echo_node().await;
        let me = caller(Duration::from_secs(10)).await;
        let echo = me.remote_ref(node.addr, "echo").unwrap();
        let check = |e: &PulsingError| match e {
            PulsingError::Actor(a) => {
                assert_eq!(a.type_name(), Some("EchoError"));
                assert_eq!(a.message(), "fail requested");
                assert_eq!(a.detail(), Some(DETAIL));
                assert_eq!(e.wire_detail(), Some(DETAIL));
            }
            other => panic!("{other:?}"),
        };
        let e = echo
            .ask(Message::single("fail_detail", ""))
            .await
            .unwrap_err();
        check(&e);
        let mut stream = echo
            .ask_stream(Message::single("stream_fail_detail", ""))
            .await
            .unwrap();
        assert!(stream.next().await.unwrap().is_ok());
        check(&stream.next().await.unwrap().unwrap_err());
        // Without a detail there is none at the caller either.
        match echo.ask(Message::single("fail", "")).await.unwrap_err() {
            PulsingError::Actor(a) => assert_eq!(a.detail(), None),
            other => panic!("{other:?}"),
        }
        me.shutdown().await;
        node.system.shutdown().await;
    })
    .await;
}

/// Answers every message through its responder with `Stopped`, as a forwarding actor whose handler
/// went away does.
struct Refuser;

impl Actor for Refuser {
    const FORWARDS: bool = true;

    async fn receive(&mut self, _: Message, _: &mut Context) -> Result<Message, ActorError> {
        unreachable!("FORWARDS actors get forward() instead")
    }

    async fn forward(&mut self, _: Message, reply: Responder, _: &mut Context) {
        reply.fail(PulsingError::Stopped("refuser".into()));
    }
}

/// Signals each message it starts on, then never finishes it.
struct Stuck {
    entered: Arc<Semaphore>,
}

impl Actor for Stuck {
    async fn receive(&mut self, _: Message, _: &mut Context) -> Result<Message, ActorError> {
        self.entered.add_permits(1);
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_answer_reaches_a_remote_caller_as_503_stopped() {
    bounded(async {
        let node = echo_node().await;
        let public = SpawnOptions::new().public(true);
        node.system
            .spawn_with(Refuser, "refuser", public.clone())
            .await
            .unwrap();
        let me = caller(Duration::from_secs(10)).await;

        let e = me
            .remote_ref(node.addr, "refuser")
            .unwrap()
            .ask(Message::single("ping", ""))
            .await
            .unwrap_err();
        assert!(e.is_stopped(), "{e}");
        assert!(matches!(e, PulsingError::Stopped(_)), "{e:?}");
        let r = hyper_request(
            node.addr,
            true,
            "POST",
            "/actor/refuser",
            &[("content-type", "application/msgpack")],
            envelope("ping", b""),
        )
        .await;
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(error(&r.body).0, "stopped");

        // A handler cut off by `stop` (after the shutdown timeout) answers its remote caller the same.
        let entered = Arc::new(Semaphore::new(0));
        let stuck = Stuck {
            entered: entered.clone(),
        };
        node.system
            .spawn_with(stuck, "stuck", public)
            .await
            .unwrap();
        let remote = me.remote_ref(node.addr, "stuck").unwrap();
        let ask = tokio::spawn(async move { remote.ask(Message::single("ping", "")).await });
        entered.acquire().await.unwrap().forget();
        node.system.stop("stuck").await.unwrap();
        let e = ask.await.unwrap().unwrap_err();
        assert!(e.is_stopped(), "{e}");
        assert_eq!(kind(&e), "stopped");

        me.shutdown().await;
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mailbox_holds_back_its_own_actor_not_the_link() {
    bounded(async {
        // A node whose mailboxes make senders wait up to 4 s: longer than the keep-alive timeout.
        let system = pulsing::ActorSystem::builder()
            .addr("127.0.0.1:0")
            .transport(HttpTransport::new(test_config()))
            .mailbox_wait(Duration::from_secs(4))
            .build()
            .await
            .unwrap();
        let gate = Arc::new(Semaphore::new(0));
        let public = SpawnOptions::new().public(true);
        system
            .spawn_with(Echo { gate: gate.clone() }, "echo", public.clone())
            .await
            .unwrap();
        system
            .spawn_with(
                Echo { gate: gate.clone() },
                "small",
                public.mailbox_capacity(1),
            )
            .await
            .unwrap();
        let addr = system.addr().unwrap();
        let me = caller(Duration::from_secs(10)).await;
        let small = me.remote_ref(addr, "small").unwrap();
        let echo = me.remote_ref(addr, "echo").unwrap();
        // One handled (held by the gate), one queued, three waiting on the serving node.
        for _ in 0..5 {
            small.tell(Message::single("hold", "")).await.unwrap();
        }
        // Meanwhile the same link carries asks to another actor, and keep-alives, for longer than
        // the keep-alive timeout (3 s) and the mailbox wait: the link stays up.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(6) {
            let asked = Instant::now();
            let r = echo
                .ask_with_timeout(Message::single("ping", "x"), Duration::from_secs(2))
                .await;
            assert!(r.is_ok(), "{:?} in: {r:?}", started.elapsed());
            assert!(asked.elapsed() < Duration::from_secs(1), "not held back");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // The first waiting tell was a dead letter after 4 s; the gate opens, the rest are handled,
        // and an ask to `small` comes after all of them (FIFO).
        let overloaded = system
            .stats()
            .dead_letters
            .iter()
            .find(|(k, _)| *k == ErrorKind::Overloaded)
            .map_or(0, |(_, n)| *n);
        assert!(overloaded >= 1, "{overloaded}");
        gate.add_permits(100);
        let r = small.ask(Message::single("ping", "last")).await.unwrap();
        assert_eq!(r.payload().unwrap().as_ref(), b"last");
        me.shutdown().await;
        system.shutdown().await;
    })
    .await;
}

/// An ask's reply is written by whoever answers it (the actor's task), with no task of the link's
/// waiting for it: an ask whose caller gave up is skipped by the mailbox and counted, and an ask
/// whose link ended is answered into nothing, while the node goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_ask_given_up_is_skipped_and_a_reply_after_its_link_ended_goes_nowhere() {
    bounded(async {
        let node = echo_node().await;
        let me = caller(Duration::from_secs(10)).await;
        let echo = me.remote_ref(node.addr, "echo").unwrap();
        let expired = || node.system.stats().expired_asks;
        let before = expired();
        // The link is open before the calls below.
        echo.ask(Message::single("ping", "open")).await.unwrap();

        // `hold` keeps `echo` busy; five asks behind it give up after 150 ms.
        let held = tokio::spawn({
            let echo = echo.clone();
            async move { echo.ask(Message::single("hold", "first")).await }
        });
        // Sent before the others (one link, in order), so they queue behind it.
        let until = Instant::now() + Duration::from_secs(5);
        while me.stats().in_flight_asks == 0 {
            assert!(Instant::now() < until, "`hold` was never sent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let late = (0..5).map(|i| {
            let echo = echo.clone();
            async move {
                echo.ask_with_timeout(
                    Message::single("ping", i.to_string()),
                    Duration::from_millis(150),
                )
                .await
            }
        });
        for r in futures_util::future::join_all(late).await {
            assert!(r.unwrap_err().is_timeout());
        }
        node.gate.add_permits(1);
        let reply = held.await.unwrap().unwrap();
        assert_eq!(reply.payload().unwrap().as_ref(), b"first");
        let until = Instant::now() + Duration::from_secs(5);
        while expired() < before + 5 {
            assert!(
                Instant::now() < until,
                "expired asks: {}",
                expired() - before
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // A caller that leaves while its ask waits in `echo`: the reply comes after the link
        // ended, and the node keeps answering others on the same actor.
        let gone = caller(Duration::from_secs(10)).await;
        let asked = tokio::spawn({
            let echo = gone.remote_ref(node.addr, "echo").unwrap();
            async move { echo.ask(Message::single("hold", "gone")).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        gone.shutdown().await;
        assert!(asked.await.unwrap().is_err());
        node.gate.add_permits(1);
        let reply = echo.ask(Message::single("ping", "after")).await.unwrap();
        assert_eq!(reply.payload().unwrap().as_ref(), b"after");

        me.shutdown().await;
        node.system.shutdown().await;
    })
    .await;
}
