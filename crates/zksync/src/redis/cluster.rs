//! Redis Cluster, the shell side: whether this server runs in cluster mode,
//! and which mirrored keys it writes, read from `CLUSTER NODES` when it is
//! needed (under the Redis lock, so the answer holds for the whole hold: a
//! `CLUSTER SETSLOT` or a `MIGRATE` runs on the main thread, never inside it).
//! Decisions are in `zksync_core::cluster`.

use crate::ffi::{keyspace, log};
use crate::status::STATUS;
use redis_module::{CallOptionsBuilder, CallReply, CallResult, Context, ContextFlags, RedisValue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use zksync_core::cluster::{Catchup, KeyRule, Route, Slot, Slots, Topology};
use zksync_core::error::Error;

/// Notes whether this server runs with `cluster-enabled yes` (fixed for
/// the life of the process). Module load.
pub fn detect(ctx: &Context) {
    ENABLED.store(ctx.get_flags().contains(ContextFlags::CLUSTER), Ordering::Relaxed);
}

/// Set once at module load: the config setters, which Redis calls without
/// a pointer of ours, read it (a group is refused in cluster mode).
static ENABLED: AtomicBool = AtomicBool::new(false);

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `CLUSTER NODES` parsed; `None` if it cannot be read. Main thread or
/// under the lock.
pub fn topology(ctx: &Context) -> Option<Topology> {
    let opts = CallOptionsBuilder::new().errors_as_replies().build();
    let reply: CallResult = ctx.call_ext("CLUSTER", &opts, &["NODES"][..]);
    let text = match reply {
        Ok(CallReply::String(text)) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        Ok(CallReply::VerbatimString(text)) => text
            .to_parts()
            .map(|(_, data)| String::from_utf8_lossy(&data).into_owned()),
        _ => None,
    }?;
    Topology::parse(&text)
}

/// Redis Cluster: a command about `key` runs on the master serving the
/// key's slot; elsewhere it is answered `ASK slot host:port`, which cluster
/// clients follow to that node as is. (A `MOVED` makes them look the slot
/// up again from the command's keys, and zksync's commands declare none:
/// the key is derived from the path.) Main thread.
pub fn route(ctx: &Context, key: &[u8]) -> Result<(), Error> {
    if !enabled() {
        return Ok(());
    }
    let slot = Slot::of_key(key);
    let topology = topology(ctx).ok_or_else(|| Error::ClusterDown("cannot read CLUSTER NODES".into()))?;
    match topology.route(slot) {
        Route::Here => Ok(()),
        Route::Elsewhere(addr) => Err(Error::Ask {
            slot: slot.number(),
            addr: addr.to_string(),
        }),
        Route::Unserved => Err(Error::ClusterDown(format!("hash slot {} is not served", slot.number()))),
    }
}

/// Which mirrored keys this node writes, as of one hold of the lock.
pub enum Placement {
    /// Standalone: every key.
    Everywhere,
    /// Cluster mode: by slot.
    Slots(Topology),
    /// Cluster mode, the topology unreadable: none (writing a key of a slot
    /// served elsewhere would break a migration; the next resync catches up).
    Nowhere,
}

impl Placement {
    /// Now; under the lock.
    pub fn now(ctx: &Context) -> Placement {
        if !enabled() {
            return Placement::Everywhere;
        }
        topology(ctx).map_or(Placement::Nowhere, Placement::Slots)
    }

    /// Whether this node writes (sets or deletes) `key` now.
    pub fn writes(&self, ctx: &Context, key: &[u8]) -> bool {
        match self {
            Placement::Everywhere => true,
            Placement::Nowhere => false,
            Placement::Slots(topology) => match topology.rule(Slot::of_key(key)) {
                KeyRule::Write => true,
                KeyRule::ExistingOnly => keyspace::exists(ctx.ctx, key),
                KeyRule::Skip => false,
            },
        }
    }
}

/// A resync for gained slots was asked and has not begun: gains seen
/// meanwhile need no other.
static RESYNC_ASKED: AtomicBool = AtomicBool::new(false);

/// Whether to ask for a resync now (none is waiting to begin).
pub fn ask_resync() -> bool {
    !RESYNC_ASKED.swap(true, Ordering::Relaxed)
}

/// The session thread begins the resync asked for.
pub fn resync_started() {
    RESYNC_ASKED.store(false, Ordering::Relaxed);
}

/// At every serverCron in cluster mode: whether this node should read its
/// mirrors again, having gained slots it did not write in full (the cluster
/// was created, slots were added, a migration into it ended, it was
/// promoted): their keys come from ZooKeeper, when `Catchup` says.
pub fn resync_due(ctx: &Context) -> bool {
    static STATE: Mutex<Option<(Slots, Catchup)>> = Mutex::new(None);
    let Some(topology) = topology(ctx) else {
        return false;
    };
    STATUS
        .cluster_slots
        .store(topology.served.len() as u64, Ordering::Relaxed);
    // A master holds only keys of the slots it serves, a replica its master's.
    if let Ok(RedisValue::Integer(keys)) = ctx.call("DBSIZE", &[] as &[&str]) {
        STATUS.cluster_keys.store(keys.max(0) as u64, Ordering::Relaxed);
    }
    let writable = topology.writable();
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let (last, catchup) = state.get_or_insert_with(|| (Slots::default(), Catchup::default()));
    let gained = writable.minus(last);
    let now = Instant::now();
    if !gained.is_empty() {
        // A reshard moves slots in one at a time: verbose.
        log::verbose(&format!("this node now writes {} more hash slots", gained.len()));
        catchup.gained(now);
    }
    *last = writable;
    catchup.due(now)
}
