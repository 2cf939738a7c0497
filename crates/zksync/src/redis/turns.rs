//! The apply thread and the main thread take turns with the Redis lock.
//!
//! A mutex does not hand itself over: when the apply thread releases the
//! lock and asks for it again for its next batch, it gets it back before the
//! woken main thread runs, and a client waits through batch after batch of a
//! large sync. So every release wakes the event loop with a callback that
//! marks the main thread's turn, and the apply thread takes the lock again
//! only once that turn has come (or `MAX_WAIT` has passed): between two
//! holds, Redis serves one event-loop iteration.

use crate::ffi::lock::wake_event_loop_then;
use once_cell::sync::OnceCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// The longest the apply thread waits for a turn: the main thread may be
/// in a long command, and then the lock itself makes it wait anyway.
const MAX_WAIT: Duration = Duration::from_millis(5);

/// Releases posted by the apply thread and turns the main thread has taken.
struct Turns {
    posted: AtomicU64,
    taken: AtomicU64,
    /// The apply thread is parked for a turn. (Unparking it otherwise would
    /// wake it spuriously where it waits for its next update: a futex wake
    /// on the main thread per update.)
    waiting: AtomicBool,
    apply_thread: OnceCell<Thread>,
}

/// A static: the main thread takes its turn in an event-loop callback Redis
/// calls without a pointer of ours.
static TURNS: Turns = Turns {
    posted: AtomicU64::new(0),
    taken: AtomicU64::new(0),
    waiting: AtomicBool::new(false),
    apply_thread: OnceCell::new(),
};

/// Called by the apply thread after each release of the lock: wakes the
/// event loop, which runs `then` and marks its turn.
pub fn released(then: Option<Box<dyn FnOnce() + Send>>) {
    let _ = TURNS.apply_thread.get_or_init(std::thread::current);
    let turn = TURNS.posted.fetch_add(1, Ordering::AcqRel) + 1;
    wake_event_loop_then(Box::new(move || {
        if let Some(then) = then {
            then();
        }
        TURNS.taken.fetch_max(turn, Ordering::SeqCst);
        if TURNS.waiting.load(Ordering::SeqCst) {
            if let Some(apply) = TURNS.apply_thread.get() {
                apply.unpark();
            }
        }
    }));
}

/// Called by the apply thread before it takes the lock: waits until the
/// main thread has had its turn since the last release.
pub fn await_turn() {
    let posted = TURNS.posted.load(Ordering::Acquire);
    if TURNS.taken.load(Ordering::SeqCst) >= posted {
        return;
    }
    let deadline = Instant::now() + MAX_WAIT;
    // Set before the check below, so that a turn taken after the check
    // sees it and unparks.
    TURNS.waiting.store(true, Ordering::SeqCst);
    while TURNS.taken.load(Ordering::SeqCst) < posted {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::park_timeout(deadline - now);
    }
    TURNS.waiting.store(false, Ordering::SeqCst);
}
