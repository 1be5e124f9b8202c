//! Test tools for the hashgraph core: the seeded network simulator and play lists (DAGs
//! written as JSON).

pub mod playlist;
pub mod sim;
