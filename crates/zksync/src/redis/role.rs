//! The role thread: carries out on the Redis side what the session thread
//! decided for the group (promote, follow, pause for a switchover, announce),
//! then hands back a fresh sample of this server.
//!
//! Its own thread, not the apply thread's queue: mirror writes wait while
//! clients are paused, and the action that ends a switchover's pause must
//! not wait behind them.

use super::sample::off_main_thread;
use crate::ffi::lock::{thread_context, wake_event_loop, Locked};
use crate::ffi::{guard, log};
use crossbeam_channel::Sender;
use once_cell::sync::OnceCell;
use redis_module::{raw, Context, ContextFlags};
use std::time::Duration;
use zksync_core::group::election::Action;
use zksync_core::group::load;
use zksync_core::group::split_addr;

/// The role thread's inbox, made on first use (`request`): a server that
/// never joins a group never starts the thread.
static ACTIONS: OnceCell<Sender<Action>> = OnceCell::new();

/// Where a carried-out action is reported, with a fresh sample: the session
/// thread, which registers it at its start (so this thread depends on
/// nothing of the session).
pub type Report = fn(Action, load::Sample);
static REPORT: OnceCell<Report> = OnceCell::new();

pub fn report_to(report: Report) {
    let _ = REPORT.set(report);
}

fn start() -> Result<Sender<Action>, String> {
    let (tx, rx) = crossbeam_channel::unbounded::<Action>();
    std::thread::Builder::new()
        .name("zksync-role".into())
        .spawn(move || {
            // One context for the thread's life, locked for each action.
            let Some(ctx) = thread_context() else {
                log::warning("the role thread has no Redis context: the group's actions are dropped");
                return;
            };
            while let Ok(action) = rx.recv() {
                guard::catch("the role thread", || carry_out(ctx, action));
            }
        })
        .map_err(|e| format!("cannot start the role thread: {e}"))?;
    Ok(tx)
}

/// Runs `action` once Redis is not loading, and reports it with a fresh sample.
fn carry_out(ctx: *mut raw::RedisModuleCtx, action: Action) {
    let (outcome, sample) = loop {
        let guard = Locked::new(ctx);
        if guard.get_flags().contains(ContextFlags::LOADING) {
            drop(guard);
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let outcome = execute(&guard, &action);
        break (outcome, off_main_thread(&guard));
    };
    wake_event_loop();
    if let Err(why) = &outcome {
        log::warning(&format!("{action:?} failed: {why}"));
    }
    if let Some(report) = REPORT.get() {
        report(action, sample);
    }
}

/// Hands `action` to the role thread, started on first use: a server that
/// never joins a group never runs it (each thread costs Redis's cron a
/// jemalloc arena to walk).
pub fn request(action: Action) {
    match ACTIONS.get_or_try_init(start) {
        Ok(tx) => {
            let _ = tx.send(action);
        }
        Err(e) => log::warning(&format!("{action:?} dropped: {e}")),
    }
}

/// Runs `action` under the Redis lock.
fn execute(ctx: &Context, action: &Action) -> Result<(), String> {
    let replica = ctx.get_flags().contains(ContextFlags::SLAVE);
    let call = |args: &[&str]| ctx.call(args[0], &args[1..]).map(|_| ()).map_err(|e| e.to_string());
    match action {
        Action::Promote if replica => {
            log::notice("promoted to master by the group");
            call(&["REPLICAOF", "NO", "ONE"])
        }
        Action::Promote => Ok(()),
        Action::Follow { addr, demote } => {
            let (host, port) = split_addr(addr).ok_or_else(|| format!("bad leader address {addr}"))?;
            if replica && off_main_thread(ctx).master.as_deref() == Some(addr.as_str()) {
                return Ok(());
            }
            log::notice(&format!("following the group's master {addr}"));
            call(&["REPLICAOF", host, &port.to_string()])?;
            if !replica {
                if *demote {
                    call(&["CLIENT", "KILL", "TYPE", "normal"])?;
                }
                call(&["CLIENT", "UNPAUSE"])?;
            }
            Ok(())
        }
        Action::Pause(ms) => call(&["CLIENT", "PAUSE", &ms.to_string(), "WRITE"]),
        Action::Unpause => call(&["CLIENT", "UNPAUSE"]),
        Action::Announce(message) => call(&["PUBLISH", "+switch-master", message]),
        Action::Disconnect => call(&["CLIENT", "KILL", "TYPE", "normal"]),
        Action::Sample => Ok(()),
    }
}
