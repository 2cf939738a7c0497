//! Redis ACL questions zksync asks on a client's behalf: may this user read
//! or write this key, and the `ACL LOG` entry of a refusal. zksync's commands
//! declare no key positions (their keys are derived from znode paths), so
//! Redis cannot check them itself.

use crate::access::{Denied, KeyAccess};
use redis_module::{raw, Context, ContextFlags};
use std::os::raw::c_int;

/// The key-spec flags Redis checks `access` as.
fn flags(access: KeyAccess) -> c_int {
    (match access {
        KeyAccess::Read => raw::REDISMODULE_CMD_KEY_ACCESS,
        KeyAccess::Write => {
            raw::REDISMODULE_CMD_KEY_INSERT | raw::REDISMODULE_CMD_KEY_UPDATE | raw::REDISMODULE_CMD_KEY_DELETE
        }
    }) as c_int
}

/// The name of the user a command runs as; `None` where Redis checks no
/// ACL (commands replayed from the AOF or the master link, which run as
/// superuser) or there is no client.
pub fn current_user(ctx: &Context) -> Option<Vec<u8>> {
    if ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
    {
        return None;
    }
    // SAFETY: API pointers are set at module load; Redis gives a client id
    // of 0 where the context has no client, and only then has no user.
    unsafe {
        let id = raw::RedisModule_GetClientId?;
        if id(ctx.ctx) == 0 {
            return None;
        }
        let name = raw::RedisModule_GetCurrentUserName?(ctx.ctx);
        if name.is_null() {
            return None;
        }
        let bytes = redis_module::RedisString::string_as_slice(name).to_vec();
        raw::RedisModule_FreeString?(std::ptr::null_mut(), name);
        Some(bytes)
    }
}

/// A user looked up by name, for any number of checks. Needs the Redis lock
/// (the main thread, or a thread that holds it).
pub struct User(*mut raw::RedisModuleUser);

impl User {
    /// `None` if no such user exists (deleted since the command ran).
    pub fn named(name: &[u8]) -> Option<User> {
        let name = OwnedString::new(name)?;
        // SAFETY: API pointers are set at module load; `name` is a valid string.
        let user = unsafe { raw::RedisModule_GetModuleUserFromUserName?(name.0) };
        (!user.is_null()).then_some(User(user))
    }

    pub fn may(&self, key: &[u8], access: KeyAccess) -> bool {
        let (Some(key), Some(check)) = (OwnedString::new(key), unsafe {
            raw::RedisModule_ACLCheckKeyPermissions
        }) else {
            return false;
        };
        // SAFETY: `self.0` and `key` are valid until dropped.
        unsafe { check(self.0, key.0, flags(access)) == raw::REDISMODULE_OK as c_int }
    }

    /// Adds an `ACL LOG` entry for a refused key, as Redis does for its own
    /// commands. Only with a client behind `ctx` (Redis describes it).
    pub fn log_refusal(&self, ctx: &Context, key: &[u8]) {
        // SAFETY: API pointers are set at module load; a client id of 0 means no client.
        unsafe {
            let (Some(id), Some(add)) = (raw::RedisModule_GetClientId, raw::RedisModule_ACLAddLogEntry) else {
                return;
            };
            if id(ctx.ctx) == 0 {
                return;
            }
            if let Some(key) = OwnedString::new(key) {
                add(
                    ctx.ctx,
                    self.0,
                    key.0,
                    raw::RedisModuleACLLogEntryReason_REDISMODULE_ACL_LOG_KEY,
                );
            }
        }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from RedisModule_GetModuleUserFromUserName and is freed once.
        if let Some(free) = unsafe { raw::RedisModule_FreeModuleUser } {
            unsafe { free(self.0) };
        }
    }
}

/// A Redis string made from bytes (any bytes: no CString on the way).
struct OwnedString(*mut raw::RedisModuleString);

impl OwnedString {
    fn new(bytes: &[u8]) -> Option<OwnedString> {
        // SAFETY: API pointers are set at module load; a NULL context makes
        // a string that lives until freed.
        let s = unsafe { raw::RedisModule_CreateString?(std::ptr::null_mut(), bytes.as_ptr().cast(), bytes.len()) };
        (!s.is_null()).then_some(OwnedString(s))
    }
}

impl Drop for OwnedString {
    fn drop(&mut self) {
        // SAFETY: created with a NULL context in `new`, freed once here.
        if let Some(free) = unsafe { raw::RedisModule_FreeString } {
            unsafe { free(std::ptr::null_mut(), self.0) };
        }
    }
}

/// Checks that `user` may `access` `key`; on a refusal, adds the `ACL LOG`
/// entry (with a client behind `ctx`) and says which key.
pub fn require(ctx: &Context, user: &[u8], key: &[u8], access: KeyAccess) -> Result<(), Denied> {
    let denied = || Denied::Key {
        key: key.to_vec(),
        access,
    };
    let user = User::named(user).ok_or_else(denied)?;
    if user.may(key, access) {
        return Ok(());
    }
    user.log_refusal(ctx, key);
    Err(denied())
}

/// Logs a refusal decided elsewhere (a PULL's subtree, checked on the apply
/// thread) for the client behind `ctx`, once its reply goes out.
pub fn log_refusal(ctx: &Context, key: &[u8]) {
    if let Some(user) = current_user(ctx).and_then(|name| User::named(&name)) {
        user.log_refusal(ctx, key);
    }
}
