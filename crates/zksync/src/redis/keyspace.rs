//! The keyspace the apply steps write (`zksync_core::mirror::keyspace`), over
//! Redis in one hold of the lock: keys through the key API (`ffi::keyspace`),
//! the change stream through the stream API (`ffi::stream`), SCAN through
//! `RM_Call`, and in a cluster the keys this node writes (`Placement`, read
//! at most once per hold).

use super::cluster::Placement;
use crate::ffi::{keyspace, stream as ffi_stream};
use crate::shared;
use redis_module::{CallOptionsBuilder, CallReply, CallResult, Context};
use std::sync::Arc;
use zksync_core::mirror::keyspace::{Cursor, Keyspace, Scanned, WriteError};
use zksync_core::mirror::stream::Entry;
use zksync_core::settings::StreamSpec;

/// Keys examined per SCAN step of a sweep.
const SCAN_COUNT: &[u8] = b"1000";

/// The keyspace under the Redis lock that `ctx` holds.
pub struct RedisKeyspace<'a> {
    ctx: &'a Context,
    /// Which keys this node writes, once asked.
    placement: Option<Placement>,
}

impl<'a> RedisKeyspace<'a> {
    pub fn new(ctx: &'a Context) -> RedisKeyspace<'a> {
        RedisKeyspace { ctx, placement: None }
    }
}

impl Keyspace for RedisKeyspace<'_> {
    type Written<'w> = keyspace::Written<'w>;

    fn set<'w>(&mut self, key: &'w [u8], value: &'w [u8]) -> Result<keyspace::Written<'w>, WriteError> {
        keyspace::set(self.ctx.ctx, key, value)
    }

    fn delete(&mut self, key: &[u8]) -> bool {
        keyspace::delete(self.ctx.ctx, key)
    }

    fn holds(&self, key: &[u8], value: &[u8]) -> bool {
        keyspace::holds(self.ctx.ctx, key, value)
    }

    fn exists(&self, key: &[u8]) -> bool {
        keyspace::exists(self.ctx.ctx, key)
    }

    fn writes(&mut self, key: &[u8]) -> bool {
        let ctx = self.ctx;
        self.placement
            .get_or_insert_with(|| Placement::now(ctx))
            .writes(ctx, key)
    }

    fn stream(&self) -> Option<Arc<StreamSpec>> {
        shared::STREAM.get()
    }

    /// Replicated like the key write it goes with (Redis wraps what one hold
    /// of the lock replicates in one MULTI/EXEC); it reuses the strings of
    /// the key write, if `written`.
    fn append(
        &mut self,
        stream: &StreamSpec,
        entry: &Entry,
        written: Option<&keyspace::Written<'_>>,
    ) -> Result<(), WriteError> {
        entry.with_fields(|fields| ffi_stream::append(self.ctx.ctx, &stream.key, stream.maxlen, fields, written))
    }

    fn scan(&mut self, prefix: &[u8], cursor: Option<&Cursor>) -> Option<Scanned> {
        let mut pattern = glob_escape(prefix);
        pattern.push(b'*');
        let cursor = cursor.map_or(&b"0"[..], |c| c.0.as_slice());
        let opts = CallOptionsBuilder::new().errors_as_replies().build();
        let args: [&[u8]; 5] = [cursor, b"MATCH", &pattern, b"COUNT", SCAN_COUNT];
        scan_reply(self.ctx.call_ext("SCAN", &opts, &args[..]))
    }
}

/// The keys of a SCAN reply, and its cursor unless it ends the scan ("0").
fn scan_reply(reply: CallResult) -> Option<Scanned> {
    let Ok(CallReply::Array(parts)) = reply else {
        return None;
    };
    let Some(Ok(CallReply::String(cursor))) = parts.get(0) else {
        return None;
    };
    let cursor = cursor.as_bytes();
    let Some(Ok(CallReply::Array(keys))) = parts.get(1) else {
        return None;
    };
    let keys = keys
        .iter()
        .filter_map(|k| match k {
            Ok(CallReply::String(s)) => Some(s.as_bytes().to_vec()),
            _ => None,
        })
        .collect();
    Some(Scanned {
        keys,
        next: (cursor != b"0").then(|| Cursor(cursor.to_vec())),
    })
}

/// Escapes the glob characters of SCAN MATCH.
fn glob_escape(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &c in text {
        if matches!(c, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_escape() {
        assert_eq!(super::glob_escape(b"zk:/a*b?[c]\\"), b"zk:/a\\*b\\?\\[c\\]\\\\");
    }
}
