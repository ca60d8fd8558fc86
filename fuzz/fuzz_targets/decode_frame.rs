//! Any bytes, split at a fuzzer-chosen point, given to the stream frame decoder: frames or an error,
//! never a panic, and never a buffer grown past the frame limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pulsing_transport_http::codec::{self, FrameDecoder};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut decoder = FrameDecoder::new(64 * 1024);
    for chunk in [&data[..split], &data[split..]] {
        decoder.push(chunk);
        while let Ok(Some(frame)) = decoder.next_frame() {
            let again = codec::encode_frame(&frame).to_bytes();
            let mut check = FrameDecoder::new(usize::MAX);
            check.push(&again);
            assert_eq!(check.next_frame(), Ok(Some(frame)));
        }
    }
});
