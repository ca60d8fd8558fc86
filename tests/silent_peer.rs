//! Peers that stop answering without closing their sockets: `cluster_node` processes on 127.0.0.1
//! stopped with SIGSTOP (and resumed with SIGCONT), and a bare listener that never speaks.
//! Calls to them must fail with `NodeUnreachable` within the keep-alive bound (interval + timeout,
//! 4 s by default) or once the membership declares the node down, never by the 30 s ask timeout.
//! Every scenario runs over HTTP and, built with the `quic` feature, over QUIC (the nodes and the
//! caller on the same transport): `<scenario>::over_http`, `<scenario>::over_quic`.
#![cfg(all(feature = "http", feature = "cluster", unix))]

#[path = "support/processes.rs"]
mod processes;
#[macro_use]
#[path = "support/transports.rs"]
mod transports;

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use pulsing::http::HttpConfig;
use pulsing::{ActorRef, ActorSystem, Delivery, Message, PulsingError};

use processes::{run_within, NodeProcess};
use transports::TransportKind;

/// Bound on the async part of each test.
const BOUND: Duration = Duration::from_secs(60);
const ASK_TIMEOUT: Duration = Duration::from_secs(30);
/// A call to a silent peer must fail within this (keep-alive interval + timeout is 4 s).
const FAIL_WITHIN: Duration = Duration::from_secs(5);
/// The membership declares a stopped node down in about 4 s on loopback (README, measured
/// 3.9–4.6 s), then its connections get 1 s to answer a PING; an in-flight call must fail by then,
/// well before the ask timeout.
const DOWN_WITHIN: Duration = Duration::from_secs(8);

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid}: {status}");
}

/// A process stopped with SIGSTOP; resumed with SIGCONT when dropped, so a failing test never
/// leaves a stopped process behind (the [`NodeProcess`] then kills it).
struct Stopped(u32);

