//! The mirror: ZooKeeper subtrees kept as Redis string keys.
//!
//! Data flows one way: the session thread coalesces watch events (`events`),
//! reads ZooKeeper, and hands every read to the apply thread
//! (`zksync::redis::apply`), the only writer of the keyspace and of the
//! `index`: each mirrored znode's stat, the one record of what the keyspace
//! holds, which ZKSYNC.STAT and ZKSYNC.LS answer from. What a read writes is
//! decided against the index in `plan`: stale versions are dropped, and a
//! resync writes only what changed. The apply thread carries the writes out
//! through the steps of `apply`, over a `keyspace`, one hold of the lock
//! each, in the procedures of `applier`.

pub mod applier;
pub mod apply;
pub mod events;
pub mod index;
pub mod keyspace;
pub mod plan;
pub mod stat;
pub mod stream;

pub use stat::Stat;

/// One znode as read from ZooKeeper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub path: String,
    pub data: Vec<u8>,
    pub stat: Stat,
}

/// One change to a mirrored key.
#[derive(Debug)]
pub enum Op {
    /// Write the key, unless the keyspace already holds this version or a newer one.
    Upsert(Node),
    /// The znode is gone.
    Delete(String),
    /// A resync found the index holding this very version: write the key
    /// only if the keyspace does not hold this data (overwritten, deleted or
    /// flushed by hand).
    Verify(Node),
}

/// The highest zxid a stat proves this history has reached.
pub fn stat_zxid(stat: &Stat) -> i64 {
    stat.mzxid.max(stat.pzxid)
}

/// A stat with every zxid 1 and everything else 0, for unit tests.
#[cfg(test)]
pub fn test_stat() -> Stat {
    Stat {
        czxid: 1,
        mzxid: 1,
        pzxid: 1,
        ctime: 0,
        mtime: 0,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeral_owner: 0,
        data_length: 0,
        num_children: 0,
    }
}
