//! ZKSYNC.LOCK, UNLOCK, CHECK and LOCKS: distributed locks with fencing
//! tokens (see `lock`).

use super::{authorize, block, path_arg, refuse_in_transaction};
use crate::access::Action;
use crate::error::Error;
use crate::ffi::clients;
use crate::ffi::reply::{self, CommandResult};
use crate::lock::table::Unlock;
use crate::lock::{LockRequest, Token};
use crate::reply::Reply;
use crate::session::{self, Control};
use crate::shared::{self, VOUCHED};
use crate::status::{SessionState, STATUS};
use redis_module::{Context, RedisString, RedisValue};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The longest TIMEOUT or LEASE (about 31 years): deadlines stay representable.
const MAX_MS: u64 = 1_000_000_000_000;

/// `ZKSYNC.LOCK path [TIMEOUT ms] [LEASE ms]`: the fencing token once held,
/// nil on timeout. Blocks only the caller.
pub fn lock(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let request = parse_lock(&args)?;
    refuse_in_transaction(ctx)?;
    authorize(ctx, &request.path, Action::Lock)?;
    if STATUS.state() != SessionState::Connected {
        return Err(Error::ZkDown(STATUS.state().name().into()));
    }
    let client = clients::id(ctx).ok_or_else(|| Error::BadArgs("ZKSYNC.LOCK needs a client connection".into()))?;
    let id = shared::locks()
        .wait(&request.path, client, request.lease)
        .map_err(|_| Error::BadArgs(format!("this connection already holds the lock at {}", request.path)))?;
    clients::on_disconnect(ctx, client_gone);
    let pending = match block(ctx, Duration::ZERO) {
        Ok(pending) => pending,
        Err(e) => {
            shared::locks().give_up(id);
            return Err(e);
        }
    };
    if !session::send(Control::Lock(id, request, pending)) {
        // The dropped request answered the client ZKDOWN.
        shared::locks().give_up(id);
    }
    Ok(RedisValue::NoReply)
}

fn parse_lock(args: &[RedisString]) -> Result<LockRequest, Error> {
    let [_, path, options @ ..] = args else {
        return Err(Error::BadArgs(
            "syntax: ZKSYNC.LOCK path [TIMEOUT ms] [LEASE ms]".into(),
        ));
    };
    let mut request = LockRequest {
        path: path_arg(path)?,
        timeout: None,
        lease: None,
    };
    for pair in options.chunks(2) {
        let [name, value] = pair else {
            return Err(Error::BadArgs(
                "syntax: ZKSYNC.LOCK path [TIMEOUT ms] [LEASE ms]".into(),
            ));
        };
        match name.to_string_lossy().to_ascii_uppercase().as_str() {
            "TIMEOUT" => request.timeout = Some(millis(value, "TIMEOUT", 0)?),
            "LEASE" => request.lease = Some(millis(value, "LEASE", 1)?),
            _ => {
                return Err(Error::BadArgs(
                    "syntax: ZKSYNC.LOCK path [TIMEOUT ms] [LEASE ms]".into(),
                ))
            }
        }
    }
    Ok(request)
}

fn millis(value: &RedisString, name: &str, min: u64) -> Result<Duration, Error> {
    value
        .to_string_lossy()
        .parse::<u64>()
        .ok()
        .filter(|ms| (min..=MAX_MS).contains(ms))
        .map(Duration::from_millis)
        .ok_or_else(|| {
            Error::BadArgs(format!(
                "{name} must be an integer from {min} to {MAX_MS} (milliseconds)"
            ))
        })
}

/// The `path token` arguments of UNLOCK and CHECK.
fn path_and_token(args: &[RedisString]) -> Result<(String, Token), Error> {
    let [_, path, token] = args else {
        return Err(Error::WrongArity);
    };
    Ok((path_arg(path)?, token_arg(token)?))
}

fn token_arg(arg: &RedisString) -> Result<Token, Error> {
    arg.to_string_lossy()
        .parse::<i64>()
        .ok()
        .filter(|t| *t > 0)
        .map(Token)
        .ok_or_else(|| Error::BadArgs("a lock token is a positive integer".into()))
}

/// `ZKSYNC.UNLOCK path token`: 1 if released, 0 if that token does not
/// hold it. 1 only for a lock this server can vouch for: an unvouched one
/// waits for its znode's deletion to tell, at most the session timeout.
pub fn unlock(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let (path, token) = path_and_token(&args)?;
    authorize(ctx, &path, Action::Lock)?;
    let now = Instant::now();
    let unlocked = shared::locks().unlock(&path, token, now, VOUCHED.live(now));
    match unlocked {
        Unlock::NotHeld => Ok(RedisValue::Integer(0)),
        Unlock::Released(znode) => {
            // CHECK refuses the token from now on; the znode goes in the background.
            session::send(Control::Release(vec![znode]));
            Ok(RedisValue::Integer(1))
        }
        Unlock::Unvouched(znode) => {
            // The session thread answers within the session timeout; this
            // margin lets its answer arrive first.
            let bound = STATUS.session_timeout_ms.load(Ordering::Relaxed).max(1000) + 1000;
            match block(ctx, Duration::from_millis(bound)) {
                Ok(pending) => {
                    session::send(Control::Unlock(znode, pending));
                    Ok(RedisValue::NoReply)
                }
                // In MULTI or a script nothing can wait: released when the
                // session answers, but not vouched for now.
                Err(_) => {
                    session::send(Control::Release(vec![znode]));
                    Ok(RedisValue::Integer(0))
                }
            }
        }
    }
}

/// `ZKSYNC.CHECK path token`: OK while this server can vouch that `token`
/// holds the lock, else FENCED. From memory; allowed in scripts.
pub fn check(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let (path, token) = path_and_token(&args)?;
    authorize(ctx, &path, Action::Check)?;
    let now = Instant::now();
    match shared::locks().check(&path, token, now, VOUCHED.live(now)) {
        Ok(()) => Ok(RedisValue::SimpleStringStatic("OK")),
        Err(fenced) => Err(Error::Fenced(fenced.to_string())),
    }
}

/// `ZKSYNC.LOCKS`: the locks held through this server.
pub fn locks(_ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    if args.len() != 1 {
        return Err(Error::WrongArity);
    }
    let now = Instant::now();
    let listed = shared::locks().list(now);
    // As CHECK would answer: whether the session is confirmed right now.
    let vouched = VOUCHED.live(now);
    let rows = listed
        .into_iter()
        .map(|l| {
            Reply::Map(vec![
                ("path", Reply::text(l.path)),
                ("token", Reply::Integer(l.token.0)),
                ("client_id", Reply::Integer(l.client as i64)),
                ("held_ms", Reply::Integer(l.held.as_millis() as i64)),
                (
                    "lease_ms",
                    Reply::Integer(l.lease_left.map_or(-1, |d| d.as_millis() as i64)),
                ),
                ("vouched", Reply::Integer(vouched as i64)),
            ])
        })
        .collect();
    reply::result(Reply::Array(rows))
}

/// A client disconnected: its locks are released, its waiters cancelled.
fn client_gone(client: u64) {
    let (znodes, waiters) = shared::locks().client_gone(client);
    if !znodes.is_empty() {
        session::send(Control::Release(znodes));
    }
    if !waiters.is_empty() {
        session::send(Control::Cancel(waiters));
    }
}
