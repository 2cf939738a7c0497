//! zksync: a Redis module that makes a Redis server a ZooKeeper citizen.
//!
//! This file only wires the module into Redis: commands, configs, the INFO
//! section, the start of the threads, the serverCron tick, the exit. See
//! docs/architecture.md for the architecture.

// Every unsafe block says why it is sound, and an unsafe fn's body is no
// unsafe block: each operation in it needs its own, with its reason.
#![warn(clippy::undocumented_unsafe_blocks)]
#![deny(unsafe_op_in_unsafe_fn)]

mod commands;
mod config;
mod ffi;
mod latency;
mod redis;
mod secret;
mod session;
mod shared;
mod status;
mod tls;

use redis_module::{redis_module, Context, ContextFlags, InfoContext, RedisResult, RedisString, Status};
use session::Control;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zksync_core::settings::Settings;

/// Redis's allocator inside redis-server (module memory counts in INFO); the
/// system one for unit tests, which run outside Redis.
#[cfg(not(test))]
type Allocator = redis_module::alloc::RedisAlloc;
#[cfg(test)]
type Allocator = std::alloc::System;

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    ffi::guard::install_hook();
    let loaded = ffi::guard::catch("module load", || {
        redis::cluster::detect(ctx);
        ffi::config::load(ctx, args, on_config_changed)?;
        let hooks = ffi::filter::Hooks {
            fencing: redis::fence::hooks(),
            secrets: secret::hooks(),
        };
        ffi::filter::init(ctx, hooks)?;
        let settings = publish_settings();
        redis::fence::install(ctx, settings.group.is_some());
        Ok(())
    });
    match loaded.unwrap_or_else(|| Err("internal error, see above".to_string())) {
        Ok(()) => {
            // Sentinel clients ask group members as Sentinels. Redis has a
            // SENTINEL command only in sentinel mode, where zksync has no use.
            let sentinel = command_handler!("sentinel", commands::sentinel::sentinel);
            ffi::commands::register_optional(ctx, "sentinel", "readonly fast", sentinel);
            ffi::events::on_cron(ctx, cron);
            ffi::events::on_master_link_down(ctx, || {
                session::send(Control::MasterLinkDown);
            });
            Status::Ok
        }
        Err(e) => {
            ffi::log::warning(&e);
            Status::Err
        }
    }
}

/// Whether the threads were started; until then the module can be unloaded.
/// (The statics here are read by serverCron and MODULE UNLOAD, which Redis
/// calls without a pointer of ours.)
static STARTED: AtomicBool = AtomicBool::new(false);

/// Whether the threads run (they may fail to start: the module is inert then).
static RUNNING: AtomicBool = AtomicBool::new(false);

/// At every serverCron; the first one starts the threads, not `init`:
/// Redis may unload the module right after a successful OnLoad (a MODULE
/// LOADEX naming a config zksync does not have), and it can only if nothing
/// was started. Every one then runs `tick`.
fn cron(ctx: &Context) {
    redis::HEARTBEAT.set(Instant::now());
    if !STARTED.swap(true, Ordering::Relaxed) {
        match redis::apply::start().and_then(|updates| session::start(config::settings(), updates)) {
            Ok(()) => {
                REPLICA.store(ctx.get_flags().contains(ContextFlags::SLAVE), Ordering::Relaxed);
                close_session_at_exit();
                RUNNING.store(true, Ordering::Relaxed);
            }
            // A started apply thread then ends: its channel's sender is gone.
            Err(e) => ffi::log::warning(&format!("{e}; the module is inert")),
        }
    }
    if RUNNING.load(Ordering::Relaxed) {
        tick(ctx);
    }
}

/// Once started, the session and apply threads, the tokio runtime and the
/// client library's own I/O thread cannot be torn down cleanly: refuse
/// MODULE UNLOAD.
fn deinit(_ctx: &Context) -> Status {
    if !STARTED.load(Ordering::Relaxed) {
        return Status::Ok;
    }
    ffi::log::warning("cannot be unloaded: its ZooKeeper threads would outlive it. Restart redis-server instead.");
    Status::Err
}

/// Any config change: the session thread takes the new snapshot (reconnecting
/// if the connection settings moved).
fn on_config_changed() {
    ffi::guard::catch("a config change", || {
        let _ = session::send(Control::Settings(publish_settings()));
    });
}

/// The configs as of now, published to the main thread and the apply
/// thread: commands check paths against the roots and answer for the
/// group, fencing follows `zksync.group`, the apply thread takes the stream.
fn publish_settings() -> Settings {
    shared::ROOTS.publish(config::roots());
    let settings = config::settings();
    match &settings.stream {
        Some(stream) => shared::STREAM.publish(stream.clone()),
        None => shared::STREAM.clear(),
    }
    redis::fence::set_active(settings.group.is_some());
    shared::SETTINGS.publish(settings.clone());
    settings
}

/// INFO zksync.
fn info(ctx: &InfoContext, for_crash_report: bool) {
    ffi::guard::catch("INFO", || commands::status::info(ctx, for_crash_report));
}

/// The role `tick` saw last (set at start).
static REPLICA: AtomicBool = AtomicBool::new(false);

