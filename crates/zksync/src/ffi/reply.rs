//! zksync's replies and errors as redis-module's: the one place an `Error`
//! becomes an error reply.

use redis_module::redisvalue::RedisValueKey;
use redis_module::{RedisError, RedisResult, RedisValue};
use std::collections::BTreeMap;
use zksync_core::error::Error;
use zksync_core::reply::Reply;

/// What a command handler returns.
pub type CommandResult = Result<RedisValue, Error>;

/// `CODE message` as is: not through redis-module's conversion of
/// `std::error::Error`s, which would put `ERR` in front of our own code.
pub fn error(e: Error) -> RedisError {
    RedisError::String(e.to_string())
}

pub fn redis_result(result: CommandResult) -> RedisResult {
    result.map_err(error)
}

/// A reply built off the main thread, as a command's result.
pub fn result(reply: Reply) -> CommandResult {
    match reply {
        Reply::Error(e) => Err(e),
        other => Ok(value(other)),
    }
}

fn value(reply: Reply) -> RedisValue {
    match reply {
        Reply::Integer(i) => RedisValue::Integer(i),
        Reply::Bulk(b) => RedisValue::StringBuffer(b),
        Reply::Nil => RedisValue::Null,
        Reply::Array(items) => RedisValue::Array(items.into_iter().map(value).collect()),
        Reply::Map(fields) => RedisValue::OrderedMap(
            fields
                .into_iter()
                .map(|(k, v)| (RedisValueKey::String(k.to_string()), value(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
        Reply::Error(e) => RedisValue::SimpleString(e.to_string()),
    }
}
