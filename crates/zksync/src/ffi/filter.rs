//! The command filter, and the replication-role subscription that goes
//! with fencing. The filter is registered at load, for good: a CONFIG SET
//! carrying a secret may come at any time. Its first checks (a name
//! compared, a flag read) are all most commands cost. The role subscription
//! is held only in a group (Redis walks every subscription on each event it
//! fires). What the filter rewrites is the caller's decision (`Hooks`).

use super::guard;
use super::string::OwnedString;
use once_cell::sync::OnceCell;
use redis_module::{raw, Context, RedisString};
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Fencing: what a command becomes on a master that may not write.
pub struct Fencing {
    /// Whether to look at commands now; checked on every command.
    pub engaged: fn() -> bool,
    /// The command to run instead of one named `name` (with its first
    /// argument, a subcommand maybe), if any.
    pub replacement: fn(name: &[u8], first: Option<&[u8]>) -> Option<&'static str>,
    /// Redis changed this server's role: `true` for a replica.
    pub role_changed: fn(bool),
}

/// Secrets: arguments swapped for placeholders before the command runs,
/// and so before Redis records it (SLOWLOG, MONITOR).
pub struct Secrets {
    /// A command with fewer arguments carries none: most commands stop at
    /// this count, before their name is fetched.
    pub min_args: usize,
    /// Whether a command named `name` may carry one.
    pub may_hold: fn(name: &[u8]) -> bool,
    /// The positions of the secret arguments (the name is at 0).
    pub positions: fn(args: &[&[u8]]) -> Vec<usize>,
    /// Keeps a secret and returns its placeholder.
    pub hide: fn(secret: &[u8]) -> String,
}

pub struct Hooks {
    pub fencing: Fencing,
    pub secrets: Secrets,
}

/// What the filter asks of the module. A static: Redis calls the filter
/// with no pointer of ours.
static HOOKS: OnceCell<Hooks> = OnceCell::new();
/// A context of this module that outlives module load, to (un)subscribe at
/// run time. Main thread only.
static MODULE_CTX: AtomicUsize = AtomicUsize::new(0);
static SUBSCRIBED: AtomicBool = AtomicBool::new(false);

/// Registers the filter and keeps a context of this module for later
/// (un)subscribing. Module load only.
pub fn init(ctx: &Context, hooks: Hooks) -> Result<(), String> {
    // SAFETY: API pointers are set at module load.
    let (detach, register) = unsafe {
        (
            raw::RedisModule_GetDetachedThreadSafeContext,
            raw::RedisModule_RegisterCommandFilter,
        )
    };
    let (Some(detach), Some(register)) = (detach, register) else {
        return Err("command filters or detached contexts are not available".into());
    };
    // SAFETY: `ctx` is the module's context during OnLoad; the detached
    // context it gives lives as long as the process.
    let module_ctx = unsafe { detach(ctx.ctx) };
    if module_ctx.is_null() {
        return Err("cannot create a detached module context".into());
    }
    MODULE_CTX.store(module_ctx as usize, Ordering::Relaxed);
    let _ = HOOKS.set(hooks);
    // SAFETY: as above; `module_ctx` lives as long as the process, and so
    // does the filter (never unregistered).
    let filter = unsafe { register(module_ctx, Some(on_command), raw::REDISMODULE_CMDFILTER_NOSELF as c_int) };
    if filter.is_null() {
        return Err("cannot register the command filter".into());
    }
    Ok(())
}

/// Subscribes to role changes for fencing (`true`) or unsubscribes.
/// Returns whether this server is a replica, once subscribed. Main thread.
pub fn watch_role(on: bool) -> Option<bool> {
    let ctx = MODULE_CTX.load(Ordering::Relaxed) as *mut raw::RedisModuleCtx;
    if ctx.is_null() || SUBSCRIBED.load(Ordering::Relaxed) == on {
        return None;
    }
    let role_changes = raw::RedisModuleEvent {
        id: raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
        dataver: 1,
    };
    SUBSCRIBED.store(on, Ordering::Relaxed);
    if !on {
        // Unsubscribing pairs with a subscription: Redis 7.0 would add an
        // empty one for an event never subscribed.
        raw::subscribe_to_server_event(ctx, role_changes, None);
        return None;
    }
    raw::subscribe_to_server_event(ctx, role_changes, Some(on_role_change));
    // SAFETY: API pointers are set at module load.
    let flags = unsafe { raw::RedisModule_GetContextFlags }?;
    // SAFETY: `ctx` lives as long as the process.
    Some(unsafe { flags(ctx) } as u32 & raw::REDISMODULE_CTX_FLAGS_SLAVE != 0)
}

