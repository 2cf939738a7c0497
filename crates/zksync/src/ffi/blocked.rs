//! Clients blocked on a request to the session thread, and the replies
//! they get: Redis calls `on_reply` on the main thread once a `Pending` is
//! dropped, wherever that happens.

use super::{acl, guard};
use redis_module::{raw, Context};
use std::os::raw::{c_int, c_void};
use std::time::Duration;
use zksync_core::access::Denied;
use zksync_core::error::{CannotBlock, Error};
use zksync_core::reply::Reply;

/// A client blocked on a request to the session thread. Dropping it
/// unblocks the client: with the reply given to `resolve`, else with ZKDOWN.
pub struct Pending {
    client: *mut raw::RedisModuleBlockedClient,
    reply: Option<Reply>,
}

// SAFETY: Redis lets any thread unblock a blocked client, and the handle is
// used once, by whoever owns the `Pending`.
unsafe impl Send for Pending {}

impl Pending {
    /// Blocks the calling client; it gets ZKTIMEOUT if no reply comes within `timeout`.
    pub fn block(ctx: &Context, timeout: Duration) -> Result<Pending, Error> {
        // SAFETY: API pointers are set once at module load, before any command runs.
        let block = unsafe { raw::RedisModule_BlockClient }.ok_or(Error::CannotBlock(CannotBlock::Unsupported))?;
        // SAFETY: `ctx` is the context of the command being run, on the main
        // thread; the callbacks live as long as the module (never unloaded
        // once started).
        let client = unsafe {
            block(
                ctx.ctx,
                Some(on_reply),
                Some(on_timeout),
                Some(free_reply),
                timeout.as_millis() as i64,
            )
        };
        if client.is_null() {
            return Err(Error::CannotBlock(CannotBlock::Refused));
        }
        Ok(Pending { client, reply: None })
    }

    pub fn resolve(mut self, reply: Reply) {
        self.reply = Some(reply);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let reply = self
            .reply
            .take()
            .unwrap_or_else(|| Reply::Error(Error::ZkDown("the request was abandoned".into())));
        // SAFETY: API pointers are set at module load.
        if let Some(unblock) = unsafe { raw::RedisModule_UnblockClient } {
            // SAFETY: `client` came from RedisModule_BlockClient and is
            // unblocked this once; Redis hands the boxed reply to `on_reply`,
            // then to `free_reply`.
            unsafe { unblock(self.client, Box::into_raw(Box::new(reply)) as *mut c_void) };
        }
    }
}

/// The client's reply, on the main thread. A key refusal found on the apply
/// thread is logged in `ACL LOG` here, where the client is known.
extern "C" fn on_reply(ctx: *mut raw::RedisModuleCtx, _argv: *mut *mut raw::RedisModuleString, _argc: c_int) -> c_int {
    guard::catch("a blocked command's reply", || {
        // SAFETY: API pointers are set at module load.
        let Some(private) = (unsafe { raw::RedisModule_GetBlockedClientPrivateData }) else {
            return raw::REDISMODULE_ERR as c_int;
        };
        // SAFETY: Redis passes the data given to RedisModule_UnblockClient,
        // a boxed `Reply` (or NULL).
        let data = unsafe { private(ctx) } as *mut Reply;
        if data.is_null() {
            return raw::REDISMODULE_ERR as c_int;
        }
        // SAFETY: `data` is a live boxed `Reply` that only `free_reply` frees,
        // after this callback; the `Nil` left behind is what it frees.
        let reply = std::mem::replace(unsafe { &mut *data }, Reply::Nil);
        let ctx = Context::new(ctx);
        if let Reply::Error(Error::NoPerm(Denied::Key { key, .. })) = &reply {
            acl::log_refusal(&ctx, key);
        }
        ctx.reply(super::reply::redis_result(super::reply::result(reply)));
        raw::REDISMODULE_OK as c_int
    })
    .unwrap_or(raw::REDISMODULE_ERR as c_int)
}

extern "C" fn on_timeout(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    guard::catch("a blocked command's timeout", || {
        Context::new(ctx).reply(Err(super::reply::error(Error::Timeout)));
        raw::REDISMODULE_OK as c_int
    })
    .unwrap_or(raw::REDISMODULE_ERR as c_int)
}

extern "C" fn free_reply(_ctx: *mut raw::RedisModuleCtx, data: *mut c_void) {
    if !data.is_null() {
        guard::catch("freeing a blocked command's reply", || {
            // SAFETY: `data` is the boxed `Reply` given to
            // RedisModule_UnblockClient, freed once here.
            drop(unsafe { Box::from_raw(data as *mut Reply) })
        });
    }
}
