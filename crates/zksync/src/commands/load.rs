//! ZKSYNC.LOAD [PICK [MASTER|REPLICA|ANY] | ZK]: the group's load figures.

use super::{arguments, block, is_keyword, text};
use crate::config;
use crate::ffi::reply::{self, CommandResult};
use crate::session::{self, Control};
use crate::shared;
use crate::status::STATUS;
use redis_module::{Context, RedisString, RedisValue};
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zksync_core::error::Error;
use zksync_core::group::load::{Role, HEARTBEAT};
use zksync_core::group::view::Row;
use zksync_core::reply::Reply;

/// A parsed ZKSYNC.LOAD.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// Every member's figures.
    Table,
    /// The address of the least loaded member in `role` (`None`: any).
    Pick(Option<Role>),
    /// ZooKeeper's own servers' load.
    ZkServers,
}

fn parse(args: &[&[u8]]) -> Result<Request, Error> {
    match args {
        [] => Ok(Request::Table),
        [zk] if is_keyword(zk, "ZK") => Ok(Request::ZkServers),
        [pick] if is_keyword(pick, "PICK") => Ok(Request::Pick(None)),
        [pick, role] if is_keyword(pick, "PICK") => Ok(Request::Pick(parse_role(role)?)),
        _ => Err(Error::BadArgs(
            "syntax: ZKSYNC.LOAD [PICK [MASTER|REPLICA|ANY] | ZK]".into(),
        )),
    }
}

fn parse_role(word: &[u8]) -> Result<Option<Role>, Error> {
    if is_keyword(word, "MASTER") {
        Ok(Some(Role::Master))
    } else if is_keyword(word, "REPLICA") {
        Ok(Some(Role::Replica))
    } else if is_keyword(word, "ANY") {
        Ok(None)
    } else {
        Err(Error::BadArgs(format!(
            "unknown role '{}': use MASTER, REPLICA or ANY",
            text(word).to_uppercase()
        )))
    }
}

/// `ZKSYNC.LOAD [PICK [MASTER|REPLICA|ANY] | ZK]`.
pub fn load(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    match parse(&arguments(&args))? {
        // ZooKeeper's own load needs no group.
        Request::ZkServers => ask_servers(ctx),
        Request::Table => table(),
        Request::Pick(role) => pick(role),
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

#[cfg(test)]
mod tests {
    use super::super::words;
    use super::*;

    #[test]
    fn valid_forms() {
        let cases = [
            ("", Request::Table),
            ("zk", Request::ZkServers),
            ("PICK", Request::Pick(None)),
            ("pick any", Request::Pick(None)),
            ("PICK master", Request::Pick(Some(Role::Master))),
            ("PICK REPLICA", Request::Pick(Some(Role::Replica))),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&words(line)), Ok(want), "{line}");
        }
    }

    #[test]
    fn each_bad_value_is_bad_args() {
        let cases = [
            ("PICK leader", "unknown role 'LEADER'"),
            ("PICK MASTER extra", "syntax"),
            ("ZK extra", "syntax"),
            ("TABLE", "syntax"),
            ("MASTER", "syntax"),
        ];
        for (line, says) in cases {
            let parsed = parse(&words(line));
            assert!(
                matches!(&parsed, Err(Error::BadArgs(m)) if m.contains(says)),
                "{line}: {parsed:?}"
            );
        }
    }
}
