//! ZKSYNC.PULL, PUSH, DELETE, STAT, LS.

use super::{arguments, authorize, path_arg, submit, version_arg};
use crate::ffi::acl;
use crate::ffi::reply::{self, CommandResult};
use crate::redis::{cluster, INDEX};
use crate::session::Request as SessionRequest;
use redis_module::{Context, ContextFlags, RedisString, RedisValue};
use zksync_core::access::Action;
use zksync_core::error::Error;
use zksync_core::path::ZnodePath;
use zksync_core::reply::Reply;

/// ZooKeeper refuses requests over jute.maxbuffer (1 MB); leave room for the path and header.
const MAX_VALUE: usize = 1024 * 1024 - 1024;

/// The commands of this family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Pull,
    Push,
    Delete,
    Stat,
    Ls,
}

impl Command {
    /// As registered, and as the arity error names it.
    fn name(self) -> &'static str {
        match self {
            Command::Pull => "zksync.pull",
            Command::Push => "zksync.push",
            Command::Delete => "zksync.delete",
            Command::Stat => "zksync.stat",
            Command::Ls => "zksync.ls",
        }
    }
}

/// A parsed command of this family; paths are validated.
#[derive(Debug, PartialEq, Eq)]
enum Request<'a> {
    Pull {
        path: ZnodePath,
    },
    Push {
        path: ZnodePath,
        value: &'a [u8],
        version: Option<i32>,
    },
    Delete {
        path: ZnodePath,
        version: Option<i32>,
    },
    Stat {
        path: ZnodePath,
    },
    Ls {
        path: ZnodePath,
    },
}

/// `PULL path`, `PUSH path value [VERSION v]`, `DELETE path [VERSION v]`,
/// `STAT path`, `LS path`.
fn parse<'a>(command: Command, args: &[&'a [u8]]) -> Result<Request<'a>, Error> {
    let arity = || Error::WrongArity {
        command: command.name(),
    };
    Ok(match (command, args) {
        (Command::Pull, [path]) => Request::Pull { path: path_arg(path)? },
        (Command::Push, [path, value, rest @ ..]) => Request::Push {
            path: path_arg(path)?,
            value,
            version: version_arg(rest)?,
        },
        (Command::Delete, [path, rest @ ..]) => Request::Delete {
            path: path_arg(path)?,
            version: version_arg(rest)?,
        },
        (Command::Stat, [path]) => Request::Stat { path: path_arg(path)? },
        (Command::Ls, [path]) => Request::Ls { path: path_arg(path)? },
        _ => return Err(arity()),
    })
}

pub fn pull(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    run(ctx, Command::Pull, &args)
}

pub fn push(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    run(ctx, Command::Push, &args)
}

pub fn delete(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    run(ctx, Command::Delete, &args)
}

pub fn stat(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    run(ctx, Command::Stat, &args)
}

pub fn ls(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    run(ctx, Command::Ls, &args)
}

fn run(ctx: &Context, command: Command, args: &[RedisString]) -> CommandResult {
    match parse(command, &arguments(args))? {
        Request::Pull { path } => {
            authorize_write(ctx, &path, Action::Pull)?;
            // Every key of the subtree is checked too, once it is read.
            let user = acl::current_user(ctx);
            submit(
                ctx,
                SessionRequest::Pull {
                    path: path.into_string(),
                    user,
                },
            )
        }
        Request::Push { path, value, version } => {
            authorize_write(ctx, &path, Action::Push)?;
            // After the path's and this server's refusals: a write meant for
            // another node is redirected there whatever its size.
            value_fits(value)?;
            let value = value.to_vec();
            submit(
                ctx,
                SessionRequest::Push {
                    path: path.into_string(),
                    value,
                    version,
                },
            )
        }
        Request::Delete { path, version } => {
            authorize_write(ctx, &path, Action::Delete)?;
            submit(
                ctx,
                SessionRequest::Delete {
                    path: path.into_string(),
                    version,
                },
            )
        }
        Request::Stat { path } => {
            authorize(ctx, &path, Action::Stat)?;
            stat_reply(ctx, &path)
        }
        Request::Ls { path } => {
            authorize(ctx, &path, Action::Ls)?;
            ls_reply(ctx, &path)
        }
    }
}

/// A mirror write at `path` is allowed, and this server is where it runs:
/// the master serving the path's slot.
fn authorize_write(ctx: &Context, path: &str, action: Action) -> Result<(), Error> {
    let target = authorize(ctx, path, action)?;
    cluster::route(ctx, &target.key(path))?;
    master_only(ctx)
}

/// A value ZooKeeper can store in one znode.
fn value_fits(value: &[u8]) -> Result<(), Error> {
    if value.len() > MAX_VALUE {
        return Err(Error::BadArgs(format!(
            "value of {} bytes exceeds ZooKeeper's znode limit of {MAX_VALUE} bytes",
            value.len()
        )));
    }
    Ok(())
}

/// Mirror writes happen on the master and reach replicas by replication,
/// even on a replica that takes writes (`replica-read-only no`).
fn master_only(ctx: &Context) -> Result<(), Error> {
    if ctx.get_flags().contains(ContextFlags::SLAVE) {
        return Err(Error::ReadOnly("zksync writes the mirror only on a master".into()));
    }
    Ok(())
}