extern "C" fn on_role_change(_: *mut raw::RedisModuleCtx, _: raw::RedisModuleEvent, subevent: u64, _: *mut c_void) {
    if let Some(hooks) = HOOKS.get() {
        let replica = subevent == raw::REDISMODULE_EVENT_REPLROLECHANGED_NOW_REPLICA;
        guard::catch("a role change", || (hooks.fencing.role_changed)(replica));
    }
}

extern "C" fn on_command(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    let Some(hooks) = HOOKS.get() else {
        return;
    };
    // SAFETY: Redis calls the filter with a filter context valid for this call.
    let Some(args) = (unsafe { Args::of(fctx) }) else {
        return;
    };
    guard::catch("the command filter", || rewrite(args, hooks));
}

/// The filter context's arguments, as Redis's API gives them, for the
/// filter's call only.
struct Args {
    fctx: *mut raw::RedisModuleCommandFilterCtx,
    count: unsafe extern "C" fn(*mut raw::RedisModuleCommandFilterCtx) -> c_int,
    get: unsafe extern "C" fn(*mut raw::RedisModuleCommandFilterCtx, c_int) -> *mut raw::RedisModuleString,
    replace: unsafe extern "C" fn(*mut raw::RedisModuleCommandFilterCtx, c_int, *mut raw::RedisModuleString) -> c_int,
}

impl Args {
    /// # Safety
    /// `fctx` is the filter context of the current call.
    unsafe fn of(fctx: *mut raw::RedisModuleCommandFilterCtx) -> Option<Args> {
        if fctx.is_null() {
            return None;
        }
        // SAFETY: API pointers are set at module load.
        let (count, get, replace) = unsafe {
            (
                raw::RedisModule_CommandFilterArgsCount?,
                raw::RedisModule_CommandFilterArgGet?,
                raw::RedisModule_CommandFilterArgReplace?,
            )
        };
        Some(Args {
            fctx,
            count,
            get,
            replace,
        })
    }

    fn len(&self) -> usize {
        // SAFETY: `fctx` is valid for this call (`of`).
        usize::try_from(unsafe { (self.count)(self.fctx) }).unwrap_or(0)
    }

    /// Argument `pos`; borrowed from `self`, so no replacing while it is held.
    fn get(&self, pos: usize) -> Option<&[u8]> {
        let pos = c_int::try_from(pos).ok()?;
        // SAFETY: `fctx` is valid for this call; Redis returns NULL past the end.
        let s = unsafe { (self.get)(self.fctx, pos) };
        // A non-NULL argument is a live string of this command.
        (!s.is_null()).then(|| RedisString::string_as_slice(s))
    }

    /// Frees the argument at `pos`: `&mut` so that no borrowed one outlives it.
    fn replace(&mut self, pos: usize, with: &str) {
        let (Ok(pos), Some(with)) = (c_int::try_from(pos), OwnedString::new(with.as_bytes())) else {
            return;
        };
        // SAFETY: `fctx` is valid for this call (`of`); Redis takes
        // ownership of the new string (of no context, so no context frees it).
        unsafe { (self.replace)(self.fctx, pos, with.into_raw().as_ptr()) };
    }
}

/// Swaps secrets for placeholders, then a fenced command for its
/// replacement, as the hooks say. `Args` is all it touches of Redis: what
/// it relies on, a live filter context, `Args::of` requires.
fn rewrite(mut args: Args, hooks: &Hooks) {
    let engaged = (hooks.fencing.engaged)();
    let may_hold_secrets = args.len() >= hooks.secrets.min_args;
    if !engaged && !may_hold_secrets {
        return;
    }
    let Some(name) = args.get(0) else { return };
    if may_hold_secrets && (hooks.secrets.may_hold)(name) {
        hide_secrets(&mut args, &hooks.secrets);
    }
    if !engaged {
        return;
    }
    let Some(name) = args.get(0) else { return };
    let first = if args.len() > 1 { args.get(1) } else { None };
    if let Some(with) = (hooks.fencing.replacement)(name, first) {
        args.replace(0, with);
    }
}

fn hide_secrets(args: &mut Args, secrets: &Secrets) {
    let placeholders: Vec<(usize, String)> = {
        let all: Vec<&[u8]> = (0..args.len()).map_while(|pos| args.get(pos)).collect();
        (secrets.positions)(&all)
            .into_iter()
            .filter_map(|pos| all.get(pos).map(|secret| (pos, (secrets.hide)(secret))))
            .collect()
    };
    for (pos, placeholder) in placeholders {
        args.replace(pos, &placeholder);
    }
}
