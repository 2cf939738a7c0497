//! The apply thread: the only writer of mirrored keys. It takes `Update`s in
//! order from the session thread and writes each in bounded batches, one hold
//! of the Redis lock per batch, replicated to replicas and the AOF. The
//! procedures (batches, a resync's parts, a PULL) are
//! `zksync_core::mirror::applier`'s and what a hold does is
//! `zksync_core::mirror::apply`'s steps, over the keyspace of
//! `super::keyspace`; this thread dispatches the updates, implements the
//! procedures' `Lock` over the Redis lock, and records what the steps return
//! in STATUS and the log.

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
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use zksync_core::access::KeyAccess;
use zksync_core::mirror::applier::{Applier, Lock};
use zksync_core::mirror::apply::{Access, Hold, Record};
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

pub fn start() -> Result<Sender<Update>, String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("zksync-apply".into())
        .spawn(move || {
            if let Some(ctx) = thread_context() {
                let lock = RedisLock {
                    ctx,
                    append_failing: Cell::new(false),
                    timing: Cell::new(None),
                };
                ApplyThread {
                    rx,
                    applier: Applier::new(lock),
                }
                .run()
            }
        })
        .map_err(|e| format!("cannot start the apply thread: {e}"))?;
    Ok(tx)
}

struct ApplyThread {
    rx: Receiver<Update>,
    /// The procedures, over the Redis lock.
    applier: Applier<RedisLock>,
}

impl ApplyThread {
    fn run(mut self) {
        // A panic (a bug) loses that update only: its client is answered,
        // the next resync repairs what it should have written.
        while let Ok(update) = self.rx.recv() {
            guard::catch("the apply thread", || self.handle(update));
        }
    }

    fn handle(&mut self, update: Update) {
        let lock = self.applier.lock();
        match update {
            Update::Mirrors(specs) => lock.hold(|hold| {
                hold.index().set_mirrors(&specs);
                STATUS.mirrors.store(specs.len() as u64, Ordering::Relaxed);
            }),
            Update::Changes { root, ops, timing } => {
                if let Some(timing) = timing {
                    HOPS.record(Hop::Handoff, timing.read, Instant::now());
                }
                // The first batch records the live change's hops; with no
                // batch, none.
                lock.timing.set(timing);
                self.applier.changes(&root, ops);
                lock.timing.set(None);
            }
            Update::Resync { root, part } => match part {
                ResyncPart::Begin => self.applier.begin_resync(&root),
                ResyncPart::Nodes(nodes, zxid) => self.applier.resync_nodes(&root, nodes, zxid),
                ResyncPart::End(zxid) => _ = self.applier.end_resync(&root, zxid),
            },
            Update::Pull {
                prefix,
                path,
                zxid,
                nodes,
                user,
                pending,
            } => pending.resolve(self.applier.pull(&prefix, &path, zxid, nodes, user.as_deref())),
            Update::Forget => lock.hold(|hold| hold.index().forget_all()),
            Update::Reply(pending, reply) => pending.resolve(reply),
        }
    }
}

/// The Redis lock, taken by a detached thread-safe context.
struct RedisLock {
    /// A detached thread-safe context, for the life of the thread.
    ctx: *mut raw::RedisModuleCtx,
    /// Whether the last append to the change stream failed (`Record`).
    append_failing: Cell<bool>,
    /// The live change whose hops the next hold records.
    timing: Cell<Option<Timing>>,
}

impl Lock for RedisLock {
    type Keyspace<'k> = RedisKeyspace<'k>;

    fn hold<R>(&self, f: impl FnOnce(&mut Hold<'_, RedisKeyspace<'_>>) -> R) -> R {
        self.locked_timed(self.timing.take(), f)
    }

    fn may_write(&self, user: &[u8]) -> impl Fn(&[u8]) -> bool {
        let user = acl::User::named(user);
        move |key| user.as_ref().is_some_and(|u| u.may(key, KeyAccess::Write))
    }

    fn repaired(&self, root: &str, keys: usize) {
        log::notice(&format!(
            "the resync of {root} repaired {keys} keys changed outside zksync"
        ));
    }
}

impl RedisLock {
    /// Runs `f` under the Redis lock, once Redis may take a replicated write:
    /// not while loading, and not while clients are paused (Redis 7.0 asserts
    /// if a module propagates then), recording the hops of a live change
    /// given its `timing`. Wakes the event loop afterwards so replies and
    /// keyspace notifications leave at once, and lets the main thread have
    /// its turn before the next hold (`turns`).
    /// (Never inlined: bench/overhead counts the instructions it runs.)
    #[inline(never)]
    fn locked_timed<R>(&self, timing: Option<Timing>, f: impl FnOnce(&mut Hold<'_, RedisKeyspace<'_>>) -> R) -> R {
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
