//! Anonymous actors and refs inside payloads across two systems over HTTP on 127.0.0.1.

#[path = "support/http.rs"]
mod http_support;

use std::time::Duration;

use http_support::*;
use pulsing::{
    Actor, ActorError, ActorSystem, Context, Message, NodeId, SpawnOptions, Visibility, WireRef,
    REF_EXT_TYPE,
};

async fn node() -> ActorSystem {
    system(test_config(), Duration::from_secs(10)).await
}

/// The test `echo` actor, its `hold` gate closed (unused here).
fn echo() -> Echo {
    Echo {
        gate: std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_actor_is_reached_from_another_node_through_its_id_and_found_by_nobody() {
    bounded(async {
        let (a, b) = (node().await, node().await);
        let anon = a
            .spawn_anonymous(echo(), SpawnOptions::new())
            .await
            .unwrap();
        let id = anon.name().as_str().to_owned();
        let addr = a.addr().unwrap();

        let remote = b.remote_ref(addr, &id).unwrap();
        assert_eq!(remote.visibility(), Visibility::Anonymous);
        let reply = remote.ask(Message::single("ping", "hi")).await.unwrap();
        assert_eq!(reply.payload().unwrap().as_ref(), b"hi");
        remote.tell(Message::single("ping", "told")).await.unwrap();
        for system in [&a, &b] {
            assert!(system.find(&id).await.is_none());
            assert!(!system.has_actor(&id).await);
        }

        // A plain client reaches it at `POST /actor/anon.<hex>`; `GET /actors` does not list it.
        let r = hyper_request(
            addr,
            true,
            "POST",
            &format!("/actor/{id}"),
            &[("content-type", "application/msgpack")],
            envelope("ping", b"plain"),
        )
        .await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(result(&r.body), ("echo".into(), b"plain".to_vec()));
        let r = hyper_request(addr, false, "GET", "/actors", &[], Vec::new()).await;
        assert_eq!(String::from_utf8(r.body).unwrap(), "[]");

        a.stop(&id).await.unwrap();
        let e = remote.ask(Message::single("ping", "")).await.unwrap_err();
        assert!(e.is_not_found(), "{e}");
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ref_decoded_on_another_node_works_over_http_and_comes_back_local() {
    bounded(async {
        let (a, b) = (node().await, node().await);
        let named = a
            .spawn_with(echo(), "echo", SpawnOptions::new().public(true))
            .await
            .unwrap();
        let anon = a
            .spawn_anonymous(echo(), SpawnOptions::new())
            .await
            .unwrap();
        for r in [&named, &anon] {
            let wire = r.wire_ref();
            assert_eq!(wire.addr, a.advertise_addr());
            assert_eq!(wire.node, Some(a.node_id()));
            let there = b.decode_ref(&r.ext_data()).unwrap();
            assert!(!there.is_local());
            let target = there.remote_target().unwrap();
            assert_eq!(Some(target.addr), a.advertise_addr());
            assert_eq!(target.node, Some(a.node_id()));
            assert_eq!(&target.name, r.name());
            let reply = there.ask(Message::single("ping", "via ref")).await.unwrap();
            assert_eq!(reply.payload().unwrap().as_ref(), b"via ref");
            // Encoded by the other node and decoded at home: the local actor itself.
            assert_eq!(&a.decode_ref(&there.ext_data()).unwrap(), r);
        }
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_actors_ref_decodes_elsewhere_but_never_reaches_it() {
    bounded(async {
        let (a, b) = (node().await, node().await);
        let secret = a.spawn(echo(), "secret").await.unwrap();
        assert_eq!(secret.visibility(), Visibility::Private);
        let there = b.decode_ref(&secret.ext_data()).unwrap();
        let e = there.ask(Message::single("ping", "")).await.unwrap_err();
        assert!(e.is_not_found(), "{e}");
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ref_names_one_run_of_its_node_and_an_empty_node_accepts_any() {
    bounded(async {
        let (a, b) = (node().await, node().await);
        a.spawn_with(echo(), "echo", SpawnOptions::new().public(true))
            .await
            .unwrap();
        let addr = a.addr().unwrap();
        let id = pulsing::ActorName::new("echo").unwrap();
        let other_run = WireRef {
            addr: Some(addr),
            node: Some(NodeId(a.node_id().0 ^ 1)),
            id: id.clone(),
        };
        let e = b
            .decode_ref(&other_run.encode_data())
            .unwrap()
            .ask(Message::single("ping", ""))
            .await
            .unwrap_err();
        assert!(
            e.is_not_found(),
            "a ref for another run never reaches this one: {e}"
        );

        // `remote_ref` names no run: its ref carries node "" and accepts whichever run answers.
        let any = b.remote_ref(addr, "echo").unwrap();
        assert_eq!(any.wire_ref().node, None);
        let decoded = a.decode_ref(&any.ext_data()).unwrap();
        assert!(
            !decoded.is_local(),
            "without a node id the ref stays a remote ref"
        );
        decoded.ask(Message::single("ping", "")).await.unwrap();
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}

/// Reads a ref from its payload (one msgpack ext value of type 1), asks it `ping`, and replies with
/// what it answered: a receiver turning a ref inside a payload into a working ref.
struct Relay;

impl Actor for Relay {
    async fn receive(&mut self, msg: Message, ctx: &mut Context) -> Result<Message, ActorError> {
        let (_, payload) = msg.into_single()?;
        let value = rmpv::decode::read_value(&mut &payload[..])
            .map_err(|e| ActorError::new(e.to_string()))?;
        let rmpv::Value::Ext(REF_EXT_TYPE, data) = value else {
            return Err(ActorError::new(format!("expected a ref, got {value}")));
        };
        let target = ctx.system().decode_ref(&data)?;
        Ok(target.ask(Message::single("ping", "relayed")).await?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ref_sent_inside_a_payload_is_called_back_by_the_receiver() {
    bounded(async {
        let (a, b) = (node().await, node().await);
        a.spawn_with(Relay, "relay", SpawnOptions::new().public(true))
            .await
            .unwrap();
        let mine = b
            .spawn_anonymous(echo(), SpawnOptions::new())
            .await
            .unwrap();
        let relay = b.remote_ref(a.addr().unwrap(), "relay").unwrap();
        let reply = relay
            .ask(Message::single("call", mine.encode_ext()))
            .await
            .unwrap();
        assert_eq!(reply.msg_type(), Some("echo"));
        assert_eq!(reply.payload().unwrap().as_ref(), b"relayed");
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}
