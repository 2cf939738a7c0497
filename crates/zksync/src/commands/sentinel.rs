//! `SENTINEL GET-MASTER-ADDR-BY-NAME | MASTERS | MASTER | REPLICAS | SLAVES
//! | SENTINELS`: every group member answers the Sentinel commands client
//! libraries use to find a master, as a Sentinel monitoring the group
//! under the group's name (see `group::discovery`). Registered only where
//! Redis has no SENTINEL command of its own (outside sentinel mode).

use super::load::freshness;
use super::{arguments, is_keyword, text};
use crate::ffi::reply::{self, CommandResult};
use crate::redis::fence;
use crate::shared;
use crate::status::{SessionState, STATUS};
use redis_module::{Context, RedisString};
use std::sync::atomic::Ordering;
use std::time::Instant;
use zksync_core::error::Error;
use zksync_core::group::discovery::{self, Fields, Group};
use zksync_core::group::leader::LeaderNode;
use zksync_core::reply::Reply;

/// A parsed SENTINEL subcommand; `name` is the master's as asked.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    GetMasterAddrByName(String),
    Masters,
    Master(String),
    /// REPLICAS, or its older name SLAVES.
    Replicas(String),
    Sentinels(String),
}

/// Sentinel's own errors: its arity text for no subcommand, and one text
/// for an unknown subcommand or a known one with the wrong arguments.
fn parse(args: &[&[u8]]) -> Result<Request, Error> {
    let Some((sub, rest)) = args.split_first() else {
        return Err(Error::WrongArity { command: "sentinel" });
    };
    let is = |word| is_keyword(sub, word);
    Ok(match rest {
        [name] if is("GET-MASTER-ADDR-BY-NAME") => Request::GetMasterAddrByName(text(name)),
        [] if is("MASTERS") => Request::Masters,
        [name] if is("MASTER") => Request::Master(text(name)),
        [name] if is("REPLICAS") || is("SLAVES") => Request::Replicas(text(name)),
        [name] if is("SENTINELS") => Request::Sentinels(text(name)),
        _ => {
            return Err(Error::BadArgs(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try SENTINEL HELP.",
                text(sub)
            )))
        }
    })
}

pub fn sentinel(_ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let reply = match parse(&arguments(&args))? {
        Request::GetMasterAddrByName(name) => with_group(&name, |g| {
            let master = g.master();
            Reply::Array(vec![field(&master, "ip"), field(&master, "port")])
        })
        .unwrap_or(Reply::Nil),
        Request::Masters => Reply::Array(
            shared::group()
                .and_then(|name| with_group(&name, |g| map(g.master())))
                .into_iter()
                .collect(),
        ),
        Request::Master(name) => with_group(&name, |g| map(g.master())).ok_or(Error::NoSuchMaster)?,
        Request::Replicas(name) => with_group(&name, |g| {
            Reply::Array(g.replicas_fields().into_iter().map(map).collect())
        })
        .ok_or(Error::NoSuchMaster)?,
        Request::Sentinels(name) => with_group(&name, |g| {
            Reply::Array(g.sentinels_fields().into_iter().map(map).collect())
        })
        .ok_or(Error::NoSuchMaster)?,
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

fn map(fields: Fields) -> Reply {
    Reply::Map(
        fields
            .into_iter()
            .map(|(name, value)| (name, Reply::text(value)))
            .collect(),
    )
}

/// The value of field `name`, empty if it has none.
fn field(fields: &Fields, name: &str) -> Reply {
    let value = fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    Reply::text(value.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::super::words;
    use super::*;

    #[test]
    fn valid_forms() {
        let cases = [
            ("get-master-addr-by-name g", Request::GetMasterAddrByName("g".into())),
            ("MASTERS", Request::Masters),
            ("master g", Request::Master("g".into())),
            ("REPLICAS g", Request::Replicas("g".into())),
            ("slaves g", Request::Replicas("g".into())),
            ("SENTINELS g", Request::Sentinels("g".into())),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&words(line)), Ok(want), "{line}");
        }
    }

    #[test]
    fn no_subcommand_is_sentinels_arity_error() {
        let parsed = parse(&[]);
        assert_eq!(parsed, Err(Error::WrongArity { command: "sentinel" }));
        let text = parsed.map(|_| ()).unwrap_err().to_string();
        assert_eq!(text, "ERR wrong number of arguments for 'sentinel' command");
    }

    #[test]
    fn an_unknown_subcommand_or_its_arity_is_sentinels_text() {
        for (line, sub) in [
            ("MASTERS g", "MASTERS"),
            ("master", "master"),
            ("MASTER g h", "MASTER"),
            ("GET-MASTER-ADDR-BY-NAME", "GET-MASTER-ADDR-BY-NAME"),
            ("REPLICAS", "REPLICAS"),
            ("SENTINELS g h", "SENTINELS"),
            ("FAILOVER g", "FAILOVER"),
        ] {
            let want = format!("unknown subcommand or wrong number of arguments for '{sub}'. Try SENTINEL HELP.");
            assert_eq!(parse(&words(line)), Err(Error::BadArgs(want)), "{line}");
        }
    }
}
