//! Redis clients as locks see them: the calling client's id, and a call
//! when a client disconnects.

use super::guard;
use once_cell::sync::OnceCell;
use redis_module::{raw, Context};
use std::os::raw::c_void;

/// The calling client's id (`CLIENT ID`); `None` without a client.
pub fn id(ctx: &Context) -> Option<u64> {
    // SAFETY: API pointers are set at module load; Redis answers 0 for a
    // context without a client.
    let id = unsafe { raw::RedisModule_GetClientId?(ctx.ctx) };
    (id != 0).then_some(id)
}

/// Redis calls its event callbacks with no pointer of ours: what to run is
/// kept here.
static ON_DISCONNECT: OnceCell<fn(u64)> = OnceCell::new();

/// Has `callback` called with the id of every client that disconnects from
/// now on. Subscribed on first use only: Redis walks every subscription on
/// each event it fires. Main thread.
pub fn on_disconnect(ctx: &Context, callback: fn(u64)) {
    if ON_DISCONNECT.set(callback).is_err() {
        return;
    }
    let event = raw::RedisModuleEvent {
        id: raw::REDISMODULE_EVENT_CLIENT_CHANGE,
        dataver: 1,
    };
    raw::subscribe_to_server_event(ctx.ctx, event, Some(on_client_change));
}

unsafe extern "C" fn on_client_change(
    _: *mut raw::RedisModuleCtx,
    _: raw::RedisModuleEvent,
    subevent: u64,
    data: *mut c_void,
) {
    if subevent != raw::REDISMODULE_SUBEVENT_CLIENT_CHANGE_DISCONNECTED || data.is_null() {
        return;
    }
    // SAFETY: for a client-change event Redis passes a RedisModuleClientInfo
    // of the version subscribed (1), valid during the call.
    let id = unsafe { (*(data as *const raw::RedisModuleClientInfo)).id };
    if let Some(callback) = ON_DISCONNECT.get() {
        guard::catch("a client's disconnect", || callback(id));
    }
}
