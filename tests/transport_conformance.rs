//! The transport conformance suite: one test per point of the [`Transport`](pulsing::Transport)
//! contract, run against every transport this build has, where users stand — real systems on
//! 127.0.0.1 port 0 calling each other through remote `ActorRef`s. Each test is
//! `<transport>::<contract point>`, e.g. `http::interleaved_tells_and_asks_keep_their_order`.
//!
//! A transport joins with one line below (`http_tls`: the HTTP transport with a cluster secret): a factory from the message size limit to a fresh
//! transport with its default settings otherwise, since the bounds checked here (a silent peer fails
//! within 5 s, a call to a member gone within 8 s) are the defaults' promises. Every contract point
//! is a function here listed in [`conformance_suite!`]; one left out of the list is dead code, which
//! `cargo clippy -- -D warnings` refuses. The probe actor, the nodes and the assertions are in
//! `tests/support/conformance.rs`.
//!
//! Nothing here knows a wire format: what only one transport can be asked (HTTP statuses, frames)
//! belongs in that transport's own tests.
#![cfg(feature = "cluster")]
#![cfg_attr(not(any(feature = "http", feature = "quic")), allow(dead_code))]

#[path = "support/conformance.rs"]
mod conformance;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use conformance::*;
use pulsing::{
    ActorName, ActorRef, Delivery, ErrorKind, MemberState, Message, MessageStream, NodeId,
    PulsingError, SpawnOptions, WireRef,
};

/// One `#[tokio::test]` per contract point for the transport `name`, made by `make` (a
/// [`Factory`](conformance::Factory)): the module `name` with a test per function below.
macro_rules! conformance_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            const MAKE: $crate::conformance::Factory = $make;
            conformance_tests!(
                MAKE;
                an_ask_returns_the_reply_with_its_bytes_intact,
                concurrent_asks_each_get_their_own_reply,
                a_streamed_reply_yields_every_item_in_order_then_its_end_marker,
                a_failing_stream_yields_its_items_then_the_error_with_its_kind,
                a_stream_cut_short_ends_in_an_error_not_its_end_marker,
                dropping_a_streamed_reply_stops_its_producer,
                tells_from_one_task_arrive_in_order,
                tells_from_several_tasks_keep_each_tasks_order,
                an_ask_after_tells_is_handled_after_all_of_them,
                interleaved_tells_and_asks_keep_their_order,
                an_unknown_private_or_stopped_actor_is_not_found,
                a_ref_for_another_run_of_the_node_is_not_found,
                a_handler_error_keeps_its_kind_type_message_and_detail,
                an_ask_slower_than_its_timeout_fails_with_timeout_in_time,
                a_full_mailbox_answers_overloaded,
                an_actor_stopped_under_a_call_answers_stopped,
                a_message_over_the_size_limit_is_too_large,
                a_streamed_request_is_a_bad_request,
                a_refused_connection_is_unreachable_at_once,
                a_call_to_a_silent_peer_fails_within_five_seconds,
                a_call_in_flight_to_a_peer_gone_silent_fails_within_five_seconds,
                a_member_that_crashes_fails_the_calls_in_flight_to_it,
                a_member_that_hangs_fails_the_calls_in_flight_to_it,
                a_graceful_shutdown_finishes_the_calls_it_drains,
                a_graceful_shutdown_answers_the_calls_it_cannot_finish,
                shutting_down_the_caller_ends_its_calls_in_flight,
            );
        }
    };
}

/// One `#[tokio::test]` for each named contract point, run with `make` within the suite's bound.
macro_rules! conformance_tests {
    ($make:ident; $($test:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            $crate::conformance::run(
                concat!(module_path!(), "::", stringify!($test)),
                super::$test($make),
            )
            .await;
        }
    )*};
}

#[cfg(feature = "http")]
conformance_suite!(http, |max_message_size| {
    std::sync::Arc::new(pulsing::http::HttpTransport::new(
        pulsing::http::HttpConfig::default().max_message_size(max_message_size),
    ))
});

// The HTTP transport with a cluster secret: every link is mutual TLS (`docs/security.md`); the
// contract is the same.
#[cfg(feature = "http")]
conformance_suite!(http_tls, |max_message_size| {
    use pulsing::Transport as _;
    let transport = pulsing::http::HttpTransport::new(
        pulsing::http::HttpConfig::default().max_message_size(max_message_size),
    );
    transport
        .secure(&crate::conformance::secured())
        .expect("a secured HTTP transport");
    std::sync::Arc::new(transport)
});

#[cfg(feature = "quic")]
conformance_suite!(quic, |max_message_size| {
    std::sync::Arc::new(
        pulsing::quic::QuicTransport::new(
            pulsing::quic::QuicConfig::default()
                .http(pulsing::http::HttpConfig::default().max_message_size(max_message_size)),
        )
        .expect("a QUIC transport"),
    )
});

