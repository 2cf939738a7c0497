//! zksync's decisions, without Redis, ZooKeeper I/O or an async runtime:
//! state machines and pure functions that take events and the clock and
//! return what to do. The module (`crates/zksync`) feeds them what happened
//! and carries out what they return; see docs/architecture.md.

#![forbid(unsafe_code)]

pub mod access;
pub mod cluster;
pub mod error;
pub mod group;
pub mod lease;
pub mod lock;
pub mod mirror;
pub mod path;
pub mod reply;
pub mod settings;
pub mod snapshot;
pub mod text;
