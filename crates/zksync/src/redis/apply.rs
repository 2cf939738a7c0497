//! The apply thread: the only writer of mirrored keys. It takes `Update`s in
//! order from the session thread and writes each in bounded batches, one hold
//! of the Redis lock per batch, replicated to replicas and the AOF.

use super::cluster::Placement;
use super::{turns, INDEX};
use crate::access::{Denied, KeyAccess};
use crate::error::Error;
use crate::ffi::blocked::Pending;
use crate::ffi::keyspace::Written;
use crate::ffi::lock::{thread_context, Locked};
use crate::ffi::stream as ffi_stream;
use crate::ffi::{acl, guard, keyspace, log};
use crate::latency::{Hop, Timing, HOPS};
use crate::mirror::index::Index;
use crate::mirror::plan::{self, KeyWrite, Plan, Version};
use crate::mirror::stream::Entry;
use crate::mirror::{Node, Op};
use crate::reply::Reply;
use crate::settings::StreamSpec;
use crate::settings::{self, MirrorSpec};
use crate::shared;
use crate::status::STATUS;
use crossbeam_channel::{Receiver, Sender};
use redis_module::{raw, CallOptionsBuilder, CallReply, CallResult, Context, ContextFlags};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
/// Keys examined per SCAN step of a sweep.
const SCAN_COUNT: &str = "1000";

