//! ZKSYNC.LEADER and ZKSYNC.FAILOVER [TO id] [TIMEOUT ms] [FORCE].

use super::block;
use crate::error::Error;
use crate::ffi::reply::{self, CommandResult};
use crate::group::switchover::Request;
use crate::reply::Reply;
use crate::session::{self, Control};
use crate::shared;
use crate::status::{SessionState, STATUS};
use redis_module::{Context, RedisString, RedisValue};
use std::sync::atomic::Ordering;
use std::time::Duration;

const DEFAULT_TIMEOUT_MS: u64 = 5000;

/// `[id, host:port, epoch]` of the group's master as this member last read
/// it, or nil (also while this member cannot vouch for it).
pub fn leader(_ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    if args.len() != 1 {
        return Err(Error::BadArgs("syntax: ZKSYNC.LEADER".into()));
    }
    if shared::group().is_none() {
        return Err(Error::NoGroup);
    }
    // A member cut from ZooKeeper, or a fenced master, names no one.
    let reply = match super::sentinel::leader() {
        Some(l) => Reply::Array(vec![
            Reply::text(l.id),
            Reply::text(l.addr),
            Reply::Integer(l.epoch as i64),
        ]),
        None => Reply::Nil,
    };
    reply::result(reply)
}

fn parse(args: &[RedisString]) -> Result<Request, Error> {
    let mut request = Request {
        to: None,
        timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
        force: false,
    };
    let mut words = args.iter().map(|a| a.to_string_lossy());
    while let Some(word) = words.next() {
        match word.to_uppercase().as_str() {
            "TO" => {
                request.to = Some(
                    words
                        .next()
                        .ok_or_else(|| Error::BadArgs("TO needs a member id".into()))?,
                )
            }
            "TIMEOUT" => {
                let ms = words
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|ms| (1..=3_600_000).contains(ms))
                    .ok_or_else(|| Error::BadArgs("TIMEOUT must be milliseconds, 1 to 3600000".into()))?;
                request.timeout = Duration::from_millis(ms);
            }
            "FORCE" => request.force = true,
            _ => {
                return Err(Error::BadArgs(
                    "syntax: ZKSYNC.FAILOVER [TO id] [TIMEOUT ms] [FORCE]".into(),
                ))
            }
        }
    }
    Ok(request)
}

/// Answers once the new master accepts writes, or with an error once everything is rolled back.
pub fn failover(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let request = parse(&args[1..])?;
    if shared::group().is_none() {
        return Err(Error::NoGroup);
    }
    if STATUS.state() != SessionState::Connected {
        return Err(Error::ZkDown(STATUS.state().name().into()));
    }
    // The session thread answers at the deadline (extended once by a session
    // timeout if the leadership moved just then); this bound comes after.
    let session_timeout = Duration::from_millis(STATUS.session_timeout_ms.load(Ordering::Relaxed));
    let pending = block(ctx, request.timeout + session_timeout * 2 + Duration::from_secs(1))?;
    session::send(Control::Failover(request, pending));
    Ok(RedisValue::NoReply)
}
