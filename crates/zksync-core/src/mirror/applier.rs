//! The apply thread's procedures that take the lock several times: live
//! changes in batches, a resync's parts, a PULL. Each hold runs the steps of
//! `super::apply`; the holds come from a `Lock`, which the shell
//! (`crates/zksync/src/redis/apply.rs`) implements over the Redis lock and
//! `memory` in memory, for tests. Holds stay short so that Redis serves its
//! clients between them.

pub mod memory;

use super::apply::{self, Hold, Resyncing};
use super::index::Index;
use super::keyspace::{Cursor, Keyspace};
use super::plan;
use super::{Node, Op};
use crate::access::Denied;
use crate::error::Error;
use crate::reply::Reply;
use crate::settings::MirrorSpec;
use std::collections::HashSet;

/// Key writes per hold of the lock: ~100 keeps Redis's latency near 2 ms
/// during a large sync (measured: 1,000 per hold cost 8-20 ms).
pub const BATCH: usize = 128;
/// Keys checked against the Redis ACL per hold of the lock.
pub const ACL_CHECKS: usize = 1024;
/// Index paths walked per hold of the lock.
pub const WALK: usize = 1024;

/// The lock over the keyspace and the index: each `hold` is one turn of it.
pub trait Lock {
    /// The keyspace of one hold (over Redis, it borrows the hold's lock).
    type Keyspace<'k>: Keyspace;

    /// Runs `f` in one hold of the lock, once it may write (the shell waits
    /// its turn), and records what the hold's steps leave to record.
    fn hold<R>(&self, f: impl FnOnce(&mut Hold<'_, Self::Keyspace<'_>>) -> R) -> R;

    /// Which keys `user` may write; asked within a hold (the Redis ACL is
    /// read under the lock). A user that does not exist writes nothing.
    fn may_write(&self, user: &[u8]) -> impl Fn(&[u8]) -> bool;

    /// A resync of the mirror at `root` repaired `keys` (> 0) keys changed
    /// outside zksync: the shell logs it.
    fn repaired(&self, root: &str, keys: usize);
}

/// The procedures over a `Lock`, with the resync whose read is arriving.
pub struct Applier<L> {
    lock: L,
    /// The resync whose read is arriving, if the mirror is healthy.
    resync: Option<Resyncing>,
}

impl<L: Lock> Applier<L> {
    pub fn new(lock: L) -> Applier<L> {
        Applier { lock, resync: None }
    }

    pub fn lock(&self) -> &L {
        &self.lock
    }

    /// Live changes or deletes to the mirror at `root`, in batches; returns
    /// how many keys were repaired.
    pub fn changes(&self, root: &str, ops: Vec<Op>) -> usize {
        self.in_batches(ops, |hold, batch| hold.apply_ops(root, batch))
    }

    /// A resync of the mirror at `root` begins (if it is healthy): its read follows.
    pub fn begin_resync(&mut self, root: &str) {
        self.resync = self.lock.hold(|hold| hold.begin_resync(root));
    }

    /// Writes what of the next part of a resync's read is proven of this
    /// history; `zxid`: the highest the read has seen so far.
    pub fn resync_nodes(&mut self, root: &str, nodes: Vec<Node>, zxid: i64) {
        let Some(mut resync) = self.resync.take().filter(|r| r.spec.root == root) else {
            return;
        };
        let ready = resync.gate.nodes(nodes, zxid);
        resync.repaired += self.resynced(root, ready);
        self.resync = Some(resync);
    }

    /// The read is complete, its highest zxid `zxid` (`None`: it failed;
    /// what was written stays): the checks, what is still held, the
    /// vanished znodes deepest first, then the sweep of keys without a
    /// znode. Returns how many keys the resync repaired; `None` if it did
    /// not complete (no resync of `root`, a failed read, the checks stopped
    /// the mirror).
    pub fn end_resync(&mut self, root: &str, zxid: Option<i64>) -> Option<usize> {
        let mut resync = self.resync.take().filter(|r| r.spec.root == root)?;
        let zxid = zxid?;
        let held = self.lock.hold(|hold| hold.end_resync(&mut resync, zxid))?;
        let repaired = resync.repaired + self.resynced(root, held);
        if repaired > 0 {
            self.lock.repaired(root, repaired);
        }
        let Resyncing { spec, gate, .. } = resync;
        if gate.may_have_vanished() {
            let vanished = self.indexed_below(root, |p| gate.vanished(p));
            self.changes(root, plan::deepest_first(vanished));
        }
        // The paths read (~70 bytes a znode) are not needed past this point.
        drop(gate);
        self.sweep(&spec.prefix, root, None, |index, path| index.stat(path).is_some());
        Some(repaired)
    }

