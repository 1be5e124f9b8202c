//! Demo apps and the local testnet scripts. Until the node exists, the demo is the simulator:
//! see the README.
