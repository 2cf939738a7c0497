//! `SENTINEL GET-MASTER-ADDR-BY-NAME | MASTERS | MASTER | REPLICAS | SLAVES
//! | SENTINELS`: every group member answers the Sentinel commands client
//! libraries use to find a master, as a Sentinel monitoring the group
//! under the group's name (see `group::discovery`). Registered only where
//! Redis has no SENTINEL command of its own (outside sentinel mode).

use super::load::freshness;
use crate::error::Error;
use crate::ffi::reply::{self, CommandResult};
use crate::group::discovery::{self, Fields, Group};
use crate::group::leader::LeaderNode;
use crate::redis::fence;
use crate::reply::Reply;
use crate::shared;
use crate::status::{SessionState, STATUS};
use redis_module::{Context, RedisString};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub fn sentinel(_ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let words: Vec<String> = args[1..].iter().map(|a| a.to_string_lossy()).collect();
    let Some(sub) = words.first() else {
        return Err(Error::BadArgs(
            "wrong number of arguments for 'sentinel' command".into(),
        ));
    };
    let name = words.get(1).map(String::as_str);
    let reply = match (sub.to_ascii_uppercase().as_str(), name, words.len()) {
        ("GET-MASTER-ADDR-BY-NAME", Some(name), 2) => with_group(name, |g| {
            let master = g.master();
            Reply::Array(vec![text(&master, "ip"), text(&master, "port")])
        })
        .unwrap_or(Reply::Nil),
        ("MASTERS", None, 1) => Reply::Array(
            shared::group()
                .and_then(|name| with_group(&name, |g| map(g.master())))
                .into_iter()
                .collect(),
        ),
        ("MASTER", Some(name), 2) => with_group(name, |g| map(g.master())).ok_or_else(no_such_master)?,
        ("REPLICAS" | "SLAVES", Some(name), 2) => with_group(name, |g| {
            Reply::Array(g.replicas_fields().into_iter().map(map).collect())
        })
        .ok_or_else(no_such_master)?,
        ("SENTINELS", Some(name), 2) => with_group(name, |g| {
            Reply::Array(g.sentinels_fields().into_iter().map(map).collect())
        })
        .ok_or_else(no_such_master)?,
        _ => {
            return Err(Error::BadArgs(format!(
                "unknown subcommand or wrong number of arguments for '{sub}'. Try SENTINEL HELP."
            )))
        }
    };
    reply::result(reply)
}

/// `describe(group)` if `name` is this server's group and it can vouch for
/// a leader; `None` as Sentinel answers for a master it does not know.
fn with_group(name: &str, describe: impl FnOnce(&Group) -> Reply) -> Option<Reply> {
    if shared::group().as_deref() != Some(name) {
        return None;
    }
    let leader = leader()?;
    let (now, stale_after) = freshness().ok()?;
    let view = shared::VIEW.get_or_default();
    let rows = view.rows(now, stale_after);
    let me = STATUS.member().map(|m| m.id);
    let described = Group {
        name,
        leader: &leader,
        epoch: leader.epoch,
        rows: &rows,
        me: me.as_deref(),
        timeout_ms: STATUS.session_timeout_ms.load(Ordering::Relaxed),
    };
    Some(describe(&described))
}

/// The group's leader, if this member can vouch for it right now.
pub fn leader() -> Option<LeaderNode> {
    let connected = STATUS.state() == SessionState::Connected;
    let me = STATUS.member().map(|m| m.id);
    let granted = STATUS.granted_master(Instant::now());
    discovery::vouched(STATUS.leader(), connected, me.as_deref(), fence::fenced(), granted)
}

fn no_such_master() -> Error {
    Error::BadArgs("No such master with that name".into())
}

fn map(fields: Fields) -> Reply {
    Reply::Map(
        fields
            .into_iter()
            .map(|(name, value)| (name, Reply::text(value)))
            .collect(),
    )
}

fn text(fields: &Fields, name: &str) -> Reply {
    let value = fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    Reply::text(value.unwrap_or_default())
}
