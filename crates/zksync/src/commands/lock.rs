//! ZKSYNC.LOCK, UNLOCK, CHECK and LOCKS: distributed locks with fencing
//! tokens (see `lock`).

use super::{arguments, authorize, block, is_keyword, number, path_arg, refuse_in_transaction};
use crate::ffi::clients;
use crate::ffi::reply::{self, CommandResult};
use crate::session::{self, Control};
use crate::shared::{self, VOUCHED};
use crate::status::{SessionState, STATUS};
use redis_module::{Context, RedisString, RedisValue};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use zksync_core::access::Action;
use zksync_core::error::Error;
use zksync_core::lock::table::Unlock;
use zksync_core::lock::{LockRequest, Token};
use zksync_core::path::ZnodePath;
use zksync_core::reply::Reply;

/// The longest TIMEOUT or LEASE (about 31 years): deadlines stay representable.
const MAX_MS: u64 = 1_000_000_000_000;

const LOCK_SYNTAX: &str = "syntax: ZKSYNC.LOCK path [TIMEOUT ms] [LEASE ms]";

/// The commands of this family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Lock,
    Unlock,
    Check,
    Locks,
}

impl Command {
    /// As registered, and as the arity error names it.
    fn name(self) -> &'static str {
        match self {
            Command::Lock => "zksync.lock",
            Command::Unlock => "zksync.unlock",
            Command::Check => "zksync.check",
            Command::Locks => "zksync.locks",
        }
    }
}

/// A parsed command of this family; paths are validated.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Lock(LockRequest),
    Unlock { path: ZnodePath, token: Token },
    Check { path: ZnodePath, token: Token },
    Locks,
}

/// `LOCK path [TIMEOUT ms] [LEASE ms]`, `UNLOCK path token`, `CHECK path
/// token`, `LOCKS`.
fn parse(command: Command, args: &[&[u8]]) -> Result<Request, Error> {
    Ok(match (command, args) {
        (Command::Lock, [path, options @ ..]) => Request::Lock(parse_lock(path, options)?),
        (Command::Unlock, [path, token]) => Request::Unlock {
            path: path_arg(path)?,
            token: token_arg(token)?,
        },
        (Command::Check, [path, token]) => Request::Check {
            path: path_arg(path)?,
            token: token_arg(token)?,
        },
        (Command::Locks, []) => Request::Locks,
        _ => {
            return Err(Error::WrongArity {
                command: command.name(),
            })
        }
    })
}

/// LOCK's path and options, each option at most once per name (the last wins).
fn parse_lock(path: &[u8], options: &[&[u8]]) -> Result<LockRequest, Error> {
    let mut request = LockRequest {
        path: path_arg(path)?,
        timeout: None,
        lease: None,
    };
    for pair in options.chunks(2) {
        match pair {
            [name, value] if is_keyword(name, "TIMEOUT") => request.timeout = Some(millis(value, "TIMEOUT", 0)?),
            [name, value] if is_keyword(name, "LEASE") => request.lease = Some(millis(value, "LEASE", 1)?),
            _ => return Err(Error::BadArgs(LOCK_SYNTAX.into())),
        }
    }
    Ok(request)
}

fn millis(value: &[u8], name: &str, min: u64) -> Result<Duration, Error> {
    number::<u64>(value)
        .filter(|ms| (min..=MAX_MS).contains(ms))
        .map(Duration::from_millis)
        .ok_or_else(|| {
            Error::BadArgs(format!(
                "{name} must be an integer from {min} to {MAX_MS} (milliseconds)"
            ))
        })
}

fn token_arg(arg: &[u8]) -> Result<Token, Error> {
    number::<i64>(arg)
        .filter(|t| *t > 0)
        .map(Token)
        .ok_or_else(|| Error::BadArgs("a lock token is a positive integer".into()))
}

pub fn lock(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    run(ctx, Command::Lock, &args)
}

pub fn unlock(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    run(ctx, Command::Unlock, &args)
}

pub fn check(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    run(ctx, Command::Check, &args)
}

pub fn locks(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    run(ctx, Command::Locks, &args)
}

fn run(ctx: &Context, command: Command, args: &[RedisString]) -> CommandResult {
    match parse(command, &arguments(args))? {
        Request::Lock(request) => acquire(ctx, request),
        Request::Unlock { path, token } => release(ctx, &path, token),
        Request::Check { path, token } => check_token(ctx, &path, token),
        Request::Locks => list(),
    }
}

