//! The apply steps: what the apply thread does to the keyspace and the index
//! in one hold of the Redis lock, over any `Keyspace`. What to write is
//! decided in `plan`; here the writes are carried out, each with its entry in
//! the change stream, and what the shell must record (STATUS counts, log
//! lines) is returned in a `Record`. The procedures of `super::applier` run
//! the steps hold by hold; the shell (`crates/zksync/src/redis/apply.rs`)
//! takes the lock, builds a `Hold`, and records.

use super::index::Index;
use super::keyspace::{Cursor, Keyspace, WriteError};
use super::plan::{self, KeyWrite, Plan, Version};
use super::stream::Entry;
use super::{Node, Op};
use crate::access::{Denied, KeyAccess};
use crate::error::Error;
use crate::settings::{self, MirrorSpec, StreamSpec};
use std::fmt;
use std::sync::Arc;

/// What a hold may do to the keyspace, decided under the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Write,
    /// A replica: the master's mirror arrives by replication; only the index moves.
    IndexOnly,
}

/// A line for the log that a step decided on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// A SET of a mirrored key failed (never fatal).
    SetFailed(WriteError),
    /// An append to the change stream failed: given once until an append succeeds.
    AppendFailed { stream: Vec<u8>, error: WriteError },
    /// A mirror stopped applying.
    Diverged { root: String, reason: String },
    /// A diverged mirror resumes after a PULL of its root.
    Resumed { root: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::SetFailed(error) => write!(f, "SET of a mirrored key failed: {error}"),
            Warning::AppendFailed { stream, error } => write!(
                f,
                "cannot append to the change stream {}: {error}",
                String::from_utf8_lossy(stream)
            ),
            Warning::Diverged { root, reason } => write!(
                f,
                "mirror {root} stopped applying: {reason}. Nothing was deleted; run ZKSYNC.PULL {root} to resume from this ZooKeeper."
            ),
            Warning::Resumed { root } => write!(f, "mirror {root} resumes after ZKSYNC.PULL"),
        }
    }
}

/// What the steps of a hold leave the shell to record.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The highest zxid written or updated (STATUS `last_zxid`); 0 for none.
    pub zxid: i64,
    /// Live or resync changes that moved the index (STATUS `events_applied`).
    pub applied: u64,
    /// How many mirrors are diverged, where a step stopped or resumed one
    /// (STATUS `diverged`).
    pub diverged: Option<usize>,
    /// Lines for the log, in order.
    pub warnings: Vec<Warning>,
    /// Whether the last append to the change stream failed (its warning
    /// given): the next hold starts from it.
    pub append_failing: bool,
}

/// One hold of the Redis lock, as the steps see it.
pub struct Hold<'a, K: Keyspace> {
    keyspace: &'a mut K,
    index: &'a mut Index,
    access: Access,
    /// The highest zxid seen: the entry of a delete carries it.
    last_zxid: i64,
    record: Record,
}

/// A resync whose read is arriving, of a mirror healthy as it began.
pub struct Resyncing {
    pub spec: Arc<MirrorSpec>,
    pub gate: plan::Resync,
    /// Keys repaired so far.
    pub repaired: usize,
}

