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

/// Writes `client_certificate(secret)` into a fresh directory: (cert, key, ca) paths.
fn client_files(secret: &str) -> (std::path::PathBuf, [String; 3]) {
    let c = pulsing::http::security::client_certificate(secret).unwrap();
    let dir = std::env::temp_dir().join(format!("pulsing-cert-{}-{}", std::process::id(), secret));
    std::fs::create_dir_all(&dir).unwrap();
    let mut paths = Vec::new();
    for (name, pem) in [
        ("client.pem", &c.cert_pem),
        ("client.key", &c.key_pem),
        ("ca.pem", &c.ca_pem),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        paths.push(p.display().to_string());
    }
    (dir, paths.try_into().unwrap())
}

/// `curl` with `args`, bounded at 10 s: (HTTP status, body).
fn curl(args: &[&str]) -> (u16, Vec<u8>) {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl runs");
    if !out.stderr.is_empty() {
        println!("curl: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut body = out.stdout;
    let split = body
        .iter()
        .rposition(|b| *b == b'\n')
        .expect("a status line");
    let status = std::str::from_utf8(&body[split + 1..])
        .unwrap()
        .trim()
        .parse()
        .unwrap_or(0);
    body.truncate(split);
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_calls_actors_but_cannot_gossip_or_open_links() {
    bounded(async {
        let a = node(&["gamma"], None).await.unwrap();
        let port = a.addr().unwrap().port();
        let (dir, [cert, key, ca]) = client_files("gamma");
        let base = format!("https://127.0.0.1:{port}");
        let with_cert = ["--cacert", &ca, "--cert", &cert, "--key", &key];
        let (status, _) = tokio::task::block_in_place(|| {
            curl(&[&with_cert[..], &[&format!("{base}/actors")]].concat())
        });
        assert_eq!(status, 200, "/actors with a client certificate");
        let (status, body) = tokio::task::block_in_place(|| {
            curl(
                &[
                    &with_cert[..],
                    &[
                        "-X",
                        "POST",
                        "--data-binary",
                        "x",
                        &format!("{base}/cluster/gossip"),
                    ],
                ]
                .concat(),
            )
        });
        assert_eq!(
            status,
            401,
            "gossip with a client certificate: {}",
            String::from_utf8_lossy(&body)
        );
        // A link (ALPN pulsing-link/1) with a client certificate is closed and counted as bad.
        let before = a.stats().bad_links;
        let out = tokio::task::block_in_place(|| {
            std::process::Command::new("timeout")
                .args([
                    "5",
                    "openssl",
                    "s_client",
                    "-quiet",
                    "-connect",
                    &format!("127.0.0.1:{port}"),
                ])
                .args([
                    "-alpn",
                    "pulsing-link/1",
                    "-cert",
                    &cert,
                    "-key",
                    &key,
                    "-CAfile",
                    &ca,
                ])
                .stdin(std::process::Stdio::null())
                .output()
                .expect("openssl runs")
        });
        println!(
            "openssl s_client: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let until = Instant::now() + Duration::from_secs(3);
        while a.stats().bad_links == before {
            assert!(
                Instant::now() < until,
                "the link with a client certificate was not refused"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(dir);
        a.shutdown().await;
    })
    .await;
}

/// Collects the messages of `WARN` events.
#[derive(Clone, Default)]
struct Warnings(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Text(String);
        impl tracing::field::Visit for Text {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        if *event.metadata().level() == tracing::Level::WARN {
            let mut text = Text(String::new());
            event.record(&mut text);
            self.0.lock().unwrap().push(text.0);
        }
    }
}

/// A node bound to a non-loopback address without a secret warns once at start that anyone who
/// can reach it can call and join it; with a secret, or on loopback, it does not.
#[tokio::test(flavor = "current_thread")]
async fn an_exposed_node_without_a_secret_warns_once() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let warnings = Warnings::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let exposed = |secret: Option<&str>| {
        let b = pulsing::system_builder().addr("0.0.0.0:0");
        match secret {
            Some(s) => b.secret(s),
            None => b,
        }
    };
    let about_secret = |w: &Vec<String>| {
        w.iter()
            .filter(|m| m.contains("without a cluster secret"))
            .count()
    };
    let open = exposed(None).build().await.unwrap();
    assert_eq!(
        about_secret(&warnings.0.lock().unwrap()),
        1,
        "{:?}",
        warnings.0.lock().unwrap()
    );
    let secured = exposed(Some("delta")).build().await.unwrap();
    let local = node(&[], None).await.unwrap();
    assert_eq!(
        about_secret(&warnings.0.lock().unwrap()),
        1,
        "{:?}",
        warnings.0.lock().unwrap()
    );
    println!("the warning: {}", warnings.0.lock().unwrap()[0]);
    for s in [open, secured, local] {
        s.shutdown().await;
    }
}
