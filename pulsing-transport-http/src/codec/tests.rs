//! Unit tests of the codec against protocol.md, with proptests for round trips and arbitrary input.

use super::*;

fn env(t: &str, p: &[u8]) -> Envelope {
    Envelope {
        msg_type: t.into(),
        payload: Bytes::copy_from_slice(p),
    }
}

#[test]
fn the_envelope_matches_the_bytes_in_protocol_md() {
    let expected: &[u8] = b"\x82\xa8msg_type\xa4ping\xa7payload\xc4\x02hi";
    let got = encode_envelope("ping", &Bytes::from_static(b"hi")).to_bytes();
    assert_eq!(&got[..], expected);
    assert_eq!(
        decode_envelope(&Bytes::from_static(expected)).unwrap(),
        env("ping", b"hi")
    );
}

#[test]
fn decoded_payload_is_a_slice_of_the_input_not_a_copy() {
    let body = encode_envelope("t", &Bytes::from(vec![7u8; 100])).to_bytes();
    let e = decode_envelope(&body).unwrap();
    let start = body.as_ptr() as usize;
    let p = e.payload.as_ptr() as usize;
    assert!(p >= start && p + 100 <= start + body.len());
}

#[test]
fn large_payloads_are_not_copied_when_encoding() {
    let payload = Bytes::from(vec![1u8; INLINE_PAYLOAD + 1]);
    let enc = encode_result("t", &payload);
    assert_eq!(enc.payload.as_ptr(), payload.as_ptr());
    match decode_reply(&enc.to_bytes()).unwrap() {
        Reply::Result(e) => assert_eq!(e.payload, payload),
        other => panic!("{other:?}"),
    }
}

#[test]
fn keys_in_any_order_unknown_keys_and_str_payloads_are_accepted() {
    // {"x": [1, {"y": nil}], "payload": "hi", "msg_type": "t"}
    let body =
        Bytes::from_static(b"\x83\xa1x\x92\x01\x81\xa1y\xc0\xa7payload\xa2hi\xa8msg_type\xa1t");
    assert_eq!(decode_envelope(&body).unwrap(), env("t", b"hi"));
}

#[test]
fn a_missing_payload_is_empty_but_a_missing_msg_type_is_refused() {
    let body = Bytes::from_static(b"\x81\xa8msg_type\xa1t");
    assert_eq!(decode_envelope(&body).unwrap(), env("t", b""));
    let body = Bytes::from_static(b"\x81\xa7payload\xc4\x00");
    assert!(decode_envelope(&body).unwrap_err().0.contains("msg_type"));
}

