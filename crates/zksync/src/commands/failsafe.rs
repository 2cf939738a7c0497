//! ZKSYNC.FAILSAFE <group> <master-id> <epoch>: the internal command a
//! master in failsafe calls on every listed member for a grant. Only the
//! user members replicate as may call it (`masteruser`, else the default
//! user); the reply is the grant's length in milliseconds, or `-REFUSED`
//! with the reason.

use super::{arguments, block, number, text};
use crate::ffi::acl;
use crate::ffi::reply::CommandResult;
use crate::redis::credentials;
use crate::session::failsafe::{self, Input};
use crate::shared;
use redis_module::{Context, RedisString, RedisValue};
use std::time::Duration;
use zksync_core::access::Denied;
use zksync_core::error::Error;
use zksync_core::group::failsafe::Ask;

/// The grant is given or refused at once; this bounds a stuck session thread.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

/// A parsed ZKSYNC.FAILSAFE.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    group: String,
    ask: Ask,
}

/// `group master-id epoch`.
fn parse(args: &[&[u8]]) -> Result<Request, Error> {
    let [group, master, epoch] = args else {
        return Err(Error::WrongArity {
            command: "zksync.failsafe",
        });
    };
    let epoch =
        number::<u64>(epoch).ok_or_else(|| Error::BadArgs("the epoch must be a non-negative integer".into()))?;
    Ok(Request {
        group: text(group),
        ask: Ask {
            master: text(master),
            epoch,
        },
    })
}

pub fn failsafe(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let request = parse(&arguments(&args))?;
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
    use super::super::words;
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
        let arity = Err(Error::WrongArity {
            command: "zksync.failsafe",
        });
        for line in ["", "g", "g m", "g m 7 x"] {
            assert_eq!(parse(&words(line)), arity, "{line}");
        }
        for line in ["g m -1", "g m x", "g m 1.5", "g m 18446744073709551616"] {
            let parsed = parse(&words(line));
            assert!(
                matches!(&parsed, Err(Error::BadArgs(m)) if m.contains("epoch")),
                "{line}: {parsed:?}"
            );
        }
    }
}