pub fn start() -> Result<Sender<Update>, String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new()
        .name("zksync-apply".into())
        .spawn(move || {
            if let Some(ctx) = thread_context() {
                Applier { ctx, rx, resync: None }.run()
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
}

struct Resyncing {
    spec: Arc<MirrorSpec>,
    gate: plan::Resync,
    repaired: usize,
}

/// What a batch may do to the keyspace, decided under the lock.
#[derive(Clone, Copy, PartialEq)]
enum Access {
    Write,
    /// A replica: the master's mirror arrives by replication; only the index moves.
    IndexOnly,
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
            Update::Mirrors(specs) => self.locked(|_, index, _| {
                index.set_mirrors(&specs);
                STATUS.mirrors.store(specs.len() as u64, Ordering::Relaxed);
            }),
            Update::Changes { root, ops, timing } => {
                if let Some(timing) = timing {
                    HOPS.record(Hop::Handoff, timing.read, Instant::now());
                }
                self.changes(&root, ops, timing);
            }
            Update::Resync { root, part } => match part {
                ResyncPart::Begin => self.resync = self.begin_resync(&root),
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
            Update::Forget => self.locked(|_, index, _| index.forget_all()),
            Update::Reply(pending, reply) => pending.resolve(reply),
        }
    }

    /// Applies `ops` in batches; returns how many keys were repaired. The
    /// first batch of a live change records its hops.
    fn changes(&self, root: &str, ops: Vec<Op>, mut timing: Option<Timing>) -> usize {
        let mut ops = ops.into_iter().peekable();
        let mut repaired = 0;
        while ops.peek().is_some() {
            let batch: Vec<Op> = ops.by_ref().take(BATCH).collect();
            repaired += self.locked_timed(timing.take(), |ctx, index, access| match healthy_mirror(index, root) {
                Some(spec) => apply_ops(ctx, index, access, &spec, batch),
                None => 0,
            });
        }
        repaired
    }

    /// A resync of the mirror at `root` begins, if it is healthy.
    fn begin_resync(&self, root: &str) -> Option<Resyncing> {
        self.locked(|_, index, _| {
            let spec = healthy_mirror(index, root)?;
            let applied = index.mirror_mut(root)?.applied_zxid;
            let indexed = !index.paths_below_after(root, None, 1).is_empty();
            Some(Resyncing {
                spec,
                gate: plan::Resync::new(applied, indexed),
                repaired: 0,
            })
        })
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
        let held = self.locked(|ctx, index, _| {
            let key = resync.spec.key(root);
            let checked = resync.gate.end(root, zxid, || {
                index.stat(root).is_some() || keyspace::exists(ctx.ctx, &key)
            });
            match checked {
                Err(reason) => {
                    diverge(index, root, reason);
                    None
                }
                Ok(held) => {
                    if let Some(entry) = index.mirror_mut(root) {
                        entry.applied_zxid = entry.applied_zxid.max(zxid);
                    }
                    Some(held)
                }
            }
        });
        let Some(held) = held else { return };
        let repaired = resync.repaired + self.resynced(root, held);
        if repaired > 0 {
            log::notice(&format!(
                "the resync of {root} repaired {repaired} keys changed outside zksync"
            ));
        }
        if resync.gate.may_have_vanished() {
            let vanished = self.indexed_below(root, |p| resync.gate.vanished(p));
            self.changes(root, plan::deepest_first(vanished), None);
        }
        // The paths read (~70 bytes a znode) are not needed past this point.
        drop(resync.gate);
        self.sweep(&resync.spec.prefix, root, None, |index, path| {
            index.stat(path).is_some()
        });
    }

    /// Writes a resync's znodes in batches; returns how many keys were repaired.
    fn resynced(&self, root: &str, nodes: Vec<Node>) -> usize {
        let mut nodes = nodes.into_iter().peekable();
        let mut repaired = 0;
        while nodes.peek().is_some() {
            let batch: Vec<Node> = nodes.by_ref().take(BATCH).collect();
            repaired += self.locked(|ctx, index, access| {
                let Some(spec) = healthy_mirror(index, root) else {
                    return 0;
                };
                let plan = plan::resynced(index, &spec, batch, access == Access::Write);
                STATUS.events_applied.fetch_add(plan.applied, Ordering::Relaxed);
                write(ctx, plan)
            });
        }
        repaired
    }

    /// The paths the index holds at or below `root` that `keep` accepts,
    /// walked in steps (one hold of the lock each).
    fn indexed_below(&self, root: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        let mut paths = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let step = self.locked(|_, index, _| index.paths_below_after(root, after.as_deref(), WALK));
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
        // A pull inside a mirror replaces its index entries; a pull of the root
        // is the operator's word that this ZooKeeper is the truth.
        let mirror = self.locked(|_, index, access| {
            if access == Access::IndexOnly {
                return Err(Error::ReadOnly("zksync writes the mirror only on a master".into()));
            }
            let Some(entry) = index.mirror_of(path) else {
                return Ok(None);
            };
            let root = entry.spec.root.clone();
            if root == path {
                if let Some(entry) = index.mirror_mut(&root) {
                    if entry.diverged.take().is_some() {
                        log::warning(&format!("mirror {root} resumes after ZKSYNC.PULL"));
                    }
                    entry.applied_zxid = zxid;
                }
                STATUS.diverged.store(index.diverged_count() as u64, Ordering::Relaxed);
            }
            Ok(Some(root))
        });
        let mirror = match mirror {
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
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let batch: Vec<Op> = ops.by_ref().take(BATCH).collect();
            self.locked(|ctx, index, access| {
                let index = if mirror.is_some() { Some(index) } else { None };
                apply_pulled(ctx, index, access, &spec, batch);
            });
        }
        self.sweep(prefix, path, user, |_, p| live.contains(p));
        pending.resolve(Reply::Integer(written));
    }

    /// Whether `user` may write every key `ops` would change; else the
    /// first one refused. A PULL writes all of its subtree or nothing.
    fn permitted(&self, user: &[u8], prefix: &str, ops: &[Op]) -> Result<(), Denied> {
        for chunk in ops.chunks(ACL_CHECKS) {
            self.locked(|_, _, _| {
                let user = acl::User::named(user);
                for op in chunk {
                    let (Op::Upsert(Node { path, .. }) | Op::Verify(Node { path, .. }) | Op::Delete(path)) = op;
                    let key = settings::key(prefix, path);
                    if !user.as_ref().is_some_and(|u| u.may(&key, KeyAccess::Write)) {
                        return Err(Denied::Key {
                            key,
                            access: KeyAccess::Write,
                        });
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Deletes the keys under `prefix + root` that `keep` does not know: keys
    /// of vanished znodes and keys written by hand; with `user`, only those
    /// that user may write.
    fn sweep(&self, prefix: &str, root: &str, user: Option<&[u8]>, keep: impl Fn(&Index, &str) -> bool) {
        let pattern = format!("{}*", glob_escape(&format!("{prefix}{root}")));
        let mut cursor = "0".to_string();
        loop {
            let next = self.locked(|ctx, index, access| {
                if access == Access::IndexOnly {
                    return None;
                }
                let opts = CallOptionsBuilder::new().errors_as_replies().build();
                let reply: CallResult = ctx.call_ext(
                    "SCAN",
                    &opts,
                    &[cursor.as_str(), "MATCH", pattern.as_str(), "COUNT", SCAN_COUNT][..],
                );
                let (next, keys) = scan_reply(reply)?;
                // With `user`, only what that user may write (a user deleted
                // meanwhile: nothing).
                let writer = user.map(acl::User::named);
                let may_delete = |key: &[u8]| match &writer {
                    None => true,
                    Some(writer) => writer.as_ref().is_some_and(|u| u.may(key, KeyAccess::Write)),
                };
                let placement = Placement::now(ctx);
                let stream = shared::STREAM.get().filter(|s| placement.writes(ctx, &s.key));
                for key in keys {
                    let swept = plan::sweeps(&key, prefix, root, |path| keep(index, path));
                    if swept && may_delete(&key) && placement.writes(ctx, &key) {
                        let path = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                        delete(ctx, stream.as_deref(), &key, &path);
                    }
                }
                Some(next)
            });
            match next {
                Some(next) if next != "0" => cursor = next,
                _ => return,
            }
        }
    }

    /// Runs `f` under the Redis lock, once Redis may take a replicated write:
    /// not while loading, and not while clients are paused (Redis 7.0 asserts
    /// if a module propagates then). Wakes the event loop afterwards so
    /// replies and keyspace notifications leave at once, and lets the main
    /// thread have its turn before the next hold (`turns`).
    fn locked<R>(&self, f: impl FnOnce(&Context, &mut Index, Access) -> R) -> R {
        self.locked_timed(None, f)
    }

    /// `locked`, recording the hops of a live change given its `timing`.
    /// (Never inlined: bench/overhead counts the instructions it runs.)
    #[inline(never)]
    fn locked_timed<R>(&self, timing: Option<Timing>, f: impl FnOnce(&Context, &mut Index, Access) -> R) -> R {
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
                let result = f(&guard, &mut index, access);
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

/// The spec of the mirror at `root` if it is in force and not diverged.
fn healthy_mirror(index: &Index, root: &str) -> Option<Arc<MirrorSpec>> {
    index
        .mirrors()
        .iter()
        .find(|m| m.spec.root == root && m.diverged.is_none())
        .map(|m| m.spec.clone())
}

fn diverge(index: &mut Index, root: &str, reason: String) {
    log::warning(&format!(
        "mirror {root} stopped applying: {reason}. Nothing was deleted; run ZKSYNC.PULL {root} to resume from this ZooKeeper."
    ));
    if let Some(entry) = index.mirror_mut(root) {
        entry.diverged = Some(reason);
    }
    STATUS.diverged.store(index.diverged_count() as u64, Ordering::Relaxed);
}

/// Applies live or resync ops (decided in `plan::ops`); returns how many
/// keys were repaired.
fn apply_ops(ctx: &Context, index: &mut Index, access: Access, spec: &MirrorSpec, ops: Vec<Op>) -> usize {
    let plan = plan::ops(index, spec, ops, access == Access::Write);
    STATUS.events_applied.fetch_add(plan.applied, Ordering::Relaxed);
    write(ctx, plan)
}

/// Applies a pull unconditionally; `index` is set when the path is mirrored.
fn apply_pulled(ctx: &Context, index: Option<&mut Index>, access: Access, spec: &MirrorSpec, ops: Vec<Op>) {
    write(ctx, plan::pulled(index, spec, ops, access == Access::Write));
}

/// Carries out a plan's key writes, each with its entry in the change
/// stream when there is one; returns how many keys were repaired. In a
/// cluster only the keys this node writes, and the entries only where it
/// writes the stream.
fn write(ctx: &Context, plan: Plan) -> usize {
    STATUS.note_zxid(plan.zxid);
    if plan.writes.is_empty() {
        return 0;
    }
    let placement = Placement::now(ctx);
    let stream = shared::STREAM.get().filter(|s| placement.writes(ctx, &s.key));
    let stream = stream.as_deref();
    let mut repaired = 0;
    for write in plan.writes {
        if !placement.writes(ctx, write.key()) {
            note_elsewhere(ctx, stream, write);
            continue;
        }
        match write {
            KeyWrite::Set { key, data, znode } => {
                // A key that holds this very version already is not changed.
                let changed = stream.is_some() && (znode.newer || !keyspace::holds(ctx.ctx, &key, &data));
                set(ctx, stream.filter(|_| changed), &key, &data, &znode);
            }
            KeyWrite::Repair { key, data, znode } => {
                if !keyspace::holds(ctx.ctx, &key, &data) {
                    set(ctx, stream, &key, &data, &znode);
                    repaired += 1;
                }
            }
            KeyWrite::Delete { key, path, .. } => delete(ctx, stream, &key, &path),
        }
    }
    repaired
}

/// A change of a key another cluster node writes: only its entry, where
/// this node writes the stream, if the index tells it is a change (the key
/// cannot be read here).
fn note_elsewhere(ctx: &Context, stream: Option<&StreamSpec>, write: KeyWrite) {
    if !write.known_change() {
        return;
    }
    match write {
        KeyWrite::Set { key, data, znode } => {
            append(
                ctx,
                stream,
                Entry::Set {
                    key: &key,
                    znode: &znode,
                    value: &data,
                },
                None,
            );
        }
        KeyWrite::Delete { key, path, .. } => {
            let zxid = STATUS.last_zxid.load(Ordering::Relaxed);
            append(
                ctx,
                stream,
                Entry::Del {
                    key: &key,
                    path: &path,
                    zxid,
                },
                None,
            );
        }
        KeyWrite::Repair { .. } => {}
    }
}

/// One replicated SET, with its entry when `stream` is given; a failure is
/// logged, never fatal.
fn set(ctx: &Context, stream: Option<&StreamSpec>, key: &[u8], value: &[u8], znode: &Version) {
    match keyspace::set(ctx.ctx, key, value) {
        Ok(written) => append(ctx, stream, Entry::Set { key, znode, value }, Some(&written)),
        Err(e) => log::warning(&format!("SET of a mirrored key failed: {e}")),
    }
}

/// One replicated DEL, with its entry if the key existed.
fn delete(ctx: &Context, stream: Option<&StreamSpec>, key: &[u8], path: &str) {
    if keyspace::delete(ctx.ctx, key) {
        let zxid = STATUS.last_zxid.load(Ordering::Relaxed);
        append(ctx, stream, Entry::Del { key, path, zxid }, None);
    }
}

/// Appends `entry` to the change stream, replicated like the key write it
/// goes with (Redis wraps what one hold of the lock replicates in one
/// MULTI/EXEC); it reuses the strings of the key write, if `written`. A
/// failure (the key holds another type) is logged once.
fn append(ctx: &Context, stream: Option<&StreamSpec>, entry: Entry, written: Option<&Written>) {
    static WARNED: AtomicBool = AtomicBool::new(false);
    let Some(stream) = stream else { return };
    match entry.with_fields(|fields| ffi_stream::append(ctx.ctx, &stream.key, stream.maxlen, fields, written)) {
        Ok(()) => WARNED.store(false, Ordering::Relaxed),
        Err(e) if !WARNED.swap(true, Ordering::Relaxed) => log::warning(&format!(
            "cannot append to the change stream {}: {e}",
            String::from_utf8_lossy(&stream.key)
        )),
        Err(_) => {}
    }
}

/// `(next cursor, keys)` of a SCAN reply.
fn scan_reply(reply: CallResult) -> Option<(String, Vec<Vec<u8>>)> {
    let Ok(CallReply::Array(parts)) = reply else {
        return None;
    };
    let Some(Ok(CallReply::String(cursor))) = parts.get(0) else {
        return None;
    };
    let cursor = cursor.to_string()?;
    let Some(Ok(CallReply::Array(keys))) = parts.get(1) else {
        return None;
    };
    let keys = keys
        .iter()
        .filter_map(|k| match k {
            Ok(CallReply::String(s)) => Some(s.as_bytes().to_vec()),
            _ => None,
        })
        .collect();
    Some((cursor, keys))
}

/// Escapes the glob characters of SCAN MATCH.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_escape() {
        assert_eq!(super::glob_escape("zk:/a*b?[c]\\"), "zk:/a\\*b\\?\\[c\\]\\\\");
    }
}
