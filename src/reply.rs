//! Replies that cross threads, and clients blocked until one arrives.
//!
//! `RedisValue` is not `Send`, so the session thread answers with a `Reply`,
//! which becomes a `RedisValue` on the main thread in the unblock callback.

use crate::access::Denied;
use crate::error::Error;
use crate::ffi::{acl, guard};
use redis_module::redisvalue::RedisValueKey;
use redis_module::{raw, Context, RedisResult, RedisValue};
use std::collections::BTreeMap;
use std::os::raw::{c_int, c_void};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Integer(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
    /// A map reply (a flat field/value array in RESP2).
    Map(Vec<(&'static str, Reply)>),
    Error(Error),
}

impl Reply {
    pub fn text(s: impl Into<String>) -> Reply {
        Reply::Bulk(s.into().into_bytes())
    }

    pub fn into_result(self) -> RedisResult {
        match self {
            Reply::Error(e) => Err(e.into()),
            other => Ok(other.into_value()),
        }
    }

    fn into_value(self) -> RedisValue {
        match self {
            Reply::Integer(i) => RedisValue::Integer(i),
            Reply::Bulk(b) => RedisValue::StringBuffer(b),
            Reply::Nil => RedisValue::Null,
            Reply::Array(items) => RedisValue::Array(items.into_iter().map(Reply::into_value).collect()),
            Reply::Map(fields) => RedisValue::OrderedMap(
                fields
                    .into_iter()
                    .map(|(k, v)| (RedisValueKey::String(k.to_string()), v.into_value()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            Reply::Error(e) => RedisValue::SimpleString(e.to_string()),
        }
    }
}

/// A client blocked on a request to the session thread. Dropping it
/// unblocks the client: with the reply given to `resolve`, else with ZKDOWN.
pub struct Pending {
    client: *mut raw::RedisModuleBlockedClient,
    reply: Option<Reply>,
}

// The blocked-client handle is meant to be unblocked from any thread.
unsafe impl Send for Pending {}

impl Pending {
    /// Blocks the calling client; it gets ZKTIMEOUT if no reply comes within `timeout`.
    pub fn block(ctx: &Context, timeout: Duration) -> Result<Pending, Error> {
        // SAFETY: API pointers are set once at module load, before any command runs.
        let block = unsafe { raw::RedisModule_BlockClient }
            .ok_or_else(|| Error::BadArgs("blocking is not available".into()))?;
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
            return Err(Error::BadArgs("this client cannot be blocked".into()));
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
        if let Some(unblock) = unsafe { raw::RedisModule_UnblockClient } {
            unsafe { unblock(self.client, Box::into_raw(Box::new(reply)) as *mut c_void) };
        }
    }
}

/// The client's reply, on the main thread. A key refusal found on the apply
/// thread is logged in `ACL LOG` here, where the client is known.
extern "C" fn on_reply(ctx: *mut raw::RedisModuleCtx, _argv: *mut *mut raw::RedisModuleString, _argc: c_int) -> c_int {
    guard::catch("a blocked command's reply", || {
        // SAFETY: API pointers are set at module load; Redis passes the data
        // given to RedisModule_UnblockClient, a boxed `Reply` (or NULL).
        let Some(private) = (unsafe { raw::RedisModule_GetBlockedClientPrivateData }) else {
            return raw::REDISMODULE_ERR as c_int;
        };
        let data = unsafe { private(ctx) } as *mut Reply;
        if data.is_null() {
            return raw::REDISMODULE_ERR as c_int;
        }
        let reply = std::mem::replace(unsafe { &mut *data }, Reply::Nil);
        let ctx = Context::new(ctx);
        if let Reply::Error(Error::NoPerm(Denied::Key { key, .. })) = &reply {
            acl::log_refusal(&ctx, key);
        }
        ctx.reply(reply.into_result());
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
        Context::new(ctx).reply(Reply::Error(Error::Timeout).into_result());
        raw::REDISMODULE_OK as c_int
    })
    .unwrap_or(raw::REDISMODULE_ERR as c_int)
}

extern "C" fn free_reply(_ctx: *mut raw::RedisModuleCtx, data: *mut c_void) {
    if !data.is_null() {
        // SAFETY: `data` is the boxed `Reply` given to RedisModule_UnblockClient, freed once here.
        guard::catch("freeing a blocked command's reply", || {
            drop(unsafe { Box::from_raw(data as *mut Reply) })
        });
    }
}
