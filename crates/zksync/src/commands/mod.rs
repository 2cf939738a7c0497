//! Command handlers, one file per family. Each parses its arguments (after
//! the command's name, as bytes: `arguments`) into a typed request with a
//! `parse` that needs no server, then authorizes, calls into the domain or
//! the session thread, and replies.

pub mod failover;
pub mod failsafe;
pub mod load;
pub mod lock;
pub mod mirror;
pub mod sentinel;
pub mod status;

use crate::ffi::acl;
use crate::ffi::blocked::Pending;
use crate::ffi::reply::CommandResult;
use crate::session::{self, Control, Request};
use crate::shared;
use crate::status::{SessionState, STATUS};
use redis_module::{Context, ContextFlags, RedisString, RedisValue};
use std::sync::atomic::Ordering;
use std::time::Duration;
use zksync_core::access::{Action, Target};
use zksync_core::error::{CannotBlock, Error};
use zksync_core::path::ZnodePath;

/// A command's arguments after its name, as bytes: what every parser takes
/// (the name is the handler's to know).
fn arguments(args: &[RedisString]) -> Vec<&[u8]> {
    args.iter().skip(1).map(RedisString::as_slice).collect()
}

/// `Ok` for a command that takes no arguments.
fn no_arguments(command: &'static str, args: &[&[u8]]) -> Result<(), Error> {
    match args {
        [] => Ok(()),
        _ => Err(Error::WrongArity { command }),
    }
}

/// Whether `arg` is the keyword `word`, in any case.
fn is_keyword(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// `arg` as a number written in decimal, if it is one of type `T`.
fn number<T: std::str::FromStr>(arg: &[u8]) -> Option<T> {
    std::str::from_utf8(arg).ok()?.parse().ok()
}

/// `arg` as text, invalid UTF-8 replaced (names compared or shown, never paths).
fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// An argument that must be an absolute znode path.
fn path_arg(arg: &[u8]) -> Result<ZnodePath, Error> {
    let text = std::str::from_utf8(arg).map_err(|_| Error::BadArgs("a znode path must be valid UTF-8".into()))?;
    ZnodePath::parse(text).map_err(Error::BadArgs)
}

/// Whether the calling client may run `action` at `path`: the allowed roots
/// and reserved trees first, then the Redis ACL on the path's key (a
/// refusal is logged in `ACL LOG`, as Redis logs its own).
fn authorize(ctx: &Context, path: &str, action: Action) -> Result<Target, Error> {
    let target = shared::ROOTS
        .get_or_default()
        .check(path, action)
        .map_err(Error::NoPerm)?;
    if let Some(user) = acl::User::current(ctx) {
        user.require(ctx, &target.key(path), action.key_access())
            .map_err(Error::NoPerm)?;
    }
    Ok(target)
}

/// The optional `VERSION v` tail of PUSH and DELETE.
fn version_arg(rest: &[&[u8]]) -> Result<Option<i32>, Error> {
    match rest {
        [] => Ok(None),
        [word, v] if is_keyword(word, "VERSION") => number(v)
            .map(Some)
            .ok_or_else(|| Error::BadArgs("VERSION must be an integer".into())),
        _ => Err(Error::BadArgs("syntax error: expected [VERSION v]".into())),
    }
}

/// Hands `request` to the session thread and blocks the client until its reply.
fn submit(ctx: &Context, request: Request) -> CommandResult {
    match STATUS.state() {
        SessionState::Connected | SessionState::AuthFailed => {}
        state => return Err(Error::ZkDown(state.name().into())),
    }
    // The session thread bounds each request by the session timeout; this
    // margin lets its own answer arrive first.
    let timeout_ms = STATUS.session_timeout_ms.load(Ordering::Relaxed).max(1000) + 500;
    let pending = block(ctx, Duration::from_millis(timeout_ms))?;
    // If the session thread is gone, dropping the returned request unblocks the client with ZKDOWN.
    let _ = session::send(Control::Request(request, pending));
    Ok(RedisValue::NoReply)
}

/// Blocks the calling client until a background thread answers (`timeout`
/// zero: until then, however long).
fn block(ctx: &Context, timeout: Duration) -> Result<Pending, Error> {
    refuse_in_transaction(ctx)?;
    Pending::block(ctx, timeout)
}

/// A command that waits for ZooKeeper cannot run where the client cannot block.
fn refuse_in_transaction(ctx: &Context) -> Result<(), Error> {
    if ctx
        .get_flags()
        .intersects(ContextFlags::MULTI | ContextFlags::LUA | ContextFlags::DENY_BLOCKING)
    {
        return Err(Error::CannotBlock(CannotBlock::InMultiOrScript));
    }
    Ok(())
}

/// Test arguments from words split at spaces.
#[cfg(test)]
fn words(line: &str) -> Vec<&[u8]> {
    line.split_whitespace().map(str::as_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_tails() {
        assert_eq!(version_arg(&[]), Ok(None));
        assert_eq!(version_arg(&words("version 7")), Ok(Some(7)));
        assert_eq!(version_arg(&words("VERSION -1")), Ok(Some(-1)));
        for bad in [
            "VERSION",
            "VERSION x",
            "VERSION 1.5",
            "VERSION 99999999999",
            "NOTVERSION 1",
            "VERSION 1 x",
        ] {
            assert!(matches!(version_arg(&words(bad)), Err(Error::BadArgs(_))), "{bad}");
        }
        assert!(matches!(version_arg(&[b"VERSION", b""]), Err(Error::BadArgs(_))));
    }

    #[test]
    fn paths_are_validated_utf8() {
        assert_eq!(path_arg(b"/a/b").map(ZnodePath::into_string), Ok("/a/b".to_string()));
        for bad in [&b"a"[..], b"", b"/a/", b"/a//b", b"/a\0", b"/\xff"] {
            assert!(matches!(path_arg(bad), Err(Error::BadArgs(_))), "{bad:?}");
        }
    }
}
