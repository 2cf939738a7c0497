//! The apply thread: the only writer of mirrored keys. It takes `Update`s in
//! order from the session thread and writes each in bounded batches, one hold
//! of the Redis lock per batch, replicated to replicas and the AOF. What a
//! hold does to the keyspace and the index is `zksync_core::mirror::apply`'s
//! steps, over the keyspace of `super::keyspace`; this thread holds the
//! lock, walks the index and the SCAN in steps, and records what the steps
//! return in STATUS and the log.

use super::keyspace::RedisKeyspace;
use super::{turns, INDEX};
use crate::ffi::blocked::Pending;
use crate::ffi::lock::{thread_context, Locked};
use crate::ffi::{acl, guard, log};
use crate::latency::{Hop, Timing, HOPS};
use crate::status::STATUS;
use crossbeam_channel::{Receiver, Sender};
use redis_module::{raw, ContextFlags};
use std::cell::Cell;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use zksync_core::access::{Denied, KeyAccess};
use zksync_core::error::Error;
use zksync_core::mirror::apply::{self, Access, Hold, Record, Resyncing};
use zksync_core::mirror::index::Index;
use zksync_core::mirror::keyspace::Cursor;
use zksync_core::mirror::plan;
use zksync_core::mirror::{Node, Op};
use zksync_core::reply::Reply;
use zksync_core::settings::MirrorSpec;

/// What the session thread hands to the apply thread, in order.
pub enum Update {
    /// The mirrors in force (sent at start and on every CONFIG SET).
    Mirrors(Vec<MirrorSpec>),
    /// Live changes to one mirror: watch events (with their `timing`), PUSH,
    /// DELETE.
    Changes {
        root: String,
        ops: Vec<Op>,
        timing: Option<Timing>,
    },
    /// A full read of one mirror after a (re)connect, in parts as the
    /// session reads it: the apply thread writes what changed, then deletes
    /// what the index holds that the read did not, then sweeps keys without a
    /// znode.
    Resync { root: String, part: ResyncPart },
    /// ZKSYNC.PULL: the whole subtree at `path`, replacing what the keyspace holds.
    Pull {
        prefix: String,
        path: String,
        zxid: i64,
        nodes: Vec<Node>,
        /// The Redis user that must be allowed to write every key (`None`: no check).
        user: Option<Vec<u8>>,
        pending: Pending,
    },
    /// Forget every mirrored version (after a promotion), so the next resync rewrites every key.
    Forget,
    /// Answer a blocked client once everything sent before has been applied.
    Reply(Pending, Reply),
}

/// One step of a resync's read, sent in order: `Begin`, `Nodes`..., `End`.
pub enum ResyncPart {
    /// The read begins.
    Begin,
    /// The next znodes read (parents before children), and the highest zxid
    /// the read has seen so far (for the history check).
    Nodes(Vec<Node>, i64),
    /// The read is complete, with its highest zxid; `None`: it failed (the
    /// session retries; what was written stays).
    End(Option<i64>),
}

/// Key writes per hold of the Redis lock: ~100 keeps Redis's latency near 2 ms
/// during a large sync (measured: 1,000 per hold cost 8-20 ms).
const BATCH: usize = 128;
/// Keys checked against the Redis ACL per hold of the lock.
const ACL_CHECKS: usize = 1024;
/// Index paths walked per hold of the lock.
const WALK: usize = 1024;

/// One hold of the Redis lock, as the steps see it.
type RedisHold<'h, 'k> = Hold<'h, RedisKeyspace<'k>>;

pub fn start() -> Result<Sender<Update>, String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("zksync-apply".into())
        .spawn(move || {
            if let Some(ctx) = thread_context() {
                Applier {
                    ctx,
                    rx,
                    resync: None,
                    append_failing: Cell::new(false),
                }
                .run()
            }
        })
        .map_err(|e| format!("cannot start the apply thread: {e}"))?;
    Ok(tx)
}

struct Applier {
    /// A detached thread-safe context, for the life of the thread.
    ctx: *mut raw::RedisModuleCtx,
    rx: Receiver<Update>,
    /// The resync whose read is arriving, if the mirror is healthy.
    resync: Option<Resyncing>,
    /// Whether the last append to the change stream failed (`Record`).
    append_failing: Cell<bool>,
}

impl Applier {
    fn run(mut self) {
        // A panic (a bug) loses that update only: its client is answered,
        // the next resync repairs what it should have written.
        while let Ok(update) = self.rx.recv() {
            guard::catch("the apply thread", || self.handle(update));
        }
    }

