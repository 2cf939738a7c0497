//! String configs as Redis sets and reads them.

use super::guard;
use crate::config::Checked;
use redis_module::configuration::{ConfigurationContext, ConfigurationValue};
use redis_module::{RedisError, RedisString};

impl ConfigurationValue<RedisString> for Checked {
    fn get(&self, _ctx: &ConfigurationContext) -> RedisString {
        // Stored values hold no control characters, NUL included.
        RedisString::create(None, Checked::get(self).as_str())
    }

    /// The reason of a refusal is quoted: Redis turns it into a C string,
    /// and a NUL byte there would abort the server.
    fn set(&self, _ctx: &ConfigurationContext, value: RedisString) -> Result<(), RedisError> {
        let text = value
            .try_as_str()
            .map_err(|_| RedisError::Str("value must be valid UTF-8"))?;
        guard::catch("CONFIG SET", || Checked::set(self, text))
            .unwrap_or_else(|| Err("internal error, see the Redis log".to_string()))
            .map_err(RedisError::String)
    }
}
