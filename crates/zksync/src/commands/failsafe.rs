//! ZKSYNC.FAILSAFE <group> <master-id> <epoch>: the internal command a
//! master in failsafe calls on every listed member for a grant. Only the
//! user members replicate as may call it (`masteruser`, else the default
//! user); the reply is the grant's length in milliseconds, or `-REFUSED`
//! with the reason.

use super::block;
use crate::access::Denied;
use crate::error::Error;
use crate::ffi::acl;
use crate::ffi::reply::CommandResult;
use crate::group::failsafe::Ask;
use crate::redis::credentials;
use crate::session::failsafe::{self, Input};
use crate::shared;
use redis_module::{Context, RedisString, RedisValue};
use std::time::Duration;

/// The grant is given or refused at once; this bounds a stuck session thread.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// A parsed ZKSYNC.FAILSAFE.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    group: String,
    ask: Ask,
}

fn parse(args: &[&[u8]]) -> Result<Request, Error> {
    let [group, master, epoch] = args else {
        return Err(Error::BadArgs("syntax: ZKSYNC.FAILSAFE group master-id epoch".into()));
    };
    let text = |arg: &[u8]| String::from_utf8_lossy(arg).into_owned();
    let epoch = std::str::from_utf8(epoch)
        .ok()
        .and_then(|e| e.parse::<u64>().ok())
        .ok_or_else(|| Error::BadArgs("the epoch must be a non-negative integer".into()))?;
    Ok(Request {
        group: text(group),
        ask: Ask {
            master: text(master),
            epoch,
        },
    })
}

pub fn failsafe(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let words: Vec<&[u8]> = args[1..].iter().map(RedisString::as_slice).collect();
    let request = parse(&words)?;
    let expected = credentials::grant_user(ctx);
    if acl::current_user(ctx).is_some_and(|user| user != expected.as_bytes()) {
        return Err(Error::NoPerm(Denied::Internal {
            command: "ZKSYNC.FAILSAFE",
            user: expected,
        }));
    }
    if shared::group().as_deref() != Some(request.group.as_str()) {
        return Err(Error::Refused(format!(
            "this server is not a member of group '{}'",
            request.group
        )));
    }
    let pending = block(ctx, ANSWER_WITHIN)?;
    failsafe::send(Input::Asked(request.ask, pending));
    Ok(RedisValue::NoReply)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_group_master_and_epoch() {
        let ok = parse(&[b"g", b"10.0.0.1:6379", b"7"]);
        let want = Request {
            group: "g".into(),
            ask: Ask {
                master: "10.0.0.1:6379".into(),
                epoch: 7,
            },
        };
        assert_eq!(ok, Ok(want));
        let bad: [&[&[u8]]; 4] = [&[], &[b"g", b"m"], &[b"g", b"m", b"-1"], &[b"g", b"m", b"7", b"x"]];
        for args in bad {
            assert!(matches!(parse(args), Err(Error::BadArgs(_))), "{args:?}");
        }
    }
}
