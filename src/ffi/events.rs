//! Calls from Redis on a clock and at exit.

use super::guard;
use once_cell::sync::OnceCell;
use redis_module::{raw, Context};
use std::os::raw::{c_int, c_void};

static ON_CRON: OnceCell<fn(&Context)> = OnceCell::new();
static AT_EXIT: OnceCell<fn()> = OnceCell::new();

/// Has `callback` called at every serverCron (`hz` times a second, 10 by
/// default), on the main thread. One subscription rather than Redis timers:
/// a pending module timer costs every event-loop iteration a second time
/// event to look at, and an idle server a wake-up per firing; serverCron
/// wakes Redis anyway.
pub fn on_cron(ctx: &Context, callback: fn(&Context)) {
    if ON_CRON.set(callback).is_ok() {
        let event = raw::RedisModuleEvent {
            id: raw::REDISMODULE_EVENT_CRON_LOOP,
            dataver: 1,
        };
        raw::subscribe_to_server_event(ctx.ctx, event, Some(cron));
    }
}

unsafe extern "C" fn cron(ctx: *mut raw::RedisModuleCtx, _: raw::RedisModuleEvent, _: u64, _: *mut c_void) {
    if let Some(callback) = ON_CRON.get() {
        guard::catch("serverCron", || callback(&Context::new(ctx)));
    }
}

/// Has `callback` called when redis-server exits normally (not in forked
/// children, which leave with `_exit`). At exit rather than on a shutdown
/// subscription, which would be one more for Redis to walk on every event.
pub fn at_exit(callback: fn()) {
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> c_int;
    }
    extern "C" fn exiting() {
        if let Some(callback) = AT_EXIT.get() {
            guard::catch("exit", callback);
        }
    }
    if AT_EXIT.set(callback).is_ok() {
        // SAFETY: the module is never unloaded once started, so the
        // callback stays mapped.
        unsafe { atexit(exiting) };
    }
}
