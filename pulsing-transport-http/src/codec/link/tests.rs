use bytes::Bytes;
use proptest::prelude::*;
use pulsing_core::NodeId;

use super::*;

fn env(msg_type: &str, payload: &[u8]) -> Envelope {
    Envelope {
        msg_type: msg_type.into(),
        payload: Bytes::copy_from_slice(payload),
    }
}

fn every_frame() -> Vec<LinkFrame> {
    let error = WireError {
        kind: "actor_error".into(),
        message: "boom".into(),
        detail: Some("trace".into()),
    };
    vec![
        LinkFrame::Tell {
            to: "counter".into(),
            msg: env("inc", b"1"),
        },
        LinkFrame::Ask {
            id: u64::MAX,
            to: "anon.0123".into(),
            timeout_ms: Some(30_000),
            msg: env("get", &[0, 255, 7]),
        },
        LinkFrame::Ask {
            id: 0,
            to: "x".into(),
            timeout_ms: None,
            msg: env("", b""),
        },
        LinkFrame::Cancel { id: 3 },
        LinkFrame::Credit { id: 4, n: 65_536 },
        LinkFrame::Ping,
        LinkFrame::Pong,
        LinkFrame::Hello {
            node: Some(NodeId(0xfeed)),
            max_message: Some(64 << 20),
        },
        LinkFrame::Hello {
            node: None,
            max_message: Some(1),
        },
        LinkFrame::Hello {
            node: None,
            max_message: None,
        },
        LinkFrame::Reply {
            id: 5,
            result: Ok(env("ok", &[1; 5000])),
        },
        LinkFrame::Reply {
            id: 6,
            result: Err(error.clone()),
        },
        LinkFrame::Stream { id: 7 },
        LinkFrame::Item {
            id: 7,
            msg: env("item", b"a"),
        },
        LinkFrame::End { id: 7 },
        LinkFrame::Fail { id: 8, error },
        LinkFrame::Bye { id: 9 },
    ]
}

