//! Testkit.

pub mod sim;
