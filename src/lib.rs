//! zksync: a Redis module that makes a Redis server a ZooKeeper citizen.
//!
//! This file only wires the module into Redis: commands, configs, the INFO
//! section, the start of the threads, a 100 ms timer, the exit. See README.md
//! for the architecture.

mod apply;
mod commands;
mod config;
mod error;
mod group;
mod keyspace;
mod mirror;
mod path;
mod reply;
mod session;
mod status;

use commands::status::info;
use config::{
    FailoverMode, Settings, ANNOUNCE, AUTH, DEFAULT_FAILOVER_MAX_LAG, DEFAULT_LOAD_INTERVAL_MS, DEFAULT_SERVERS,
    DEFAULT_SESSION_TIMEOUT_MS, FAILOVER, FAILOVER_MAX_LAG, GROUP, LOAD_INTERVAL_MS, MIRRORS, SERVERS,
    SESSION_TIMEOUT_MS,
};
use redis_module::configuration::{
    get_enum_default_config_value, get_i64_default_config_value, get_string_default_config_value,
    register_enum_configuration, register_i64_configuration, register_string_configuration, ConfigurationContext,
    ConfigurationFlags,
};
use redis_module::{
    raw, redis_module, Context, ContextFlags, InfoContext, RedisError, RedisResult, RedisString, Status,
};
use session::Control;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Redis's allocator inside redis-server (module memory counts in INFO); the
/// system one for unit tests, which run outside Redis.
#[cfg(not(test))]
type Allocator = redis_module::alloc::RedisAlloc;
#[cfg(test)]
type Allocator = std::alloc::System;

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    match load_configs(ctx, args).and_then(|()| group::fence::install(ctx, !GROUP.get().is_empty())) {
        Ok(()) => {
            subscribe(ctx, raw::REDISMODULE_EVENT_CRON_LOOP, Some(on_first_cron));
            Status::Ok
        }
        Err(e) => {
            ctx.log_warning(&format!("zksync: {e}"));
            Status::Err
        }
    }
}

/// Whether the threads were started; until then the module can be unloaded.
static STARTED: AtomicBool = AtomicBool::new(false);

/// The threads and timers start at the first cron tick after load, not in
/// `init`: Redis may unload the module right after a successful OnLoad (a
/// MODULE LOADEX naming a config zksync does not have), and it can only if
/// nothing was started. Redis drops the subscription itself on unload.
unsafe extern "C" fn on_first_cron(ctx: *mut raw::RedisModuleCtx, _: raw::RedisModuleEvent, _: u64, _: *mut c_void) {
    if STARTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let ctx = Context::new(ctx);
    match apply::start().and_then(|updates| session::start(Settings::current(), updates)) {
        Ok(()) => {
            schedule_sample(&ctx, true);
            REPLICA.store(ctx.get_flags().contains(ContextFlags::SLAVE), Ordering::Relaxed);
            schedule_tick(&ctx);
            close_session_at_exit();
        }
        Err(e) => ctx.log_warning(&format!("zksync: {e}; the module is inert")),
    }
}

fn subscribe(ctx: &Context, id: u64, callback: raw::RedisModuleEventCallback) {
    raw::subscribe_to_server_event(ctx.ctx, raw::RedisModuleEvent { id, dataver: 1 }, callback);
}

/// Registers the configs and has Redis set them: from the config file, the
/// command line or MODULE LOADEX, else from the module's arguments or the
/// defaults. `Err` if Redis refused a value (it logs which and why): the
/// `configurations` of `redis_module!` would ignore that and call `init`.
fn load_configs(ctx: &Context, args: &[RedisString]) -> Result<(), String> {
    use ConfigurationFlags as Flags;
    // SAFETY: the API pointers are set at module load.
    let load = unsafe { raw::RedisModule_LoadConfigs }.ok_or("module configs need Redis 7.0 or later")?;
    let arg = |name: &str, e: RedisError| format!("module argument {name}: {e}");
    #[rustfmt::skip]
    let numbers = [
        ("session-timeout", &SESSION_TIMEOUT_MS, DEFAULT_SESSION_TIMEOUT_MS, 500, 600_000, Flags::DEFAULT),
        ("failover-max-lag", &FAILOVER_MAX_LAG, DEFAULT_FAILOVER_MAX_LAG, 0, i64::MAX, Flags::DEFAULT | Flags::MEMORY),
        ("load-interval", &LOAD_INTERVAL_MS, DEFAULT_LOAD_INTERVAL_MS, 100, 3_600_000, Flags::DEFAULT),
    ];
    for (name, value, default, min, max, flags) in numbers {
        let default = get_i64_default_config_value(args, name, default).map_err(|e| arg(name, e))?;
        register_i64_configuration(ctx, name, value, default, min, max, flags, on_changed());
    }
    let strings = [
        ("servers", &SERVERS, DEFAULT_SERVERS, Flags::DEFAULT),
        ("auth", &AUTH, "", Flags::DEFAULT | Flags::SENSITIVE),
        ("mirrors", &MIRRORS, "", Flags::DEFAULT),
        ("group", &GROUP, "", Flags::DEFAULT),
        ("announce", &ANNOUNCE, "", Flags::DEFAULT),
    ];
    for (name, value, default, flags) in strings {
        let default = get_string_default_config_value(args, name, default).map_err(|e| arg(name, e))?;
        register_string_configuration(ctx, name, value, default, flags, on_changed());
    }
    let failover =
        get_enum_default_config_value(args, "failover", FailoverMode::auto).map_err(|e| arg("failover", e))?;
    register_enum_configuration(ctx, "failover", &FAILOVER, failover, Flags::DEFAULT, on_changed());
    // SAFETY: called from RedisModule_OnLoad, once the configs are registered.
    if unsafe { load(ctx.ctx) } == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err("a config was refused, see above".to_string())
    }
}