impl<'a, K: Keyspace> Hold<'a, K> {
    /// `last_zxid`: the highest zxid seen so far (STATUS); `append_failing`:
    /// the previous hold's `Record::append_failing`.
    pub fn new(
        keyspace: &'a mut K,
        index: &'a mut Index,
        access: Access,
        last_zxid: i64,
        append_failing: bool,
    ) -> Hold<'a, K> {
        Hold {
            keyspace,
            index,
            access,
            last_zxid,
            record: Record {
                append_failing,
                ..Record::default()
            },
        }
    }

    pub fn index(&mut self) -> &mut Index {
        self.index
    }

    /// The hold ends: what the shell records.
    pub fn finish(self) -> Record {
        self.record
    }

    /// The spec of the mirror at `root` if it is in force and not diverged.
    pub fn healthy_mirror(&self, root: &str) -> Option<Arc<MirrorSpec>> {
        self.index
            .mirrors()
            .iter()
            .find(|m| m.spec.root == root && m.diverged.is_none())
            .map(|m| m.spec.clone())
    }

    /// Stops the mirror at `root` from applying; nothing is deleted.
    pub fn diverge(&mut self, root: &str, reason: String) {
        self.record.warnings.push(Warning::Diverged {
            root: root.to_string(),
            reason: reason.clone(),
        });
        if let Some(entry) = self.index.mirror_mut(root) {
            entry.diverged = Some(reason);
        }
        self.record.diverged = Some(self.index.diverged_count());
    }

    /// Live changes or the deletes of vanished znodes to the mirror at
    /// `root`, if it is healthy (decided in `plan::ops`); returns how many
    /// keys were repaired.
    pub fn apply_ops(&mut self, root: &str, ops: Vec<Op>) -> usize {
        let Some(spec) = self.healthy_mirror(root) else {
            return 0;
        };
        let plan = plan::ops(self.index, &spec, ops, self.access == Access::Write);
        self.record.applied += plan.applied;
        self.write(plan)
    }

    /// Znodes of a resync's read to the mirror at `root`, if it is healthy
    /// (decided in `plan::resynced`); returns how many keys were repaired.
    pub fn resynced(&mut self, root: &str, nodes: Vec<Node>) -> usize {
        let Some(spec) = self.healthy_mirror(root) else {
            return 0;
        };
        let plan = plan::resynced(self.index, &spec, nodes, self.access == Access::Write);
        self.record.applied += plan.applied;
        self.write(plan)
    }

    /// A resync of the mirror at `root` begins, if it is healthy.
    pub fn begin_resync(&self, root: &str) -> Option<Resyncing> {
        let spec = self.healthy_mirror(root)?;
        let applied = self.index.mirrors().iter().find(|m| m.spec.root == root)?.applied_zxid;
        let indexed = !self.index.paths_below_after(root, None, 1).is_empty();
        Some(Resyncing {
            spec,
            gate: plan::Resync::new(applied, indexed),
            repaired: 0,
        })
    }

    /// The resync's read is complete, its highest zxid `zxid`: the znodes
    /// still to write, or `None` if the checks stopped the mirror.
    pub fn end_resync(&mut self, resync: &mut Resyncing, zxid: i64) -> Option<Vec<Node>> {
        let root = resync.spec.root.as_str();
        let key = resync.spec.key(root);
        let (index, keyspace) = (&*self.index, &*self.keyspace);
        let checked = resync
            .gate
            .end(root, zxid, || index.stat(root).is_some() || keyspace.exists(&key));
        match checked {
            Err(reason) => {
                self.diverge(root, reason);
                None
            }
            Ok(held) => {
                if let Some(entry) = self.index.mirror_mut(root) {
                    entry.applied_zxid = entry.applied_zxid.max(zxid);
                }
                Some(held)
            }
        }
    }

    /// A PULL of `path` at `zxid` begins: refused on a replica. A pull of a
    /// mirror's root is the operator's word that this ZooKeeper is the
    /// truth: the mirror resumes if it diverged, its applied zxid this one.
    /// Returns the root of the mirror `path` lies in, if any.
    pub fn begin_pull(&mut self, path: &str, zxid: i64) -> Result<Option<String>, Error> {
        if self.access == Access::IndexOnly {
            return Err(Error::ReadOnly("zksync writes the mirror only on a master".into()));
        }
        let Some(entry) = self.index.mirror_of(path) else {
            return Ok(None);
        };
        let root = entry.spec.root.clone();
        if root == path {
            if let Some(entry) = self.index.mirror_mut(&root) {
                if entry.diverged.take().is_some() {
                    self.record.warnings.push(Warning::Resumed { root: root.clone() });
                }
                entry.applied_zxid = zxid;
            }
            self.record.diverged = Some(self.index.diverged_count());
        }
        Ok(Some(root))
    }

    /// A PULL's ops, unconditionally (`plan::pulled`); into the index when
    /// `mirrored` (the pulled path lies in a mirror).
    pub fn apply_pulled(&mut self, spec: &MirrorSpec, ops: Vec<Op>, mirrored: bool) {
        let index = mirrored.then_some(&mut *self.index);
        let plan = plan::pulled(index, spec, ops, self.access == Access::Write);
        self.write(plan);
    }

    /// One step of a sweep of the keys under `prefix + root`, from `cursor`
    /// (`None`: the first step): deletes those `keep` does not know (keys of
    /// vanished znodes, keys written by hand) that `may_write` allows (the
    /// Redis ACL of a PULL's user) and this node writes. Returns where the
    /// next step resumes; `None` when the sweep is over (or on a replica).
    pub fn sweep_step(
        &mut self,
        prefix: &str,
        root: &str,
        cursor: Option<&Cursor>,
        keep: impl Fn(&Index, &str) -> bool,
        may_write: impl Fn(&[u8]) -> bool,
    ) -> Option<Cursor> {
        if self.access == Access::IndexOnly {
            return None;
        }
        let scanned = self.keyspace.scan(&settings::key(prefix, root), cursor)?;
        let stream = self.keyspace.stream().filter(|s| self.keyspace.writes(&s.key));
        for key in scanned.keys {
            let swept = plan::sweeps(&key, prefix, root, |path| keep(self.index, path));
            if swept && may_write(&key) && self.keyspace.writes(&key) {
                let path = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                self.delete(stream.as_deref(), &key, &path);
            }
        }
        scanned.next
    }

    /// Carries out a plan's key writes, each with its entry in the change
    /// stream when there is one; returns how many keys were repaired. In a
    /// cluster only the keys this node writes, and the entries only where it
    /// writes the stream.
    fn write(&mut self, plan: Plan) -> usize {
        self.record.zxid = self.record.zxid.max(plan.zxid);
        self.last_zxid = self.last_zxid.max(plan.zxid);
        if plan.writes.is_empty() {
            return 0;
        }
        let stream = self.keyspace.stream().filter(|s| self.keyspace.writes(&s.key));
        let stream = stream.as_deref();
        let mut repaired = 0;
        for write in plan.writes {
            if !self.keyspace.writes(write.key()) {
                self.note_elsewhere(stream, write);
                continue;
            }
            match write {
                KeyWrite::Set { key, data, znode } => {
                    // A key that holds this very version already is not changed.
                    let changed = stream.is_some() && (znode.newer || !self.keyspace.holds(&key, &data));
                    self.set(stream.filter(|_| changed), &key, &data, &znode);
                }
                KeyWrite::Repair { key, data, znode } => {
                    if !self.keyspace.holds(&key, &data) {
                        self.set(stream, &key, &data, &znode);
                        repaired += 1;
                    }
                }
                KeyWrite::Delete { key, path, .. } => self.delete(stream, &key, &path),
            }
        }
        repaired
    }

    /// A change of a key another cluster node writes: only its entry, where
    /// this node writes the stream, if the index tells it is a change (the
    /// key cannot be read here).
    fn note_elsewhere(&mut self, stream: Option<&StreamSpec>, write: KeyWrite) {
        if !write.known_change() {
            return;
        }
        match write {
            KeyWrite::Set { key, data, znode } => {
                let entry = Entry::Set {
                    key: &key,
                    znode: &znode,
                    value: &data,
                };
                self.append(stream, &entry, None);
            }
            KeyWrite::Delete { key, path, .. } => {
                let entry = Entry::Del {
                    key: &key,
                    path: &path,
                    zxid: self.last_zxid,
                };
                self.append(stream, &entry, None);
            }
            KeyWrite::Repair { .. } => {}
        }
    }

    /// One SET, with its entry when `stream` is given; a failure is a
    /// warning, never fatal.
    fn set(&mut self, stream: Option<&StreamSpec>, key: &[u8], value: &[u8], znode: &Version) {
        match self.keyspace.set(key, value) {
            Ok(written) => {
                let Some(stream) = stream else { return };
                let result = self
                    .keyspace
                    .append(stream, &Entry::Set { key, znode, value }, Some(&written));
                self.appended(stream, result);
            }
            Err(error) => self.record.warnings.push(Warning::SetFailed(error)),
        }
    }

    /// One DEL, with its entry if the key existed.
    fn delete(&mut self, stream: Option<&StreamSpec>, key: &[u8], path: &str) {
        if self.keyspace.delete(key) {
            let zxid = self.last_zxid;
            self.append(stream, &Entry::Del { key, path, zxid }, None);
        }
    }

    /// Appends `entry` to the change stream, if there is one here.
    fn append(&mut self, stream: Option<&StreamSpec>, entry: &Entry, written: Option<&K::Written<'_>>) {
        if let Some(stream) = stream {
            let result = self.keyspace.append(stream, entry, written);
            self.appended(stream, result);
        }
    }

    /// A failed append (the key holds another type) is warned of once,
    /// until one succeeds.
    fn appended(&mut self, stream: &StreamSpec, result: Result<(), WriteError>) {
        match result {
            Ok(()) => self.record.append_failing = false,
            Err(_) if self.record.append_failing => {}
            Err(error) => {
                self.record.append_failing = true;
                self.record.warnings.push(Warning::AppendFailed {
                    stream: stream.key.clone(),
                    error,
                });
            }
        }
    }
}

/// Whether `may_write` (the Redis ACL of a PULL's user) allows every key
/// `ops` would change under `prefix`; else the first one refused. A PULL
/// writes all of its subtree or nothing.
pub fn permitted(prefix: &str, ops: &[Op], may_write: impl Fn(&[u8]) -> bool) -> Result<(), Denied> {
    for op in ops {
        let (Op::Upsert(Node { path, .. }) | Op::Verify(Node { path, .. }) | Op::Delete(path)) = op;
        let key = settings::key(prefix, path);
        if !may_write(&key) {
            return Err(Denied::Key {
                key,
                access: KeyAccess::Write,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "apply_tests.rs"]
pub(super) mod tests;
