//! Calls from Redis on a clock, when a replica's master link drops, and at exit.

use super::guard;
use once_cell::sync::OnceCell;
use redis_module::{raw, Context};
use std::os::raw::{c_int, c_void};

// Redis calls its event callbacks with no pointer of ours: what each runs is
// kept here, set once at module load.
static ON_CRON: OnceCell<fn(&Context)> = OnceCell::new();
static AT_EXIT: OnceCell<fn()> = OnceCell::new();
static ON_MASTER_LINK_DOWN: OnceCell<fn()> = OnceCell::new();

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

/// Has `callback` called on the main thread when this replica's link to its
/// master goes down (the master's socket closed: a dead master's at once).
pub fn on_master_link_down(ctx: &Context, callback: fn()) {
    if ON_MASTER_LINK_DOWN.set(callback).is_ok() {
        let event = raw::RedisModuleEvent {
            id: raw::REDISMODULE_EVENT_MASTER_LINK_CHANGE,
            dataver: 1,
        };
        raw::subscribe_to_server_event(ctx.ctx, event, Some(master_link));
    }
}

unsafe extern "C" fn master_link(_: *mut raw::RedisModuleCtx, _: raw::RedisModuleEvent, subevent: u64, _: *mut c_void) {
    if subevent == raw::REDISMODULE_SUBEVENT_MASTER_LINK_DOWN {
        if let Some(callback) = ON_MASTER_LINK_DOWN.get() {
            guard::catch("a master link change", callback);
        }
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
