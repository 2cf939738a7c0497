//! The one way zksync writes to the Redis log: every line starts `zksync: `.
//! Callable from any thread (Redis logs with no context there).
//!
//! Not through redis-module's logging, which hands the message to Redis as
//! the printf format (a `%s` in a znode path would read garbage) and panics
//! on a NUL byte.

use redis_module::raw;
use std::ffi::CString;
use zksync_core::text::quote;

pub fn warning(message: &str) {
    write(c"warning", message);
}

pub fn notice(message: &str) {
    write(c"notice", message);
}

/// Routine events that may come many times a second (`loglevel verbose`).
pub fn verbose(message: &str) {
    write(c"verbose", message);
}

fn write(level: &std::ffi::CStr, message: &str) {
    // Quoted, the line holds no NUL: the conversion cannot fail.
    let Ok(line) = CString::new(format!("zksync: {}", quote(message))) else {
        return;
    };
    // SAFETY: API pointers are set at module load (and not at all in unit
    // tests, which run outside Redis: those lines go to stderr); the format
    // is a literal "%s" with one C string argument.
    match unsafe { raw::RedisModule_Log } {
        // SAFETY: as above; Redis copies the line before returning.
        Some(log) => unsafe { log(std::ptr::null_mut(), level.as_ptr(), c"%s".as_ptr(), line.as_ptr()) },
        None => eprintln!("{}", line.to_string_lossy()),
    }
}
