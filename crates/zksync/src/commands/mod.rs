//! Command handlers: parse, call into the domain, reply. One file per family.

pub mod failover;
pub mod failsafe;
pub mod load;
pub mod lock;
pub mod mirror;
pub mod sentinel;
pub mod status;

use crate::access::{Action, Target};
use crate::error::Error;
use crate::ffi::acl;
use crate::ffi::blocked::Pending;
use crate::ffi::reply::CommandResult;
use crate::path;
use crate::session::{self, Control, Request};
use crate::shared;
use crate::status::{SessionState, STATUS};
use redis_module::{Context, ContextFlags, RedisString, RedisValue};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// An argument that must be an absolute znode path.
fn path_arg(arg: &RedisString) -> Result<String, Error> {
    let text = arg
        .try_as_str()
        .map_err(|_| Error::BadArgs("a znode path must be valid UTF-8".into()))?;
    path::validate(text).map_err(Error::BadArgs)?;
    Ok(text.to_string())
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
fn version_arg(rest: &[RedisString]) -> Result<Option<i32>, Error> {
    match rest {
        [] => Ok(None),
        [word, v] if word.to_string_lossy().eq_ignore_ascii_case("VERSION") => v
            .to_string_lossy()
            .parse::<i32>()
            .map(Some)
            .map_err(|_| Error::BadArgs("VERSION must be an integer".into())),
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
        return Err(Error::BadArgs(
            "this command waits for ZooKeeper and cannot run inside MULTI or a script".into(),
        ));
    }
    Ok(())
}