/// `ZKSYNC.LOCK path [TIMEOUT ms] [LEASE ms]`: the fencing token once held,
/// nil on timeout. Blocks only the caller.
fn acquire(ctx: &Context, request: LockRequest) -> CommandResult {
    refuse_in_transaction(ctx)?;
    authorize(ctx, &request.path, Action::Lock)?;
    if STATUS.state() != SessionState::Connected {
        return Err(Error::ZkDown(STATUS.state().name().into()));
    }
    let client = clients::id(ctx).ok_or(Error::NoClient { command: "ZKSYNC.LOCK" })?;
    let id = shared::locks()
        .wait(&request.path, client, request.lease)
        .map_err(|_| Error::LockHeld(request.path.to_string()))?;
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

/// `ZKSYNC.UNLOCK path token`: 1 if released, 0 if that token does not
/// hold it. 1 only for a lock this server can vouch for: an unvouched one
/// waits for its znode's deletion to tell, at most the session timeout.
fn release(ctx: &Context, path: &str, token: Token) -> CommandResult {
    authorize(ctx, path, Action::Lock)?;
    let now = Instant::now();
    let unlocked = shared::locks().unlock(path, token, now, VOUCHED.live(now));
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
fn check_token(ctx: &Context, path: &str, token: Token) -> CommandResult {
    authorize(ctx, path, Action::Check)?;
    let now = Instant::now();
    match shared::locks().check(path, token, now, VOUCHED.live(now)) {
        Ok(()) => Ok(RedisValue::SimpleStringStatic("OK")),
        Err(fenced) => Err(Error::Fenced(fenced.to_string())),
    }
}

/// `ZKSYNC.LOCKS`: the locks held through this server.
fn list() -> CommandResult {
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

#[cfg(test)]
mod tests {
    use super::super::words;
    use super::*;

    fn lock_request(timeout: Option<u64>, lease: Option<u64>) -> Request {
        Request::Lock(LockRequest {
            path: ZnodePath::parse("/locks/a").unwrap(),
            timeout: timeout.map(Duration::from_millis),
            lease: lease.map(Duration::from_millis),
        })
    }

    #[test]
    fn valid_forms() {
        let path = || ZnodePath::parse("/locks/a").unwrap();
        let token = Token(7);
        let cases = [
            (Command::Lock, "/locks/a", lock_request(None, None)),
            (Command::Lock, "/locks/a TIMEOUT 0", lock_request(Some(0), None)),
            (Command::Lock, "/locks/a lease 1", lock_request(None, Some(1))),
            (
                Command::Lock,
                "/locks/a LEASE 5000 timeout 1000000000000",
                lock_request(Some(MAX_MS), Some(5000)),
            ),
            (
                Command::Lock,
                "/locks/a TIMEOUT 1 TIMEOUT 2",
                lock_request(Some(2), None),
            ),
            (Command::Unlock, "/locks/a 7", Request::Unlock { path: path(), token }),
            (Command::Check, "/locks/a 7", Request::Check { path: path(), token }),
            (Command::Locks, "", Request::Locks),
        ];
        for (command, line, want) in cases {
            assert_eq!(parse(command, &words(line)), Ok(want), "{command:?} {line}");
        }
    }

    #[test]
    fn each_arity_error_names_its_command() {
        let cases = [
            (Command::Lock, ""),
            (Command::Unlock, ""),
            (Command::Unlock, "/locks/a"),
            (Command::Unlock, "/locks/a 7 extra"),
            (Command::Check, ""),
            (Command::Check, "/locks/a"),
            (Command::Check, "/locks/a 7 extra"),
            (Command::Locks, "extra"),
        ];
        for (command, line) in cases {
            let want = Error::WrongArity {
                command: command.name(),
            };
            assert_eq!(parse(command, &words(line)), Err(want), "{command:?} {line}");
        }
    }

    #[test]
    fn each_bad_value_is_bad_args() {
        let cases = [
            (Command::Lock, "locks/a", "absolute"),
            (Command::Lock, "/locks/a TIMEOUT", "syntax"),
            (Command::Lock, "/locks/a WAIT 5", "syntax"),
            (Command::Lock, "/locks/a TIMEOUT 5 LEASE", "syntax"),
            (Command::Lock, "/locks/a TIMEOUT x", "TIMEOUT must be"),
            (Command::Lock, "/locks/a TIMEOUT -1", "TIMEOUT must be"),
            (Command::Lock, "/locks/a TIMEOUT 1000000000001", "TIMEOUT must be"),
            (Command::Lock, "/locks/a LEASE 0", "LEASE must be"),
            (Command::Lock, "/locks/a LEASE 1.5", "LEASE must be"),
            (Command::Unlock, "/locks/ 7", "end with"),
            (Command::Unlock, "/locks/a 0", "positive"),
            (Command::Unlock, "/locks/a -3", "positive"),
            (Command::Check, "/locks/a x", "positive"),
            (Command::Check, "/locks/a 99999999999999999999", "positive"),
        ];
        for (command, line, says) in cases {
            let parsed = parse(command, &words(line));
            assert!(
                matches!(&parsed, Err(Error::BadArgs(m)) if m.contains(says)),
                "{command:?} {line}: {parsed:?}"
            );
        }
    }
}
