//! Any bytes given to the envelope and reply decoders: an error or a value, never a panic; a decoded
//! envelope re-encodes to something that decodes to the same envelope.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pulsing_transport_http::codec;

fuzz_target!(|data: &[u8]| {
    let body = Bytes::copy_from_slice(data);
    if let Ok(env) = codec::decode_envelope(&body) {
        let again = codec::encode_envelope(&env.msg_type, &env.payload).to_bytes();
        assert_eq!(codec::decode_envelope(&again).as_ref(), Ok(&env));
    }
    let _ = codec::decode_reply(&body);
});
