//! The cluster secret (`docs/security.md`) across real OS processes (`examples/cluster_node.rs`) on
//! 127.0.0.1 over the HTTP transport: the right secret joins and calls node to node over TLS, a
//! wrong secret or none is refused; curl with a token or a client certificate.
//! (`tests/secret_rotation.rs`: rotation and a connection flood; `tests/secret_local.rs`: the same
//! within one process.)
#![cfg(all(feature = "http", feature = "cluster"))]

#[path = "support/processes.rs"]
mod processes;
#[path = "support/secret_nodes.rs"]
mod secret_nodes;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pulsing::cluster::ClusterConfig;

use processes::{
    cluster_node_env, cluster_node_exit, eventually, members_seen_by, relay, run_within, seen_by,
};
use secret_nodes::*;

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
