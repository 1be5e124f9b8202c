//! Hearsay's gossip wire protocol and transports. The QUIC and WebRTC transports arrive with
//! the node (see the issue tracker); this crate is a placeholder in the workspace layout.
