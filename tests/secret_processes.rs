//! The cluster secret (`docs/security.md`) across real OS processes (`examples/cluster_node.rs`) on
//! 127.0.0.1 over the HTTP transport: the right secret joins and calls node to node over TLS, a
//! wrong secret or none is refused; curl with a token or a client certificate; a rotation from one
//! secret to another by rolling restarts with no failed call; and a flood of 5,000 bad connections
//! that leaves the members served. (`tests/secret_local.rs` checks the same secret within one
//! process.)
#![cfg(all(feature = "http", feature = "cluster"))]

#[path = "support/processes.rs"]
mod processes;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pulsing::cluster::ClusterConfig;
use pulsing::{ActorRef, ActorSystem, Message, PulsingError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use processes::{
    cluster_node_env, cluster_node_exit, cluster_node_with, eventually, members_seen_by, relay,
    run_within, seen_by, NodeProcess,
};

/// Bound on how long cluster views take to settle after a join or a leave (gossip on loopback
/// takes well under a second; this is only the failure bound).
const SETTLE: Duration = Duration::from_secs(10);
/// Bound on one relayed call made by a background caller (a failure, not a hang, if exceeded).
const CALL_BOUND: Duration = Duration::from_secs(5);
/// Bound on a graceful stop (leave and exit).
const STOP_BOUND: Duration = Duration::from_secs(10);

/// A system of this test process presenting `secrets[0]`, accepting all of them; it joins `seed`
/// if given, else it serves alone (outside the cluster) and calls nodes by address.
async fn own_system(secrets: &[&str], seed: Option<SocketAddr>) -> ActorSystem {
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
fn build_node() {
    let started = Instant::now();
    let path = processes::example("cluster_node");
    println!("{} built in {:?}", path.display(), started.elapsed());
}

/// Starts a `cluster_node` on a blocking thread (starting one blocks until its `ready` line).
async fn start_node(name: &str, seed: Option<SocketAddr>, flags: &[&str]) -> NodeProcess {
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
async fn stop_node(node: NodeProcess) {
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
fn alive(view: &[(SocketAddr, String)]) -> BTreeSet<SocketAddr> {
    view.iter()
        .filter(|(_, state)| state == "Alive")
        .map(|(addr, _)| *addr)
        .collect()
}

/// Waits until every node of `nodes` sees exactly their addresses `Alive` and finds every other
/// one's actor at its address. Asks through `caller`.
async fn converged(caller: &ActorSystem, nodes: &[(String, SocketAddr)]) -> Duration {
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

// ---------------------------------------------------------------------------------------------
// 1. Joining

#[test]
fn right_secret_joins_wrong_and_none_are_refused() {
    build_node();
    let cfg = ClusterConfig::default();
    // `start` gives up after `join_timeout + 2 * join_retry`; a few seconds more for the process to
    // start and print its error.
    let join_bound = cfg.join_timeout + cfg.join_retry * 2;
    let exit_bound = join_bound + Duration::from_secs(4);
    run_within(Duration::from_secs(60), async move {
        let a = start_node("a", None, &["--secrets", "alpha"]).await;
        let b = start_node("b", Some(a.addr), &["--secrets", "alpha"]).await;
        let me = own_system(&["alpha"], Some(a.addr)).await;
        let my_addr = me.advertise_addr().expect("serves");

        let took = eventually("this test finds b and a", SETTLE, || async {
            let b_at = me.find("b").await.and_then(|r| r.remote_addr());
            let a_at = me.find("a").await.and_then(|r| r.remote_addr());
            b_at == Some(b.addr) && a_at == Some(a.addr)
        })
        .await;
        println!("right secret: found a and b {took:?} after joining");
        let to_b = me.find("b").await.expect("b found");
        let to_a = me.find("a").await.expect("a found");
        // Node to node over TLS, both ways.
        let started = Instant::now();
        assert_eq!(relay(&to_b, "a").await.expect("b relays to a"), a.addr);
        assert_eq!(relay(&to_a, "b").await.expect("a relays to b"), b.addr);
        println!(
            "right secret: relays b->a and a->b in {:?}",
            started.elapsed()
        );
        assert_eq!(seen_by(&to_a, "b").await, Some(b.addr));
        assert_eq!(seen_by(&to_b, "a").await, Some(a.addr));

        let members: BTreeSet<SocketAddr> = [a.addr, b.addr, my_addr].into();
        assert_eq!(alive(&members_seen_by(&to_a).await), members);

        // A wrong secret and no secret (nor `PULSING_SECRET`), both seeded by a, at once; a's view
        // is polled while they try.
        let seed = a.addr;
        let attempts =
            [("beta", vec!["--secrets", "beta"]), ("none", vec![])].map(|(label, flags)| {
                tokio::task::spawn_blocking(move || {
                    let outcome = cluster_node_exit(
                        "http",
                        label,
                        Some(seed),
                        &flags,
                        &[("PULSING_SECRET", None)],
                        exit_bound,
                    );
                    (label, outcome)
                })
            });
        let mut polls = 0;
        while attempts.iter().any(|t| !t.is_finished()) {
            let view = members_seen_by(&to_a).await;
            let listed: BTreeSet<SocketAddr> = view.iter().map(|(addr, _)| *addr).collect();
            assert_eq!(
                listed, members,
                "a lists only its members while refusing: {view:?}"
            );
            polls += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for attempt in attempts {
            let (label, outcome) = attempt.await.expect("the attempt's thread");
            let exited = outcome.unwrap_or_else(|e| panic!("{e}"));
            println!(
                "secret {label}: exited ({}) after {:?}: {}",
                exited.status,
                exited.took,
                exited.stderr.trim()
            );
            assert!(!exited.status.success(), "{label}: {exited:?}");
            assert!(
                exited.stderr.contains("unauthorized"),
                "{label}: {exited:?}"
            );
            assert!(
                exited.stderr.contains(&a.addr.to_string()),
                "{label}: {exited:?}"
            );
            assert!(
                exited.stdout.is_empty(),
                "{label} never got ready: {exited:?}"
            );
        }
        // And after they are gone, a couple more times.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let view = members_seen_by(&to_a).await;
            let listed: BTreeSet<SocketAddr> = view.iter().map(|(addr, _)| *addr).collect();
            assert_eq!(listed, members, "a never lists a refused node: {view:?}");
            polls += 1;
        }
        println!("a's members polled {polls} times: only {members:?}");

        // The secret from `PULSING_SECRET` alone joins.
        let env = tokio::task::spawn_blocking(move || {
            cluster_node_env(
                "http",
                "from-env",
                Some(seed),
                &[],
                &[("PULSING_SECRET", Some("alpha"))],
            )
        })
        .await
        .expect("the starting thread");
        let took = eventually("a and this test find from-env", SETTLE, || async {
            seen_by(&to_a, "from-env").await == Some(env.addr)
                && me.find("from-env").await.and_then(|r| r.remote_addr()) == Some(env.addr)
        })
        .await;
        assert_eq!(relay(&to_a, "from-env").await.expect("a relays"), env.addr);
        let to_env = me.find("from-env").await.expect("from-env found");
        assert_eq!(relay(&to_env, "b").await.expect("from-env relays"), b.addr);
        println!("PULSING_SECRET=alpha: joined, found by a {took:?} after ready");

        me.shutdown().await;
        for node in [env, b, a] {
            stop_node(node).await;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// 2. HTTP clients

/// A temporary directory of this test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir =
            std::env::temp_dir().join(format!("pulsing-{what}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What curl got.
#[derive(Debug)]
struct CurlReply {
    status: u16,
    /// `%{http_version}`: `1.1`, `2`.
    version: String,
    body: Vec<u8>,
}

/// Runs `curl -sS args.. url` (blocking, on a blocking thread), with `body` if any sent as
/// `--data-binary @file`; returns the status and the body.
async fn curl(dir: &Path, args: &[&str], body: Option<Vec<u8>>, url: String) -> CurlReply {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let out = dir.join(format!("reply-{n}"));
    let mut command = Command::new("/usr/bin/curl");
    command
        .args(["-sS", "--max-time", "10", "-o"])
        .arg(&out)
        .args(["-w", "%{http_code} %{http_version}"])
        .args(args);
    if let Some(body) = body {
        let file = dir.join(format!("request-{n}"));
        std::fs::write(&file, body).expect("write the request body");
        command
            .arg("--data-binary")
            .arg(format!("@{}", file.display()));
    }
    command.arg(&url);
    let described = format!("{command:?}");
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("curl thread")
        .expect("curl runs");
    assert!(
        output.status.success(),
        "{described}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let written = String::from_utf8_lossy(&output.stdout).into_owned();
    let (status, version) = written.split_once(' ').expect("`code version`");
    CurlReply {
        status: status.parse().expect("a status code"),
        version: version.to_owned(),
        body: std::fs::read(&out).unwrap_or_default(),
    }
}

/// `{"msg_type": msg_type, "payload": payload}` (protocol.md §3).
fn envelope(msg_type: &str, payload: &[u8]) -> Vec<u8> {
    let value = rmpv::Value::Map(vec![
        ("msg_type".into(), msg_type.into()),
        ("payload".into(), rmpv::Value::Binary(payload.to_vec())),
    ]);
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &value).expect("encode");
    out
}

fn decode(body: &[u8]) -> rmpv::Value {
    let mut rd = body;
    let value = rmpv::decode::read_value(&mut rd)
        .unwrap_or_else(|e| panic!("one msgpack value in {body:?}: {e}"));
    assert!(rd.is_empty(), "trailing bytes after the msgpack value");
    value
}

fn get<'a>(v: &'a rmpv::Value, key: &str) -> &'a rmpv::Value {
    v.as_map()
        .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some(key)))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no key {key} in {v}"))
}

/// `(msg_type, payload)` of a `{"result": {..}}` body.
fn result(body: &[u8]) -> (String, Vec<u8>) {
    let v = decode(body);
    let r = get(&v, "result");
    (
        get(r, "msg_type").as_str().expect("str").to_owned(),
        get(r, "payload").as_slice().expect("bin").to_vec(),
    )
}

/// `(kind, message)` of an `{"error": {..}}` body (protocol.md §5).
fn error(body: &[u8]) -> (String, String) {
    let v = decode(body);
    let e = get(&v, "error");
    (
        get(e, "kind").as_str().expect("str").to_owned(),
        get(e, "message").as_str().unwrap_or("").to_owned(),
    )
}

#[test]
fn curl_with_token_or_client_certificate() {
    build_node();
    run_within(Duration::from_secs(60), async {
        let node = start_node(
            "echo",
            None,
            &["--secrets", "alpha", "--api-token", "t0k3n"],
        )
        .await;
        let dir = TempDir::new("curl");
        let pems = pulsing::http::security::client_certificate("alpha").expect("a certificate");
        let (ca, cert, key) = (
            dir.0.join("ca.pem"),
            dir.0.join("client.pem"),
            dir.0.join("client.key"),
        );
        std::fs::write(&ca, &pems.ca_pem).expect("write ca.pem");
        std::fs::write(&cert, &pems.cert_pem).expect("write client.pem");
        std::fs::write(&key, &pems.key_pem).expect("write client.key");
        let (ca, cert, key) = (
            ca.to_str().expect("utf8 path"),
            cert.to_str().expect("utf8 path"),
            key.to_str().expect("utf8 path"),
        );
        let port = node.addr.port();
        let https = |path: &str| format!("https://127.0.0.1:{port}{path}");
        let http = |path: &str| format!("http://127.0.0.1:{port}{path}");
        let msgpack = ["-H", "content-type: application/msgpack"];
        let with_cert = [
            &msgpack[..],
            &["--cacert", ca, "--cert", cert, "--key", key],
        ]
        .concat();
        let with_token = [
            &msgpack[..],
            &["--cacert", ca, "-H", "Authorization: Bearer t0k3n"],
        ]
        .concat();
        let wrong_token = [
            &msgpack[..],
            &["--cacert", ca, "-H", "Authorization: Bearer t0k3n-not"],
        ]
        .concat();
        let neither = [&msgpack[..], &["--cacert", ca]].concat();
        let dir = dir.0.as_path();
        let started = Instant::now();

        // A call with a client certificate from the CA, over HTTP/2 and HTTP/1.1.
        for version in ["--http2", "--http1.1"] {
            let args = [&with_cert[..], &[version]].concat();
            let body = envelope("ping", b"with a certificate");
            let r = curl(dir, &args, Some(body), https("/actor/echo")).await;
            assert_eq!(r.status, 200, "{version}: {r:?}");
            assert_eq!(
                result(&r.body),
                (node.addr.to_string(), b"with a certificate".to_vec()),
                "{version}"
            );
            println!("client certificate {version}: 200 over HTTP/{}", r.version);
        }
        // With a token.
        let body = envelope("ping", b"with a token");
        let r = curl(dir, &with_token, Some(body), https("/actor/echo")).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            result(&r.body),
            (node.addr.to_string(), b"with a token".to_vec())
        );
        // Neither, or a wrong token: 401 unauthorized.
        for (what, args) in [
            ("no credentials", &neither),
            ("a wrong token", &wrong_token),
        ] {
            let body = envelope("ping", b"no");
            let r = curl(dir, args, Some(body), https("/actor/echo")).await;
            assert_eq!(r.status, 401, "{what}: {r:?}");
            let (kind, message) = error(&r.body);
            assert_eq!(kind, "unauthorized", "{what}: {message}");
            println!("{what}: 401 {kind}: {message}");
        }
        // /actors and /metrics: 401 without, 200 with a token or a certificate.
        for path in ["/actors", "/metrics"] {
            let r = curl(dir, &["--cacert", ca], None, https(path)).await;
            assert_eq!(r.status, 401, "{path} without credentials: {r:?}");
            assert_eq!(error(&r.body).0, "unauthorized", "{path}");
            for (what, args) in [("a token", &with_token), ("a certificate", &with_cert)] {
                let r = curl(dir, args, None, https(path)).await;
                assert_eq!(r.status, 200, "{path} with {what}: {r:?}");
            }
        }
        let r = curl(dir, &with_token, None, https("/actors")).await;
        assert_eq!(String::from_utf8_lossy(&r.body), r#"["echo"]"#);
        // /health is open, over TLS and over plaintext.
        let r = curl(dir, &["--cacert", ca], None, https("/health")).await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]), "{r:?}");
        let r = curl(dir, &[], None, http("/health")).await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]), "{r:?}");
        // Plaintext for anything else: 400 unauthorized, saying TLS is required; even with a token.
        for args in [
            &msgpack[..],
            &[&msgpack[..], &["-H", "Authorization: Bearer t0k3n"]].concat(),
        ] {
            let body = envelope("ping", b"plain");
            let r = curl(dir, args, Some(body), http("/actor/echo")).await;
            assert_eq!(r.status, 400, "{r:?}");
            let (kind, message) = error(&r.body);
            assert_eq!(kind, "unauthorized", "{message}");
            assert!(message.to_lowercase().contains("tls"), "{message}");
            println!("plaintext POST: 400 {kind}: {message}");
        }
        // Gossip needs a node certificate: none, a token, or a client certificate (which is for
        // calls only, docs/security.md) is 401.
        let octets = ["-H", "content-type: application/octet-stream"];
        for (what, args) in [
            ("no certificate (-k)", [&octets[..], &["-k"]].concat()),
            (
                "a token",
                [&octets[..], &["-k", "-H", "Authorization: Bearer t0k3n"]].concat(),
            ),
            (
                "a client certificate",
                [&octets[..], &["--cacert", ca, "--cert", cert, "--key", key]].concat(),
            ),
        ] {
            let r = curl(dir, &args, Some(vec![0; 16]), https("/cluster/gossip")).await;
            assert_eq!(r.status, 401, "gossip with {what}: {r:?}");
            let (kind, message) = error(&r.body);
            assert_eq!(kind, "unauthorized", "gossip with {what}: {message}");
            println!("gossip with {what}: 401 {kind}: {message}");
        }
        println!("curl checks took {:?}", started.elapsed());
        stop_node(node).await;
    });
}

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
/// handshakes, so the limit is reached and its "closed at once" path is taken too.
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
    /// Half handshakes closed by the node within 100 ms (refused at once: a limit).
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
        for i in 0..FLOOD {
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
            "the handshake limit was reached and refused some at once: {flood:?}"
        );

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
        for node in [c, b, a] {
            stop_node(node).await;
        }
    });
}
