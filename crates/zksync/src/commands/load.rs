//! ZKSYNC.LOAD [PICK [MASTER|REPLICA|ANY] | ZK].

use super::block;
use crate::config;
use crate::error::Error;
use crate::ffi::reply::{self, CommandResult};
use crate::group::load::{Role, HEARTBEAT};
use crate::group::view::Row;
use crate::reply::Reply;
use crate::session::{self, Control};
use crate::shared;
use crate::status::STATUS;
use redis_module::{Context, RedisString, RedisValue};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn load(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let words: Vec<String> = args[1..].iter().map(|a| a.to_string_lossy().to_uppercase()).collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match words.as_slice() {
        // ZooKeeper's own load needs no group.
        ["ZK"] => ask_servers(ctx),
        [] => table(),
        ["PICK"] => pick(None),
        ["PICK", role] => pick(parse_role(role)?),
        _ => Err(Error::BadArgs(
            "syntax: ZKSYNC.LOAD [PICK [MASTER|REPLICA|ANY] | ZK]".into(),
        )),
    }
}

fn parse_role(word: &str) -> Result<Option<Role>, Error> {
    match word {
        "MASTER" => Ok(Some(Role::Master)),
        "REPLICA" => Ok(Some(Role::Replica)),
        "ANY" => Ok(None),
        _ => Err(Error::BadArgs(format!(
            "unknown role '{word}': use MASTER, REPLICA or ANY"
        ))),
    }
}

/// `(now, stale after)` in ms: a member is stale once its figures are older
/// than the heartbeat plus 3 load intervals plus the session timeout.
pub(super) fn freshness() -> Result<(i64, i64), Error> {
    if shared::group().is_none() {
        return Err(Error::NoGroup);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let session_timeout = Duration::from_millis(STATUS.session_timeout_ms.load(Ordering::Relaxed));
    let stale_after = HEARTBEAT + config::load_interval() * 3 + session_timeout;
    Ok((now, stale_after.as_millis() as i64))
}

fn table() -> CommandResult {
    let (now, stale_after) = freshness()?;
    let view = shared::VIEW.get_or_default();
    let rows = view.rows(now, stale_after).into_iter().map(row).collect();
    reply::result(Reply::Array(rows))
}

fn row(row: Row<'_>) -> Reply {
    let figures = &row.member.node.zksync;
    Reply::Map(vec![
        ("id", Reply::text(row.member.id.clone())),
        ("addr", Reply::text(row.member.node.addr())),
        ("role", Reply::text(figures.role.name())),
        ("score", Reply::Integer(figures.score)),
        // Percent of one core over the member's last load interval; -1 unknown.
        ("cpu", Reply::Integer(figures.cpu.map_or(-1, |cpu| cpu.percent()))),
        ("ops_per_sec", Reply::Integer(figures.ops_per_sec)),
        ("connected_clients", Reply::Integer(figures.connected_clients)),
        ("used_memory", Reply::Integer(figures.used_memory)),
        ("repl_offset", Reply::Integer(figures.repl_offset)),
        ("lag", Reply::Integer(row.lag)),
        ("age_ms", Reply::Integer(row.age_ms)),
        ("stale", Reply::Integer(row.stale.into())),
    ])
}

fn pick(role: Option<Role>) -> CommandResult {
    let (now, stale_after) = freshness()?;
    Ok(match shared::VIEW.get_or_default().pick(role, now, stale_after) {
        Some(addr) => RedisValue::BulkString(addr),
        None => RedisValue::Null,
    })
}

fn ask_servers(ctx: &Context) -> CommandResult {
    let pending = block(ctx, Duration::from_secs(5))?;
    // If the session thread is gone, dropping the request unblocks the client with ZKDOWN.
    let _ = session::send(Control::AskServers(pending));
    Ok(RedisValue::NoReply)
}
