//! The node-to-node link of `docs/protocol.md` §8, spoken by a client that is not Pulsing's: frames
//! written and read with `rmpv` over a raw TCP socket, against a node on 127.0.0.1.

#[path = "support/http.rs"]
mod http_support;

use std::time::Duration;

use http_support::*;
use pulsing::ErrorKind;
use rmpv::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PULSING-LINK/1\r\n";

/// How long a test waits for one frame, or for the node to close the link.
const WAIT: Duration = Duration::from_secs(5);

fn map(pairs: &[(&str, Value)]) -> Value {
    Value::Map(
        pairs
            .iter()
            .map(|(k, v)| (Value::from(*k), v.clone()))
            .collect(),
    )
}

fn bin(b: &[u8]) -> Value {
    Value::Binary(b.to_vec())
}

/// One frame: a 4-byte big-endian length, then the msgpack map.
fn frame(v: &Value) -> Vec<u8> {
    let mut body = Vec::new();
    rmpv::encode::write_value(&mut body, v).expect("encode");
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

/// A link client that knows only the document.
struct Link {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Link {
    /// Connects, sends the preface and a hello, and reads the node's hello.
    async fn open(node: &Node) -> (Link, Value) {
        let mut sock = TcpStream::connect(node.addr).await.expect("connect");
        let mut opening = PREFACE.to_vec();
        opening.extend(frame(&map(&[
            ("t", "hello".into()),
            ("max_message", 1_000_000.into()),
        ])));
        sock.write_all(&opening).await.expect("write");
        let mut link = Link {
            sock,
            buf: Vec::new(),
        };
        let hello = link.recv().await.expect("the node's hello");
        (link, hello)
    }

    async fn send(&mut self, v: Value) {
        self.sock.write_all(&frame(&v)).await.expect("write");
    }

    /// The next frame; `None` once the node closed the link.
    async fn recv(&mut self) -> Option<Value> {
        loop {
            if self.buf.len() >= 4 {
                let len = u32::from_be_bytes(self.buf[..4].try_into().unwrap()) as usize;
                if self.buf.len() >= 4 + len {
                    let v = value(&self.buf[4..4 + len]);
                    self.buf.drain(..4 + len);
                    return Some(v);
                }
            }
            let mut chunk = [0u8; 65536];
            let n = tokio::time::timeout(WAIT, self.sock.read(&mut chunk))
                .await
                .expect("a frame or the end in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

fn t(v: &Value) -> &str {
    get(v, "t").as_str().expect("t is a string")
}

fn id(v: &Value) -> u64 {
    get(v, "id").as_u64().expect("id is an integer")
}

fn dead_letters(node: &Node, kind: ErrorKind) -> u64 {
    node.system
        .stats()
        .dead_letters
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(0, |(_, n)| *n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_client_tells_asks_streams_and_pings_over_a_link() {
    bounded(async {
        let node = echo_node().await;
        let (mut link, hello) = Link::open(&node).await;
        assert_eq!(t(&hello), "hello");
        let id_text = get(&hello, "node").as_str().unwrap();
        assert_eq!(id_text, node.system.node_id().to_string());
        assert_eq!(get(&hello, "max_message").as_u64(), Some(1024 * 1024));

        let ask = |id: u64, to: &str, ty: &str, p: &[u8]| {
            map(&[
                ("t", "ask".into()),
                ("id", id.into()),
                ("to", to.into()),
                ("timeout_ms", 5000.into()),
                ("msg_type", ty.into()),
                ("payload", bin(p)),
            ])
        };
        // A tell is answered by nothing; the ask after it is answered with its id.
        link.send(map(&[
            ("t", "tell".into()),
            ("to", "echo".into()),
            ("msg_type", "ping".into()),
            ("payload", bin(b"told")),
        ]))
        .await;
        link.send(ask(7, "echo", "ping", b"asked")).await;
        let reply = link.recv().await.expect("a reply");
        assert_eq!((t(&reply), id(&reply)), ("reply", 7));
        let r = get(&reply, "result");
        assert_eq!(get(r, "payload").as_slice(), Some(&b"asked"[..]));

        // Errors come back as the reply's error object with its kind.
        link.send(ask(8, "secret", "ping", b"")).await;
        let reply = link.recv().await.unwrap();
        assert_eq!(id(&reply), 8);
        assert_eq!(
            get(get(&reply, "error"), "kind").as_str(),
            Some("not_found")
        );

        // A streamed reply: `stream`, its items, then `end`, all with the ask's id.
        link.send(ask(9, "echo", "stream", b"3")).await;
        let start = link.recv().await.unwrap();
        assert_eq!((t(&start), id(&start)), ("stream", 9));
        for i in 0..3 {
            let item = link.recv().await.unwrap();
            assert_eq!((t(&item), id(&item)), ("item", 9));
            assert_eq!(
                get(&item, "payload").as_slice(),
                Some(i.to_string().as_bytes())
            );
        }
        let end = link.recv().await.unwrap();
        assert_eq!((t(&end), id(&end)), ("end", 9));

        link.send(map(&[("t", "ping".into())])).await;
        assert_eq!(t(&link.recv().await.unwrap()), "pong");

        // A tell the node cannot deliver is a dead letter there, counted by kind.
        let before = dead_letters(&node, ErrorKind::NotFound);
        link.send(map(&[
            ("t", "tell".into()),
            ("to", "nobody".into()),
            ("msg_type", "ping".into()),
            ("payload", bin(b"")),
        ]))
        .await;
        link.send(map(&[("t", "ping".into())])).await;
        assert_eq!(t(&link.recv().await.unwrap()), "pong");
        assert_eq!(dead_letters(&node, ErrorKind::NotFound), before + 1);
        let metrics = curl(Curl::Http11, "GET", &node.url("/metrics"), &[], None).await;
        let text = String::from_utf8_lossy(&metrics.body);
        assert!(
            text.contains("pulsing_dead_letters_total{kind=\"not_found\"} 1"),
            "{text}"
        );
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_reply_waits_for_credit() {
    bounded(async {
        let node = echo_node().await;
        let (mut link, _) = Link::open(&node).await;
        // 200,000 small items: far more than the 1 MiB window holds (each costs ~40 bytes of it).
        link.send(map(&[
            ("t", "ask".into()),
            ("id", 1.into()),
            ("to", "echo".into()),
            ("msg_type", "stream".into()),
            ("payload", bin(b"200000")),
        ]))
        .await;
        assert_eq!(t(&link.recv().await.unwrap()), "stream");
        let mut items = 0u64;
        // Without credit the node stops within the window: reading stalls before the end.
        loop {
            let got = tokio::time::timeout(Duration::from_millis(500), link.recv()).await;
            match got {
                Ok(Some(f)) if t(&f) == "item" => items += 1,
                Ok(other) => panic!("expected items then a stall, got {other:?} after {items}"),
                Err(_) => break,
            }
        }
        assert!(
            (10_000..200_000).contains(&items),
            "held back within its window: {items}"
        );
        // Credit for everything releases the rest, then the end marker.
        link.send(map(&[
            ("t", "credit".into()),
            ("id", 1.into()),
            ("n", (64u64 << 20).into()),
        ]))
        .await;
        let mut ended = false;
        while !ended {
            let f = link.recv().await.expect("more items");
            match t(&f) {
                "item" => items += 1,
                "end" => ended = true,
                other => panic!("unexpected {other}"),
            }
            if items.is_multiple_of(10_000) {
                link.send(map(&[
                    ("t", "credit".into()),
                    ("id", 1.into()),
                    ("n", (64u64 << 20).into()),
                ]))
                .await;
            }
        }
        assert_eq!(items, 200_000);
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_link_closes_it_is_counted_and_the_node_keeps_serving() {
    bounded(async {
        let node = echo_node().await;
        let too_long = {
            let mut f = u32::MAX.to_be_bytes().to_vec();
            f.extend_from_slice(&[0u8; 64]);
            f
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("not msgpack", {
                let mut f = 8u32.to_be_bytes().to_vec();
                f.extend_from_slice(&[0xc1; 8]);
                f
            }),
            ("a 4 GiB frame header", too_long),
            (
                "an unknown frame type",
                frame(&map(&[("t", "warp".into())])),
            ),
            (
                "a frame only a server sends",
                frame(&map(&[("t", "reply".into()), ("id", 1.into())])),
            ),
            ("a map without its type", frame(&map(&[("id", 1.into())]))),
        ];
        for (i, (what, bytes)) in cases.into_iter().enumerate() {
            let (mut link, _) = Link::open(&node).await;
            link.sock.write_all(&bytes).await.expect("write");
            assert!(
                link.recv().await.is_none(),
                "{what}: the node closes the link"
            );
            assert_eq!(node.system.stats().bad_links, i as u64 + 1, "{what}");
            still_serves(node.addr).await;
        }
        // A preface that goes wrong half-way is HTTP to the node, and refused as such.
        let answer = raw_exchange(node.addr, b"PULSING-LUNK/1\r\n\r\n", WAIT).await;
        assert!(
            answer.starts_with(b"HTTP/1.1 400"),
            "{:?}",
            String::from_utf8_lossy(&answer)
        );
        still_serves(node.addr).await;
        node.system.shutdown().await;
    })
    .await;
}

/// A peer that answers a link's hello, says `bye` at once and keeps the connection open (a node
/// draining at shutdown): the first ask fails as not delivered, and the next call does not reuse
/// that link but opens a new connection (to whatever serves the address next, e.g. the node
/// restarted on the same port), instead of failing with "shutting down" until the old connection
/// finally closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_bye_a_new_call_opens_a_new_link() {
    use pulsing::http::codec::link::{put_bye, put_hello, LINK_PREFACE};
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut preface = [0u8; 16];
                s.read_exact(&mut preface).await.unwrap();
                assert_eq!(&preface, LINK_PREFACE);
                let mut out = Vec::new();
                put_hello(&mut out, Some(pulsing::NodeId(7)), Some(1 << 20));
                put_bye(&mut out, 0);
                s.write_all(&out).await.unwrap();
                held.push(s); // open, never read again
            }
        });
        let me = system(test_config(), Duration::from_secs(5)).await;
        let r = me.remote_ref(addr, "echo").unwrap();
        let e = r
            .ask(pulsing::Message::single("ping", ""))
            .await
            .unwrap_err();
        assert_eq!(e.delivery(), pulsing::Delivery::NotDelivered, "{e}");
        let _ = r.ask(pulsing::Message::single("ping", "")).await;
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the second call opened a new link"
        );
        server.abort();
        me.shutdown().await;
    })
    .await;
}

/// A peer that says `bye {id}` right after reading an ask and sends that ask's reply 200 ms
/// later (a node draining at shutdown answers the asks it read): the ask gets its reply, the
/// link is still read after the `bye`; a call started after the `bye` does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_bye_the_asks_the_peer_read_still_get_their_replies() {
    use pulsing::http::codec::link::{
        put_bye, put_hello, put_reply, LinkDecoder, LinkFrame, LINK_PREFACE,
    };
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (said_bye, bye_sent) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(async move {
            let mut said_bye = Some(said_bye);
            let mut held = Vec::new();
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut preface = [0u8; 16];
                s.read_exact(&mut preface).await.unwrap();
                assert_eq!(&preface, LINK_PREFACE);
                let mut out = Vec::new();
                put_hello(&mut out, Some(pulsing::NodeId(7)), Some(1 << 20));
                let Some(said_bye) = said_bye.take() else {
                    // Later links: a node that is shutting down and read nothing.
                    put_bye(&mut out, 0);
                    s.write_all(&out).await.unwrap();
                    held.push(s);
                    continue;
                };
                s.write_all(&out).await.unwrap();
                let mut dec = LinkDecoder::new(1 << 21);
                let id = loop {
                    match dec.next_frame().unwrap() {
                        Some(LinkFrame::Ask { id, .. }) => break id,
                        Some(_) => continue,
                        None => assert!(s.read_buf(&mut dec.buf).await.unwrap() > 0),
                    }
                };
                let mut out = Vec::new();
                put_bye(&mut out, id);
                s.write_all(&out).await.unwrap();
                let _ = said_bye.send(());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let mut out = Vec::new();
                    put_reply(&mut out, id, "echo", b"late");
                    s.write_all(&out).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    drop(s);
                });
            }
        });
        let me = system(test_config(), Duration::from_secs(5)).await;
        let r = me.remote_ref(addr, "echo").unwrap();
        let first = {
            let r = r.clone();
            tokio::spawn(async move { r.ask(pulsing::Message::single("ping", "")).await })
        };
        tokio::time::timeout(WAIT, bye_sent).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = tokio::time::Instant::now();
        let second = tokio::time::timeout(
            Duration::from_secs(1),
            r.ask(pulsing::Message::single("ping", "")),
        )
        .await
        .expect("a call after the bye does not wait for the old link");
        let e = second.unwrap_err();
        assert_eq!(e.delivery(), pulsing::Delivery::NotDelivered, "{e}");
        assert!(started.elapsed() < Duration::from_millis(500), "{e}");
        let reply = first
            .await
            .unwrap()
            .expect("the ask the peer read got its reply");
        assert_eq!(reply.msg_type(), Some("echo"));
        assert_eq!(reply.payload().map(|p| &p[..]), Some(&b"late"[..]));
        server.abort();
        me.shutdown().await;
    })
    .await;
}