#[test]
fn malformed_envelopes_are_refused_with_a_reason() {
    let cases: &[&[u8]] = &[
        b"",
        b"\x92\x01\x02",                           // an array
        b"\x82\xa8msg_type\xa4pi",                 // truncated
        b"\x81\xa8msg_type\x01",                   // msg_type not a string
        b"\x82\xa8msg_type\xa1t\xa8msg_type\xa1u", // duplicate key
        b"\x81\xa8msg_type\xa1t\x00",              // trailing byte
        b"\x81\xa8msg_type\xa2\xff\xfe",           // not UTF-8
        b"\x81\xa1x\xc1",                          // reserved marker
        b"\x81\xa1x\xdd\xff\xff\xff\xff",          // array32 declaring 4G items
        b"\x81\xa7payload\xc6\xff\xff\xff\xff",    // bin32 declaring 4 GiB
    ];
    for case in cases {
        assert!(
            decode_envelope(&Bytes::from_static(case)).is_err(),
            "{case:?}"
        );
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let mut body = b"\x81\xa1x".to_vec();
    body.extend(std::iter::repeat_n(0x91u8, 100_000));
    body.push(0xc0);
    let err = decode_envelope(&Bytes::from(body)).unwrap_err();
    assert!(err.0.contains("deeply"), "{err}");
}

#[test]
fn replies_and_errors_decode() {
    let ok = encode_result("echo", &Bytes::from_static(b"x")).to_bytes();
    assert_eq!(decode_reply(&ok).unwrap(), Reply::Result(env("echo", b"x")));
    let e = WireError {
        kind: "not_found".into(),
        message: "actor not found: a".into(),
        detail: None,
    };
    assert_eq!(decode_reply(&encode_error(&e)).unwrap(), Reply::Error(e));
    assert!(decode_reply(&Bytes::from_static(b"\x80")).is_err());
}

#[test]
fn an_error_without_detail_has_exactly_the_two_documented_keys() {
    let e = WireError {
        kind: "stopped".into(),
        message: "a".into(),
        detail: None,
    };
    assert_eq!(
        &encode_error(&e)[..],
        b"\x81\xa5error\x82\xa4kind\xa7stopped\xa7message\xa1a"
    );
}

#[test]
fn an_error_detail_is_written_as_a_third_key_and_read_back() {
    let e = WireError {
        kind: "actor_error".into(),
        message: "ValueError: bad".into(),
        detail: Some("Traceback (most recent call last): ...".into()),
    };
    let body = encode_error(&e);
    assert_eq!(body[..13], *b"\x81\xa5error\x83\xa4kind");
    assert_eq!(decode_reply(&body).unwrap(), Reply::Error(e.clone()));
    let err = e.into_error();
    match &err {
        PulsingError::Actor(a) => {
            assert_eq!(a.type_name(), Some("ValueError"));
            assert_eq!(a.message(), "bad");
            assert_eq!(a.detail(), Some("Traceback (most recent call last): ..."));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        WireError::from_error(&err).detail.as_deref(),
        err.wire_detail()
    );
}

#[test]
fn a_nil_detail_reads_as_none_and_a_duplicate_or_non_string_detail_is_refused() {
    // {"error": {"kind": "k", "message": "m", "detail": nil}}
    let nil = Bytes::from_static(b"\x81\xa5error\x83\xa4kind\xa1k\xa7message\xa1m\xa6detail\xc0");
    match decode_reply(&nil).unwrap() {
        Reply::Error(e) => assert_eq!(e.detail, None),
        other => panic!("{other:?}"),
    }
    let cases: &[&[u8]] = &[
        b"\x81\xa5error\x83\xa4kind\xa1k\xa6detail\xa1a\xa6detail\xa1b",
        b"\x81\xa5error\x82\xa4kind\xa1k\xa6detail\x01",
    ];
    for case in cases {
        assert!(decode_reply(&Bytes::from_static(case)).is_err(), "{case:?}");
    }
}

#[test]
fn frames_split_across_chunks_are_reassembled() {
    let frames = [
        StreamFrame::Item(env("tok", b"a")),
        StreamFrame::Item(env("tok", &[9u8; 5000])),
        StreamFrame::Error(WireError {
            kind: "actor_error".into(),
            message: "boom".into(),
            detail: Some("where it broke".into()),
        }),
        StreamFrame::End,
    ];
    let mut wire = Vec::new();
    for f in &frames {
        wire.extend_from_slice(&encode_frame(f).to_bytes());
    }
    let mut dec = FrameDecoder::new(1 << 20);
    let mut got = Vec::new();
    for chunk in wire.chunks(7) {
        dec.push(chunk);
        while let Some(f) = dec.next_frame().unwrap() {
            got.push(f);
        }
    }
    assert_eq!(got, frames);
    assert!(!dec.has_partial());
}

#[test]
fn an_oversized_frame_is_refused_from_its_length_prefix() {
    let mut dec = FrameDecoder::new(1024);
    dec.push(&[0xff, 0xff, 0xff, 0xff]);
    assert!(dec.next_frame().is_err());
}

#[test]
fn end_frame_matches_the_documented_bytes() {
    let f = encode_frame(&StreamFrame::End).to_bytes();
    assert_eq!(&f[..], b"\x00\x00\x00\x06\x81\xa3end\xc3");
}

#[test]
fn frames_mixing_shapes_are_refused() {
    let cases: &[&[u8]] = &[
        b"\x82\xa8msg_type\xa1t\xa3end\xc3",
        b"\x81\xa3end\xc2",
        b"\x81\xa1x\x01",
        b"\x82\xa7payload\xc4\x00\xa3end\xc3",
    ];
    for case in cases {
        assert!(
            decode_frame_body(&Bytes::from_static(case)).is_err(),
            "{case:?}"
        );
    }
}

mod prop {
    use super::super::*;
    use proptest::prelude::*;

    fn envelope() -> impl Strategy<Value = Envelope> {
        (
            ".{0,40}",
            proptest::collection::vec(any::<u8>(), 0..(INLINE_PAYLOAD + 200)),
        )
            .prop_map(|(msg_type, payload)| Envelope {
                msg_type,
                payload: payload.into(),
            })
    }

    fn frame() -> impl Strategy<Value = StreamFrame> {
        prop_oneof![
            envelope().prop_map(StreamFrame::Item),
            (".{0,20}", ".{0,200}", proptest::option::of(".{0,300}")).prop_map(
                |(kind, message, detail)| StreamFrame::Error(WireError {
                    kind,
                    message,
                    detail,
                })
            ),
            Just(StreamFrame::End),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn envelopes_round_trip(e in envelope()) {
            let wire = encode_envelope(&e.msg_type, &e.payload).to_bytes();
            prop_assert_eq!(decode_envelope(&wire).unwrap(), e);
        }

        #[test]
        fn results_round_trip(e in envelope()) {
            let wire = encode_result(&e.msg_type, &e.payload).to_bytes();
            prop_assert_eq!(decode_reply(&wire).unwrap(), Reply::Result(e));
        }

        #[test]
        fn errors_round_trip_with_or_without_detail(
            kind in ".{0,20}",
            message in ".{0,200}",
            detail in proptest::option::of(".{0,300}"),
        ) {
            let e = WireError { kind, message, detail };
            prop_assert_eq!(decode_reply(&encode_error(&e)).unwrap(), Reply::Error(e));
        }

        #[test]
        fn stream_frames_round_trip_in_any_chunking(
            frames in proptest::collection::vec(frame(), 0..8),
            chunk in 1usize..64,
        ) {
            let mut wire = Vec::new();
            for f in &frames {
                wire.extend_from_slice(&encode_frame(f).to_bytes());
            }
            let mut dec = FrameDecoder::new(1 << 20);
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                dec.push(c);
                while let Some(f) = dec.next_frame().unwrap() {
                    got.push(f);
                }
            }
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoders(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            let b = Bytes::from(data);
            let _ = decode_envelope(&b);
            let _ = decode_reply(&b);
            let _ = decode_frame_body(&b);
            let mut dec = FrameDecoder::new(1024);
            dec.push(&b);
            while let Ok(Some(_)) = dec.next_frame() {}
        }
    }
}