    fn handle(&mut self, update: Update) {
        match update {
            Update::Mirrors(specs) => self.locked(|hold| {
                hold.index().set_mirrors(&specs);
                STATUS.mirrors.store(specs.len() as u64, Ordering::Relaxed);
            }),
            Update::Changes { root, ops, timing } => {
                if let Some(timing) = timing {
                    HOPS.record(Hop::Handoff, timing.read, Instant::now());
                }
                self.changes(&root, ops, timing);
            }
            Update::Resync { root, part } => match part {
                ResyncPart::Begin => self.resync = self.locked(|hold| hold.begin_resync(&root)),
                ResyncPart::Nodes(nodes, zxid) => self.resync_nodes(&root, nodes, zxid),
                ResyncPart::End(zxid) => {
                    let resync = self.resync.take().filter(|r| r.spec.root == root);
                    if let (Some(resync), Some(zxid)) = (resync, zxid) {
                        self.end_resync(&root, resync, zxid);
                    }
                }
            },
            Update::Pull {
                prefix,
                path,
                zxid,
                nodes,
                user,
                pending,
            } => self.pull(&prefix, &path, zxid, nodes, user.as_deref(), pending),
            Update::Forget => self.locked(|hold| hold.index().forget_all()),
            Update::Reply(pending, reply) => pending.resolve(reply),
        }
    }

    /// Applies `ops` in batches; returns how many keys were repaired. The
    /// first batch of a live change records its hops.
    fn changes(&self, root: &str, ops: Vec<Op>, timing: Option<Timing>) -> usize {
        self.in_batches(ops, timing, |hold, batch| hold.apply_ops(root, batch))
    }

    /// Writes what of the next part of a resync's read is proven of this history.
    fn resync_nodes(&mut self, root: &str, nodes: Vec<Node>, zxid: i64) {
        let Some(mut resync) = self.resync.take().filter(|r| r.spec.root == root) else {
            return;
        };
        let ready = resync.gate.nodes(nodes, zxid);
        resync.repaired += self.resynced(root, ready);
        self.resync = Some(resync);
    }

    /// The read is complete: the checks, what is still held, the vanished
    /// znodes, then the sweep of keys without a znode.
    fn end_resync(&self, root: &str, mut resync: Resyncing, zxid: i64) {
        let Some(held) = self.locked(|hold| hold.end_resync(&mut resync, zxid)) else {
            return;
        };
        let repaired = resync.repaired + self.resynced(root, held);
        if repaired > 0 {
            log::notice(&format!(
                "the resync of {root} repaired {repaired} keys changed outside zksync"
            ));
        }
        let Resyncing { spec, gate, .. } = resync;
        if gate.may_have_vanished() {
            let vanished = self.indexed_below(root, |p| gate.vanished(p));
            self.changes(root, plan::deepest_first(vanished), None);
        }
        // The paths read (~70 bytes a znode) are not needed past this point.
        drop(gate);
        self.sweep(&spec.prefix, root, None, |index, path| index.stat(path).is_some());
    }

    /// Writes a resync's znodes in batches; returns how many keys were repaired.
    fn resynced(&self, root: &str, nodes: Vec<Node>) -> usize {
        self.in_batches(nodes, None, |hold, batch| hold.resynced(root, batch))
    }