// The QUIC transport with a cluster secret: mutual TLS from the cluster CA on QUIC and on its TCP
// door.
#[cfg(feature = "quic")]
conformance_suite!(quic_tls, |max_message_size| {
    use pulsing::Transport as _;
    let transport = pulsing::quic::QuicTransport::new(
        pulsing::quic::QuicConfig::default()
            .http(pulsing::http::HttpConfig::default().max_message_size(max_message_size)),
    )
    .expect("a QUIC transport");
    transport
        .secure(&crate::conformance::secured())
        .expect("a secured QUIC transport");
    std::sync::Arc::new(transport)
});

// --- 1. single replies ----------------------------------------------------------------------------

/// An ask returns the actor's reply: type and payload intact, from empty to 1 MiB, any bytes.
async fn an_ask_returns_the_reply_with_its_bytes_intact(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let every_byte: Vec<u8> = (0..=255).collect();
    let mib: Vec<u8> = (0..1usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    let cases: [(&str, Vec<u8>); 5] = [
        ("ping", b"hello".to_vec()),
        ("empty", Vec::new()),
        ("bytes", every_byte),
        ("mib", mib),
        ("grüße ✓", b"a type that is not ASCII".to_vec()),
    ];
    for (msg_type, payload) in cases {
        let what = format!("ask {msg_type:?} with {} bytes", payload.len());
        let (t, p) = single(
            &what,
            probe.ask(Message::single(msg_type, payload.clone())).await,
        );
        assert_eq!(t, msg_type, "{what}: type");
        assert!(
            p == payload,
            "{what}: payload changed ({} bytes back)",
            p.len()
        );
    }
    assert_eq!(server.seen.handled(), 5);
    me.shutdown().await;
    server.system.shutdown().await;
}

/// Many asks at once, to several actors of one node whose replies come back out of order, each get
/// their own reply.
async fn concurrent_asks_each_get_their_own_reply(make: Factory) {
    let server = served(make).await;
    for i in 0..4 {
        spawn_probe(&server.system, &format!("p{i}"), public()).await;
    }
    let me = node(make).await;
    let refs: Vec<ActorRef> = (0..4)
        .map(|i| remote(&me, server.addr, &format!("p{i}")))
        .collect();
    let calls = (0..200u64).map(|i| {
        let to = refs[(i % 4) as usize].clone();
        // The actors further down the list answer sooner, so replies overtake each other.
        let ms = (3 - i % 4) * 5;
        async move {
            let payload = format!("{ms} call-{i}");
            let r = to.ask(Message::single("sleep", payload.clone())).await;
            (payload, r)
        }
    });
    for (payload, r) in futures_util::future::join_all(calls).await {
        let (_, p) = single(&payload, r);
        assert_eq!(text(&p), payload, "each ask gets its own reply");
    }
    me.shutdown().await;
    server.system.shutdown().await;
}

// --- 2. streamed replies --------------------------------------------------------------------------

/// A streamed reply yields all its items in order, then its end marker (`next()` is `None`, not an
/// error); an empty stream is just its end marker.
async fn a_streamed_reply_yields_every_item_in_order_then_its_end_marker(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    for n in [0u64, 1, 1000] {
        let mut stream = probe
            .ask_stream(Message::single("stream", n.to_string()))
            .await
            .unwrap_or_else(|e| panic!("stream {n}: {e:?}"));
        for i in 0..n {
            let item = stream.next().await;
            let (t, p) = match item {
                Some(r) => single(&format!("item {i} of {n}"), r),
                None => panic!("stream {n}: ended after {i} items"),
            };
            assert_eq!((t.as_str(), text(&p)), ("item", i.to_string()), "item {i}");
        }
        match stream.next().await {
            None => {}
            Some(other) => panic!("stream {n}: expected its end marker, got {other:?}"),
        }
        assert!(stream.next().await.is_none(), "nothing after the end");
    }
    me.shutdown().await;
    server.system.shutdown().await;
}

/// A stream that fails mid-way yields the items sent before, then the error with its kind, type,
/// message and detail, then nothing.
async fn a_failing_stream_yields_its_items_then_the_error_with_its_kind(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let mut stream = probe
        .ask_stream(Message::single("stream_fail", "3"))
        .await
        .unwrap_or_else(|e| panic!("stream_fail: {e:?}"));
    for i in 0..3 {
        let (_, p) = single(
            &format!("item {i}"),
            stream.next().await.expect("an item before the error"),
        );
        assert_eq!(text(&p), i.to_string());
    }
    let e = failed(
        "the error item",
        stream
            .next()
            .await
            .expect("an error item, not the end marker"),
        ErrorKind::ActorError,
        Delivery::Handled,
    );
    match &e {
        PulsingError::Actor(a) => {
            assert_eq!(a.type_name(), Some("ProbeError"), "{e:?}");
            assert_eq!(a.message(), "stream broke", "{e:?}");
            assert_eq!(a.detail(), Some(DETAIL), "{e:?}");
        }
        other => panic!("expected PulsingError::Actor, got {other:?}"),
    }
    assert!(stream.next().await.is_none(), "nothing after the error");
    me.shutdown().await;
    server.system.shutdown().await;
}

/// A stream whose node goes away before its end yields an error (`stream_truncated`), never a clean
/// end: a caller can tell a complete stream from a cut one.
async fn a_stream_cut_short_ends_in_an_error_not_its_end_marker(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let mut stream = probe
        .ask_stream(Message::single("stream_forever", ""))
        .await
        .unwrap_or_else(|e| panic!("stream_forever: {e:?}"));
    single("the first item", stream.next().await.expect("an item"));
    server.system.shutdown().await;
    let (item, took) =
        ends_within("the next item after the cut", SILENT_WITHIN, stream.next()).await;
    match item {
        Some(Err(e)) => assert_eq!(e.kind(), ErrorKind::StreamTruncated, "{e:?}"),
        None => panic!("a cut stream ended as if complete (end marker)"),
        Some(Ok(m)) => panic!("an item after the cut: {m:?}"),
    }
    eprintln!("cut stream: error item {took:?} after the node shut down");
    me.shutdown().await;
}

/// Dropping a streamed reply makes its producer on the other node stop.
async fn dropping_a_streamed_reply_stops_its_producer(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let mut stream = probe
        .ask_stream(Message::single("endless", ""))
        .await
        .unwrap_or_else(|e| panic!("endless: {e:?}"));
    for i in 0..3 {
        single(&format!("item {i}"), stream.next().await.expect("an item"));
    }
    assert!(!server.seen.producer_stopped.load(Ordering::SeqCst));
    drop(stream);
    let took = eventually("the producer stops", SILENT_WITHIN, || {
        server.seen.producer_stopped.load(Ordering::SeqCst)
    })
    .await;
    eprintln!("dropped stream: producer stopped {took:?} later");
    // The node still answers on the same ref.
    single("an ask after", probe.ask(Message::single("ping", "")).await);
    me.shutdown().await;
    server.system.shutdown().await;
}

// --- 3. tell ordering -----------------------------------------------------------------------------

/// 10,000 tells from one task to one remote actor are handled exactly once each, in the order sent.
async fn tells_from_one_task_arrive_in_order(make: Factory) {
    const N: u64 = 10_000;
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let start = Instant::now();
    for i in 0..N {
        probe
            .tell(record(i))
            .await
            .unwrap_or_else(|e| panic!("tell {i}: {e:?}"));
    }
    let told = start.elapsed();
    let seen = records("log", probe.ask(log()).await);
    assert_eq!(seen.len() as u64, N, "every tell handled exactly once");
    if let Some(i) = (0..N).find(|&i| seen[i as usize] != i) {
        panic!(
            "tells out of order: position {i} holds {} (around it: {:?})",
            seen[i as usize],
            &seen[i.saturating_sub(3) as usize..(i + 3).min(N) as usize]
        );
    }
    eprintln!("{N} tells sent in {told:?}");
    me.shutdown().await;
    server.system.shutdown().await;
}

/// Tells from several tasks at once over the same link keep each task's order.
async fn tells_from_several_tasks_keep_each_tasks_order(make: Factory) {
    const TASKS: u64 = 4;
    const N: u64 = 1_000;
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let senders = (0..TASKS).map(|t| {
        let probe = probe.clone();
        tokio::spawn(async move {
            for i in 0..N {
                probe
                    .tell(record(t * 1_000_000 + i))
                    .await
                    .unwrap_or_else(|e| panic!("task {t}, tell {i}: {e:?}"));
            }
        })
    });
    for sender in futures_util::future::join_all(senders).await {
        sender.expect("a sender task");
    }
    let seen = records("log", probe.ask(log()).await);
    assert_eq!(
        seen.len() as u64,
        TASKS * N,
        "every tell handled exactly once"
    );
    for t in 0..TASKS {
        let mine: Vec<u64> = seen
            .iter()
            .filter(|&&n| n / 1_000_000 == t)
            .map(|n| n % 1_000_000)
            .collect();
        assert!(
            mine.iter().copied().eq(0..N),
            "task {t}'s tells out of order or missing: {} of them, first misplaced at {:?}",
            mine.len(),
            mine.iter().enumerate().find(|&(i, &n)| n != i as u64)
        );
    }
    me.shutdown().await;
    server.system.shutdown().await;
}

// --- 4. FIFO across tells and asks ----------------------------------------------------------------

/// An ask sent after tells (each awaited) is handled after all of them, round after round.
async fn an_ask_after_tells_is_handled_after_all_of_them(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let mut next = 0u64;
    for (round, tells) in [1_000u64, 1, 10, 100, 500].into_iter().enumerate() {
        for _ in 0..tells {
            probe
                .tell(record(next))
                .await
                .unwrap_or_else(|e| panic!("round {round}, tell {next}: {e:?}"));
            next += 1;
        }
        // The ask records too: it must find every tell before it already handled.
        let (t, count) = single(
            &format!("round {round}: ask"),
            probe.ask(record(next)).await,
        );
        next += 1;
        assert_eq!(t, "recorded");
        assert_eq!(
            text(&count),
            next.to_string(),
            "round {round}: the ask after {tells} tells saw {} records, not {next}",
            text(&count)
        );
    }
    let seen = records("log", probe.ask(log()).await);
    assert!(seen.iter().copied().eq(0..next), "all in order: {seen:?}");
    me.shutdown().await;
    server.system.shutdown().await;
}

/// Tell, ask, tell, ... from one task: every message is handled in the order sent, and each ask's
/// reply shows exactly the messages sent before it.
async fn interleaved_tells_and_asks_keep_their_order(make: Factory) {
    const ROUNDS: u64 = 300;
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    for i in 0..ROUNDS {
        let base = 3 * i;
        probe
            .tell(record(base))
            .await
            .unwrap_or_else(|e| panic!("tell {base}: {e:?}"));
        let (_, count) = single(
            &format!("ask {}", base + 1),
            probe.ask(record(base + 1)).await,
        );
        assert_eq!(
            text(&count),
            (base + 2).to_string(),
            "the ask {} saw",
            base + 1
        );
        probe
            .tell(record(base + 2))
            .await
            .unwrap_or_else(|e| panic!("tell {}: {e:?}", base + 2));
    }
    let seen = records("log", probe.ask(log()).await);
    assert!(
        seen.iter().copied().eq(0..3 * ROUNDS),
        "in order: first misplaced at {:?}",
        seen.iter().enumerate().find(|&(i, &n)| n != i as u64)
    );
    me.shutdown().await;
    server.system.shutdown().await;
}

// --- 5. every error kind --------------------------------------------------------------------------

/// An unknown name, a private actor and a stopped one are all `not_found`, not delivered.
async fn an_unknown_private_or_stopped_actor_is_not_found(make: Factory) {
    let server = served(make).await;
    let private = spawn_probe(&server.system, "private", SpawnOptions::new()).await;
    let gone = spawn_probe(&server.system, "gone", public()).await;
    let me = node(make).await;
    let ping = || Message::single("ping", "");
    failed(
        "an unknown name",
        remote(&me, server.addr, "nobody").ask(ping()).await,
        ErrorKind::NotFound,
        Delivery::NotDelivered,
    );
    failed(
        "a private actor",
        remote(&me, server.addr, "private").ask(ping()).await,
        ErrorKind::NotFound,
        Delivery::NotDelivered,
    );
    assert_eq!(private.handled(), 0, "a private actor is never reached");
    let to_gone = remote(&me, server.addr, "gone");
    single("before the stop", to_gone.ask(ping()).await);
    server.system.stop("gone").await.expect("stop gone");
    failed(
        "a stopped actor",
        to_gone.ask(ping()).await,
        ErrorKind::NotFound,
        Delivery::NotDelivered,
    );
    assert_eq!(gone.handled(), 1);
    me.shutdown().await;
    server.system.shutdown().await;
}

/// A ref that names the run of its node (as refs sent inside payloads do) reaches that run; a ref
/// for another run of the node at the same address is `not_found` (not delivered), by ask or tell.
async fn a_ref_for_another_run_of_the_node_is_not_found(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let ref_for = |node| {
        let wire = WireRef {
            addr: Some(server.addr),
            node: Some(node),
            id: ActorName::new("probe").expect("a valid name"),
        };
        me.decode_ref(&wire.encode_data()).expect("a remote ref")
    };
    let this_run = ref_for(server.system.node_id());
    let (_, p) = single(
        "this run",
        this_run.ask(Message::single("ping", "here")).await,
    );
    assert_eq!(p, b"here");
    let other_run = ref_for(NodeId(server.system.node_id().0 ^ 1));
    failed(
        "an ask for another run",
        other_run.ask(Message::single("ping", "")).await,
        ErrorKind::NotFound,
        Delivery::NotDelivered,
    );
    failed(
        "a tell for another run",
        other_run.tell(Message::single("ping", "")).await,
        ErrorKind::NotFound,
        Delivery::NotDelivered,
    );
    assert_eq!(server.seen.handled(), 1, "only this run's call was handled");
    me.shutdown().await;
    server.system.shutdown().await;
}

/// A handler's error reaches the remote caller as `actor_error` with its type, message and detail
/// (handled); so does a panic; the actor keeps serving after an error.
async fn a_handler_error_keeps_its_kind_type_message_and_detail(make: Factory) {
    let server = served(make).await;
    spawn_probe(&server.system, "panicky", public()).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let e = failed(
        "fail",
        probe.ask(Message::single("fail", "")).await,
        ErrorKind::ActorError,
        Delivery::Handled,
    );
    match &e {
        PulsingError::Actor(a) => {
            assert_eq!(a.type_name(), Some("ProbeError"), "{e:?}");
            assert_eq!(a.message(), "fail requested", "{e:?}");
            assert_eq!(a.detail(), Some(DETAIL), "{e:?}");
        }
        other => panic!("expected PulsingError::Actor, got {other:?}"),
    }
    let (_, p) = single(
        "after the error",
        probe.ask(Message::single("ping", "still")).await,
    );
    assert_eq!(p, b"still");
    let e = failed(
        "panic",
        remote(&me, server.addr, "panicky")
            .ask(Message::single("panic", ""))
            .await,
        ErrorKind::ActorError,
        Delivery::Handled,
    );
    assert!(e.is_actor_error(), "{e:?}");
    me.shutdown().await;
    server.system.shutdown().await;
}

/// An actor slower than the ask's timeout makes the ask fail with `timeout` (may have been
/// delivered) at that timeout, whether given per call or as the caller's default; the late reply is
/// never taken for the next call's.
async fn an_ask_slower_than_its_timeout_fails_with_timeout_in_time(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let timeout = Duration::from_millis(300);
    let (r, took) = ends_within(
        "an ask with a 300 ms timeout",
        timeout + SLACK,
        probe.ask_with_timeout(Message::single("sleep", "800 late"), timeout),
    )
    .await;
    failed(
        "ask_with_timeout",
        r,
        ErrorKind::Timeout,
        Delivery::MaybeDelivered,
    );
    assert!(
        took >= timeout - Duration::from_millis(100),
        "not before its timeout: {took:?}"
    );
    // Queued behind the sleeping handler: answered after its late reply went out.
    let (_, p) = single(
        "the next ask",
        probe.ask(Message::single("ping", "next")).await,
    );
    assert_eq!(
        text(&p),
        "next",
        "the next ask gets its own reply, not the late one"
    );

    let impatient = builder(make)
        .ask_timeout(Duration::from_millis(400))
        .build()
        .await
        .expect("a caller with a 400 ms ask timeout");
    let probe = remote(&impatient, server.addr, "probe");
    let (r, took) = ends_within(
        "an ask under a 400 ms default",
        Duration::from_millis(400) + SLACK,
        probe.ask(Message::single("sleep", "2000")),
    )
    .await;
    failed("ask", r, ErrorKind::Timeout, Delivery::MaybeDelivered);
    eprintln!("timeouts: per call after {took:?} (default 400 ms)");
    impatient.shutdown().await;
    me.shutdown().await;
    server.system.shutdown().await;
}

/// An ask to an actor whose mailbox stays full past the node's mailbox wait fails with `overloaded`
/// (not delivered, never handled).
async fn a_full_mailbox_answers_overloaded(make: Factory) {
    let wait = Duration::from_millis(100);
    let server = served_by(builder(make).mailbox_wait(wait)).await;
    let small = spawn_probe(&server.system, "small", public().mailbox_capacity(1)).await;
    let me = node(make).await;
    let to = remote(&me, server.addr, "small");
    // One message in the handler, one in the mailbox of one.
    to.tell(Message::single("hold", "1"))
        .await
        .expect("tell hold 1");
    small.wait_entered().await;
    to.tell(Message::single("hold", "2"))
        .await
        .expect("tell hold 2");
    let (r, took) = ends_within(
        "an ask to a full mailbox",
        wait + SLACK,
        to.ask(Message::single("ping", "refused")),
    )
    .await;
    failed(
        "full mailbox",
        r,
        ErrorKind::Overloaded,
        Delivery::NotDelivered,
    );
    eprintln!("overloaded after {took:?} (mailbox wait {wait:?})");
    small.open(2);
    let (_, p) = single(
        "once there is room",
        to.ask(Message::single("ping", "ok")).await,
    );
    assert_eq!(p, b"ok");
    assert_eq!(small.handled(), 3, "the refused ask was never handled");
    me.shutdown().await;
    server.system.shutdown().await;
}

/// An actor stopped while a remote ask is in its handler, and another waits in its mailbox, answers
/// both with `stopped`; later calls find no actor.
async fn an_actor_stopped_under_a_call_answers_stopped(make: Factory) {
    let server = served(make).await;
    let stuck = spawn_probe(&server.system, "stuck", public()).await;
    let local = server.system.find("stuck").await.expect("a local ref");
    let me = node(make).await;
    let to = remote(&me, server.addr, "stuck");
    let handling = tokio::spawn({
        let to = to.clone();
        async move { to.ask(Message::single("hold", "in the handler")).await }
    });
    stuck.wait_entered().await;
    let before = local.mailbox_len().expect("local");
    let queued = tokio::spawn({
        let to = to.clone();
        async move { to.ask(Message::single("ping", "in the mailbox")).await }
    });
    eventually("the second ask is queued", Duration::from_secs(5), || {
        local.mailbox_len() == Some(before + 1)
    })
    .await;
    let stopped = Instant::now();
    server.system.stop("stuck").await.expect("stop stuck");
    let bound = SHUTDOWN_TIMEOUT * 2 + SLACK;
    for (what, call) in [
        ("the ask in the handler", handling),
        ("the queued ask", queued),
    ] {
        let (r, _) = ends_within(what, bound, call).await;
        let e = r.expect("the caller task").expect_err(what);
        assert_eq!(e.kind(), ErrorKind::Stopped, "{what}: {e:?}");
        assert!(e.is_stopped(), "{what}: {e:?}");
    }
    eprintln!(
        "stopped: both calls answered {:?} after the stop",
        stopped.elapsed()
    );
    failed(
        "after the stop",
        to.ask(Message::single("ping", "")).await,
        ErrorKind::NotFound,
        Delivery::NotDelivered,
    );
    me.shutdown().await;
    server.system.shutdown().await;
}

/// A message over the receiving node's limit is `too_large` and not delivered, by ask or tell; one
/// just under it goes through whole; a reply over the caller's limit is `too_large` too; the link
/// keeps working after each refusal.
async fn a_message_over_the_size_limit_is_too_large(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let over = vec![1u8; MAX_MESSAGE_SIZE + 1];
    failed(
        "an ask over the limit",
        probe.ask(Message::single("ping", over.clone())).await,
        ErrorKind::TooLarge,
        Delivery::NotDelivered,
    );
    failed(
        "a tell over the limit",
        probe.tell(Message::single("ping", over)).await,
        ErrorKind::TooLarge,
        Delivery::NotDelivered,
    );
    let (_, p) = single(
        "an ask after the refusals",
        probe.ask(Message::single("ping", "ok")).await,
    );
    assert_eq!(p, b"ok");
    assert_eq!(
        server.seen.handled(),
        1,
        "nothing over the limit was handled"
    );

    let under: Vec<u8> = (0..MAX_MESSAGE_SIZE - 1024)
        .map(|i| (i % 253) as u8)
        .collect();
    let (_, p) = single(
        "an ask just under the limit",
        probe.ask(Message::single("ping", under.clone())).await,
    );
    assert!(
        p == under,
        "just under the limit: payload changed ({} bytes back)",
        p.len()
    );

    let e = probe
        .ask(Message::single("grow", (MAX_MESSAGE_SIZE + 1).to_string()))
        .await
        .expect_err("a reply over the limit");
    assert_eq!(
        e.kind(),
        ErrorKind::TooLarge,
        "a reply over the limit: {e:?}"
    );
    eprintln!(
        "a reply over the limit: {e} (delivery reported: {:?})",
        e.delivery()
    );
    let (_, p) = single(
        "an ask after the big reply",
        probe.ask(Message::single("ping", "ok")).await,
    );
    assert_eq!(p, b"ok");
    me.shutdown().await;
    server.system.shutdown().await;
}

/// A streamed request is refused as `bad_request` before anything is sent.
async fn a_streamed_request_is_a_bad_request(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let probe = remote(&me, server.addr, "probe");
    let stream = || Message::stream(MessageStream::from_items(vec![Message::single("a", "")]));
    failed(
        "a streamed ask",
        probe.ask(stream()).await,
        ErrorKind::BadRequest,
        Delivery::NotDelivered,
    );
    failed(
        "a streamed tell",
        probe.tell(stream()).await,
        ErrorKind::BadRequest,
        Delivery::NotDelivered,
    );
    assert_eq!(server.seen.handled(), 0);
    me.shutdown().await;
    server.system.shutdown().await;
}

// --- 6, 7. peers that refuse or stay silent -------------------------------------------------------

/// A port where nothing listens: asks and tells fail with `unreachable`, not delivered, at once.
async fn a_refused_connection_is_unreachable_at_once(make: Factory) {
    let dead = dead_port();
    let me = node(make).await;
    let to = remote(&me, dead, "probe");
    for attempt in 0..2 {
        let (r, took) = ends_within(
            "an ask to a refused port",
            REFUSED_WITHIN,
            to.ask(Message::single("ping", "")),
        )
        .await;
        let e = failed("ask", r, ErrorKind::Unreachable, Delivery::NotDelivered);
        eprintln!("refused: ask {attempt} failed in {took:?}: {e}");
        let (r, took) = ends_within(
            "a tell to a refused port",
            REFUSED_WITHIN,
            to.tell(Message::single("ping", "")),
        )
        .await;
        let e = failed("tell", r, ErrorKind::Unreachable, Delivery::NotDelivered);
        eprintln!("refused: tell {attempt} failed in {took:?}: {e}");
    }
    me.shutdown().await;
}

/// An ask (default 30 s timeout) to a peer that accepts and never answers fails with
/// `unreachable` within 5 s; a tell to it ends within 5 s too.
async fn a_call_to_a_silent_peer_fails_within_five_seconds(make: Factory) {
    let (addr, holder) = silent_listener().await;
    let me = node(make).await;
    assert_eq!(me.ask_timeout(), pulsing::DEFAULT_ASK_TIMEOUT);
    let to = remote(&me, addr, "probe");
    let (r, took) = ends_within(
        "an ask to a silent peer",
        SILENT_WITHIN,
        to.ask(Message::single("ping", "")),
    )
    .await;
    let e = r.expect_err("an ask to a silent peer");
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e:?}");
    assert_ne!(e.delivery(), Delivery::Handled, "{e:?}");
    eprintln!("silent peer: ask failed in {took:?}: {e}");
    let (r, took) = ends_within(
        "a tell to a silent peer",
        SILENT_WITHIN,
        to.tell(Message::single("ping", "")),
    )
    .await;
    if let Err(e) = &r {
        assert_eq!(e.kind(), ErrorKind::Unreachable, "{e:?}");
    }
    eprintln!("silent peer: tell ended in {took:?}: {r:?}");
    holder.abort();
    me.shutdown().await;
}