impl Stopped {
    fn new(node: &NodeProcess) -> Stopped {
        signal(node.pid(), "-STOP");
        Stopped(node.pid())
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// Runs `body` on a multi-thread runtime within [`BOUND`].
fn run<F: Future<Output = ()>>(body: F) {
    run_within(BOUND, body);
}

/// A `cluster_node` process over `kind` serving the actor `name`, joined through `seed` if any.
fn start(kind: TransportKind, name: &str, seed: Option<std::net::SocketAddr>) -> NodeProcess {
    processes::cluster_node(kind.name(), name, seed)
}

/// A system outside any cluster over `kind`, its links following `config` (so only the transport
/// watches peers).
async fn caller(kind: TransportKind, config: HttpConfig) -> ActorSystem {
    ActorSystem::builder()
        .transport_arc(kind.with_links(config))
        .ask_timeout(ASK_TIMEOUT)
        .build()
        .await
        .expect("a caller system")
}

async fn echo(to: &ActorRef, payload: &str) -> Result<Message, PulsingError> {
    to.ask(Message::single("echo", payload.to_owned())).await
}

/// Asks `to` to spin for `ms` milliseconds: a call that is in flight for that long.
async fn burn(to: ActorRef, ms: u64) -> (Result<Message, PulsingError>, Instant) {
    let r = to.ask(Message::single("burn", ms.to_string())).await;
    (r, Instant::now())
}

fn assert_unreachable(
    what: &str,
    r: &Result<Message, PulsingError>,
    delivery: Delivery,
    took: Duration,
    within: Duration,
) {
    let err = r.as_ref().expect_err(what);
    assert!(
        err.is_unreachable(),
        "{what}: a typed unreachable error: {err:?}"
    );
    assert_eq!(err.delivery(), delivery, "{what}: {err:?}");
    assert!(
        took < within,
        "{what}: failed after {took:?}, not within {within:?}: {err}"
    );
}

/// Asks (each ask bounded by 1 s) until `to` answers; panics after `limit`. Returns the time taken.
async fn answers_within(to: &ActorRef, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let r = to
            .ask_with_timeout(Message::single("echo", "back"), Duration::from_secs(1))
            .await;
        match r {
            Ok(_) => return start.elapsed(),
            Err(e) => assert!(
                start.elapsed() < limit,
                "no answer within {limit:?} after SIGCONT: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

over_each_transport!(
    calls_to_a_stopped_process_fail_by_the_keep_alive_and_work_again_after_it_resumes
);

fn calls_to_a_stopped_process_fail_by_the_keep_alive_and_work_again_after_it_resumes(
    kind: TransportKind,
) {
    let node = start(kind, "silent", None);
    let name = kind.name();
    run(async {
        let me = caller(kind, HttpConfig::default()).await;
        let to = me.remote_ref(node.addr, "silent").expect("a valid name");
        echo(&to, "warm").await.expect("answers while running");

        // (a) in flight when the process stops: the handler spins 2 s, the stop comes 300 ms in.
        let in_flight = tokio::spawn(burn(to.clone(), 2_000));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopped = Stopped::new(&node);
        let stop = Instant::now();

        // (b) sent after the stop, on the connection that was live a moment ago.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = Instant::now();
        let after = echo(&to, "after the stop").await;
        let after_took = sent.elapsed();

        let (r, ended) = in_flight.await.expect("the in-flight ask's task");
        let in_flight_took = ended - stop;
        // The request was handed over before the peer went silent.
        let maybe = Delivery::MaybeDelivered;
        assert_unreachable("in-flight ask", &r, maybe, in_flight_took, FAIL_WITHIN);
        eprintln!(
            "[{name}] SIGSTOP: in-flight ask failed {in_flight_took:?} after the stop: {}",
            r.unwrap_err()
        );
        assert_unreachable("ask after the stop", &after, maybe, after_took, FAIL_WITHIN);
        eprintln!(
            "[{name}] SIGSTOP: ask sent 100 ms after the stop failed in {after_took:?}: {}",
            after.unwrap_err()
        );

        // (b') sent once the old link is gone: a fresh connection to the stopped process (the
        // kernel still accepts it) never gets the link's hello, so nothing was sent; it fails by
        // the keep-alive timeout. Over QUIC the new link is a stream on the old connection while
        // that is open (its idle timeout, 4 s, runs from the peer's last packet), failing when it
        // closes; on a new connection the handshake goes unanswered, and after the handshake
        // timeout the call goes to the TCP door and fails there as over HTTP.
        let sent = Instant::now();
        let fresh = echo(&to, "on a fresh connection").await;
        let fresh_took = sent.elapsed();
        let not = Delivery::NotDelivered;
        let fresh_within = FAIL_WITHIN + kind.handshake_detour();
        assert_unreachable("ask on a fresh link", &fresh, not, fresh_took, fresh_within);
        eprintln!(
            "[{name}] SIGSTOP: ask on a fresh connection failed in {fresh_took:?}: {}",
            fresh.unwrap_err()
        );

        // (c) resumed: the same ref answers again, over a new connection, without a restart.
        drop(stopped);
        let back = answers_within(&to, FAIL_WITHIN).await;
        eprintln!("[{name}] SIGCONT: answering again after {back:?}");
        me.shutdown().await;
    });
}

over_each_transport!(a_member_declared_down_fails_the_calls_in_flight_to_it);

fn a_member_declared_down_fails_the_calls_in_flight_to_it(kind: TransportKind) {
    // QUIC's liveness check, the idle timeout, is the shorter of both ends': raised on every node.
    let idle = ASK_TIMEOUT * 2;
    let flags = kind.idle_timeout_flags(idle);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let start = |name: &str, seed| processes::cluster_node_with(kind.name(), name, seed, &flags);
    let a = start("down-a", None);
    let b = start("down-b", Some(a.addr));
    let c = start("down-c", Some(a.addr));
    run(async {
        // Keep-alives off on this node (link keep-alives; for QUIC also its idle timeout, beyond
        // the ask timeout): only the membership's verdict can end the call early.
        let me = pulsing::system_builder()
            .addr("127.0.0.1:0")
            .seeds([a.addr.to_string()])
            .ask_timeout(ASK_TIMEOUT)
            .transport_arc(kind.without_keepalives(idle))
            .build()
            .await
            .expect("join through the seed");
        let to_b = me.remote_ref(b.addr, "down-b").expect("a valid name");
        echo(&to_b, "warm").await.expect("b answers");
        let to_c = me.remote_ref(c.addr, "down-c").expect("a valid name");
        echo(&to_c, "warm").await.expect("c answers");

        let in_flight = tokio::spawn(burn(to_b.clone(), 2_000));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stopped = Stopped::new(&b);
        let stop = Instant::now();
        let (r, ended) = in_flight.await.expect("the in-flight ask's task");
        let took = ended - stop;
        assert_unreachable(
            "in-flight ask to a member declared down",
            &r,
            Delivery::MaybeDelivered,
            took,
            DOWN_WITHIN,
        );
        let err = r.unwrap_err();
        assert!(
            err.to_string().contains("declared down"),
            "ended by the membership: {err}"
        );
        eprintln!(
            "[{}] three nodes, one stopped: in-flight ask failed {took:?} after the stop: {err}",
            kind.name()
        );
        assert!(
            me.members()
                .iter()
                .any(|m| m.addr == b.addr && m.state == pulsing::MemberState::Down),
            "b is down here: {:?}",
            me.members()
        );

        // The others keep answering.
        echo(&to_c, "still here").await.expect("c answers");
        drop(stopped);
        me.shutdown().await;
    });
}

/// A TCP listener and, at the same port, a UDP socket (where a QUIC node would answer), both
/// bound on 127.0.0.1 and never answering.
async fn mute_listener() -> (tokio::net::TcpListener, std::net::UdpSocket) {
    for _ in 0..20 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("bound");
        // The port is free on TCP; on UDP it almost always is too: else try another.
        if let Ok(udp) = std::net::UdpSocket::bind(addr) {
            return (listener, udp);
        }
    }
    panic!("no port free on both TCP and UDP in 20 tries");
}

over_each_transport!(a_listener_that_never_answers_fails_the_call_by_the_keep_alive);

fn a_listener_that_never_answers_fails_the_call_by_the_keep_alive(kind: TransportKind) {
    run(async {
        // The UDP socket is held until the end and never read: QUIC handshakes go unanswered.
        let (listener, _udp) = mute_listener().await;
        let addr = listener.local_addr().expect("bound");
        // Accepts and holds every socket, never reading or writing.
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let (interval, timeout) = (Duration::from_millis(200), Duration::from_millis(600));
        let me = caller(
            kind,
            HttpConfig::default()
                .keepalive_interval(interval)
                .keepalive_timeout(timeout),
        )
        .await;
        let to = me.remote_ref(addr, "nobody").expect("a valid name");
        let start = Instant::now();
        let r = echo(&to, "hello?").await;
        let took = start.elapsed();
        // The link's hello is awaited as a PING's answer is: within the keep-alive timeout, plus
        // slack for a loaded machine; far below the 30 s ask timeout. Nothing was sent. Over QUIC
        // the unanswered handshake comes first (then the call goes to the TCP door).
        assert_unreachable(
            "ask to a mute listener",
            &r,
            Delivery::NotDelivered,
            took,
            kind.handshake_detour() + interval + timeout + Duration::from_secs(1),
        );
        let err = r.unwrap_err();
        assert!(err.to_string().contains("keep-alive"), "says why: {err}");
        eprintln!(
            "[{}] mute listener: ask failed in {took:?}: {err}",
            kind.name()
        );
        holder.abort();
        me.shutdown().await;
    });
}