    /// The paths the index holds at or below `root` that `keep` accepts,
    /// walked in steps (one hold of the lock each).
    fn indexed_below(&self, root: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut paths = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let step = self.locked(|hold| hold.index().paths_below_after(root, after.as_deref(), WALK));
            let done = step.len() < WALK;
            after = step.last().cloned();
            paths.extend(step.into_iter().filter(|p| keep(p)));
            if done {
                return paths;
            }
        }
    }

    fn pull(&self, prefix: &str, path: &str, zxid: i64, nodes: Vec<Node>, user: Option<&[u8]>, pending: Pending) {
        let written = nodes.len() as i64;
        let live: HashSet<String> = nodes.iter().map(|n| n.path.clone()).collect();
        let mirror = match self.locked(|hold| hold.begin_pull(path, zxid)) {
            Ok(mirror) => mirror,
            Err(e) => return pending.resolve(Reply::Error(e)),
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
                return pending.resolve(Reply::Error(Error::NoPerm(denied)));
            }
        }
        self.in_batches(ops, None, |hold, batch| {
            hold.apply_pulled(&spec, batch, mirror.is_some());
            0
        });
        self.sweep(prefix, path, user, |_, p| live.contains(p));
        pending.resolve(Reply::Integer(written));
    }

    /// Whether `user` may write every key `ops` would change; else the
    /// first one refused, checked in chunks (one hold of the lock each).
    fn permitted(&self, user: &[u8], prefix: &str, ops: &[Op]) -> Result<(), Denied> {
        for chunk in ops.chunks(ACL_CHECKS) {
            self.locked(|_| {
                let user = acl::User::named(user);
                apply::permitted(prefix, chunk, |key| {
                    user.as_ref().is_some_and(|u| u.may(key, KeyAccess::Write))
                })
            })?;
        }
        Ok(())
    }

    /// Deletes the keys under `prefix + root` that `keep` does not know: keys
    /// of vanished znodes and keys written by hand; with `user`, only those
    /// that user may write. One SCAN step per hold of the lock.
    fn sweep(&self, prefix: &str, root: &str, user: Option<&[u8]>, keep: impl Fn(&Index, &str) -> bool) {
        let mut cursor: Option<Cursor> = None;
        loop {
            cursor = self.locked(|hold| {
                // With `user`, only what that user may write (a user deleted
                // meanwhile: nothing).
                let writer = user.map(acl::User::named);
                let may_write = |key: &[u8]| match &writer {
                    None => true,
                    Some(writer) => writer.as_ref().is_some_and(|u| u.may(key, KeyAccess::Write)),
                };
                hold.sweep_step(prefix, root, cursor.as_ref(), &keep, may_write)
            });
            if cursor.is_none() {
                return;
            }
        }
    }

    /// Runs `step` on `items` in batches of `BATCH`, one hold of the lock
    /// each, the first with `timing`; returns the sum of what the steps return.
    fn in_batches<T>(
        &self,
        items: Vec<T>,
        mut timing: Option<Timing>,
        mut step: impl FnMut(&mut RedisHold<'_, '_>, Vec<T>) -> usize,
    ) -> usize {
        let mut items = items.into_iter().peekable();
        let mut total = 0;
        while items.peek().is_some() {
            let batch: Vec<T> = items.by_ref().take(BATCH).collect();
            total += self.locked_timed(timing.take(), |hold| step(hold, batch));
        }
        total
    }

    /// Runs `f` under the Redis lock, once Redis may take a replicated write:
    /// not while loading, and not while clients are paused (Redis 7.0 asserts
    /// if a module propagates then). Wakes the event loop afterwards so
    /// replies and keyspace notifications leave at once, and lets the main
    /// thread have its turn before the next hold (`turns`).
    fn locked<R>(&self, f: impl FnOnce(&mut RedisHold<'_, '_>) -> R) -> R {
        self.locked_timed(None, f)
    }

    /// `locked`, recording the hops of a live change given its `timing`.
    /// (Never inlined: bench/overhead counts the instructions it runs.)
    #[inline(never)]
    fn locked_timed<R>(&self, timing: Option<Timing>, f: impl FnOnce(&mut RedisHold<'_, '_>) -> R) -> R {
        let asked = Instant::now();
        loop {
            turns::await_turn();
            let guard = Locked::new(self.ctx);
            let flags = guard.get_flags();
            if flags.contains(ContextFlags::LOADING) || guard.avoid_replication_traffic() {
                drop(guard);
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let access = if flags.contains(ContextFlags::SLAVE) {
                Access::IndexOnly
            } else {
                Access::Write
            };
            let result = {
                let mut index = INDEX.lock(&*guard);
                let mut keyspace = RedisKeyspace::new(&guard);
                let last_zxid = STATUS.last_zxid.load(Ordering::Relaxed);
                let failing = self.append_failing.get();
                let mut hold = Hold::new(&mut keyspace, &mut index, access, last_zxid, failing);
                let result = f(&mut hold);
                self.record(hold.finish());
                STATUS.znodes.store(index.len() as u64, Ordering::Relaxed);
                STATUS.index_bytes.store(index.bytes() as u64, Ordering::Relaxed);
                result
            };
            let held = guard.held();
            drop(guard);
            STATUS.lock_held_ns.fetch_add(held.as_nanos() as u64, Ordering::Relaxed);
            turns::released(timing.map(|timing| hops_of(timing, asked, held)));
            return result;
        }
    }

    /// What a hold's steps left to record, still under the lock (as the
    /// keys they wrote become visible).
    fn record(&self, record: Record) {
        if record.zxid > 0 {
            STATUS.note_zxid(record.zxid);
        }
        if record.applied > 0 {
            STATUS.events_applied.fetch_add(record.applied, Ordering::Relaxed);
        }
        if let Some(diverged) = record.diverged {
            STATUS.diverged.store(diverged as u64, Ordering::Relaxed);
        }
        for warning in &record.warnings {
            log::warning(&warning.to_string());
        }
        self.append_failing.set(record.append_failing);
    }
}

/// Records a live change's hops up to the lock's release, and returns what
/// records the rest on the main thread as it wakes.
fn hops_of(timing: Timing, asked: Instant, held: Duration) -> Box<dyn FnOnce() + Send> {
    let released = Instant::now();
    let acquired = released.checked_sub(held).unwrap_or(released);
    HOPS.record(Hop::LockWait, asked, acquired);
    HOPS.record(Hop::Hold, acquired, released);
    Box::new(move || {
        let woken = Instant::now();
        HOPS.record(Hop::Wake, released, woken);
        HOPS.record(Hop::Total, timing.event, woken);
    })
}
