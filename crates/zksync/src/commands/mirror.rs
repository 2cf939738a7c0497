//! ZKSYNC.PULL, PUSH, DELETE, STAT, LS.

use super::{authorize, path_arg, submit, version_arg};
use crate::access::Action;
use crate::error::Error;
use crate::ffi::acl;
use crate::ffi::reply::{self, CommandResult};
use crate::redis::{cluster, INDEX};
use crate::reply::Reply;
use crate::session::Request;
use redis_module::{Context, ContextFlags, RedisString, RedisValue};

/// ZooKeeper refuses requests over jute.maxbuffer (1 MB); leave room for the path and header.
const MAX_VALUE: usize = 1024 * 1024 - 1024;

pub fn pull(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let [_, path] = args.as_slice() else {
        return Err(Error::WrongArity);
    };
    let path = path_arg(path)?;
    let target = authorize(ctx, &path, Action::Pull)?;
    cluster::route(ctx, &target.key(&path))?;
    master_only(ctx)?;
    // Every key of the subtree is checked too, once it is read.
    let user = acl::current_user(ctx);
    submit(ctx, Request::Pull { path, user })
}

/// Mirror writes happen on the master and reach replicas by replication,
/// even on a replica that takes writes (`replica-read-only no`).
fn master_only(ctx: &Context) -> Result<(), Error> {
    if ctx.get_flags().contains(ContextFlags::SLAVE) {
        return Err(Error::ReadOnly("zksync writes the mirror only on a master".into()));
    }
    Ok(())
}

pub fn push(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let [_, path, value, rest @ ..] = args.as_slice() else {
        return Err(Error::WrongArity);
    };
    let path = path_arg(path)?;
    let version = version_arg(rest)?;
    let target = authorize(ctx, &path, Action::Push)?;
    cluster::route(ctx, &target.key(&path))?;
    master_only(ctx)?;
    let value = value.as_slice();
    if value.len() > MAX_VALUE {
        return Err(Error::BadArgs(format!(
            "value of {} bytes exceeds ZooKeeper's znode limit of {MAX_VALUE} bytes",
            value.len()
        )));
    }
    submit(
        ctx,
        Request::Push {
            path,
            value: value.to_vec(),
            version,
        },
    )
}

pub fn delete(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let [_, path, rest @ ..] = args.as_slice() else {
        return Err(Error::WrongArity);
    };
    let path = path_arg(path)?;
    let version = version_arg(rest)?;
    let target = authorize(ctx, &path, Action::Delete)?;
    cluster::route(ctx, &target.key(&path))?;
    master_only(ctx)?;
    submit(ctx, Request::Delete { path, version })
}

pub fn stat(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let [_, path] = args.as_slice() else {
        return Err(Error::WrongArity);
    };
    let path = path_arg(path)?;
    authorize(ctx, &path, Action::Stat)?;
    let index = INDEX.lock(ctx);
    let Some(s) = index.stat(&path) else {
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

pub fn ls(ctx: &Context, args: Vec<RedisString>) -> CommandResult {
    let [_, path] = args.as_slice() else {
        return Err(Error::WrongArity);
    };
    let path = path_arg(path)?;
    authorize(ctx, &path, Action::Ls)?;
    let index = INDEX.lock(ctx);
    Ok(match index.children(&path) {
        Some(names) => RedisValue::Array(
            names
                .into_iter()
                .map(|n| RedisValue::StringBuffer(n.into_bytes()))
                .collect(),
        ),
        None => RedisValue::Null,
    })
}
