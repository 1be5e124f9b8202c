//! Fuzzes the gossip frame decoder: no input may panic, and whatever decodes must re-encode to
//! a frame that decodes to the same message.
//!
//! Run with `scripts/fuzz 60 wire_decode` from the repository root (seeds: `corpus/wire_decode`).

#![no_main]

use hearsay_net::wire::{decode_frame, encode_frame, Request, Response, MAX_FRAME_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((request, _)) = decode_frame::<Request>(data, MAX_FRAME_BYTES) {
        let frame = encode_frame(&request).expect("a decoded request re-encodes");
        let (again, _) = decode_frame::<Request>(&frame, MAX_FRAME_BYTES).expect("re-decodes");
        assert_eq!(again, request);
    }
    if let Ok((response, _)) = decode_frame::<Response>(data, MAX_FRAME_BYTES) {
        let frame = encode_frame(&response).expect("a decoded response re-encodes");
        let (again, _) = decode_frame::<Response>(&frame, MAX_FRAME_BYTES).expect("re-decodes");
        assert_eq!(again, response);
    }
});
