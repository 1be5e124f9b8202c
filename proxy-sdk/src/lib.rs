//! The app side of Hearsay's socket proxy. The client and handler trait arrive with the node
//! (see the issue tracker); this crate is a placeholder in the workspace layout.
