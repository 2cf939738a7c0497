//! Panics stop at the boundary where Redis (or a thread of ours) calls in.
//!
//! A panic that unwinds into Redis's C code aborts redis-server, and one that
//! ends a background thread silently stops the mirror. Every entry point
//! runs its body through `catch`: the panic hook has already written the
//! message and location to the Redis log (stderr is /dev/null for a
//! daemonized server), and the caller answers an error or carries on.

use super::log;
use super::reply::{self, CommandResult};
use redis_module::{Context, RedisError, RedisResult, RedisString};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

/// Sends every panic's message and location to the Redis log, from any thread.
pub fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_string());
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let thread = std::thread::current().name().unwrap_or("main").to_string();
            log::warning(&format!("panic in {thread} at {location}: {message}"));
        }));
    });
}

/// Runs `body`; `None` if it panicked (logged by the hook, with `what`).
/// Nothing it touched is used again but through its own locks, which
/// recover from poisoning, hence `AssertUnwindSafe`.
pub fn catch<T>(what: &str, body: impl FnOnce() -> T) -> Option<T> {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => Some(value),
        Err(_) => {
            log::warning(&format!(
                "{what} failed (a bug in zksync; please report the panic above)"
            ));
            None
        }
    }
}

/// A command handler as Redis calls it: a panic becomes an `ERR` reply.
pub fn command(
    ctx: &Context,
    args: Vec<RedisString>,
    name: &str,
    handler: fn(&Context, Vec<RedisString>) -> CommandResult,
) -> RedisResult {
    match catch(name, || handler(ctx, args)) {
        Some(result) => result.map_err(reply::error),
        None => Err(RedisError::String(format!(
            "ERR internal error in {name}, see the Redis log; the server is unaffected"
        ))),
    }
}

/// Wraps a command handler of `redis_module!` in `command`.
#[macro_export]
macro_rules! guarded {
    ($name:literal, $handler:path) => {
        |ctx: &redis_module::Context, args: Vec<redis_module::RedisString>| {
            $crate::ffi::guard::command(ctx, args, $name, $handler)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::catch;

    #[test]
    fn a_panic_is_caught_and_reported_as_none() {
        assert_eq!(catch("ok", || 7), Some(7));
        let mut touched = false;
        assert_eq!(
            catch("boom", || {
                touched = true;
                panic!("boom")
            }),
            None::<()>
        );
        assert!(touched);
    }
}
