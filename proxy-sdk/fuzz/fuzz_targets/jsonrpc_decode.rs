//! Fuzzes the JSON-RPC stream decoder: arbitrary bytes, split into arbitrary chunks, must never
//! panic, must keep the buffer bounded, and must decode the same messages however they are
//! split. Run with `cargo fuzz run jsonrpc_decode` from `proxy-sdk/`.

#![no_main]

use hearsay_proxy::jsonrpc::{FrameDecoder, Object, Request, Response};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

fn decode(data: &[u8], chunk: usize) -> Vec<Result<Object, String>> {
    let mut decoder = FrameDecoder::new(MAX);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunks = data.chunks(chunk);
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(obj)) => {
                let _ = Request::from_object(obj.clone());
                let _ = Response::from_object(obj.clone());
                out.push(Ok(obj));
            }
            Ok(None) => match chunks.next() {
                Some(c) => buf.extend_from_slice(c),
                None => {
                    match decoder.decode_eof(&mut buf) {
                        Ok(Some(obj)) => {
                            out.push(Ok(obj));
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => out.push(Err(e.to_string())),
                    }
                    return out;
                }
            },
            Err(e) => {
                let fatal = e.is_fatal();
                out.push(Err(e.to_string()));
                if fatal {
                    return out;
                }
            }
        }
        assert!(buf.len() <= MAX + chunk);
    }
}

fuzz_target!(|input: &[u8]| {
    // The first byte chooses the chunk size; the rest is the stream.
    let Some((&first, data)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    let whole = decode(data, data.len().max(1));
    assert_eq!(whole, decode(data, chunk));
});
