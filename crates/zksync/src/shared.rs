//! What Redis's callbacks share with the module's threads. Command
//! handlers, config setters and server events are plain functions Redis
//! calls without a pointer of ours, so what they read lives here, each value
//! with the one side that writes it.

use once_cell::sync::Lazy;
use std::sync::{Mutex, MutexGuard};
use zksync_core::access::Roots;
use zksync_core::group::view::View;
use zksync_core::lease::Deadline;
use zksync_core::lock::table::Table;
use zksync_core::settings::{Settings, StreamSpec};
use zksync_core::snapshot::Snapshot;

/// The configs as of the last change: the one answer to which group this
/// server is in (the fencing filter keeps a lock-free copy of whether).
pub static SETTINGS: Snapshot<Settings> = Snapshot::empty();

/// The group this server is in, if any.
pub fn group() -> Option<String> {
    SETTINGS.get()?.group.as_ref().map(|g| g.name.clone())
}

/// The roots commands may act under, made from the same configs as
/// `SETTINGS` (with `zksync.allow`): STAT and LS consult them on every call.
pub static ROOTS: Snapshot<Roots> = Snapshot::empty();

/// The group's table as this member sees it: replaced whole by the session
/// thread on every change of the members directory, read by ZKSYNC.LOAD.
pub static VIEW: Snapshot<View> = Snapshot::empty();

/// `SETTINGS`'s change stream, kept apart so that the apply thread takes
/// it once per hold of the lock without copying the settings.
pub static STREAM: Snapshot<StreamSpec> = Snapshot::empty();

static LOCKS: Lazy<Mutex<Table>> = Lazy::new(Default::default);

/// The locks and waiters of this server (main thread and session thread).
pub fn locks() -> MutexGuard<'static, Table> {
    LOCKS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Until when this server's session was last confirmed: CHECK vouches for
/// a lock only within it.
pub static VOUCHED: Lazy<Deadline> = Lazy::new(Deadline::none);
