//! Fencing: a group member that is a Redis master accepts writes only while
//! it holds a lease on the leader znode.
//!
//! The session thread renews the lease each time ZooKeeper confirms that the
//! leader znode is owned by this session: until the moment the check was
//! *sent* plus 2/3 of the negotiated session timeout, so the lease lapses
//! before ZooKeeper could expire the session and let another member lead.
//! The main thread checks it in a command filter, by the monotonic clock, on
//! every command: a stalled session thread or a stopped process cannot
//! extend it. A second deadline, the failsafe lease, is proven by grants of
//! every listed member instead of ZooKeeper (`group::failsafe`): a master
//! writes while either runs. Writes on a fenced master are rewritten to `zksync.fenced`,
//! which answers `-READONLY` (also inside MULTI and scripts, whose commands
//! pass the filter too); EXEC becomes DISCARD.

use crate::ffi::filter;
use crate::ffi::reply::CommandResult;
use once_cell::sync::Lazy;
use redis_module::{Context, RedisString, RedisValue};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zksync_core::error::Error;
use zksync_core::group::election::{FailsafeLease, LeaseChange};
use zksync_core::lease::{self, Deadline};

/// The command a fenced write becomes.
pub const FENCED_COMMAND: &str = "zksync.fenced";
/// The command a replica's PSYNC or SYNC to a fenced master becomes.
pub const FENCED_SYNC_COMMAND: &str = "zksync.fenced-sync";

/// The master's lease on the leader znode.
static LEASE: Lazy<Deadline> = Lazy::new(Deadline::none);
/// The master's failsafe lease, on its members' grants.
static FAILSAFE: Lazy<Deadline> = Lazy::new(Deadline::none);
/// Whether fencing applies: this server is in a group.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether this server replicates from a master: exact while in a group,
/// where Redis reports every role change (a subscription held only then:
/// Redis walks subscriptions twice per event-loop iteration).
static REPLICA: AtomicBool = AtomicBool::new(false);
/// Lowercase names of write commands (`container|sub` for subcommands), from COMMAND.
static WRITES: Lazy<Mutex<(usize, HashSet<Vec<u8>>)>> = Lazy::new(Default::default);

/// This server joined (or left) a group: the role is watched only in a
/// group, and the filter fences only there. Main thread.
pub fn set_active(active: bool) {
    ACTIVE.store(active, Ordering::Relaxed);
    if !active {
        revoke();
    }
    if let Some(replica) = filter::watch_role(active) {
        REPLICA.store(replica, Ordering::Relaxed);
    }
}

/// Whether this server is in a group (main thread: follows `zksync.group`).
pub fn in_group() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// ZooKeeper confirmed our leadership with a check sent at `sent`.
pub fn renew(sent: Instant, session_timeout: Duration) {
    LEASE.set(lease::expiry(sent, session_timeout));
}

/// Applies what the election decided of the lease.
pub fn change(change: LeaseChange, session_timeout: Duration) {
    match change {
        LeaseChange::Renew(sent) => renew(sent, session_timeout),
        LeaseChange::Cap(until) => cap(until),
        // The failsafe lease has its own changes: it outlives the session.
        LeaseChange::Revoke => LEASE.revoke(),
    }
}

/// Ends the lease at `until` at the latest.
pub fn cap(until: Instant) {
    LEASE.cap(until);
}

/// Both leases end (this server left its group).
pub fn revoke() {
    LEASE.revoke();
    FAILSAFE.revoke();
}

/// Applies what the election decided of the failsafe lease.
pub fn failsafe(change: FailsafeLease) {
    match change {
        FailsafeLease::Extend(until) => FAILSAFE.extend(until),
        FailsafeLease::Revoke => FAILSAFE.revoke(),
    }
}

/// Whether this master writes on its members' grants alone now: ZooKeeper
/// does not confirm its lease, the failsafe lease runs.
pub fn on_grants() -> bool {
    let now = Instant::now();
    in_group() && !is_replica() && !LEASE.live(now) && FAILSAFE.live(now)
}

/// Whether this server must refuse writes now: a master of a group without
/// a live lease, from ZooKeeper or from its members' grants.
pub fn fenced() -> bool {
    let now = Instant::now();
    in_group() && !LEASE.live(now) && !FAILSAFE.live(now) && !is_replica()
}

/// Whether this server replicates from a master (exact in a group).
pub fn is_replica() -> bool {
    REPLICA.load(Ordering::Relaxed)
}

/// What the command filter does for fencing.
pub fn hooks() -> filter::Fencing {
    filter::Fencing {
        engaged: fenced,
        replacement,
        role_changed: |replica| REPLICA.store(replica, Ordering::Relaxed),
    }
}

/// Learns the write commands, and watches the role if in a group. Module
/// load only, once the filter is registered.
pub fn install(ctx: &Context, in_group: bool) {
    learn_write_commands(ctx);
    set_active(in_group);
}

/// (Re)reads the write commands from COMMAND when their number changed
/// (a module loaded later adds its own). Main thread.
pub fn learn_write_commands(ctx: &Context) {
    let count = match ctx.call("COMMAND", &["COUNT"]) {
        Ok(RedisValue::Integer(n)) => n as usize,
        _ => return,
    };
    let mut writes = WRITES.lock().unwrap_or_else(|e| e.into_inner());
    if writes.0 == count {
        return;
    }
    let Ok(RedisValue::Array(commands)) = ctx.call("COMMAND", &[] as &[&str]) else {
        return;
    };
    let mut names = HashSet::new();
    for command in &commands {
        collect_writes(command, None, &mut names);
    }
    names.remove(FENCED_COMMAND.as_bytes());
    names.remove(FENCED_SYNC_COMMAND.as_bytes());
    *writes = (count, names);
}