/// Once started, the session and apply threads, the tokio runtime and the
/// client library's own I/O thread cannot be torn down cleanly: refuse
/// MODULE UNLOAD.
fn deinit(ctx: &Context) -> Status {
    if !STARTED.load(Ordering::Relaxed) {
        return Status::Ok;
    }
    ctx.log_warning("zksync cannot be unloaded: its ZooKeeper threads would outlive it. Restart redis-server instead.");
    Status::Err
}

type OnChanged<T> = Option<Box<dyn Fn(&ConfigurationContext, &str, &'static T)>>;

fn on_changed<T>() -> OnChanged<T> {
    Some(Box::new(on_config_changed::<T>))
}

/// Any config change: the session thread takes the new snapshot (reconnecting
/// if the connection settings moved); fencing follows `zksync.group`.
fn on_config_changed<T>(_ctx: &ConfigurationContext, _name: &str, _value: &'static T) {
    let settings = Settings::current();
    group::fence::set_active(settings.group.is_some());
    let _ = session::send(Control::Settings(settings));
}

/// How often `tick` runs: as often as serverCron at the default hz.
const TICK: Duration = Duration::from_millis(100);

/// The role `tick` saw last (set at load).
static REPLICA: AtomicBool = AtomicBool::new(false);

/// Runs `tick` every `TICK` on the main thread. A Redis timer, not server
/// event subscriptions (role change, cron): Redis walks every subscription
/// twice per event-loop iteration, ~1% of a busy server (bench/overhead).
fn schedule_tick(ctx: &Context) {
    ctx.create_timer(
        TICK,
        |ctx: &Context, ()| {
            tick(ctx);
            schedule_tick(ctx);
        },
        (),
    );
}

/// - A role change (REPLICAOF by the group or by hand): a server promoted to
///   master rewrites its mirror from ZooKeeper, as a replica it took whatever
///   its master replicated; the group learns the new role.
/// - A master with replicas that is asked to shut down first waits for them,
///   writes paused, and INFO shows `shutdown_in_milliseconds` meanwhile: the
///   group hands the leadership over during that wait.
fn tick(ctx: &Context) {
    static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
    static FIRST: AtomicBool = AtomicBool::new(true);
    if FIRST.swap(false, Ordering::Relaxed) {
        // Out of `on_first_cron` itself: Redis 7.0 reads the subscription
        // again after its callback returns.
        subscribe(ctx, raw::REDISMODULE_EVENT_CRON_LOOP, None);
    }
    let replica = ctx.get_flags().contains(ContextFlags::SLAVE);
    if REPLICA.swap(replica, Ordering::Relaxed) != replica {
        if !replica {
            let _ = session::send(Control::Promoted);
        }
        sample(ctx);
    }
    if replica || !group::fence::in_group() {
        return;
    }
    let shutting_down = ctx.server_info("server").field("shutdown_in_milliseconds").is_some();
    if SHUTTING_DOWN.swap(shutting_down, Ordering::Relaxed) != shutting_down {
        session::send(Control::ShuttingDown(shutting_down, group::load::sample(ctx)));
    }
}

/// Samples the load figures every `zksync.load-interval` (a Redis timer: the
/// main thread, where the figures live), the first time as soon as the event
/// loop runs: the group needs this server's port for its id.
fn schedule_sample(ctx: &Context, first: bool) {
    let delay = if first {
        Duration::from_millis(1)
    } else {
        config::load_interval()
    };
    ctx.create_timer(
        delay,
        |ctx: &Context, ()| {
            sample(ctx);
            schedule_sample(ctx, false);
        },
        (),
    );
}

fn sample(ctx: &Context) {
    if group::fence::in_group() {
        group::fence::learn_write_commands(ctx);
        let _ = session::send(Control::Sample(group::load::sample(ctx)));
    }
}

/// When redis-server exits the session is closed, so that this member's
/// znode goes at once. (At exit rather than on a shutdown subscription: see
/// `schedule_tick`. Forked children leave with `_exit`, which skips it.)
fn close_session_at_exit() {
    extern "C" {
        fn atexit(callback: extern "C" fn()) -> c_int;
    }
    extern "C" fn at_exit() {
        session::shutdown(Duration::from_secs(1));
    }
    // SAFETY: the module is never unloaded, so the callback stays mapped.
    unsafe { atexit(at_exit) };
}

redis_module! {
    name: "zksync",
    version: 1,
    allocator: (Allocator, Allocator {}),
    data_types: [],
    init: init,
    deinit: deinit,
    info: info,
    commands: [
        ["zksync.pull", commands::mirror::pull, "write deny-oom", 0, 0, 0, ""],
        ["zksync.push", commands::mirror::push, "write deny-oom", 0, 0, 0, ""],
        ["zksync.delete", commands::mirror::delete, "write", 0, 0, 0, ""],
        ["zksync.stat", commands::mirror::stat, "readonly fast", 0, 0, 0, ""],
        ["zksync.ls", commands::mirror::ls, "readonly", 0, 0, 0, ""],
        ["zksync.status", commands::status::status, "readonly fast", 0, 0, 0, ""],
        ["zksync.load", commands::load::load, "readonly", 0, 0, 0, ""],
        ["zksync.leader", commands::failover::leader, "readonly fast", 0, 0, 0, ""],
        ["zksync.failover", commands::failover::failover, "admin", 0, 0, 0, ""],
        ["zksync.fenced", group::fence::refuse, "fast", 0, 0, 0, ""],
        ["zksync.fenced-sync", group::fence::refuse_sync, "fast", 0, 0, 0, ""],
    ],
}