#[test]
fn every_frame_survives_a_round_trip_even_split_byte_by_byte() {
    let frames = every_frame();
    let mut wire = Vec::new();
    for f in &frames {
        put_frame(&mut wire, f);
    }
    let mut dec = LinkDecoder::new(1 << 20);
    let mut got = Vec::new();
    for b in &wire {
        dec.buf.extend_from_slice(&[*b]);
        while let Some(f) = dec.next_frame().unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
    assert!(dec.buf.is_empty());
}

#[test]
fn a_frame_announced_over_the_limit_is_refused_before_its_body_arrives() {
    let mut dec = LinkDecoder::new(1024);
    dec.buf.extend_from_slice(&u32::MAX.to_be_bytes());
    let e = dec.next_frame().unwrap_err();
    assert!(e.to_string().contains("exceeds the limit"), "{e}");
}

/// Writes one msgpack value.
type Put<'a> = &'a dyn Fn(&mut Vec<u8>);

/// One frame body from `(key, value)` pairs given as msgpack-encoded values.
fn body(pairs: &[(&str, Put<'_>)]) -> Bytes {
    let mut out = Vec::new();
    rmp::encode::write_map_len(&mut out, pairs.len() as u32).unwrap();
    for (k, v) in pairs {
        rmp::encode::write_str(&mut out, k).unwrap();
        v(&mut out);
    }
    out.into()
}

fn s(v: &'static str) -> impl Fn(&mut Vec<u8>) {
    move |o: &mut Vec<u8>| rmp::encode::write_str(o, v).unwrap()
}

fn u(v: u64) -> impl Fn(&mut Vec<u8>) {
    move |o: &mut Vec<u8>| {
        rmp::encode::write_uint(o, v).unwrap();
    }
}

#[test]
fn unknown_keys_are_ignored_and_keys_come_in_any_order() {
    let b = body(&[
        ("payload", &|o: &mut Vec<u8>| {
            rmp::encode::write_bin(o, b"p").unwrap()
        }),
        ("future", &|o: &mut Vec<u8>| {
            rmp::encode::write_array_len(o, 1).unwrap();
            rmp::encode::write_nil(o).unwrap();
        }),
        ("msg_type", &s("m")),
        ("to", &s("a")),
        ("t", &s("tell")),
    ]);
    assert_eq!(
        decode_link_frame(&b).unwrap(),
        LinkFrame::Tell {
            to: "a".into(),
            msg: env("m", b"p"),
        }
    );
}

#[test]
fn bad_frames_are_refused_with_what_was_wrong() {
    let cases: Vec<(Bytes, &str)> = vec![
        (body(&[("id", &u(1))]), "missing key \"t\""),
        (
            body(&[("t", &s("ask")), ("to", &s("a"))]),
            "missing key \"id\"",
        ),
        (
            body(&[("t", &s("tell")), ("msg_type", &s("m"))]),
            "missing key \"to\"",
        ),
        (
            body(&[("t", &s("tell")), ("to", &s("a"))]),
            "missing key \"msg_type\"",
        ),
        (body(&[("t", &s("warp"))]), "unknown link frame type"),
        (
            body(&[("t", &s("ping")), ("t", &s("ping"))]),
            "duplicate key",
        ),
        (
            body(&[("t", &s("cancel")), ("id", &s("one"))]),
            "expected a non-negative integer",
        ),
        (
            body(&[("t", &s("hello")), ("node", &s("xyz"))]),
            "16 hex digits",
        ),
        (body(&[("t", &s("reply")), ("id", &u(1))]), "exactly one of"),
        (Bytes::from_static(&[0x91, 0x01]), "expected a map"),
    ];
    for (b, want) in cases {
        let e = decode_link_frame(&b).unwrap_err();
        assert!(e.to_string().contains(want), "{want:?} in {e}");
    }
    let mut trailing = body(&[("t", &s("ping"))]).to_vec();
    trailing.push(0xc0);
    let e = decode_link_frame(&trailing.into()).unwrap_err();
    assert!(e.to_string().contains("trailing"), "{e}");
}

/// Keys and frame types are matched as bytes before any UTF-8 check; a string that is not UTF-8
/// is still refused wherever it is: an unknown key, the frame type, a known key's string value.
#[test]
fn strings_that_are_not_utf8_are_refused() {
    let not_utf8 = |o: &mut Vec<u8>| {
        rmp::encode::write_str_len(o, 2).unwrap();
        o.extend_from_slice(&[0xff, 0xfe]);
    };
    let mut unknown_key = Vec::new();
    rmp::encode::write_map_len(&mut unknown_key, 2).unwrap();
    rmp::encode::write_str(&mut unknown_key, "t").unwrap();
    rmp::encode::write_str(&mut unknown_key, "ping").unwrap();
    not_utf8(&mut unknown_key);
    rmp::encode::write_nil(&mut unknown_key).unwrap();
    let cases: Vec<(Bytes, &str)> = vec![
        (unknown_key.into(), "map key: string is not UTF-8"),
        (body(&[("t", &not_utf8)]), "t: string is not UTF-8"),
        (
            body(&[("t", &s("tell")), ("to", &not_utf8), ("msg_type", &s("m"))]),
            "to: string is not UTF-8",
        ),
        (
            body(&[("t", &s("tell")), ("to", &s("a")), ("msg_type", &not_utf8)]),
            "msg_type: string is not UTF-8",
        ),
    ];
    for (b, want) in cases {
        let e = decode_link_frame(&b).unwrap_err();
        assert!(e.to_string().contains(want), "{want:?} in {e}");
    }
}

proptest! {
    /// Whatever arrives, the decoder answers frames or an error, and never panics.
    #[test]
    fn garbage_never_panics(chunks in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let mut dec = LinkDecoder::new(4096);
        for c in chunks {
            dec.buf.extend_from_slice(&c);
            while let Ok(Some(_)) = dec.next_frame() {}
        }
    }

    /// Any ask round-trips, payload bytes intact.
    #[test]
    fn asks_round_trip(id in any::<u64>(), ms in proptest::option::of(1u64..u64::MAX),
                       to in "[a-z][a-z0-9_.-]{0,20}", ty in ".{0,12}",
                       payload in proptest::collection::vec(any::<u8>(), 0..300)) {
        let frame = LinkFrame::Ask { id, to, timeout_ms: ms, msg: env(&ty, &payload) };
        let mut wire = Vec::new();
        put_frame(&mut wire, &frame);
        let mut dec = LinkDecoder::new(1 << 20);
        dec.buf.extend_from_slice(&wire);
        prop_assert_eq!(dec.next_frame().unwrap(), Some(frame));
    }
}

/// A frame of a kind the fast path reads (`ask`, `tell`, `reply` with a result, `item`,
/// `credit`), from its parts; strings and payloads long enough for the wider msgpack forms.
fn hot_frame(
    kind: u8,
    id: u64,
    to: String,
    ms: Option<u64>,
    ty: String,
    payload: Vec<u8>,
) -> LinkFrame {
    let msg = env(&ty, &payload);
    match kind % 5 {
        0 => LinkFrame::Ask {
            id,
            to,
            timeout_ms: ms,
            msg,
        },
        1 => LinkFrame::Tell { to, msg },
        2 => LinkFrame::Reply {
            id,
            result: Ok(msg),
        },
        3 => LinkFrame::Item { id, msg },
        _ => LinkFrame::Credit {
            id,
            n: (id >> 32) as u32,
        },
    }
}

/// The body of `frame` as this crate writes it (without the length prefix).
fn written(frame: &LinkFrame) -> Bytes {
    let mut wire = Vec::new();
    put_frame(&mut wire, frame);
    Bytes::from(wire).slice(4..)
}

#[test]
fn the_frames_written_most_take_the_fast_path_and_the_others_the_general_one() {
    for frame in every_frame() {
        let hot = matches!(
            frame,
            LinkFrame::Ask { .. }
                | LinkFrame::Tell { .. }
                | LinkFrame::Item { .. }
                | LinkFrame::Credit { .. }
                | LinkFrame::Reply { result: Ok(_), .. }
        );
        let body = written(&frame);
        assert_eq!(fast::decode(&body), hot.then(|| frame.clone()), "{frame:?}");
        assert_eq!(decode_link_frame(&body).unwrap(), frame);
    }
    // The same frame with its keys in another order is the general decoder's.
    let b = body(&[("t", &s("credit")), ("n", &u(2)), ("id", &u(1))]);
    assert_eq!(fast::decode(&b), None);
    assert_eq!(
        decode_link_frame(&b).unwrap(),
        LinkFrame::Credit { id: 1, n: 2 }
    );
}

proptest! {
    /// Whatever the fast path reads, the general decoder reads the same: over every frame kind it
    /// takes, with one byte changed or the body cut short, and over arbitrary bytes.
    #[test]
    fn the_fast_path_only_ever_agrees_with_the_general_decoder(
        kind in any::<u8>(), id in any::<u64>(), ms in proptest::option::of(any::<u64>()),
        to in ".{0,40}", ty in ".{0,40}",
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        at in any::<usize>(), xor in any::<u8>(), cut in any::<bool>(),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let frame = hot_frame(kind, id, to, ms, ty, payload);
        let body = written(&frame);
        prop_assert_eq!(fast::decode(&body), Some(frame.clone()));
        let mut changed = body.to_vec();
        let i = at % changed.len();
        if cut {
            changed.truncate(i);
        } else {
            changed[i] ^= xor;
        }
        for b in [Bytes::from(changed), Bytes::from(garbage)] {
            if let Some(f) = fast::decode(&b) {
                prop_assert_eq!(decode_general(&b).ok(), Some(f));
            }
        }
    }
}