/// A node that stops answering (its runtime frozen, sockets open) while an ask is in its handler:
/// the ask fails with `unreachable` (may have been delivered) within 5 s, and so does a new one.
async fn a_call_in_flight_to_a_peer_gone_silent_fails_within_five_seconds(make: Factory) {
    let peer = ForeignNode::start(make, None).await;
    let me = node(make).await;
    let to = remote(&me, peer.addr, "probe");
    single(
        "before the freeze",
        to.ask(Message::single("ping", "warm")).await,
    );
    let in_flight = tokio::spawn({
        let to = to.clone();
        async move { to.ask(Message::single("hold", "")).await }
    });
    peer.seen.wait_entered().await;
    peer.freeze();
    let (r, took) = ends_within("the ask in flight", SILENT_WITHIN, in_flight).await;
    let e = failed(
        "the ask in flight",
        r.expect("the caller task"),
        ErrorKind::Unreachable,
        Delivery::MaybeDelivered,
    );
    eprintln!("frozen peer: ask in flight failed {took:?} after the freeze: {e}");
    let (r, took) = ends_within(
        "an ask after the freeze",
        SILENT_WITHIN,
        to.ask(Message::single("ping", "")),
    )
    .await;
    let e = r.expect_err("an ask after the freeze");
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e:?}");
    eprintln!("frozen peer: new ask failed in {took:?}: {e}");
    peer.crash();
    me.shutdown().await;
}

