//! The Redis lock as a thread of ours holds it, and the wake-up that makes
//! what it wrote leave at once.

use redis_module::{raw, Context};
use std::time::{Duration, Instant};

/// A detached thread-safe context for a thread of ours, for its whole life
/// (never freed: such threads live as long as the process).
pub fn thread_context() -> Option<*mut raw::RedisModuleCtx> {
    // SAFETY: API pointers are set at module load, before our threads start.
    let create = unsafe { raw::RedisModule_GetThreadSafeContext }?;
    // SAFETY: a NULL blocked client asks for a detached context.
    let ctx = unsafe { create(std::ptr::null_mut()) };
    (!ctx.is_null()).then_some(ctx)
}

/// The Redis lock, held through one thread-safe context that lives as long
/// as its thread. (redis-module 2.0.8's `ThreadSafeContext::lock` creates
/// and frees a context, with a client, on every lock: a tenth of what an
/// update costs.)
pub struct Locked {
    ctx: Context,
    since: Instant,
}

impl Locked {
    /// Waits for the lock. `ctx` must be a thread-safe context that outlives
    /// the guard.
    pub fn new(ctx: *mut raw::RedisModuleCtx) -> Locked {
        // SAFETY: API pointers are set at module load.
        if let Some(lock) = unsafe { raw::RedisModule_ThreadSafeContextLock } {
            // SAFETY: `ctx` is a thread-safe context, alive (see above).
            unsafe { lock(ctx) };
        }
        Locked {
            ctx: Context::new(ctx),
            since: Instant::now(),
        }
    }

    /// How long the lock has been held.
    pub fn held(&self) -> Duration {
        self.since.elapsed()
    }
}

impl std::ops::Deref for Locked {
    type Target = Context;
    fn deref(&self) -> &Context {
        &self.ctx
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        // SAFETY: API pointers are set at module load.
        if let Some(unlock) = unsafe { raw::RedisModule_ThreadSafeContextUnlock } {
            // SAFETY: this guard locked the same live context in `new`.
            unsafe { unlock(self.ctx.ctx) };
        }
    }
}

/// Wakes Redis's event loop from any thread (else replies and notifications
/// wait for the event loop's next wake-up, serverCron's: up to 100 ms at hz 10).
pub fn wake_event_loop() {
    extern "C" fn nothing(_: *mut std::os::raw::c_void) {}
    // SAFETY: the callback ignores its NULL argument and lives as long as the module.
    unsafe { add_one_shot(nothing, std::ptr::null_mut()) };
}

/// Wakes Redis's event loop and runs `then` on the main thread as it wakes
/// (a panic in it is logged, not fatal).
pub fn wake_event_loop_then(then: Box<dyn FnOnce() + Send>) {
    extern "C" fn run(data: *mut std::os::raw::c_void) {
        // SAFETY: `data` is the box leaked below, passed to this one call only.
        let then = unsafe { Box::from_raw(data.cast::<Box<dyn FnOnce() + Send>>()) };
        crate::ffi::guard::catch("a main-thread callback", then);
    }
    let data = Box::into_raw(Box::new(then)).cast();
    // SAFETY: `run` takes back the box it is given, once.
    unsafe { add_one_shot(run, data) };
}

/// # Safety
/// `callback` must accept `data`, on the main thread, once.
unsafe fn add_one_shot(callback: extern "C" fn(*mut std::os::raw::c_void), data: *mut std::os::raw::c_void) {
    // SAFETY: API pointers are set at module load.
    if let Some(add) = unsafe { raw::RedisModule_EventLoopAddOneShot } {
        // SAFETY: Redis may call this from any thread and runs `callback`
        // with `data` once on the main thread (the caller's contract).
        unsafe { add(Some(callback), data) };
    }
}
