//! Any bytes given to the decoder of actor refs inside payloads: an error or a ref, never a panic; a
//! decoded ref re-encodes to something that decodes to the same ref.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pulsing_core::WireRef;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = WireRef::decode_data(data) {
        let again = r.encode_data();
        assert_eq!(WireRef::decode_data(&again).as_ref(), Ok(&r));
    }
});
