//! Distributed locks with fencing tokens, shared with Curator's
//! `InterProcessMutex` (see `name`), held by Redis client connections
//! through this server's ZooKeeper session (see `table`).

pub mod name;
pub mod table;

use crate::path::ZnodePath;
use std::time::Duration;

/// A fencing token: the holder's contender znode's czxid. Every later
/// holder of the same lock gets a larger one, whichever server or Curator
/// client it came through: contenders hold in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(pub i64);

/// ZKSYNC.LOCK path [TIMEOUT ms] [LEASE ms].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockRequest {
    pub path: ZnodePath,
    /// `None`: wait until acquired; zero: try once.
    pub timeout: Option<Duration>,
    pub lease: Option<Duration>,
}
