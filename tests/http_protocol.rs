//! The HTTP server against `docs/protocol.md`, with clients that are not Pulsing's: `curl` over HTTP/1.1
//! and HTTP/2 prior knowledge, a plain hyper client, and raw TCP for what no well-behaved client sends.

#[path = "support/http.rs"]
mod http_support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_support::*;
use pulsing::http::{HttpConfig, HttpTransport};
use pulsing::{
    async_trait, ActorName, InboundHandler, Message, NodeId, PendingReply, PulsingError,
    SystemStats, Transport,
};

const MSGPACK: (&str, &str) = ("content-type", "application/msgpack");

/// `POST path` with `envelope(msg_type, payload)` as its msgpack body, through curl.
async fn post_envelope(
    node: &Node,
    version: Curl,
    path: &str,
    msg_type: &str,
    payload: &[u8],
) -> Resp {
    curl(
        version,
        "POST",
        &node.url(path),
        &[MSGPACK],
        Some(envelope(msg_type, payload)),
    )
    .await
}

fn is_node_id(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_single_reply_over_http11_and_h2_prior_knowledge() {
    bounded(async {
        let node = echo_node().await;
        for version in [Curl::Http11, Curl::H2PriorKnowledge] {
            let r = post_envelope(&node, version, "/actor/echo", "ping", b"hi").await;
            assert_eq!(r.status, 200, "{version:?} {r:?}");
            assert_eq!(r.header("content-type"), Some("application/msgpack"));
            assert!(is_node_id(r.header("x-pulsing-node")), "{r:?}");
            assert_eq!(result(&r.body), ("echo".into(), b"hi".to_vec()));
        }
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_streamed_reply_is_frames_then_end() {
    bounded(async {
        let node = echo_node().await;
        for version in [Curl::Http11, Curl::H2PriorKnowledge] {
            let r = post_envelope(&node, version, "/actor/echo", "stream", b"3").await;
            assert_eq!(r.status, 200, "{r:?}");
            assert_eq!(
                r.header("content-type"),
                Some("application/x-pulsing-stream")
            );
            let frames = frames(&r.body);
            assert_eq!(frames.len(), 4, "{frames:?}");
            for (i, f) in frames[..3].iter().enumerate() {
                assert_eq!(get(f, "msg_type").as_str(), Some("echo"));
                assert_eq!(get(f, "payload").as_slice(), Some(i.to_string().as_bytes()));
            }
            assert_eq!(get(&frames[3], "end").as_bool(), Some(true));
        }
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_stream_sends_an_error_frame_then_end() {
    bounded(async {
        let node = echo_node().await;
        let r = post_envelope(
            &node,
            Curl::H2PriorKnowledge,
            "/actor/echo",
            "stream_fail",
            b"",
        )
        .await;
        let frames = frames(&r.body);
        assert_eq!(frames.len(), 3, "{frames:?}");
        let e = get(&frames[1], "error");
        assert_eq!(get(e, "kind").as_str(), Some("actor_error"));
        assert_eq!(get(e, "message").as_str(), Some("EchoError: stream broke"));
        assert_eq!(get(&frames[2], "end").as_bool(), Some(true));
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_detail_arrives_in_error_bodies_and_stream_error_frames() {
    bounded(async {
        let node = echo_node().await;
        for version in [Curl::Http11, Curl::H2PriorKnowledge] {
            let r = post_envelope(&node, version, "/actor/echo", "fail_detail", b"").await;
            assert_eq!(r.status, 500, "{r:?}");
            let body = value(&r.body);
            assert_eq!(
                error(&r.body),
                ("actor_error".into(), "EchoError: fail requested".into())
            );
            assert_eq!(error_detail(&body).as_deref(), Some(DETAIL));
        }
        let r = hyper_request(
            node.addr,
            true,
            "POST",
            "/actor/echo",
            &[MSGPACK],
            envelope("stream_fail_detail", b""),
        )
        .await;
        let frames = frames(&r.body);
        assert_eq!(frames.len(), 3, "{frames:?}");
        assert_eq!(
            get(get(&frames[1], "error"), "kind").as_str(),
            Some("actor_error")
        );
        assert_eq!(error_detail(&frames[1]).as_deref(), Some(DETAIL));
        assert_eq!(get(&frames[2], "end").as_bool(), Some(true));
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_without_detail_has_no_detail_key() {
    bounded(async {
        let node = echo_node().await;
        let r = post_envelope(&node, Curl::H2PriorKnowledge, "/actor/echo", "fail", b"").await;
        assert_eq!(r.status, 500, "{r:?}");
        assert_eq!(error_detail(&value(&r.body)), None);
        let r = post_envelope(&node, Curl::H2PriorKnowledge, "/actor/nobody", "ping", b"").await;
        assert_eq!(r.status, 404, "{r:?}");
        assert_eq!(error_detail(&value(&r.body)), None);
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_tell_is_202_with_an_empty_body() {
    bounded(async {
        let node = echo_node().await;
        for version in [Curl::Http11, Curl::H2PriorKnowledge] {
            let r = curl(
                version,
                "POST",
                &node.url("/actor/echo"),
                &[MSGPACK, ("x-pulsing-mode", "tell")],
                Some(envelope("ping", b"")),
            )
            .await;
            assert_eq!(r.status, 202, "{r:?}");
            assert!(r.body.is_empty());
        }
        node.system.shutdown().await;
    })
    .await;
}

/// `(status, kind)` of an error response, checking its content type.
fn refusal(r: &Resp) -> (u16, String) {
    assert_eq!(
        r.header("content-type"),
        Some("application/msgpack"),
        "{r:?}"
    );
    (r.status, error(&r.body).0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_status_carries_its_msgpack_body() {
    bounded(async {
        let node = echo_node().await;
        let other_node = NodeId(node.system.node_id().0 ^ 1).to_string();
        let huge = vec![0u8; 1024 * 1024 + 1];
        type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
        let cases: Vec<Case<'_>> = vec![
            (
                "/actor/nobody",
                vec![MSGPACK],
                envelope("ping", b""),
                404,
                "not_found",
            ),
            (
                "/actor/secret",
                vec![MSGPACK],
                envelope("ping", b""),
                404,
                "not_found",
            ),
            (
                "/nowhere",
                vec![MSGPACK],
                envelope("ping", b""),
                404,
                "not_found",
            ),
            (
                "/actor/echo",
                vec![MSGPACK],
                b"not msgpack".to_vec(),
                400,
                "bad_request",
            ),
            (
                "/actor/echo",
                vec![MSGPACK],
                b"\x91\x01".to_vec(),
                400,
                "bad_request",
            ),
            (
                "/actor/echo",
                vec![MSGPACK],
                envelope("ping", b"x")[..12].to_vec(),
                400,
                "bad_request",
            ),
            (
                "/actor/echo",
                vec![("content-type", "application/json")],
                envelope("ping", b""),
                400,
                "bad_request",
            ),
            (
                "/actor/echo",
                vec![MSGPACK, ("x-pulsing-mode", "maybe")],
                envelope("ping", b""),
                400,
                "bad_request",
            ),
            (
                "/actor/echo",
                vec![MSGPACK, ("x-pulsing-timeout-ms", "soon")],
                envelope("ping", b""),
                400,
                "bad_request",
            ),
            (
                "/actor/echo",
                vec![MSGPACK, ("x-pulsing-node", "xyz")],
                envelope("ping", b""),
                400,
                "bad_request",
            ),
            (
                "/actor/-bad",
                vec![MSGPACK],
                envelope("ping", b""),
                400,
                "bad_request",
            ),
            (
                "/actor/echo",
                vec![MSGPACK, ("x-pulsing-node", &other_node)],
                envelope("ping", b""),
                404,
                "not_found",
            ),
            ("/actor/echo", vec![MSGPACK], huge, 413, "too_large"),
            (
                "/actor/echo",
                vec![MSGPACK],
                envelope("fail", b""),
                500,
                "actor_error",
            ),
            (
                "/actor/echo",
                vec![MSGPACK, ("x-pulsing-timeout-ms", "50")],
                envelope("sleep", b"2000"),
                504,
                "timeout",
            ),
        ];
        for (i, (path, headers, body, status, kind)) in cases.into_iter().enumerate() {
            let via_hyper =
                hyper_request(node.addr, i % 2 == 0, "POST", path, &headers, body.clone()).await;
            assert_eq!(
                refusal(&via_hyper),
                (status, kind.into()),
                "hyper, case {i}: {path} {headers:?}"
            );
            let version = if i % 2 == 0 {
                Curl::Http11
            } else {
                Curl::H2PriorKnowledge
            };
            let via_curl = curl(version, "POST", &node.url(path), &headers, Some(body)).await;
            assert_eq!(
                refusal(&via_curl),
                (status, kind.into()),
                "curl, case {i}: {path} {headers:?}"
            );
        }
        let r = post_envelope(&node, Curl::Http11, "/actor/echo", "fail", b"").await;
        assert_eq!(error(&r.body).1, "EchoError: fail requested");
        let r = curl(Curl::Http11, "GET", &node.url("/actor/echo"), &[], None).await;
        assert_eq!(refusal(&r), (405, "bad_request".into()));
        assert_eq!(r.header("allow"), Some("POST"));
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_mailbox_is_503_overloaded() {
    bounded(async {
        let node = echo_node().await;
        // `small` has a mailbox of 1 and the node's mailbox wait is 100 ms: the first `hold` blocks
        // the handler, the second fills the mailbox, the next one is refused.
        let tell = || {
            hyper_request(
                node.addr,
                true,
                "POST",
                "/actor/small",
                &[MSGPACK, ("x-pulsing-mode", "tell")],
                envelope("hold", b""),
            )
        };
        let mut statuses = Vec::new();
        for _ in 0..5 {
            let r = tell().await;
            statuses.push(r.status);
            if r.status == 503 {
                assert_eq!(refusal(&r), (503, "overloaded".into()));
                break;
            }
        }
        assert_eq!(statuses.last(), Some(&503), "{statuses:?}");
        assert!(statuses.len() >= 3, "{statuses:?}");
        node.gate.add_permits(100);
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_metrics_and_actors_answer_plain_clients() {
    bounded(async {
        let node = echo_node().await;
        let r = curl(Curl::Http11, "GET", &node.url("/health"), &[], None).await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok\n"[..]));
        let r = curl(
            Curl::H2PriorKnowledge,
            "GET",
            &node.url("/actors"),
            &[],
            None,
        )
        .await;
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(String::from_utf8(r.body).unwrap(), r#"["echo","small"]"#);
        post_envelope(&node, Curl::Http11, "/actor/nobody", "x", b"").await;
        let r = curl(Curl::Http11, "GET", &node.url("/metrics"), &[], None).await;
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4"));
        let text = String::from_utf8(r.body).unwrap();
        for line in [
            "pulsing_actors 3\n",
            "# TYPE pulsing_messages_handled_total counter\n",
            "# TYPE pulsing_in_flight_asks gauge\n",
            "pulsing_errors_total{kind=\"timeout\"} 0\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from\n{text}");
        }
        assert!(
            text.contains("pulsing_errors_total{kind=\"not_found\"}"),
            "{text}"
        );
        node.system.shutdown().await;
    })
    .await;
}

/// An inbound handler that records gossip and answers it reversed.
struct GossipRecorder {
    from: Mutex<Vec<Option<SocketAddr>>>,
}

#[async_trait]
impl InboundHandler for GossipRecorder {
    fn node_id(&self) -> NodeId {
        NodeId(7)
    }
    async fn ask(
        &self,
        name: &str,
        _: Message,
        _: Option<Duration>,
    ) -> Result<Message, PulsingError> {
        Err(PulsingError::NotFound(name.into()))
    }
    async fn tell(&self, name: &str, _: Message) -> Result<(), PulsingError> {
        Err(PulsingError::NotFound(name.into()))
    }
    async fn ask_queued(
        &self,
        name: &str,
        _: Message,
        _: Option<Duration>,
    ) -> Result<PendingReply, PulsingError> {
        Err(PulsingError::NotFound(name.into()))
    }
    async fn gossip(&self, from: Option<SocketAddr>, packet: Bytes) -> Result<Bytes, PulsingError> {
        self.from.lock().unwrap().push(from);
        let mut v = packet.to_vec();
        v.reverse();
        Ok(v.into())
    }
    fn public_actors(&self) -> Vec<ActorName> {
        Vec::new()
    }
    fn stats(&self) -> SystemStats {
        SystemStats::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_packets_reach_the_membership_and_its_answer_comes_back() {
    bounded(async {
        let handler = Arc::new(GossipRecorder {
            from: Mutex::default(),
        });
        let server = HttpTransport::new(HttpConfig::default());
        let addr = server
            .serve("127.0.0.1:0".parse().unwrap(), handler.clone())
            .await
            .unwrap();
        let r = curl(
            Curl::H2PriorKnowledge,
            "POST",
            &format!("http://{addr}/cluster/gossip"),
            &[
                ("content-type", "application/octet-stream"),
                ("x-pulsing-from", "10.1.2.3:4000"),
            ],
            Some(b"abc".to_vec()),
        )
        .await;
        assert_eq!((r.status, r.body.as_slice()), (200, &b"cba"[..]));
        assert_eq!(r.header("x-pulsing-node"), Some("0000000000000007"));
        let client = HttpTransport::new(HttpConfig::default());
        let answer = client
            .gossip(addr, Bytes::from_static(b"xyz"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(&answer[..], b"zyx");
        let from = handler.from.lock().unwrap().clone();
        assert_eq!(from[0], Some("10.1.2.3:4000".parse().unwrap()));
        assert!(from[1].is_some_and(|a| a.ip().is_loopback()));
        server.shutdown().await;
    })
    .await;
}

// --- robustness ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4_gib_announced_body_is_refused_before_buffering_and_the_node_survives() {
    bounded(async {
        let node = echo_node().await;
        let head = format!(
            "POST /actor/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/msgpack\r\ncontent-length: {}\r\n\r\n",
            4u64 << 30
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(&[0u8; 4096]);
        let raw = raw_exchange(node.addr, &req, Duration::from_secs(5)).await;
        let r = parse_http_response(&raw);
        assert_eq!(r.status, 413);
        assert_eq!(error(&r.body[..]).0, "too_large");
        still_serves(node.addr).await;
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_chunked_body_is_cut_at_the_limit() {
    bounded(async {
        let node = echo_node().await;
        // 2 MiB in 64 KiB chunks, no content-length: refused once the limit (1 MiB) is passed.
        let mut req = b"POST /actor/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/msgpack\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..32 {
            req.extend_from_slice(b"10000\r\n");
            req.extend_from_slice(&[0u8; 0x10000]);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"0\r\n\r\n");
        let raw = raw_exchange(node.addr, &req, Duration::from_secs(5)).await;
        let r = parse_http_response(&raw);
        assert_eq!((r.status, error(&r.body).0.as_str()), (413, "too_large"));
        still_serves(node.addr).await;
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_cut_off_by_the_read_timeout_then_the_next_request_is_served() {
    bounded(async {
        let node = echo_node().await;
        let req = b"POST /actor/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/msgpack\r\ncontent-length: 100\r\n\r\n\x82\xa8msg";
        // The test config's body timeout is 500 ms; the client never sends the other bytes.
        let raw = raw_exchange(node.addr, req, Duration::from_secs(10)).await;
        let r = parse_http_response(&raw);
        assert_eq!((r.status, error(&r.body).0.as_str()), (408, "timeout"));
        still_serves(node.addr).await;
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_sent_heads_are_closed_by_the_header_timeout() {
    bounded(async {
        let node = echo_node().await;
        for partial in [
            &b""[..],
            b"POST /actor/echo HTTP/1.1\r\nhost:",
            b"PRI * HTTP/2.0\r\n",
        ] {
            let raw = raw_exchange(node.addr, partial, Duration::from_secs(10)).await;
            // Closed (EOF) within the bound, possibly after a 408 from hyper's HTTP/1 timer.
            assert!(
                raw.is_empty() || raw.starts_with(b"HTTP/1.1 408"),
                "{:?}",
                String::from_utf8_lossy(&raw)
            );
        }
        still_serves(node.addr).await;
        node.system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_connections_never_take_the_node_down() {
    bounded(async {
        let node = echo_node().await;
        let garbage: Vec<Vec<u8>> = vec![
            b"\x00\x01\x02\x03garbage\r\n\r\n".to_vec(),
            b"GET / HTTP/9.9\r\n\r\n".to_vec(),
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\xff\xff\xff\xff\xff\xff".to_vec(),
            (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ];
        for g in &garbage {
            let raw = raw_exchange(node.addr, g, Duration::from_secs(5)).await;
            if raw.starts_with(b"HTTP/1.1") {
                let status = parse_http_response(&raw).status;
                assert!((400..500).contains(&status), "{status}");
            }
        }
        // Truncated and garbage msgpack bodies over HTTP/2, many in a row.
        for cut in 0..envelope("ping", b"hi").len() {
            let r = hyper_request(
                node.addr,
                true,
                "POST",
                "/actor/echo",
                &[MSGPACK],
                envelope("ping", b"hi")[..cut].to_vec(),
            )
            .await;
            assert_eq!(refusal(&r), (400, "bad_request".into()), "cut at {cut}");
        }
        still_serves(node.addr).await;
        node.system.shutdown().await;
    })
    .await;
}
