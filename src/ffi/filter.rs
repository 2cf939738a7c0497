//! A command filter and the replication-role subscription that goes with
//! it, registered only while needed (Redis runs every filter on every
//! command, and walks every subscription on each event it fires). What the
//! filter rewrites is the caller's decision (`Hooks`).

use super::guard;
use once_cell::sync::OnceCell;
use redis_module::{raw, Context, RedisString};
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The decisions the filter and the subscription call.
pub struct Hooks {
    /// Whether to look at commands now; checked first, on every command.
    pub engaged: fn() -> bool,
    /// The command to run instead of one named `name` (with its first
    /// argument, a subcommand maybe), if any.
    pub replacement: fn(name: &[u8], first: Option<&[u8]>) -> Option<&'static str>,
    /// Redis changed this server's role: `true` for a replica.
    pub role_changed: fn(bool),
}

static HOOKS: OnceCell<Hooks> = OnceCell::new();
/// A context of this module that outlives module load, to (un)register at
/// run time; and the filter while registered. Main thread only.
static MODULE_CTX: AtomicUsize = AtomicUsize::new(0);
static FILTER: AtomicUsize = AtomicUsize::new(0);

/// Keeps a context of this module for later (un)registering. Module load only.
pub fn init(ctx: &Context, hooks: Hooks) -> Result<(), String> {
    // SAFETY: API pointers are set at module load.
    let detach =
        unsafe { raw::RedisModule_GetDetachedThreadSafeContext }.ok_or("detached contexts are not available")?;
    // SAFETY: `ctx` is the module's context during OnLoad; the detached
    // context it gives lives as long as the process.
    let module_ctx = unsafe { detach(ctx.ctx) };
    if module_ctx.is_null() {
        return Err("cannot create a detached module context".into());
    }
    MODULE_CTX.store(module_ctx as usize, Ordering::Relaxed);
    let _ = HOOKS.set(hooks);
    Ok(())
}

pub fn registered() -> bool {
    FILTER.load(Ordering::Relaxed) != 0
}

/// Registers the filter and the subscription (`true`) or removes them.
/// Returns whether this server is a replica, once registered. Main thread.
pub fn register(on: bool) -> Option<bool> {
    let ctx = MODULE_CTX.load(Ordering::Relaxed) as *mut raw::RedisModuleCtx;
    let filter = FILTER.load(Ordering::Relaxed) as *mut raw::RedisModuleCommandFilter;
    if ctx.is_null() || on != filter.is_null() {
        return None;
    }
    let role_changes = raw::RedisModuleEvent {
        id: raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
        dataver: 1,
    };
    // SAFETY: API pointers are set at module load; `ctx` lives as long as
    // the process; `filter` is the one registered with it.
    unsafe {
        if !on {
            if let Some(unregister) = raw::RedisModule_UnregisterCommandFilter {
                unregister(ctx, filter);
                FILTER.store(0, Ordering::Relaxed);
                // Paired with the subscription below: Redis 7.0 would add
                // an empty one for an event never subscribed.
                raw::subscribe_to_server_event(ctx, role_changes, None);
            }
            return None;
        }
        let register = raw::RedisModule_RegisterCommandFilter?;
        let filter = register(ctx, Some(on_command), raw::REDISMODULE_CMDFILTER_NOSELF as c_int);
        FILTER.store(filter as usize, Ordering::Relaxed);
        raw::subscribe_to_server_event(ctx, role_changes, Some(on_role_change));
        let flags = raw::RedisModule_GetContextFlags?;
        Some(flags(ctx) as u32 & raw::REDISMODULE_CTX_FLAGS_SLAVE != 0)
    }
}

unsafe extern "C" fn on_role_change(
    _: *mut raw::RedisModuleCtx,
    _: raw::RedisModuleEvent,
    subevent: u64,
    _: *mut c_void,
) {
    if let Some(hooks) = HOOKS.get() {
        let replica = subevent == raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_REPLICA;
        guard::catch("a role change", || (hooks.role_changed)(replica));
    }
}

unsafe extern "C" fn on_command(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    let Some(hooks) = HOOKS.get().filter(|hooks| (hooks.engaged)()) else {
        return;
    };
    // SAFETY: Redis passes a filter context valid for this call.
    guard::catch("the command filter", || unsafe { rewrite(fctx, hooks) });
}

/// Replaces the command's name if the hooks say so.
///
/// # Safety
/// `fctx` is the filter context of the current call.
unsafe fn rewrite(fctx: *mut raw::RedisModuleCommandFilterCtx, hooks: &Hooks) {
    let (Some(count), Some(arg), Some(replace), Some(create)) = (
        raw::RedisModule_CommandFilterArgsCount,
        raw::RedisModule_CommandFilterArgGet,
        raw::RedisModule_CommandFilterArgReplace,
        raw::RedisModule_CreateString,
    ) else {
        return;
    };
    let bytes = |pos: c_int| -> Option<&[u8]> {
        let s = arg(fctx, pos);
        (!s.is_null()).then(|| RedisString::string_as_slice(s))
    };
    let Some(name) = bytes(0) else { return };
    let first = if count(fctx) > 1 { bytes(1) } else { None };
    if let Some(with) = (hooks.replacement)(name, first) {
        replace(fctx, 0, create(std::ptr::null_mut(), with.as_ptr().cast(), with.len()));
    }
}
