//! Redis ACL questions zksync asks on a client's behalf: may this user read
//! or write this key, and the `ACL LOG` entry of a refusal. zksync's commands
//! declare no key positions (their keys are derived from znode paths), so
//! Redis cannot check them itself.

use super::string::OwnedString;
use redis_module::{raw, Context, ContextFlags};
use std::os::raw::c_int;
use zksync_core::access::{Denied, KeyAccess};

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
    current_user_name(ctx).map(|name| name.bytes().to_vec())
}

fn current_user_name(ctx: &Context) -> Option<OwnedString> {
    if ctx
        .get_flags()
        .intersects(ContextFlags::REPLICATED | ContextFlags::LOADING)
    {
        return None;
    }
    // SAFETY: API pointers are set at module load.
    let (client_id, user_name) = unsafe { (raw::RedisModule_GetClientId?, raw::RedisModule_GetCurrentUserName?) };
    // SAFETY: `ctx` is the live context of the calling command. Redis gives
    // a client id of 0 where the context has no client, and only then has
    // no user.
    if unsafe { client_id(ctx.ctx) } == 0 {
        return None;
    }
    // SAFETY: as above; the name is a new string, made in `ctx`, for the
    // caller to free, and `ctx` outlives it (the command's run).
    unsafe { OwnedString::from_raw(user_name(ctx.ctx), ctx.ctx) }
}

/// A user looked up by name, for any number of checks. Needs the Redis lock
/// (the main thread, or a thread that holds it).
pub struct User(*mut raw::RedisModuleUser);

impl User {
    /// `None` if no such user exists (deleted since the command ran).
    pub fn named(name: &[u8]) -> Option<User> {
        User::find(&OwnedString::new(name)?)
    }

    /// The user a command runs as (see `current_user`).
    pub fn current(ctx: &Context) -> Option<User> {
        User::find(&current_user_name(ctx)?)
    }

    fn find(name: &OwnedString) -> Option<User> {
        // SAFETY: API pointers are set at module load.
        let get_user = unsafe { raw::RedisModule_GetModuleUserFromUserName }?;
        // SAFETY: `name` is a live string; the user is ours to free (`Drop`).
        let user = unsafe { get_user(name.as_ptr()) };
        (!user.is_null()).then_some(User(user))
    }

    /// Checks that this user may `access` `key`; on a refusal, adds the
    /// `ACL LOG` entry and says which key.
    pub fn require(&self, ctx: &Context, key: &[u8], access: KeyAccess) -> Result<(), Denied> {
        if self.may(key, access) {
            return Ok(());
        }
        self.log_refusal(ctx, key);
        Err(Denied::Key {
            key: key.to_vec(),
            access,
        })
    }

    pub fn may(&self, key: &[u8], access: KeyAccess) -> bool {
        // SAFETY: API pointers are set at module load.
        let check = unsafe { raw::RedisModule_ACLCheckKeyPermissions };
        let (Some(key), Some(check)) = (OwnedString::new(key), check) else {
            return false;
        };
        // SAFETY: `self.0` and `key` are valid until dropped.
        unsafe { check(self.0, key.as_ptr(), flags(access)) == raw::REDISMODULE_OK as c_int }
    }

    /// Adds an `ACL LOG` entry for a refused key, as Redis does for its own
    /// commands. Only with a client behind `ctx` (Redis describes it).
    pub fn log_refusal(&self, ctx: &Context, key: &[u8]) {
        // SAFETY: API pointers are set at module load.
        let (client_id, add) = unsafe { (raw::RedisModule_GetClientId, raw::RedisModule_ACLAddLogEntry) };
        let (Some(client_id), Some(add)) = (client_id, add) else {
            return;
        };
        // SAFETY: `ctx` is a live context; a client id of 0 means no client.
        if unsafe { client_id(ctx.ctx) } == 0 {
            return;
        }
        let Some(key) = OwnedString::new(key) else { return };
        let reason = raw::RedisModuleACLLogEntryReason_REDISMODULE_ACL_LOG_KEY;
        // SAFETY: `ctx` has a client; `self.0` and `key` are alive until dropped.
        unsafe { add(ctx.ctx, self.0, key.as_ptr(), reason) };
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // SAFETY: API pointers are set at module load.
        if let Some(free) = unsafe { raw::RedisModule_FreeModuleUser } {
            // SAFETY: `self.0` came from RedisModule_GetModuleUserFromUserName and is freed once.
            unsafe { free(self.0) };
        }
    }
}

/// Logs a refusal decided elsewhere (a PULL's subtree, checked on the apply
/// thread) for the client behind `ctx`, once its reply goes out.
pub fn log_refusal(ctx: &Context, key: &[u8]) {
    if let Some(user) = User::current(ctx) {
        user.log_refusal(ctx, key);
    }
}
