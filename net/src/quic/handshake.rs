//! The secp256k1 handshake run on the first bidirectional stream of every connection.
//!
//! Both sides export 32 bytes of keying material from the TLS session (label
//! [`EXPORTER_LABEL`], empty context). The client sends a [`Hello`]: its compressed public key
//! and its signature over `SHA3(exporter ‖ "client")`. The server checks the signature, asks its
//! authorizer whether the key belongs to the peer set, and answers with its own [`Hello`],
//! signed over `SHA3(exporter ‖ "server")`. The client checks the server's key is the one it
//! meant to dial and the signature. Only then does the server accept request streams.

use super::codes;
use super::frame::{read_frame, write_frame};
use crate::error::{NetError, PeerMismatch};
use hashgraph::{Hash, PublicKey, SecretKey, Signature};
use quinn::Connection;
use serde::{Deserialize, Serialize};

/// The RFC 5705 exporter label of the handshake.
pub(crate) const EXPORTER_LABEL: &[u8] = b"hearsay handshake v1";
/// The largest handshake frame accepted (a hello is about 100 bytes).
const HELLO_MAX_BYTES: usize = 256;

/// One side's proof of identity.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// The sender's secp256k1 public key.
    pub(crate) key: PublicKey,
    /// The sender's signature over `SHA3(exporter ‖ role)`.
    pub(crate) signature: Signature,
}

/// A failed server-side handshake: the application close code and the reason to send.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) code: u32,
    pub(crate) reason: String,
}

impl Refusal {
    fn new(code: u32, reason: impl Into<String>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
        }
    }
}

/// The digest one side signs: SHA3 of the session's exported keying material and the role.
fn transcript(conn: &Connection, role: &[u8]) -> Result<Hash, NetError> {
    let mut exported = [0u8; 32];
    conn.export_keying_material(&mut exported, EXPORTER_LABEL, b"")
        .map_err(|_| NetError::Handshake("keying material export failed".into()))?;
    Ok(Hash::digest_parts(&[&exported, role]))
}

/// Runs the client side on a fresh connection. On failure the connection is closed.
pub(crate) async fn client(
    conn: &Connection,
    key: &SecretKey,
    expected: &PublicKey,
) -> Result<(), NetError> {
    let result = client_inner(conn, key, expected)
        .await
        .map_err(|e| match e.peer_close() {
            Some(close) => NetError::Refused {
                code: close.error_code.into_inner(),
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            None => e,
        });
    if let Err(e) = &result {
        let code = match e {
            NetError::WrongPeer(_) => codes::WRONG_PEER,
            _ => codes::HANDSHAKE_FAILED,
        };
        conn.close(code.into(), e.to_string().as_bytes());
    }
    result
}

async fn client_inner(
    conn: &Connection,
    key: &SecretKey,
    expected: &PublicKey,
) -> Result<(), NetError> {
    let (mut send, mut recv) = conn.open_bi().await?;
    let hello = Hello {
        key: key.public_key(),
        signature: key.sign(&transcript(conn, b"client")?),
    };
    write_frame(&mut send, &hello).await?;
    send.finish()?;
    let reply: Hello = read_frame(&mut recv, HELLO_MAX_BYTES).await?;
    if reply.key != *expected {
        return Err(NetError::WrongPeer(Box::new(PeerMismatch {
            expected: *expected,
            found: reply.key,
        })));
    }
    if !reply
        .key
        .verify(&transcript(conn, b"server")?, &reply.signature)
    {
        return Err(NetError::Handshake("bad server signature".into()));
    }
    Ok(())
}

/// Runs the server side on a fresh connection: returns the client's proven key, or why it was
/// refused (the caller closes the connection).
pub(crate) async fn server(
    conn: &Connection,
    key: &SecretKey,
    authorize: &(dyn Fn(&PublicKey) -> bool + Send + Sync),
) -> Result<PublicKey, Refusal> {
    let failed = |e: NetError| Refusal::new(codes::HANDSHAKE_FAILED, e.to_string());
    let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| failed(e.into()))?;
    let hello: Hello = read_frame(&mut recv, HELLO_MAX_BYTES)
        .await
        .map_err(failed)?;
    let expected = transcript(conn, b"client").map_err(failed)?;
    if !hello.key.verify(&expected, &hello.signature) {
        return Err(Refusal::new(
            codes::HANDSHAKE_FAILED,
            "bad client signature",
        ));
    }
    if !authorize(&hello.key) {
        return Err(Refusal::new(codes::UNAUTHORIZED, "key not in the peer set"));
    }
    let reply = Hello {
        key: key.public_key(),
        signature: key.sign(&transcript(conn, b"server").map_err(failed)?),
    };
    write_frame(&mut send, &reply).await.map_err(failed)?;
    send.finish().map_err(|e| failed(e.into()))?;
    Ok(hello.key)
}
