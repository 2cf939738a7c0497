//! Replies that cross threads: the session and apply threads answer a
//! blocked client with a `Reply` (`RedisValue` is not `Send`), which
//! `ffi/blocked.rs` turns into a Redis reply on the main thread.

use crate::error::Error;

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
}