/// The znode's stat as the mirror holds it; nil if it holds none.
fn stat_reply(ctx: &Context, path: &str) -> CommandResult {
    let index = INDEX.lock(ctx);
    let Some(s) = index.stat(path) else {
        return Ok(RedisValue::Null);
    };
    let fields = [
        ("version", s.version as i64),
        ("cversion", s.cversion as i64),
        ("mzxid", s.mzxid),
        ("czxid", s.czxid),
        ("pzxid", s.pzxid),
        ("mtime", s.mtime),
        ("ctime", s.ctime),
        ("ephemeral_owner", s.ephemeral_owner),
        ("data_length", s.data_length as i64),
        ("num_children", s.num_children as i64),
    ];
    reply::result(Reply::Map(
        fields.into_iter().map(|(k, v)| (k, Reply::Integer(v))).collect(),
    ))
}

/// The znode's children as the mirror holds them; nil if it holds none.
fn ls_reply(ctx: &Context, path: &str) -> CommandResult {
    let index = INDEX.lock(ctx);
    Ok(match index.children(path) {
        Some(names) => RedisValue::Array(
            names
                .into_iter()
                .map(|n| RedisValue::StringBuffer(n.into_bytes()))
                .collect(),
        ),
        None => RedisValue::Null,
    })
}

#[cfg(test)]
mod tests {
    use super::super::words;
    use super::*;

    #[test]
    fn valid_forms() {
        let path = || ZnodePath::parse("/a/b").unwrap();
        let cases = [
            (Command::Pull, "/a/b", Request::Pull { path: path() }),
            (
                Command::Push,
                "/a/b v",
                Request::Push {
                    path: path(),
                    value: b"v",
                    version: None,
                },
            ),
            (
                Command::Push,
                "/a/b v version 3",
                Request::Push {
                    path: path(),
                    value: b"v",
                    version: Some(3),
                },
            ),
            (
                Command::Delete,
                "/a/b",
                Request::Delete {
                    path: path(),
                    version: None,
                },
            ),
            (
                Command::Delete,
                "/a/b VERSION -1",
                Request::Delete {
                    path: path(),
                    version: Some(-1),
                },
            ),
            (Command::Stat, "/a/b", Request::Stat { path: path() }),
            (
                Command::Ls,
                "/",
                Request::Ls {
                    path: ZnodePath::parse("/").unwrap(),
                },
            ),
        ];
        for (command, line, want) in cases {
            assert_eq!(parse(command, &words(line)), Ok(want), "{command:?} {line}");
        }
        // A value is binary and may be empty.
        let parsed = parse(Command::Push, &[b"/a", b"\0\xff"]);
        assert!(
            matches!(parsed, Ok(Request::Push { value: b"\0\xff", .. })),
            "{parsed:?}"
        );
        assert!(parse(Command::Push, &[b"/a", b""]).is_ok());
    }

    #[test]
    fn each_arity_error_names_its_command() {
        let cases = [
            (Command::Pull, ""),
            (Command::Pull, "/a extra"),
            (Command::Push, ""),
            (Command::Push, "/a"),
            (Command::Delete, ""),
            (Command::Stat, ""),
            (Command::Stat, "/a extra"),
            (Command::Ls, ""),
            (Command::Ls, "/a extra"),
        ];
        for (command, line) in cases {
            let want = Error::WrongArity {
                command: command.name(),
            };
            assert_eq!(parse(command, &words(line)), Err(want), "{command:?} {line}");
        }
        assert_eq!(
            Error::WrongArity {
                command: Command::Ls.name()
            }
            .to_string(),
            "ERR wrong number of arguments for 'zksync.ls' command"
        );
    }

    #[test]
    fn each_bad_value_is_bad_args() {
        let cases = [
            (Command::Pull, "foo"),
            (Command::Pull, "/a/../b"),
            (Command::Push, "/a/ v"),
            (Command::Push, "/a v VERSION"),
            (Command::Push, "/a v VERSION x"),
            (Command::Push, "/a v NOTVERSION 1"),
            (Command::Push, "/a v VERSION 1 extra"),
            (Command::Delete, "/a//b"),
            (Command::Delete, "/a VERSION"),
            (Command::Delete, "/a VERSION abc"),
            (Command::Stat, "a"),
            (Command::Ls, "/a/"),
        ];
        for (command, line) in cases {
            let parsed = parse(command, &words(line));
            assert!(
                matches!(parsed, Err(Error::BadArgs(_))),
                "{command:?} {line}: {parsed:?}"
            );
        }
    }

    /// Checked once the path and this server may take the write.
    #[test]
    fn a_value_over_the_znode_limit_is_bad_args() {
        let over = vec![b'x'; MAX_VALUE + 1];
        let refused = value_fits(&over);
        assert!(
            matches!(&refused, Err(Error::BadArgs(m)) if m.contains("znode limit")),
            "{refused:?}"
        );
        assert_eq!(value_fits(&over[1..]), Ok(()));
        assert_eq!(value_fits(b""), Ok(()));
    }
}
