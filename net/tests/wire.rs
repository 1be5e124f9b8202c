//! Property tests of the wire decoders, and the fuzz seed corpus.

use hashgraph::{Hash, PublicKey, SecretKey};
use hearsay_net::wire::{
    decode_body, decode_frame, encode_body, encode_frame, Request, Response, SyncRequest,
    SyncResponse, WireError, MAX_FRAME_BYTES,
};
use proptest::prelude::*;
use std::path::PathBuf;

fn public_key() -> impl Strategy<Value = PublicKey> {
    any::<[u8; 8]>().prop_map(|seed| SecretKey::from_seed(&seed).public_key())
}

fn known() -> impl Strategy<Value = Vec<(PublicKey, u64)>> {
    prop::collection::vec((public_key(), any::<u64>()), 0..6)
}

fn events() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..8)
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (known(), any::<u32>())
            .prop_map(|(known, limit)| Request::Sync(SyncRequest { known, limit })),
        events().prop_map(Request::EagerSync),
        prop::collection::vec(any::<[u8; 32]>().prop_map(Hash), 0..10)
            .prop_map(Request::FetchEvents),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    prop_oneof![
        (events(), known(), any::<bool>()).prop_map(|(events, known, more)| Response::Sync(
            SyncResponse {
                events,
                known,
                more
            }
        )),
        any::<u32>().prop_map(|accepted| Response::EagerSync { accepted }),
        events().prop_map(Response::Events),
        ".{0,40}".prop_map(Response::Error),
    ]
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_body::<Request>(&bytes);
        let _ = decode_body::<Response>(&bytes);
        let _ = decode_frame::<Request>(&bytes, MAX_FRAME_BYTES);
        let _ = decode_frame::<Response>(&bytes, 64);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut frame = (bytes.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&bytes);
        match decode_frame::<Request>(&frame, MAX_FRAME_BYTES) {
            Ok((msg, used)) => {
                prop_assert_eq!(used, frame.len());
                // Whatever decodes re-encodes to a message that decodes to itself.
                let again = encode_frame(&msg).unwrap();
                prop_assert_eq!(decode_frame::<Request>(&again, MAX_FRAME_BYTES).unwrap().0, msg);
            }
            Err(WireError::Incomplete { .. }) => {
                prop_assert!(false, "a whole frame is never incomplete")
            }
            Err(_) => {}
        }
    }

    #[test]
    fn requests_round_trip(req in request()) {
        let frame = encode_frame(&req).unwrap();
        let (back, used) = decode_frame::<Request>(&frame, MAX_FRAME_BYTES).unwrap();
        prop_assert_eq!(used, frame.len());
        prop_assert_eq!(&back, &req);
        prop_assert_eq!(decode_body::<Request>(&encode_body(&req).unwrap()).unwrap(), req);
    }

    #[test]
    fn responses_round_trip(resp in response()) {
        let frame = encode_frame(&resp).unwrap();
        let (back, used) = decode_frame::<Response>(&frame, MAX_FRAME_BYTES).unwrap();
        prop_assert_eq!(used, frame.len());
        prop_assert_eq!(back, resp);
    }

    #[test]
    fn truncated_frames_are_incomplete(req in request(), cut in any::<prop::sample::Index>()) {
        let frame = encode_frame(&req).unwrap();
        let cut = cut.index(frame.len());
        let result = decode_frame::<Request>(&frame[..cut], MAX_FRAME_BYTES);
        prop_assert!(matches!(result, Err(WireError::Incomplete { .. })), "{:?}", result);
    }
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wire_decode")
}

/// The seed corpus of the `wire_decode` fuzz target: one frame per message type.
fn seed_messages() -> Vec<(&'static str, Vec<u8>)> {
    let a = SecretKey::from_seed(b"a").public_key();
    let b = SecretKey::from_seed(b"b").public_key();
    vec![
        (
            "request-sync",
            encode_frame(&Request::Sync(SyncRequest {
                known: vec![(a, 4), (b, 0)],
                limit: 100,
            }))
            .unwrap(),
        ),
        (
            "request-eager-sync",
            encode_frame(&Request::EagerSync(vec![vec![1, 2, 3], vec![0; 40]])).unwrap(),
        ),
        (
            "request-fetch-events",
            encode_frame(&Request::FetchEvents(vec![
                Hash::digest(b"e1"),
                Hash::digest(b"e2"),
            ]))
            .unwrap(),
        ),
        (
            "response-sync",
            encode_frame(&Response::Sync(SyncResponse {
                events: vec![vec![7; 20]],
                known: vec![(b, 9)],
                more: true,
            }))
            .unwrap(),
        ),
        (
            "response-eager-sync",
            encode_frame(&Response::EagerSync { accepted: 2 }).unwrap(),
        ),
        (
            "response-events",
            encode_frame(&Response::Events(vec![vec![5; 8]])).unwrap(),
        ),
        (
            "response-error",
            encode_frame(&Response::Error("busy".into())).unwrap(),
        ),
    ]
}

#[test]
fn fuzz_seed_corpus_is_current() {
    for (name, bytes) in seed_messages() {
        let path = corpus_dir().join(name);
        let stored = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run the ignored test write_fuzz_seed_corpus)",
                path.display()
            )
        });
        assert_eq!(
            stored, bytes,
            "{name} is stale: run the ignored test write_fuzz_seed_corpus"
        );
    }
}

/// Regenerates the seed corpus: `cargo test -p hearsay-net --test wire -- --ignored`.
#[test]
#[ignore = "writes into the source tree"]
fn write_fuzz_seed_corpus() {
    std::fs::create_dir_all(corpus_dir()).unwrap();
    for (name, bytes) in seed_messages() {
        std::fs::write(corpus_dir().join(name), bytes).unwrap();
    }
}
