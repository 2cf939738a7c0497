//! The one RedisModuleString zksync owns: made from any bytes, freed when
//! dropped. (redis-module's `RedisString::create` goes through a CString and
//! panics on a NUL byte: znode data, keys and user names are binary.)

use redis_module::{raw, RedisString};
use std::ptr::{self, NonNull};

/// A RedisModuleString of ours, with the context it was made in (NULL for
/// none), freed with that context on drop. Neither `Send` nor `Sync`: it is
/// made, used and freed where the Redis lock is held (the main thread, or a
/// thread of ours that holds it).
pub struct OwnedString {
    string: NonNull<raw::RedisModuleString>,
    ctx: *mut raw::RedisModuleCtx,
}

impl OwnedString {
    /// A copy of `bytes`, of no context: it lives until dropped, whatever
    /// context ends first, and no context's automatic memory knows of it.
    /// `None` if Redis cannot make it.
    pub fn new(bytes: &[u8]) -> Option<OwnedString> {
        // SAFETY: API pointers are set at module load, before anything of ours runs.
        let create = unsafe { raw::RedisModule_CreateString }?;
        // SAFETY: Redis copies `bytes.len()` bytes from a live slice; a NULL
        // context is allowed (the string is then ours to free).
        let string = unsafe { create(ptr::null_mut(), bytes.as_ptr().cast(), bytes.len()) };
        Some(OwnedString {
            string: NonNull::new(string)?,
            ctx: ptr::null_mut(),
        })
    }

    /// Takes ownership of a string Redis made in `ctx` for the caller to
    /// free (as `RedisModule_GetCurrentUserName` gives); `None` for NULL.
    ///
    /// # Safety
    /// `string` is NULL or a live string that nothing else frees, made in
    /// `ctx` (or NULL), and `ctx` outlives the returned value.
    pub unsafe fn from_raw(string: *mut raw::RedisModuleString, ctx: *mut raw::RedisModuleCtx) -> Option<OwnedString> {
        Some(OwnedString {
            string: NonNull::new(string)?,
            ctx,
        })
    }

    /// The string, for an API call; it stays ours (alive while `self` is).
    pub fn as_ptr(&self) -> *mut raw::RedisModuleString {
        self.string.as_ptr()
    }

    pub fn as_non_null(&self) -> NonNull<raw::RedisModuleString> {
        self.string
    }

    pub fn bytes(&self) -> &[u8] {
        RedisString::string_as_slice(self.string.as_ptr())
    }

    /// Gives the string up unfreed: to Redis, for an API that takes
    /// ownership of it, or to be kept for the life of the process.
    pub fn into_raw(self) -> NonNull<raw::RedisModuleString> {
        let string = self.string;
        std::mem::forget(self);
        string
    }
}

impl Drop for OwnedString {
    fn drop(&mut self) {
        // SAFETY: API pointers are set at module load.
        if let Some(free) = unsafe { raw::RedisModule_FreeString } {
            // SAFETY: the string is ours (`new`, `from_raw`), freed once here
            // with the context it was made in, so that the automatic memory
            // of that context, if on, forgets it too.
            unsafe { free(self.ctx, self.string.as_ptr()) };
        }
    }
}
