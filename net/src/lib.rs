//! Hearsay's gossip wire protocol and transports.
//!
//! - [`wire`]: the gossip messages ([`Request`], [`Response`]), their postcard encoding, the
//!   `u32`-length framing and the limits every decoder enforces. Events travel as opaque bytes:
//!   this crate knows no consensus rule.
//! - [`quic`]: [`QuicTransport`], QUIC (quinn, rustls on ring) with a secp256k1 handshake that
//!   binds each connection to a peer's key, one pooled connection per peer and one stream per
//!   RPC.
//! - [`limit`]: [`WarnLimiter`], so that what a peer can cause at will cannot flood the log.
//!
//! The WebRTC transport arrives later, behind the same request/response shape.

pub mod error;
pub mod limit;
pub mod quic;
pub mod wire;

pub use error::{NetError, PeerMismatch};
pub use limit::WarnLimiter;
pub use quic::{Authorizer, Inbound, InboundRequest, QuicTransport, Responder, TransportConfig};
pub use wire::{Request, Response, SyncRequest, SyncResponse, WireError};