/// - A role change (REPLICAOF by the group or by hand): a server promoted to
///   master rewrites its mirror from ZooKeeper, as a replica it took whatever
///   its master replicated; the group learns the new role.
/// - A master with replicas that is asked to shut down first waits for them,
///   writes paused, and INFO shows `shutdown_in_milliseconds` meanwhile: the
///   group hands the leadership over during that wait.
/// - In a group, the load figures are sampled every `zksync.load-interval`
///   (on the main thread, where they live), the first time at once (at start
///   or on joining): the group needs this server's port for its id.
fn tick(ctx: &Context) {
    static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);
    thread_local!(static NEXT_SAMPLE: Cell<Option<Instant>> = const { Cell::new(None) });
    let sample_due = NEXT_SAMPLE.with(|next| {
        if !redis::fence::in_group() {
            // Outside a group nothing is sampled; joining one samples at once.
            next.set(None);
            return false;
        }
        let now = Instant::now();
        let due = next.get().is_none_or(|at| now >= at);
        if due {
            next.set(Some(now + config::load_interval()));
        }
        due
    });
    if sample_due {
        sample(ctx);
    }
    let replica = ctx.get_flags().contains(ContextFlags::SLAVE);
    if REPLICA.swap(replica, Ordering::Relaxed) != replica {
        if !replica {
            let _ = session::send(Control::Promoted);
        }
        sample(ctx);
    }
    if redis::cluster::enabled() && redis::cluster::resync_due(ctx) && !replica && redis::cluster::ask_resync() {
        let _ = session::send(Control::SlotsGained);
    }
    if replica || !redis::fence::in_group() {
        return;
    }
    let shutting_down = ctx.server_info("server").field("shutdown_in_milliseconds").is_some();
    if SHUTTING_DOWN.swap(shutting_down, Ordering::Relaxed) != shutting_down {
        session::send(Control::ShuttingDown(
            shutting_down,
            redis::sample::on_main_thread(ctx, config::load_interval()),
        ));
    }
}

fn sample(ctx: &Context) {
    if redis::fence::in_group() {
        redis::fence::learn_write_commands(ctx);
        let sample = redis::sample::on_main_thread(ctx, config::load_interval());
        let _ = session::send(Control::Sample(sample));
        if let Some(credentials) = redis::credentials::if_changed(ctx) {
            session::failsafe::send(session::failsafe::Input::Credentials(credentials));
        }
    }
}

/// When redis-server exits the session is closed, so that this member's
/// znode goes at once.
fn close_session_at_exit() {
    ffi::events::at_exit(|| session::shutdown(Duration::from_secs(1)));
}

redis_module! {
    name: "zksync",
    version: 1,
    allocator: (Allocator, Allocator {}),
    data_types: [],
    init: init,
    deinit: deinit,
    info: info,
    // Flags as Redis's own counterparts have them; the last item is the ACL
    // categories, declared where the server supports them (Redis 7.2+,
    // Valkey). A command without one omits the item: redis-module asserts
    // that a given one is not empty, which aborts the server at load.
    commands: [
        ["zksync.pull", guarded!("zksync.pull", commands::mirror::pull), "write deny-oom", 0, 0, 0, "", "write"],
        ["zksync.push", guarded!("zksync.push", commands::mirror::push), "write deny-oom", 0, 0, 0, "", "write"],
        ["zksync.delete", guarded!("zksync.delete", commands::mirror::delete), "write", 0, 0, 0, "", "write"],
        ["zksync.stat", guarded!("zksync.stat", commands::mirror::stat), "readonly fast", 0, 0, 0, "", "read"],
        ["zksync.ls", guarded!("zksync.ls", commands::mirror::ls), "readonly", 0, 0, 0, "", "read"],
        ["zksync.status", guarded!("zksync.status", commands::status::status), "readonly fast", 0, 0, 0, "", "dangerous"],
        ["zksync.load", guarded!("zksync.load", commands::load::load), "readonly", 0, 0, 0, "", "read"],
        ["zksync.leader", guarded!("zksync.leader", commands::failover::leader), "readonly fast", 0, 0, 0, "", "read"],
        ["zksync.failover", guarded!("zksync.failover", commands::failover::failover), "admin", 0, 0, 0, "", "admin dangerous"],
        ["zksync.failsafe", guarded!("zksync.failsafe", commands::failsafe::failsafe), "admin deny-script", 0, 0, 0, "", "admin dangerous"],
        ["zksync.lock", guarded!("zksync.lock", commands::lock::lock), "readonly deny-script", 0, 0, 0, "", "blocking"],
        ["zksync.unlock", guarded!("zksync.unlock", commands::lock::unlock), "readonly fast", 0, 0, 0, "", "fast"],
        ["zksync.check", guarded!("zksync.check", commands::lock::check), "readonly fast", 0, 0, 0, "", "fast"],
        ["zksync.locks", guarded!("zksync.locks", commands::lock::locks), "readonly", 0, 0, 0, ""],
        ["zksync.fenced", guarded!("zksync.fenced", redis::fence::refuse), "fast", 0, 0, 0, "", "write"],
        ["zksync.fenced-sync", guarded!("zksync.fenced-sync", redis::fence::refuse_sync), "fast", 0, 0, 0, "", "admin dangerous"],
    ],
}