// --- 8. members gone ------------------------------------------------------------------------------

/// A member that crashes (its sockets closed by the kernel) fails the ask in flight to it with
/// `unreachable` (may have been delivered) within 8 s; the survivor sees it down.
async fn a_member_that_crashes_fails_the_calls_in_flight_to_it(make: Factory) {
    let (a, b, in_flight) = cluster_with_call_in_flight(make).await;
    let b_addr = b.addr;
    b.crash();
    let (r, took) = ends_within(
        "the ask in flight to a crashed member",
        DOWN_WITHIN,
        in_flight,
    )
    .await;
    let e = failed(
        "the ask in flight",
        r.expect("the caller task"),
        ErrorKind::Unreachable,
        Delivery::MaybeDelivered,
    );
    eprintln!("crashed member: ask in flight failed {took:?} after the crash: {e}");
    let down = eventually("a sees b down", DOWN_WITHIN, || {
        a.members()
            .iter()
            .any(|m| m.addr == b_addr && matches!(m.state, MemberState::Down | MemberState::Left))
    })
    .await;
    eprintln!("crashed member: down {down:?} after the call failed");
    a.shutdown().await;
}

/// A member that hangs (runtime frozen, sockets open) fails the ask in flight to it with
/// `unreachable` (may have been delivered) within 8 s, not by the 30 s ask timeout.
async fn a_member_that_hangs_fails_the_calls_in_flight_to_it(make: Factory) {
    let (a, b, in_flight) = cluster_with_call_in_flight(make).await;
    b.freeze();
    let (r, took) = ends_within("the ask in flight to a hung member", DOWN_WITHIN, in_flight).await;
    let e = failed(
        "the ask in flight",
        r.expect("the caller task"),
        ErrorKind::Unreachable,
        Delivery::MaybeDelivered,
    );
    eprintln!("hung member: ask in flight failed {took:?} after the freeze: {e}");
    b.crash();
    a.shutdown().await;
}

