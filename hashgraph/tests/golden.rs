//! Pins the canonical event encoding and ids, so the wire and hash format cannot drift silently.
//!
//! The expected bytes were written by hand from the format (postcard: varint lengths and
//! integers, zigzag for the signed timestamp, 0/1 tags for options) and the ids computed from
//! them with Python's `hashlib.sha3_256`, an implementation independent of ours. The keys are
//! the secret scalars 1 and 2, whose public keys are the well-known points G and 2G.

use hashgraph::{BlockSignature, Event, EventBody, Hash, SecretKey, Signature};

fn scalar(n: u8) -> SecretKey {
    let mut bytes = [0u8; 32];
    bytes[31] = n;
    SecretKey::from_bytes(&bytes).unwrap()
}

fn hash(hex_text: &str) -> Hash {
    Hash::from_hex(hex_text).unwrap()
}

fn check(event: &Event, body_hex: &str, id_hex: &str) {
    let body = hex::decode(body_hex).unwrap();
    let bytes = event.to_bytes();
    assert_eq!(hex::encode(&bytes[..body.len()]), body_hex, "body bytes");
    assert_eq!(bytes[body.len()], 64, "signature length prefix");
    assert_eq!(
        bytes.len(),
        body.len() + 1 + 64,
        "body, then the 64-byte signature"
    );
    assert_eq!(event.id(), hash(id_hex), "id = SHA3-256 of the body bytes");
    let decoded = Event::from_bytes(&bytes).unwrap();
    assert_eq!(&decoded, event);
    assert!(decoded.verify().is_ok());
}

#[test]
fn generator_points_are_the_expected_keys() {
    assert_eq!(
        hex::encode_upper(scalar(1).public_key().to_compressed()),
        "0279BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"
    );
    assert_eq!(
        hex::encode_upper(scalar(2).public_key().to_compressed()),
        "02C6047F9441ED7D6D3045406E95C07CD85C778E4B8CEF3CA7ABAC09B95C709EE5"
    );
}

#[test]
fn fixed_events_have_pinned_bytes_and_ids() {
    let e0 = EventBody {
        creator: scalar(1).public_key(),
        index: 0,
        self_parent: None,
        other_parent: None,
        timestamp: 1_700_000_000_000_000_000,
        transactions: vec![b"hello".to_vec()],
        internal_transactions: vec![],
        block_signatures: vec![],
    }
    .sign(&scalar(1));
    check(
        &e0,
        "210279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
         0000008080d0e2c6bfce972f010568656c6c6f0000",
        "421056775494cc7ef4a776599a685054afd3b798247080f52cd7e839b73802c0",
    );

    let e1 = EventBody {
        creator: scalar(2).public_key(),
        index: 0,
        self_parent: None,
        other_parent: None,
        timestamp: -5,
        transactions: vec![],
        internal_transactions: vec![],
        block_signatures: vec![],
    }
    .sign(&scalar(2));
    check(
        &e1,
        "2102c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5\
         00000009000000",
        "747ce1699903e7eb905edde6ef6f119e1cb30d1af054b0245addb42b152f1599",
    );

    let e2 = EventBody {
        creator: scalar(1).public_key(),
        index: 1,
        self_parent: Some(e0.id()),
        other_parent: Some(e1.id()),
        timestamp: 1_700_000_000_000_000_001,
        transactions: vec![b"a".to_vec(), vec![]],
        internal_transactions: vec![],
        block_signatures: vec![BlockSignature {
            index: 3,
            signature: Signature([7; 64]),
        }],
    }
    .sign(&scalar(1));
    check(
        &e2,
        "210279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798\
         010120421056775494cc7ef4a776599a685054afd3b798247080f52cd7e839b73802c0\
         0120747ce1699903e7eb905edde6ef6f119e1cb30d1af054b0245addb42b152f1599\
         8280d0e2c6bfce972f0201610000010340\
         07070707070707070707070707070707070707070707070707070707070707070707070707070707\
         070707070707070707070707070707070707070707070707",
        "e3d9cea3ab94aa432bc73c6471e9461102f0ed8b59e0ad809c86d6962c0fdb68",
    );
}
