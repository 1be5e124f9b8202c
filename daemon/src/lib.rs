//! The Hearsay daemon as a library: configuration, the datadir, the node runtime and the
//! tools behind the `hearsay` command. Rust apps can embed a node in their own process with
//! [`node::start`] and [`node::App::InProcess`] (Babble's InmemProxy): blocks go straight to
//! their [`hearsay_proxy::AppHandler`] and they submit with [`node::RunningNode::submit_tx`].

pub mod bench;
pub mod config;
pub mod dag;
pub mod datadir;
pub mod node;
pub mod sim;
pub mod store;
pub mod testnet;