    /// ZKSYNC.PULL of `path` at `zxid`, which read `nodes`: the subtree
    /// replaces what the keyspace holds under `prefix + path`, all of it
    /// or (`user` may not write a key) none. Returns the reply.
    pub fn pull(&self, prefix: &str, path: &str, zxid: i64, nodes: Vec<Node>, user: Option<&[u8]>) -> Reply {
        let written = nodes.len() as i64;
        let live: HashSet<String> = nodes.iter().map(|n| n.path.clone()).collect();
        let mirror = match self.lock.hold(|hold| hold.begin_pull(path, zxid)) {
            Ok(mirror) => mirror,
            Err(e) => return Reply::Error(e),
        };
        let spec = MirrorSpec {
            root: path.to_string(),
            prefix: prefix.to_string(),
        };
        let mut ops: Vec<Op> = nodes.into_iter().map(Op::Upsert).collect();
        if mirror.is_some() {
            let gone = self.indexed_below(path, |p| !live.contains(p));
            ops.extend(gone.into_iter().map(Op::Delete));
        }
        if let Some(user) = user {
            if let Err(denied) = self.permitted(user, prefix, &ops) {
                return Reply::Error(Error::NoPerm(denied));
            }
        }
        self.in_batches(ops, |hold, batch| {
            hold.apply_pulled(&spec, batch, mirror.is_some());
            0
        });
        self.sweep(prefix, path, user, |_, p| live.contains(p));
        Reply::Integer(written)
    }

    /// Writes a resync's znodes in batches; returns how many keys were repaired.
    fn resynced(&self, root: &str, nodes: Vec<Node>) -> usize {
        self.in_batches(nodes, |hold, batch| hold.resynced(root, batch))
    }

    /// The paths the index holds at or below `root` that `keep` accepts,
    /// walked in steps of `WALK` (one hold each).
    pub(crate) fn indexed_below(&self, root: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut paths = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let step = self
                .lock
                .hold(|hold| hold.index().paths_below_after(root, after.as_deref(), WALK));
            let done = step.len() < WALK;
            after = step.last().cloned();
            paths.extend(step.into_iter().filter(|p| keep(p)));
            if done {
                return paths;
            }
        }
    }

    /// Whether `user` may write every key `ops` would change; else the
    /// first one refused, checked in chunks of `ACL_CHECKS` (one hold each).
    fn permitted(&self, user: &[u8], prefix: &str, ops: &[Op]) -> Result<(), Denied> {
        for chunk in ops.chunks(ACL_CHECKS) {
            self.lock
                .hold(|_| apply::permitted(prefix, chunk, self.lock.may_write(user)))?;
        }
        Ok(())
    }

    /// Deletes the keys under `prefix + root` that `keep` does not know: keys
    /// of vanished znodes and keys written by hand; with `user`, only those
    /// that user may write. One scan step per hold.
    pub(crate) fn sweep(&self, prefix: &str, root: &str, user: Option<&[u8]>, keep: impl Fn(&Index, &str) -> bool) {
        let mut cursor: Option<Cursor> = None;
        loop {
            cursor = self.lock.hold(|hold| {
                // The user's rights as of this hold (a user deleted
                // meanwhile: nothing).
                let writer = user.map(|user| self.lock.may_write(user));
                let may_write = |key: &[u8]| writer.as_ref().is_none_or(|w| w(key));
                hold.sweep_step(prefix, root, cursor.as_ref(), &keep, may_write)
            });
            if cursor.is_none() {
                return;
            }
        }
    }

    /// Runs `step` on `items` in batches of `BATCH`, one hold each; returns
    /// the sum of what the steps return.
    pub(crate) fn in_batches<T>(
        &self,
        items: Vec<T>,
        mut step: impl FnMut(&mut Hold<'_, L::Keyspace<'_>>, Vec<T>) -> usize,
    ) -> usize {
        let mut items = items.into_iter().peekable();
        let mut total = 0;
        while items.peek().is_some() {
            let batch: Vec<T> = items.by_ref().take(BATCH).collect();
            total += self.lock.hold(|hold| step(hold, batch));
        }
        total
    }
}

#[cfg(test)]
#[path = "applier_tests.rs"]
mod tests;
