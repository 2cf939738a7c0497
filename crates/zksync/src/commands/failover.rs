//! ZKSYNC.LEADER and ZKSYNC.FAILOVER [TO id] [TIMEOUT ms] [FORCE].

use super::{arguments, block, is_keyword, no_arguments, number, text};
use crate::ffi::reply::{self, CommandResult};
use crate::session::{self, Control};
use crate::shared;
use crate::status::{SessionState, STATUS};
use redis_module::{Context, RedisString, RedisValue};
use std::sync::atomic::Ordering;
use std::time::Duration;
use zksync_core::error::Error;
use zksync_core::group::switchover::Request as Switchover;
use zksync_core::reply::Reply;

const DEFAULT_TIMEOUT_MS: u64 = 5000;
const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// `ZKSYNC.LEADER`: `[id, host:port, epoch]` of the group's master as this
/// member last read it, or nil (also while this member cannot vouch for it).
pub fn leader(_ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    no_arguments("zksync.leader", &arguments(&args))?;
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

/// `[TO id] [TIMEOUT ms] [FORCE]`, in any order; an unknown word is a syntax error.
fn parse(args: &[&[u8]]) -> Result<Switchover, Error> {
    let mut request = Switchover {
        to: None,
        timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
        force: false,
    };
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if is_keyword(word, "TO") {
            let id = words
                .next()
                .ok_or_else(|| Error::BadArgs("TO needs a member id".into()))?;
            request.to = Some(text(id));
        } else if is_keyword(word, "TIMEOUT") {
            let ms = words
                .next()
                .and_then(|v| number::<u64>(v))
                .filter(|ms| (1..=MAX_TIMEOUT_MS).contains(ms))
                .ok_or_else(|| Error::BadArgs(format!("TIMEOUT must be milliseconds, 1 to {MAX_TIMEOUT_MS}")))?;
            request.timeout = Duration::from_millis(ms);
        } else if is_keyword(word, "FORCE") {
            request.force = true;
        } else {
            return Err(Error::BadArgs(
                "syntax: ZKSYNC.FAILOVER [TO id] [TIMEOUT ms] [FORCE]".into(),
            ));
        }
    }
    Ok(request)
}

/// `ZKSYNC.FAILOVER`: answers once the new master accepts writes, or with
/// an error once everything is rolled back.
pub fn failover(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let request = parse(&arguments(&args))?;
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

#[cfg(test)]
mod tests {
    use super::super::words;
    use super::*;

    #[test]
    fn valid_forms() {
        let request = |to: Option<&str>, ms: u64, force: bool| Switchover {
            to: to.map(String::from),
            timeout: Duration::from_millis(ms),
            force,
        };
        let cases = [
            ("", request(None, DEFAULT_TIMEOUT_MS, false)),
            ("FORCE", request(None, DEFAULT_TIMEOUT_MS, true)),
            (
                "to 10.0.0.2:6379",
                request(Some("10.0.0.2:6379"), DEFAULT_TIMEOUT_MS, false),
            ),
            ("TIMEOUT 1 FORCE TO m", request(Some("m"), 1, true)),
            ("timeout 3600000", request(None, MAX_TIMEOUT_MS, false)),
        ];
        for (line, want) in cases {
            assert_eq!(parse(&words(line)), Ok(want), "{line}");
        }
    }

    #[test]
    fn each_bad_value_is_bad_args() {
        let cases = [
            ("TO", "TO needs"),
            ("TIMEOUT", "TIMEOUT must be"),
            ("TIMEOUT x", "TIMEOUT must be"),
            ("TIMEOUT 0", "TIMEOUT must be"),
            ("TIMEOUT 3600001", "TIMEOUT must be"),
            ("NOW", "syntax"),
            ("FORCE NOW", "syntax"),
        ];
        for (line, says) in cases {
            let parsed = parse(&words(line));
            assert!(
                matches!(&parsed, Err(Error::BadArgs(m)) if m.contains(says)),
                "{line}: {parsed:?}"
            );
        }
    }

    #[test]
    fn leader_takes_no_arguments() {
        assert_eq!(no_arguments("zksync.leader", &[]), Ok(()));
        assert_eq!(
            no_arguments("zksync.leader", &words("x")),
            Err(Error::WrongArity {
                command: "zksync.leader"
            })
        );
    }
}
