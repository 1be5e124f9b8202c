//! The WebRTC signalling server. It arrives with the WebRTC transport (see the issue tracker);
//! this crate is a placeholder in the workspace layout.
