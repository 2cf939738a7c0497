//! The Redis side, off the command path: the apply thread, the only writer
//! of mirrored keys (`apply`, writing through `keyspace`); the role thread,
//! which carries out the group's decisions (`role`); the fencing filter on
//! every command (`fence`); this server's load figures (`sample`); the
//! credentials members call each other with (`credentials`); the apply
//! thread's turns with the main thread at the Redis lock (`turns`). They act
//! on what the session thread decided and touch no ZooKeeper.

pub mod apply;
pub mod cluster;
pub mod credentials;
pub mod fence;
mod keyspace;
pub mod role;
pub mod sample;
mod turns;

use once_cell::sync::Lazy;
use redis_module::{Context, RedisGILGuard, RedisValue};
use zksync_core::lease::Stamp;
use zksync_core::mirror::index::Index;

/// The index of mirrored znodes: written by the apply thread, read by
/// ZKSYNC.STAT and LS, both under the Redis lock.
pub static INDEX: Lazy<RedisGILGuard<Index>> = Lazy::new(|| RedisGILGuard::new(Index::default()));

/// The main thread's heartbeat, stamped at every serverCron: the session
/// thread finds a stalled main thread by its age (`group::detection`).
pub static HEARTBEAT: Lazy<Stamp> = Lazy::new(Stamp::never);

/// A reply's text, for each kind a string comes as.
pub fn text(value: &RedisValue) -> Option<String> {
    match value {
        RedisValue::SimpleString(s) | RedisValue::BulkString(s) => Some(s.clone()),
        RedisValue::BulkRedisString(s) => Some(s.to_string_lossy()),
        RedisValue::StringBuffer(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// A config's value by CONFIG GET (main thread, or under the Redis lock).
pub fn config(ctx: &Context, name: &str) -> Option<String> {
    match ctx.call("CONFIG", &["GET", name]) {
        Ok(RedisValue::Array(pair)) => pair.get(1).and_then(text),
        _ => None,
    }
}