/// One COMMAND entry: `[name, arity, flags, ..., subcommands]`.
fn collect_writes(entry: &RedisValue, container: Option<&str>, names: &mut HashSet<Vec<u8>>) {
    let RedisValue::Array(fields) = entry else { return };
    let text = |v: &RedisValue| super::text(v).map(|s| s.to_ascii_lowercase());
    let Some(name) = fields.first().and_then(text) else {
        return;
    };
    let is_write = matches!(fields.get(2), Some(RedisValue::Array(flags))
        if flags.iter().filter_map(text).any(|f| f == "write"));
    if is_write {
        // Subcommands are reported as `container|sub` already.
        names.insert(name.clone().into_bytes());
    }
    if container.is_none() {
        if let Some(RedisValue::Array(subcommands)) = fields.get(9) {
            for sub in subcommands {
                collect_writes(sub, Some(&name), names);
            }
        }
    }
}

fn is_write(name: &[u8], sub: Option<&[u8]>) -> bool {
    let writes = WRITES.lock().unwrap_or_else(|e| e.into_inner());
    let lower = name.to_ascii_lowercase();
    if writes.1.contains(&lower) {
        return true;
    }
    match sub {
        Some(sub) => {
            let mut full = lower;
            full.push(b'|');
            full.extend(sub.to_ascii_lowercase());
            writes.1.contains(&full)
        }
        None => false,
    }
}

/// What a command on a fenced master becomes, if anything.
fn replacement(name: &[u8], first: Option<&[u8]>) -> Option<&'static str> {
    if name.eq_ignore_ascii_case(b"exec") {
        // Writes queued before the lease lapsed must not run after it: the
        // transaction is discarded (the reply is DISCARD's +OK).
        Some("DISCARD")
    } else if name.eq_ignore_ascii_case(b"psync") || name.eq_ignore_ascii_case(b"sync") {
        // Nor does a master that is not the leader feed replicas: one that
        // restarted empty would wipe them.
        Some(FENCED_SYNC_COMMAND)
    } else if is_write(name, first) {
        Some(FENCED_COMMAND)
    } else {
        None
    }
}

/// `zksync.fenced ...`: what a write on a fenced master becomes.
pub fn refuse(_ctx: &Context, _args: Vec<RedisString>) -> CommandResult {
    Err(Error::ReadOnly(
        "this master may have lost its ZooKeeper lease (zksync fencing); retry on the group's master".into(),
    ))
}

/// `zksync.fenced-sync ...`: what a replica's PSYNC or SYNC to a fenced
/// master becomes.
pub fn refuse_sync(_ctx: &Context, _args: Vec<RedisString>) -> CommandResult {
    Err(Error::NoMasterLink(
        "this master is not the group's leader yet (zksync fencing); retry later".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, flags: &[&str], subcommands: Vec<RedisValue>) -> RedisValue {
        let flags = flags.iter().map(|f| RedisValue::SimpleString(f.to_string())).collect();
        let mut fields = vec![
            RedisValue::BulkString(name.to_string()),
            RedisValue::Integer(-1),
            RedisValue::Array(flags),
        ];
        fields.extend((0..6).map(|_| RedisValue::Array(Vec::new())));
        fields.push(RedisValue::Array(subcommands));
        RedisValue::Array(fields)
    }

    #[test]
    fn a_fenced_master_refuses_writes_transactions_and_replicas() {
        *WRITES.lock().unwrap() = (2, [b"set".to_vec(), b"xgroup|create".to_vec()].into());
        // (command name, first argument, what it becomes)
        type Case = (&'static [u8], Option<&'static [u8]>, Option<&'static str>);
        let cases: [Case; 8] = [
            (b"SET", Some(b"k"), Some(FENCED_COMMAND)),
            (b"set", None, Some(FENCED_COMMAND)),
            (b"XGROUP", Some(b"CREATE"), Some(FENCED_COMMAND)),
            (b"xgroup", Some(b"help"), None),
            (b"GET", Some(b"k"), None),
            (b"EXEC", None, Some("DISCARD")),
            (b"psync", Some(b"?"), Some(FENCED_SYNC_COMMAND)),
            (b"SYNC", None, Some(FENCED_SYNC_COMMAND)),
        ];
        for (name, first, want) in cases {
            assert_eq!(replacement(name, first), want, "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn learns_write_commands_and_subcommands() {
        let mut names = HashSet::new();
        for command in [
            entry("SET", &["write", "denyoom"], vec![]),
            entry("get", &["readonly", "fast"], vec![]),
            entry(
                "xgroup",
                &[],
                vec![
                    entry("xgroup|create", &["write"], vec![]),
                    entry("xgroup|help", &["loading"], vec![]),
                ],
            ),
        ] {
            collect_writes(&command, None, &mut names);
        }
        let want: HashSet<Vec<u8>> = [b"set".to_vec(), b"xgroup|create".to_vec()].into();
        assert_eq!(names, want);
    }
}
