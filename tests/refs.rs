//! Anonymous actors and refs as msgpack extension values, within one process (the cross-node cases
//! are in `http_refs.rs`).

mod support;

use pulsing::{
    ActorSystem, Message, NodeId, PulsingError, SpawnOptions, Visibility, WireRef,
    ANONYMOUS_PREFIX, REF_EXT_TYPE,
};
use support::{bounded, Echo};

async fn standalone() -> ActorSystem {
    ActorSystem::builder().build().await.expect("standalone")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_actor_has_a_random_id_and_is_in_no_registry() {
    bounded(async {
        let system = standalone().await;
        let a = system
            .spawn_anonymous(Echo, SpawnOptions::new())
            .await
            .unwrap();
        let b = system
            .spawn_anonymous(Echo, SpawnOptions::new())
            .await
            .unwrap();
        let id = a.name().as_str().to_owned();
        let hex = id.strip_prefix(ANONYMOUS_PREFIX).expect("anon. prefix");
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')));
        assert_ne!(a.name(), b.name());
        assert_eq!(a.visibility(), Visibility::Anonymous);
        assert!(a.is_anonymous());

        let reply = a.ask(Message::single("ping", "x")).await.unwrap();
        assert_eq!(reply.payload().unwrap().as_ref(), b"x");
        assert!(system.find(&id).await.is_none());
        assert!(system.find_all(&id).await.is_empty());
        assert!(!system.has_actor(&id).await);
        assert!(system.local_actors().is_empty());
        let mut both = vec![a.name().clone(), b.name().clone()];
        both.sort();
        assert_eq!(system.anonymous_actors(), both);
        assert_eq!(system.stats().actors, 2);

        system.stop(&id).await.unwrap();
        assert!(a
            .ask(Message::single("ping", ""))
            .await
            .unwrap_err()
            .is_stopped());
        assert_eq!(system.anonymous_actors(), vec![b.name().clone()]);
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_anonymous_actor_is_refused_as_a_config_error() {
    bounded(async {
        let system = standalone().await;
        let e = system
            .spawn_anonymous(Echo, SpawnOptions::new().public(true))
            .await
            .unwrap_err();
        assert!(matches!(e, PulsingError::Config(_)), "{e:?}");
        assert!(e.to_string().contains("cannot be public"), "{e}");
        assert!(system.anonymous_actors().is_empty());
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_actors_cannot_take_a_name_in_the_anonymous_namespace() {
    bounded(async {
        let system = standalone().await;
        let e = system
            .spawn(Echo, "anon.0123456789abcdef0123456789abcdef")
            .await
            .unwrap_err();
        assert!(e.is_bad_message(), "{e}");
        assert!(e.to_string().contains("reserved"), "{e}");
        // Only the exact prefix is reserved.
        system.spawn(Echo, "anonymous").await.unwrap();
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_refs_report_their_visibility() {
    bounded(async {
        let system = standalone().await;
        let private = system.spawn(Echo, "private").await.unwrap();
        let public = system
            .spawn_with(Echo, "public", SpawnOptions::new().public(true))
            .await
            .unwrap();
        assert_eq!(private.visibility(), Visibility::Private);
        assert_eq!(public.visibility(), Visibility::Public);
        assert!(!Visibility::Private.is_served_remotely());
        assert!(
            Visibility::Public.is_served_remotely() && Visibility::Anonymous.is_served_remotely()
        );
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_ref_round_trips_to_the_same_actor_and_names_its_node() {
    bounded(async {
        let system = standalone().await;
        let named = system.spawn(Echo, "private").await.unwrap();
        let anon = system
            .spawn_anonymous(Echo, SpawnOptions::new())
            .await
            .unwrap();
        for r in [&named, &anon] {
            let wire = r.wire_ref();
            assert_eq!(wire.addr, None, "a standalone system has no address");
            assert_eq!(wire.node, Some(system.node_id()));
            assert_eq!(&wire.id, r.name());
            assert_eq!(WireRef::decode_data(&r.ext_data()).unwrap(), wire);
            let back = system.decode_ref(&r.ext_data()).unwrap();
            assert_eq!(&back, r, "decoding on its own node gives the local actor");
            back.ask(Message::single("ping", "")).await.unwrap();
        }
        // The complete ext value: ext8 header with type 1, then the data.
        let ext = named.encode_ext();
        let data = named.ext_data();
        assert_eq!(ext[..3], [0xc7, data.len() as u8, REF_EXT_TYPE as u8]);
        assert_eq!(&ext[3..], &data[..]);
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decoding_a_ref_to_a_stopped_local_actor_is_not_found() {
    bounded(async {
        let system = standalone().await;
        let anon = system
            .spawn_anonymous(Echo, SpawnOptions::new())
            .await
            .unwrap();
        let data = anon.ext_data();
        system.stop(anon.name().as_str()).await.unwrap();
        let e = system.decode_ref(&data).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        system.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ref_from_another_standalone_system_cannot_be_reached() {
    bounded(async {
        let mine = standalone().await;
        let theirs = standalone().await;
        let r = theirs.spawn(Echo, "echo").await.unwrap();
        let e = mine.decode_ref(&r.ext_data()).unwrap_err();
        assert!(e.is_unreachable(), "{e}");
        mine.shutdown().await;
        theirs.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ref_data_is_a_bad_message() {
    bounded(async {
        let system = standalone().await;
        let node = system.node_id().to_string();
        let mut wrong_count = vec![0x92, 0xa0, 0xb0];
        wrong_count.extend_from_slice(node.as_bytes());
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\xc0".to_vec(),
            wrong_count,
            b"\x93\xa9localhost\xa0\xa1x".to_vec(),
            b"\x93\xa0\xa5nodes\xa1x".to_vec(),
            b"\x93\xa0\xa0\xa2..".to_vec(),
        ];
        for data in cases {
            let e = system.decode_ref(&data).unwrap_err();
            assert!(matches!(e, PulsingError::BadMessage(_)), "{data:?}: {e:?}");
        }
        system.shutdown().await;
    })
    .await;
}

#[test]
fn node_ids_parse_from_their_display_form() {
    let id = NodeId(0x0123_4567_89ab_cdef);
    assert_eq!(id.to_string().parse::<NodeId>().unwrap(), id);
    assert_eq!("0123456789ABCDEF".parse::<NodeId>().unwrap(), id);
    for bad in [
        "",
        "123",
        "0123456789abcdefg",
        "+123456789abcdef",
        "0123456789abcde ",
    ] {
        assert!(
            bad.parse::<NodeId>().unwrap_err().is_bad_message(),
            "{bad:?}"
        );
    }
}
