//! zksync: a Redis module that makes a Redis server a ZooKeeper citizen.
//!
//! This file only wires the module into Redis: commands, configs, the INFO
//! section, server events. See README.md for the architecture.

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
    Settings, ANNOUNCE, AUTH, FAILOVER, FAILOVER_MAX_LAG, GROUP, LOAD_INTERVAL_MS, MIRRORS, SERVERS, SESSION_TIMEOUT_MS,
};
use redis_module::configuration::{ConfigurationContext, ConfigurationFlags};
use redis_module::server_events::ServerRole;
use redis_module::{raw, redis_module, Context, ContextFlags, InfoContext, RedisResult, RedisString, Status};
use redis_module_macros::{cron_event_handler, role_changed_event_handler};
use session::Control;
use status::STATUS;
use std::os::raw::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Redis's allocator inside redis-server (module memory counts in INFO); the
/// system one for unit tests, which run outside Redis.
#[cfg(not(test))]
type Allocator = redis_module::alloc::RedisAlloc;
#[cfg(test)]
type Allocator = std::alloc::System;

fn init(ctx: &Context, _args: &[RedisString]) -> Status {
    let started = group::fence::install(ctx, !GROUP.get().is_empty())
        .and_then(|()| group::role::start())
        .and_then(|()| apply::start())
        .and_then(|updates| session::start(Settings::current(), updates));
    match started {
        Ok(()) => {
            schedule_sample(ctx, true);
            subscribe_shutdown(ctx);
            Status::Ok
        }
        Err(e) => {
            ctx.log_warning(&format!("zksync: {e}"));
            Status::Err
        }
    }
}

/// The session and apply threads, the tokio runtime and the client library's
/// own I/O thread cannot be torn down cleanly: refuse MODULE UNLOAD.
fn deinit(ctx: &Context) -> Status {
    ctx.log_warning("zksync cannot be unloaded: its ZooKeeper threads would outlive it. Restart redis-server instead.");
    Status::Err
}

/// Any config change: the session thread takes the new snapshot (reconnecting
/// if the connection settings moved); fencing follows `zksync.group`.
fn on_config_changed<T>(_ctx: &ConfigurationContext, _name: &str, _value: &'static T) {
    let settings = Settings::current();
    group::fence::set_active(settings.group.is_some());
    let _ = session::send(Control::Settings(settings));
}

/// A server promoted to master rewrites its mirror from ZooKeeper: as a
/// replica it took whatever its master replicated. Its group learns the new
/// role at once.
#[role_changed_event_handler]
fn on_role_changed(ctx: &Context, role: ServerRole) {
    if role == ServerRole::Primary {
        let _ = session::send(Control::Promoted);
    }
    sample(ctx);
}

/// A master with replicas that is asked to shut down first waits for them,
/// writes paused, and INFO shows `shutdown_in_milliseconds` meanwhile: the
/// group hands the leadership over during that wait (checked every cron tick).
#[cron_event_handler]
fn on_cron(ctx: &Context, _hz: u64) {
    static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
    if STATUS.replica.load(Ordering::Relaxed) || !group::fence::in_group() {
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
    STATUS
        .replica
        .store(ctx.get_flags().contains(ContextFlags::SLAVE), Ordering::Relaxed);
    if group::fence::in_group() {
        group::fence::learn_write_commands(ctx);
        let _ = session::send(Control::Sample(group::load::sample(ctx)));
    }
}

/// On a clean shutdown the session is closed, so this member's znode goes at once.
fn subscribe_shutdown(ctx: &Context) {
    unsafe extern "C" fn on_shutdown(_: *mut raw::RedisModuleCtx, _: raw::RedisModuleEvent, _: u64, _: *mut c_void) {
        session::shutdown(Duration::from_secs(1));
    }
    let event = raw::RedisModuleEvent {
        id: raw::REDISMODULE_EVENT_SHUTDOWN,
        dataver: 1,
    };
    raw::subscribe_to_server_event(ctx.ctx, event, Some(on_shutdown));
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
    ],
    configurations: [
        i64: [
            ["session-timeout", &SESSION_TIMEOUT_MS, 6000, 500, 600_000, ConfigurationFlags::DEFAULT,
                Some(Box::new(on_config_changed::<_>))],
            ["failover-max-lag", &FAILOVER_MAX_LAG, 1048576, 0, i64::MAX,
                ConfigurationFlags::DEFAULT | ConfigurationFlags::MEMORY, Some(Box::new(on_config_changed::<_>))],
            ["load-interval", &LOAD_INTERVAL_MS, 1000, 100, 3_600_000, ConfigurationFlags::DEFAULT,
                Some(Box::new(on_config_changed::<_>))],
        ],
        string: [
            ["servers", &SERVERS, "127.0.0.1:2181", ConfigurationFlags::DEFAULT, Some(Box::new(on_config_changed::<_>))],
            ["auth", &AUTH, "", ConfigurationFlags::DEFAULT | ConfigurationFlags::SENSITIVE,
                Some(Box::new(on_config_changed::<_>))],
            ["mirrors", &MIRRORS, "", ConfigurationFlags::DEFAULT, Some(Box::new(on_config_changed::<_>))],
            ["group", &GROUP, "", ConfigurationFlags::DEFAULT, Some(Box::new(on_config_changed::<_>))],
            ["announce", &ANNOUNCE, "", ConfigurationFlags::DEFAULT, Some(Box::new(on_config_changed::<_>))],
        ],
        bool: [],
        enum: [
            ["failover", &FAILOVER, config::FailoverMode::auto, ConfigurationFlags::DEFAULT,
                Some(Box::new(on_config_changed::<_>))],
        ],
        module_args_as_configuration: true,
    ]
}
