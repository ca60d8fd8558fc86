//! The local runtime's promises: ordering, back-pressure, timeouts, supervision, shutdown, streams.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use pulsing::{
    Actor, ActorError, ActorRef, ActorSystem, Context, Message, MessageStream, PulsingError,
    RestartPolicy, SpawnOptions,
};
use support::{bounded, read_value, value, Echo, Fragile, Gate};

async fn standalone() -> ActorSystem {
    ActorSystem::builder()
        .shutdown_timeout(Duration::from_millis(300))
        .build()
        .await
        .expect("standalone system")
}

/// A [`Gate`] actor spawned as `name` with a mailbox of `capacity`, and the gate that holds it.
async fn gated(system: &ActorSystem, name: &str, capacity: usize) -> (Gate, ActorRef) {
    let gate = Gate::new();
    let r = system
        .spawn_with(
            gate.clone(),
            name,
            SpawnOptions::new().mailbox_capacity(capacity),
        )
        .await
        .unwrap();
    (gate, r)
}

/// Records `(sender, seq)` pairs in the order handled.
struct Recorder(Vec<(u8, u32)>);

impl Actor for Recorder {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        let (ty, payload) = msg.into_single()?;
        if ty == "dump" {
            let mut out = Vec::new();
            for (s, n) in &self.0 {
                out.push(*s);
                out.extend_from_slice(&n.to_be_bytes());
            }
            return Ok(Message::single("dump", out));
        }
        let seq = u32::from_be_bytes(payload[1..5].try_into().expect("5 bytes"));
        self.0.push((payload[0], seq));
        Ok(Message::single("ok", ""))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_from_one_sender_are_handled_in_send_order() {
    bounded(async {
        let system = standalone().await;
        // A small mailbox makes senders wait for room, which must not reorder them.
        let rec = system
            .spawn_with(
                Recorder(Vec::new()),
                "rec",
                SpawnOptions::new().mailbox_capacity(4),
            )
            .await
            .unwrap();
        let senders = 4u8;
        let per_sender = 2_000u32;
        let mut tasks = Vec::new();
        for s in 0..senders {
            let rec = rec.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..per_sender {
                    let mut p = vec![s];
                    p.extend_from_slice(&n.to_be_bytes());
                    // Mix tells and asks: both go through the same mailbox.
                    if n % 3 == 0 {
                        rec.ask(Message::single("rec", p)).await.unwrap();
                    } else {
                        rec.tell(Message::single("rec", p)).await.unwrap();
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let dump = rec.ask(Message::single("dump", "")).await.unwrap();
        let bytes = dump.payload().unwrap();
        let mut next = vec![0u32; senders as usize];
        for chunk in bytes.chunks(5) {
            let s = chunk[0] as usize;
            let n = u32::from_be_bytes(chunk[1..5].try_into().unwrap());
            assert_eq!(n, next[s], "sender {s} out of order");
            next[s] += 1;
        }
        assert!(
            next.iter().all(|&n| n == per_sender),
            "all handled: {next:?}"
        );
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mailbox_pushes_back_and_try_tell_returns_the_message() {
    bounded(async {
        let system = ActorSystem::builder()
            .mailbox_wait(Duration::from_millis(50))
            .shutdown_timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap();
        let (gate, r) = gated(&system, "gate", 2).await;
        r.tell(Message::single("m", "0")).await.unwrap();
        gate.wait_entered().await; // "0" is in the handler, the mailbox is empty
        r.tell(Message::single("m", "1")).await.unwrap();
        r.tell(Message::single("m", "2")).await.unwrap();
        assert_eq!(r.mailbox_len(), Some(2));

        let back = r.try_tell(Message::single("m", "given back")).unwrap_err();
        assert!(back.is_full());
        assert_eq!(
            back.into_message().payload().unwrap().as_ref(),
            b"given back"
        );

        let t = Instant::now();
        let err = r.tell(Message::single("m", "x")).await.unwrap_err();
        assert!(err.is_mailbox_full(), "{err}");
        assert!(t.elapsed() >= Duration::from_millis(50));
        let err = r.ask(Message::single("m", "y")).await.unwrap_err();
        assert!(err.is_mailbox_full(), "{err}");
        assert_eq!(r.mailbox_len(), Some(2), "refused messages were not queued");

        gate.open(4);
        let reply = r.ask(Message::single("m", "3")).await.unwrap();
        assert_eq!(reply.payload().unwrap().as_ref(), b"3");
        assert_eq!(
            gate.handled(),
            vec![b"0".to_vec(), b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]
        );
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_times_out_and_leaves_nothing_pending() {
    bounded(async {
        let system = standalone().await;
        let (gate, r) = gated(&system, "slow", 2048).await;
        let t = Instant::now();
        let err = r
            .ask_with_timeout(Message::single("m", "late"), Duration::from_millis(30))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert!(t.elapsed() < Duration::from_secs(5));

        // 1000 more asks time out while the actor is stuck on the first.
        let asks = (0..1000)
            .map(|_| r.ask_with_timeout(Message::single("m", "late"), Duration::from_millis(20)));
        for res in futures_util::future::join_all(asks).await {
            assert!(res.unwrap_err().is_timeout());
        }
        assert_eq!(system.stats().in_flight_asks, 0);
        gate.open(usize::MAX >> 4);
        // The actor skips the abandoned asks: only the first one, already in the handler, runs.
        let reply = r.ask(Message::single("m", "fresh")).await.unwrap();
        assert_eq!(reply.payload().unwrap().as_ref(), b"fresh");
        assert_eq!(gate.handled(), vec![b"late".to_vec(), b"fresh".to_vec()]);
        let stats = system.stats();
        assert_eq!(stats.in_flight_asks, 0);
        assert_eq!(stats.queued, 0);
        assert_eq!(stats.expired_asks, 1000);
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_dropped_asks_leave_no_growth() {
    bounded(async {
        let system = standalone().await;
        // Room for all of them, so that every envelope is queued and must be accounted for below.
        let echo = system
            .spawn_with(Echo, "echo", SpawnOptions::new().mailbox_capacity(131_072))
            .await
            .unwrap();
        for i in 0..100_000u32 {
            // Polled once (the message is queued), then dropped: the caller walks away.
            let fut = echo.ask(Message::single("m", i.to_be_bytes().to_vec()));
            let _ = fut.now_or_never();
            if i % 1024 == 0 {
                tokio::task::yield_now().await;
            }
        }
        // FIFO: once this is answered, every earlier envelope has been handled or skipped.
        echo.ask(Message::single("m", "last")).await.unwrap();
        let stats = system.stats();
        assert_eq!(stats.in_flight_asks, 0, "no pending ask left behind");
        assert_eq!(stats.queued, 0, "no envelope left in the mailbox");
        assert_eq!(echo.mailbox_len(), Some(0));
        assert_eq!(
            stats.messages_handled + stats.expired_asks,
            100_001,
            "every envelope was either handled or skipped: {stats:?}"
        );
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_error_answers_the_caller_and_keeps_the_actor() {
    bounded(async {
        let system = standalone().await;
        let starts = Arc::new(AtomicU64::new(0));
        let r = system
            .spawn(Fragile::new(&starts), "fragile")
            .await
            .unwrap();
        r.ask(Message::single("inc", "")).await.unwrap();
        let err = r.ask(Message::single("fail", "")).await.unwrap_err();
        assert!(err.is_actor_error() && !err.is_panic(), "{err}");
        match &err {
            PulsingError::Actor(e) => {
                assert_eq!(e.type_name(), Some("ValueError"));
                assert_eq!(e.message(), "fail requested");
            }
            other => panic!("unexpected {other:?}"),
        }
        let v = r.ask(Message::single("inc", "")).await.unwrap();
        assert_eq!(read_value(&v), 2, "state kept across the error");
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_typed_error_other_actors_are_unaffected_and_never_policy_stops() {
    bounded(async {
        let system = standalone().await;
        let starts = Arc::new(AtomicU64::new(0));
        let fragile = system
            .spawn(Fragile::new(&starts), "fragile")
            .await
            .unwrap();
        let bystander = system.spawn(Echo, "bystander").await.unwrap();
        fragile.ask(Message::single("inc", "")).await.unwrap();

        let err = fragile.ask(Message::single("boom", "")).await.unwrap_err();
        assert!(err.is_panic(), "{err}");
        assert!(err.to_string().contains("boom requested"), "{err}");

        assert!(bystander.ask(Message::single("hi", "")).await.is_ok());
        // RestartPolicy::Never: the actor is gone, its name is free.
        let err = fragile.ask(Message::single("get", "")).await.unwrap_err();
        assert!(err.is_stopped(), "{err}");
        assert!(system.find("fragile").await.is_none());
        assert!(system.find("bystander").await.is_some());
        assert_eq!(system.stats().panics, 1);
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_policy_rebuilds_state_and_gives_up_after_max_restarts() {
    bounded(async {
        let system = standalone().await;
        let starts = Arc::new(AtomicU64::new(0));
        let s = starts.clone();
        let policy = RestartPolicy::OnFailure {
            max_restarts: 2,
            backoff: Duration::from_millis(10),
        };
        let r = system
            .spawn_factory(
                move || Fragile {
                    value: 100,
                    starts: s.clone(),
                },
                "phoenix",
                SpawnOptions::new().restart(policy),
            )
            .await
            .unwrap();
        assert_eq!(
            read_value(&r.ask(Message::single("inc", "")).await.unwrap()),
            101
        );

        // Queue messages behind the panic: the restarted instance handles them, in order.
        let boom = r.ask(Message::single("boom", ""));
        let after = r.ask(Message::single("inc", ""));
        let (boom, after) = tokio::join!(boom, after);
        assert!(boom.unwrap_err().is_panic());
        assert_eq!(
            read_value(&after.unwrap()),
            101,
            "fresh state from the factory"
        );
        assert_eq!(
            read_value(&r.ask(Message::single("restarts", "")).await.unwrap()),
            1
        );

        assert!(r
            .ask(Message::single("boom", ""))
            .await
            .unwrap_err()
            .is_panic());
        assert_eq!(
            read_value(&r.ask(Message::single("restarts", "")).await.unwrap()),
            2
        );
        assert_eq!(starts.load(Ordering::SeqCst), 3);

        // The budget is spent: the third panic stops the actor.
        assert!(r
            .ask(Message::single("boom", ""))
            .await
            .unwrap_err()
            .is_panic());
        assert!(r
            .ask(Message::single("get", ""))
            .await
            .unwrap_err()
            .is_stopped());
        let stats = system.stats();
        assert_eq!((stats.panics, stats.restarts), (3, 2));
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policies_need_a_factory() {
    bounded(async {
        let system = standalone().await;
        let policy = RestartPolicy::OnFailure {
            max_restarts: 1,
            backoff: Duration::ZERO,
        };
        let err = system
            .spawn_with(Echo, "e", SpawnOptions::new().restart(policy))
            .await
            .unwrap_err();
        assert!(matches!(err, PulsingError::Config(_)), "{err}");
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_runs_on_stop_and_answers_queued_asks_with_an_error() {
    bounded(async {
        let system = standalone().await; // drain bound 300 ms
        let (gate, r) = gated(&system, "gate", 1024).await;
        let mut queued = Vec::new();
        for i in 0..5 {
            let r = r.clone();
            queued.push(tokio::spawn(async move {
                r.ask(Message::single("m", format!("{i}"))).await
            }));
            if i == 0 {
                gate.wait_entered().await; // the first ask blocks the handler
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await; // let the rest reach the mailbox
        let t = Instant::now();
        system.shutdown().await;
        let took = t.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "shutdown is bounded, took {took:?}"
        );
        for q in queued {
            let err = q.await.unwrap().unwrap_err();
            assert!(err.is_stopped(), "{err}");
        }
        assert!(gate.stopped.load(Ordering::SeqCst), "on_stop ran");
        assert!(system.is_shut_down());
        assert!(system.find("gate").await.is_none());
        assert!(r
            .ask(Message::single("m", "after"))
            .await
            .unwrap_err()
            .is_stopped());
        let err = system.spawn(Echo, "late").await.unwrap_err();
        assert!(err.is_stopped(), "{err}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_what_it_can_within_the_bound() {
    bounded(async {
        let system = standalone().await;
        let (gate, r) = gated(&system, "gate", 1024).await;
        for i in 0..3 {
            r.tell(Message::single("m", format!("{i}"))).await.unwrap();
        }
        gate.open(3);
        system.shutdown().await;
        assert_eq!(
            gate.handled().len(),
            3,
            "queued messages are handled before the bound"
        );
        assert!(gate.stopped.load(Ordering::SeqCst));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_frees_the_name_and_runs_on_stop() {
    bounded(async {
        let system = standalone().await;
        let gate = Gate::new();
        let r = system.spawn(gate.clone(), "g").await.unwrap();
        system.stop("g").await.unwrap();
        assert!(gate.stopped.load(Ordering::SeqCst));
        assert!(r
            .tell(Message::single("m", ""))
            .await
            .unwrap_err()
            .is_stopped());
        assert!(system.stop("g").await.unwrap_err().is_not_found());
        system
            .spawn(Echo, "g")
            .await
            .expect("the name is free again");
        system.shutdown().await;
    })
    .await;
}

struct SelfStopper;

impl Actor for SelfStopper {
    async fn receive(&mut self, msg: Message, ctx: &mut Context) -> Result<Message, ActorError> {
        if msg.msg_type() == Some("quit") {
            ctx.stop();
        }
        Ok(msg)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_can_stop_itself() {
    bounded(async {
        let system = standalone().await;
        let r = system.spawn(SelfStopper, "s").await.unwrap();
        assert!(r.ask(Message::single("quit", "")).await.is_ok());
        assert!(r
            .ask(Message::single("hi", ""))
            .await
            .unwrap_err()
            .is_stopped());
        system.shutdown().await;
    })
    .await;
}

struct FailsToStart;

impl Actor for FailsToStart {
    async fn on_start(&mut self, _: &mut Context) -> Result<(), ActorError> {
        Err(ActorError::new("no database"))
    }
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        Ok(msg)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_reports_bad_names_duplicates_and_start_failures() {
    bounded(async {
        let system = standalone().await;
        assert!(system
            .spawn(Echo, "bad name")
            .await
            .unwrap_err()
            .is_bad_message());
        system.spawn(Echo, "dup").await.unwrap();
        let err = system.spawn(Echo, "dup").await.unwrap_err();
        assert!(matches!(err, PulsingError::AlreadyExists(_)), "{err}");
        let err = system.spawn(FailsToStart, "fts").await.unwrap_err();
        assert!(err.to_string().contains("no database"), "{err}");
        assert!(
            system.find("fts").await.is_none(),
            "a failed start leaves no actor"
        );
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_public_actors_are_both_found_locally() {
    bounded(async {
        let system = standalone().await;
        system.spawn(Echo, "private").await.unwrap();
        system
            .spawn_with(Echo, "public", SpawnOptions::new().public(true))
            .await
            .unwrap();
        assert!(system.has_actor("private").await);
        assert!(system.has_actor("public").await);
        assert!(!system.has_actor("nobody").await);
        assert!(!system.has_actor("not a name").await);
        let names: Vec<_> = system
            .local_actors()
            .into_iter()
            .map(|(n, public)| (n.to_string(), public))
            .collect();
        assert_eq!(
            names,
            vec![("private".into(), false), ("public".into(), true)]
        );
        system.shutdown().await;
    })
    .await;
}

/// Streams `n` items; "cut" drops its producer half-way; "bad" ends with an error item.
struct Tokens;

impl Actor for Tokens {
    async fn receive(&mut self, msg: Message, _: &mut Context) -> Result<Message, ActorError> {
        let (ty, payload) = msg.into_single()?;
        let n: u32 = std::str::from_utf8(&payload)?.parse()?;
        let (tx, rx) = MessageStream::channel(4);
        tokio::spawn(async move {
            for i in 0..n {
                if tx
                    .send(Message::single("tok", format!("t{i}")))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            match ty.as_str() {
                "cut" => drop(tx),
                "bad" => tx.fail(ActorError::new("model crashed")).await,
                _ => tx.end().await,
            }
        });
        Ok(Message::stream(rx))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_reply_ends_with_its_end_marker_or_an_error_item() {
    bounded(async {
        let system = standalone().await;
        let r = system.spawn(Tokens, "tokens").await.unwrap();

        let items = r
            .ask_stream(Message::single("ok", "3"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let got: Vec<_> = items.iter().map(|m| m.payload().unwrap().clone()).collect();
        assert_eq!(got, vec!["t0", "t1", "t2"]);

        let mut s = r.ask_stream(Message::single("cut", "2")).await.unwrap();
        assert!(s.next().await.unwrap().is_ok());
        assert!(s.next().await.unwrap().is_ok());
        let err = s.next().await.unwrap().unwrap_err();
        assert!(matches!(err, PulsingError::StreamTruncated(_)), "{err}");
        assert!(s.next().await.is_none());

        let mut s = r.ask_stream(Message::single("bad", "1")).await.unwrap();
        assert!(s.next().await.unwrap().is_ok());
        assert!(s.next().await.unwrap().unwrap_err().is_actor_error());
        assert!(s.next().await.is_none());

        // A single reply reads as a one-item stream.
        let echo = system.spawn(Echo, "echo").await.unwrap();
        let one = echo
            .ask_stream(Message::single("x", "y"))
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_compare_by_incarnation() {
    bounded(async {
        let system = standalone().await;
        let a = system.spawn(Echo, "a").await.unwrap();
        assert_eq!(a, system.find("a").await.unwrap());
        system.stop("a").await.unwrap();
        let a2 = system.spawn(Echo, "a").await.unwrap();
        assert_ne!(
            a, a2,
            "a new actor under an old name is another incarnation"
        );
        assert!(
            a.ask(value(1)).await.unwrap_err().is_stopped(),
            "old refs never reach the new actor"
        );
        system.shutdown().await;
    })
    .await;
}

/// Keeps each ask's responder and answers them all, in order, when told "flush".
struct Deferred(Vec<(Message, pulsing::Responder)>);

impl Actor for Deferred {
    const FORWARDS: bool = true;

    async fn receive(&mut self, _: Message, _: &mut Context) -> Result<Message, ActorError> {
        unreachable!("FORWARDS actors get forward() instead")
    }

    async fn forward(&mut self, msg: Message, reply: pulsing::Responder, _: &mut Context) {
        match msg.msg_type() {
            Some("flush") => {
                for (m, r) in self.0.drain(..) {
                    r.send(Ok(m));
                }
            }
            Some("drop") => self.0.clear(),
            _ => self.0.push((msg, reply)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_actor_answers_later_and_a_dropped_responder_answers_stopped() {
    bounded(async {
        let system = standalone().await;
        let r = system
            .spawn(Deferred(Vec::new()), "deferred")
            .await
            .unwrap();
        let asks: Vec<_> = (0..3)
            .map(|i| {
                let r = r.clone();
                tokio::spawn(async move { r.ask(Message::single("m", format!("{i}"))).await })
            })
            .collect();
        while system.stats().messages_handled < 3 {
            tokio::task::yield_now().await;
        }
        r.tell(Message::single("flush", "")).await.unwrap();
        for a in asks {
            assert!(a.await.unwrap().is_ok());
        }
        let pending = {
            let r = r.clone();
            tokio::spawn(async move { r.ask(Message::single("m", "x")).await })
        };
        while system.stats().messages_handled < 5 {
            tokio::task::yield_now().await;
        }
        r.tell(Message::single("drop", "")).await.unwrap();
        assert!(pending.await.unwrap().unwrap_err().is_stopped());
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_taken_in_a_batch_still_count_and_keep_their_order() {
    bounded(async {
        let system = standalone().await;
        // Capacity 64: the actor takes up to 8 messages out of the mailbox at once.
        let (gate, r) = gated(&system, "gate", 64).await;
        r.tell(Message::single("m", "0")).await.unwrap();
        gate.wait_entered().await; // "0" is in the handler, the mailbox is empty
        for i in 1..=20 {
            r.tell(Message::single("m", i.to_string())).await.unwrap();
        }
        assert_eq!(r.mailbox_len(), Some(20));
        gate.open(1);
        gate.wait_entered().await; // "1" is in the handler; "2" to "8" were taken with it
        assert_eq!(r.mailbox_len(), Some(19), "taken messages count as queued");
        assert_eq!(system.stats().queued, 19);

        // Room is what the mailbox itself has left: 64 - 12 still in it.
        for i in 0..52 {
            assert!(
                r.try_tell(Message::single("m", format!("x{i}"))).is_ok(),
                "{i}"
            );
        }
        assert!(r
            .try_tell(Message::single("m", "full"))
            .unwrap_err()
            .is_full());
        assert_eq!(r.mailbox_len(), Some(71));

        gate.open(1000);
        r.ask(Message::single("m", "last")).await.unwrap();
        let handled = gate.handled();
        let mut expected: Vec<Vec<u8>> = (0..=20).map(|i| i.to_string().into_bytes()).collect();
        expected.extend((0..52).map(|i| format!("x{i}").into_bytes()));
        expected.push(b"last".to_vec());
        assert_eq!(handled, expected, "handled in send order");
        assert_eq!(r.mailbox_len(), Some(0));
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_takes_effect_under_a_steady_stream_of_messages() {
    bounded(async {
        let system = standalone().await;
        let gate = Gate::new();
        gate.open(1 << 40);
        let r = system.spawn(gate.clone(), "busy").await.unwrap();
        // Two senders keep the mailbox from ever running empty.
        let mut floods = Vec::new();
        for _ in 0..2 {
            let r = r.clone();
            floods.push(tokio::spawn(async move {
                loop {
                    if let Err(e) = r.tell(Message::single("m", "x")).await {
                        return e;
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        system.stop("busy").await.unwrap();
        // `on_stop` ran: the actor stopped by itself within the bound rather than being aborted.
        assert!(gate.stopped.load(Ordering::SeqCst));
        for f in floods {
            assert!(f.await.unwrap().is_stopped());
        }
        system.shutdown().await;
    })
    .await;
}
