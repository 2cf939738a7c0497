//! The configs as Redis registers, sets and reads them, all from the one
//! table in `config.rs`.

use super::guard;
use crate::config::{Checked, Config, Flag, Number, Switch, CONFIGS};
use redis_module::configuration::{
    get_bool_default_config_value, get_enum_default_config_value, get_i64_default_config_value,
    get_string_default_config_value, register_bool_configuration, register_enum_configuration,
    register_i64_configuration, register_string_configuration, ConfigurationContext, ConfigurationFlags,
    ConfigurationValue,
};
use redis_module::{raw, Context, RedisError, RedisString};
use std::os::raw::c_int;
use std::sync::atomic::Ordering;
use zksync_core::text::quote;

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

impl ConfigurationValue<bool> for Switch {
    fn get(&self, _ctx: &ConfigurationContext) -> bool {
        Switch::get(self)
    }

    fn set(&self, _ctx: &ConfigurationContext, value: bool) -> Result<(), RedisError> {
        guard::catch("CONFIG SET", || Switch::set(self, value))
            .unwrap_or_else(|| Err("internal error, see the Redis log".to_string()))
            .map_err(|e| RedisError::String(quote(&e)))
    }
}

/// Redis checks the bounds before it calls `set`.
impl ConfigurationValue<i64> for Number {
    fn get(&self, _ctx: &ConfigurationContext) -> i64 {
        self.load(Ordering::Relaxed)
    }

    fn set(&self, _ctx: &ConfigurationContext, value: i64) -> Result<(), RedisError> {
        self.store(value, Ordering::Relaxed);
        Ok(())
    }
}

fn flags(flag: Flag) -> ConfigurationFlags {
    match flag {
        Flag::Plain => ConfigurationFlags::DEFAULT,
        Flag::Sensitive => ConfigurationFlags::DEFAULT | ConfigurationFlags::SENSITIVE,
        Flag::Memory => ConfigurationFlags::DEFAULT | ConfigurationFlags::MEMORY,
    }
}

/// Registers every config of `CONFIGS` and has Redis set them: from the
/// config file, the command line or MODULE LOADEX, else from the module's
/// arguments or the defaults. `on_change` runs after every change. `Err` if
/// Redis refused a value (it logs which and why): the `configurations` of
/// `redis_module!` would ignore that and call `init`.
pub fn load(ctx: &Context, args: &[RedisString], on_change: fn()) -> Result<(), String> {
    // SAFETY: the API pointers are set at module load.
    let load = unsafe { raw::RedisModule_LoadConfigs }.ok_or("module configs need Redis 7.0 or later")?;
    for config in &CONFIGS {
        register(ctx, args, config, on_change).map_err(|e| format!("module argument {}: {e}", config.name()))?;
    }
    // SAFETY: called from RedisModule_OnLoad, once the configs are registered.
    if unsafe { load(ctx.ctx) } == raw::REDISMODULE_OK as c_int {
        Ok(())
    } else {
        Err("a config was refused, see above".to_string())
    }
}

/// Registers one config, its default taken from the module's arguments if
/// they name it.
fn register(ctx: &Context, args: &[RedisString], config: &Config, on_change: fn()) -> Result<(), RedisError> {
    match config {
        Config::Number(number) => {
            let default = get_i64_default_config_value(args, number.name, number.default)?;
            let (name, min, max, flags) = (number.name, number.min, number.max, flags(number.flag));
            register_i64_configuration(ctx, name, *number, default, min, max, flags, changed(on_change));
        }
        Config::Text(text) => {
            let default = get_string_default_config_value(args, text.name, text.default)?;
            register_string_configuration(ctx, text.name, *text, default, flags(text.flag), changed(on_change));
        }
        Config::Switch(switch) => {
            let default = get_bool_default_config_value(args, switch.name, switch.default)?;
            let flags = flags(Flag::Plain);
            register_bool_configuration(ctx, switch.name, *switch, default, flags, changed(on_change));
        }
        Config::Failover {
            name,
            default,
            flag,
            value,
        } => {
            let default = get_enum_default_config_value(args, name, default.clone())?;
            register_enum_configuration(ctx, name, *value, default, flags(*flag), changed(on_change));
        }
    }
    Ok(())
}

type OnChanged<T> = Option<Box<dyn Fn(&ConfigurationContext, &str, &'static T)>>;

fn changed<T>(on_change: fn()) -> OnChanged<T> {
    Some(Box::new(move |_, _, _| on_change()))
}