// --- 9. shutdown ----------------------------------------------------------------------------------

/// A graceful shutdown of the serving node drains its actors: the ask in the handler and the one
/// queued behind it get their replies; afterwards calls to the node are not delivered.
async fn a_graceful_shutdown_finishes_the_calls_it_drains(make: Factory) {
    let drain = Duration::from_secs(2);
    let server = served_by(builder(make).shutdown_timeout(drain)).await;
    let local = server.system.find("probe").await.expect("a local ref");
    let me = node(make).await;
    let to = remote(&me, server.addr, "probe");
    let handling = tokio::spawn({
        let to = to.clone();
        async move { to.ask(Message::single("sleep", "400 in the handler")).await }
    });
    server.seen.wait_entered().await;
    let before = local.mailbox_len().expect("local");
    let queued = tokio::spawn({
        let to = to.clone();
        async move { to.ask(Message::single("ping", "in the mailbox")).await }
    });
    eventually("the second ask is queued", Duration::from_secs(5), || {
        local.mailbox_len() == Some(before + 1)
    })
    .await;
    let started = Instant::now();
    let system = server.system.clone();
    let shutdown = tokio::spawn(async move { system.shutdown().await });
    for (what, call, want) in [
        ("the ask in the handler", handling, "400 in the handler"),
        ("the queued ask", queued, "in the mailbox"),
    ] {
        let (r, _) = ends_within(what, drain + SLACK, call).await;
        let (_, p) = single(what, r.expect("the caller task"));
        assert_eq!(text(&p), want, "{what}");
    }
    ends_within("the shutdown", drain * 2 + SLACK, shutdown)
        .await
        .0
        .expect("the shutdown task");
    eprintln!(
        "graceful shutdown: drained and closed in {:?}",
        started.elapsed()
    );
    let (r, _) = ends_within(
        "an ask after the shutdown",
        REFUSED_WITHIN,
        to.ask(Message::single("ping", "")),
    )
    .await;
    // Refused (`unreachable`), or `shutdown` from a link that had not yet seen the close.
    let e = r.expect_err("an ask after the shutdown");
    assert!(
        matches!(e.kind(), ErrorKind::Unreachable | ErrorKind::Shutdown),
        "after the shutdown: {e:?}"
    );
    assert_eq!(
        e.delivery(),
        Delivery::NotDelivered,
        "after the shutdown: {e:?}"
    );
    me.shutdown().await;
}

