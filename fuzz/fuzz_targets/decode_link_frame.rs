//! Any bytes given to the link decoder, in any chunking: frames or an error, never a panic, and a
//! frame that decodes re-encodes to bytes that decode to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pulsing_transport_http::codec::link::{put_frame, LinkDecoder};

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(1, |b| usize::from(*b % 32) + 1);
    let mut dec = LinkDecoder::new(1 << 16);
    for chunk in data.chunks(split) {
        dec.buf.extend_from_slice(chunk);
        loop {
            match dec.next_frame() {
                Ok(Some(frame)) => {
                    let mut again = Vec::new();
                    put_frame(&mut again, &frame);
                    let mut check = LinkDecoder::new(1 << 17);
                    check.buf.extend_from_slice(&again);
                    assert_eq!(check.next_frame().ok().flatten().as_ref(), Some(&frame));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
