//! The transport's error type.

use crate::wire::WireError;
use hashgraph::PublicKey;

/// Why a transport operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A frame could not be encoded or decoded.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// No Tokio runtime is running on this thread (the transport needs one).
    #[error("no Tokio runtime: the transport must be created inside one")]
    NoRuntime,
    /// The UDP socket could not be bound or queried.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS or QUIC configuration could not be built.
    #[error("configuration: {0}")]
    Config(String),
    /// The connection could not be started (bad address, endpoint closed, …).
    #[error("connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The connection failed or was closed (by either side, with a code and reason).
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Writing to a stream failed.
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    /// Reading from a stream failed.
    #[error("read: {0}")]
    Read(#[from] quinn::ReadError),
    /// The stream ended before a whole frame arrived.
    #[error("stream ended before a whole frame arrived")]
    UnexpectedEnd,
    /// The stream carried bytes after its one frame.
    #[error("bytes after the frame")]
    BytesAfterFrame,
    /// The stream was already closed.
    #[error("stream closed: {0}")]
    ClosedStream(#[from] quinn::ClosedStream),
    /// The secp256k1 handshake failed; the text says why.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The dialled node refused our handshake and closed the connection (for instance with
    /// [`crate::quic::codes::UNAUTHORIZED`] when our key is not in its peer set).
    #[error("refused by the peer (code {code}): {reason}")]
    Refused {
        /// The application close code (one of [`crate::quic::codes`]).
        code: u64,
        /// The reason the peer gave.
        reason: String,
    },
    /// The dialled node proved a different key than the one expected.
    #[error("wrong peer: expected {}, the node holds {}", .0.expected, .0.found)]
    WrongPeer(Box<PeerMismatch>),
    /// The operation did not finish before its deadline.
    #[error("timed out")]
    Timeout,
    /// The transport was closed.
    #[error("transport closed")]
    Closed,
}

/// The keys of a [`NetError::WrongPeer`] (boxed: keys are large and errors travel often).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerMismatch {
    /// The key the caller meant to reach.
    pub expected: PublicKey,
    /// The key the remote node proved.
    pub found: PublicKey,
}

impl NetError {
    /// The application close the peer sent, if this error is the connection being closed by it.
    pub(crate) fn peer_close(&self) -> Option<&quinn::ApplicationClose> {
        use quinn::{ConnectionError, ReadError, WriteError};
        let conn = match self {
            NetError::Connection(e) => e,
            NetError::Read(ReadError::ConnectionLost(e)) => e,
            NetError::Write(WriteError::ConnectionLost(e)) => e,
            _ => return None,
        };
        match conn {
            ConnectionError::ApplicationClosed(close) => Some(close),
            _ => None,
        }
    }
}