/// A graceful shutdown answers the ask whose handler does not finish in the drain (`stopped`, or
/// `unreachable` once the node closed), and refuses new asks meanwhile with `shutdown`.
async fn a_graceful_shutdown_answers_the_calls_it_cannot_finish(make: Factory) {
    let drain = Duration::from_secs(1);
    let server = served_by(builder(make).shutdown_timeout(drain)).await;
    let me = node(make).await;
    let to = remote(&me, server.addr, "probe");
    let in_flight = tokio::spawn({
        let to = to.clone();
        async move { to.ask(Message::single("hold", "never released")).await }
    });
    server.seen.wait_entered().await;
    let started = Instant::now();
    let system = server.system.clone();
    let shutdown = tokio::spawn(async move { system.shutdown().await });
    eventually("the shutdown starts", Duration::from_secs(1), || {
        server.system.is_shut_down()
    })
    .await;
    failed(
        "a new ask while the node drains",
        to.ask(Message::single("ping", "")).await,
        ErrorKind::Shutdown,
        Delivery::NotDelivered,
    );
    let (r, _) = ends_within("the ask in flight", drain * 2 + SLACK, in_flight).await;
    let took = started.elapsed();
    let e = r
        .expect("the caller task")
        .expect_err("a handler that never finishes");
    assert!(
        e.kind() == ErrorKind::Stopped || e.kind() == ErrorKind::Unreachable,
        "stopped or unreachable: {e:?}"
    );
    assert_ne!(
        e.delivery(),
        Delivery::NotDelivered,
        "it was in the handler: {e:?}"
    );
    eprintln!("graceful shutdown: the stuck call ended {took:?} after the shutdown began: {e}");
    ends_within("the shutdown", drain * 2 + SLACK, shutdown)
        .await
        .0
        .expect("the shutdown task");
    eprintln!("graceful shutdown: closed in {:?}", started.elapsed());
    me.shutdown().await;
}

/// Shutting the calling node down ends its calls in flight (an error, at once), not by their
/// timeout.
async fn shutting_down_the_caller_ends_its_calls_in_flight(make: Factory) {
    let server = served(make).await;
    let me = node(make).await;
    let to = remote(&me, server.addr, "probe");
    let in_flight = tokio::spawn({
        let to = to.clone();
        async move { to.ask(Message::single("hold", "")).await }
    });
    server.seen.wait_entered().await;
    ends_within(
        "the caller's shutdown",
        Duration::from_secs(2),
        me.shutdown(),
    )
    .await;
    let (r, took) = ends_within("the ask in flight", Duration::from_secs(2), in_flight).await;
    let e = r
        .expect("the caller task")
        .expect_err("the caller shut down");
    assert!(
        e.is_stopped() || e.is_unreachable(),
        "stopped, shutdown or unreachable: {e:?}"
    );
    eprintln!("caller shut down: its ask in flight ended {took:?} later: {e}");
    server.seen.open(1);
    server.system.shutdown().await;
}
