//! The Redis side, off the command path: the apply thread, the only writer
//! of mirrored keys (`apply`); the role thread, which carries out the
//! group's decisions (`role`); the fencing filter on every command
//! (`fence`); this server's load figures (`sample`); the credentials
//! members call each other with (`credentials`); the apply thread's turns
//! with the main thread at the Redis lock (`turns`). They act on what the
//! session thread decided and touch no ZooKeeper.

pub mod apply;
pub mod credentials;
pub mod fence;
pub mod role;
pub mod sample;
mod turns;

use crate::lease::Stamp;
use crate::mirror::index::Index;
use once_cell::sync::Lazy;
use redis_module::RedisGILGuard;

/// The index of mirrored znodes: written by the apply thread, read by
/// ZKSYNC.STAT and LS, both under the Redis lock.
pub static INDEX: Lazy<RedisGILGuard<Index>> = Lazy::new(|| RedisGILGuard::new(Index::default()));

/// The main thread's heartbeat, stamped at every serverCron: the session
/// thread finds a stalled main thread by its age (`group::detection`).
pub static HEARTBEAT: Stamp = Stamp::never();
