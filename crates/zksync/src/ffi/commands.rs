//! A command registered only where Redis has no command of that name
//! (`redis_module!` fails the whole load when one cannot be created).

use super::log;
use redis_module::{raw, Context};
use std::ffi::CString;
use std::os::raw::c_int;

/// A command handler as Redis calls it.
pub type Handler = extern "C" fn(*mut raw::RedisModuleCtx, *mut *mut raw::RedisModuleString, c_int) -> c_int;

/// Registers `name`; logs and carries on if Redis refuses it. Module load only.
pub fn register_optional(ctx: &Context, name: &str, flags: &str, handler: Handler) {
    let (Ok(c_name), Ok(c_flags)) = (CString::new(name), CString::new(flags)) else {
        return;
    };
    // SAFETY: API pointers are set at module load, which is when this runs;
    // the strings live through the call (Redis copies them).
    let created = unsafe {
        raw::RedisModule_CreateCommand
            .map(|create| create(ctx.ctx, c_name.as_ptr(), Some(handler), c_flags.as_ptr(), 0, 0, 0))
    };
    if created != Some(raw::REDISMODULE_OK as c_int) {
        log::notice(&format!(
            "{name} is not available: this server has a command of that name"
        ));
    }
}

/// An `extern "C"` handler for `register_optional` from a guarded command
/// handler `fn(&Context, Vec<RedisString>) -> RedisResult`.
#[macro_export]
macro_rules! command_handler {
    ($name:literal, $handler:path) => {{
        extern "C" fn handler(
            ctx: *mut redis_module::raw::RedisModuleCtx,
            argv: *mut *mut redis_module::raw::RedisModuleString,
            argc: std::os::raw::c_int,
        ) -> std::os::raw::c_int {
            let context = redis_module::Context::new(ctx);
            let args = redis_module::decode_args(ctx, argv, argc);
            let reply = $crate::ffi::guard::command(&context, args, $name, $handler);
            context.reply(reply) as std::os::raw::c_int
        }
        handler
    }};
}
