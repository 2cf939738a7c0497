//! The group: pure decisions about members and their leadership, with no
//! I/O. The session thread drives them from ZooKeeper; the role thread and
//! the fencing filter carry them out on the Redis side.
//!
//! - `layout`: where the group lives in ZooKeeper;
//! - `member`, `leader`, `switchover`: what its znodes hold;
//! - `load`: this server's figures and score; `membership`: when they are
//!   worth publishing, and the table read back; `view`: that table for
//!   ZKSYNC.LOAD;
//! - `discovery`: the group as Sentinel describes a master, for Sentinel clients;
//! - `rank`: who may become master; `election`: who leads and what this
//!   member does about it; `switchover`: the stages of a coordinated change
//!   (the master's lease arithmetic is `crate::lease`);
//! - `failsafe`: the master keeps writing through a ZooKeeper outage while
//!   every listed member grants it;
//! - `detection`: a dead master's process and a stalled main thread, found
//!   in well under the session timeout;
//! - `sim` (tests): these rules under seeded faults against a simulated ZooKeeper.

pub mod detection;
pub mod discovery;
pub mod election;
pub mod failsafe;
pub mod layout;
pub mod leader;
pub mod load;
pub mod member;
pub mod membership;
pub mod rank;
#[cfg(test)]
pub(crate) mod sim;
pub mod switchover;
pub mod view;

/// Splits `host:port` (the port after the last colon).
pub fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}
