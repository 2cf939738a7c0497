//! Module configs (`zksync.*`): storage, validation, and the snapshot the
//! background threads work from.
//!
//! Every string config is validated in CONFIG SET (and at load): an invalid
//! value is refused with the reason and the old value stays in force.

use crate::secret;
use crate::tls::{self, Pem};
use redis_module::enum_configuration;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use zksync_core::access::Roots;
use zksync_core::group::election::Policy;
use zksync_core::settings::{
    parse_allow, parse_announce, parse_auth, parse_group, parse_mirrors, parse_servers, stream_clear, Auth, Connection,
    GroupSpec, Settings, StreamSpec, TlsFiles,
};
use zksync_core::text::quote;

/// What Redis puts before every config name of this module.
pub const MODULE_PREFIX: &str = "zksync.";

/// How Redis treats a config beyond its value (mapped to Redis's flags in
/// `ffi/config.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    Plain,
    /// Kept out of Redis's logs.
    Sensitive,
    /// A size: Redis also takes units such as `1mb`.
    Memory,
}

/// A numeric config; Redis refuses values outside `min..=max`. It starts at
/// its default, like `Checked`.
pub struct Number {
    pub name: &'static str,
    pub default: i64,
    pub min: i64,
    pub max: i64,
    pub flag: Flag,
    value: AtomicI64,
}

impl Number {
    const fn new(name: &'static str, default: i64, min: i64, max: i64, flag: Flag) -> Self {
        Number {
            name,
            default,
            min,
            max,
            flag,
            value: AtomicI64::new(default),
        }
    }

    pub fn load(&self, order: Ordering) -> i64 {
        self.value.load(order)
    }

    pub fn store(&self, value: i64, order: Ordering) {
        self.value.store(value, order)
    }
}

/// A string config that is stored only once its parser accepts it. It starts
/// at its default: at load, Redis skips the setter for a value equal to the
/// current one, which must therefore be valid too.
pub struct Checked {
    pub name: &'static str,
    pub default: &'static str,
    pub flag: Flag,
    text: Mutex<Cow<'static, str>>,
    check: fn(&str) -> Result<(), String>,
}

impl Checked {
    const fn new(name: &'static str, default: &'static str, flag: Flag, check: fn(&str) -> Result<(), String>) -> Self {
        Checked {
            name,
            default,
            flag,
            text: Mutex::new(Cow::Borrowed(default)),
            check,
        }
    }

    pub fn get(&self) -> String {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).to_string()
    }

    /// Stores `text` if it holds no control characters and its parser
    /// accepts it; else says why (quoted: the reason may echo the value,
    /// except a sensitive one's). A sensitive config is given the secret a
    /// placeholder stands for.
    pub fn set(&self, text: &str) -> Result<(), String> {
        let text = match self.flag {
            Flag::Sensitive => secret::reveal(text)?,
            _ => Cow::Borrowed(text),
        };
        if text.chars().any(char::is_control) {
            return Err(match self.flag {
                Flag::Sensitive => "the value holds control characters".to_string(),
                _ => format!("value '{}' holds control characters", quote(&text)),
            });
        }
        (self.check)(&text).map_err(|e| quote(&e))?;
        *self.text.lock().unwrap_or_else(|e| e.into_inner()) = Cow::Owned(text.into_owned());
        Ok(())
    }
}

/// A yes/no config, stored once its check accepts it.
pub struct Switch {
    pub name: &'static str,
    pub default: bool,
    value: AtomicBool,
    check: fn(bool) -> Result<(), String>,
}

impl Switch {
    const fn new(name: &'static str, default: bool, check: fn(bool) -> Result<(), String>) -> Self {
        Switch {
            name,
            default,
            value: AtomicBool::new(default),
            check,
        }
    }

    pub fn get(&self) -> bool {
        self.value.load(Ordering::Relaxed)
    }

    pub fn set(&self, on: bool) -> Result<(), String> {
        (self.check)(on)?;
        self.value.store(on, Ordering::Relaxed);
        Ok(())
    }
}

enum_configuration! {
    #[allow(non_camel_case_types)]
    #[derive(Debug, PartialEq, Eq)]
    pub enum FailoverMode {
        auto = 0,
        manual = 1,
    }
}

/// One `zksync.*` config (the name without the module's prefix).
pub enum Config {
    Number(&'static Number),
    Text(&'static Checked),
    Switch(&'static Switch),
    /// Redis's enum config: its names are `FailoverMode`'s variants.
    Failover {
        name: &'static str,
        default: FailoverMode,
        flag: Flag,
        value: &'static Mutex<FailoverMode>,
    },
}

impl Config {
    pub fn name(&self) -> &'static str {
        match self {
            Config::Number(number) => number.name,
            Config::Text(text) => text.name,
            Config::Switch(switch) => switch.name,
            Config::Failover { name, .. } => name,
        }
    }
}

// Each config in one line: name, default, bounds or parser, flag. Statics:
// Redis keeps a pointer to each value, and calls the setters without one of ours.
pub static SESSION_TIMEOUT_MS: Number = Number::new("session-timeout", 6000, 500, 600_000, Flag::Plain);
pub static FAILOVER_MAX_LAG: Number = Number::new("failover-max-lag", 1_048_576, 0, i64::MAX, Flag::Memory);
pub static LOAD_INTERVAL_MS: Number = Number::new("load-interval", 1000, 100, 3_600_000, Flag::Plain);
pub static STALL_TIMEOUT_MS: Number = Number::new("stall-timeout", 5000, 0, 3_600_000, Flag::Plain);
pub static SERVERS: Checked = Checked::new("servers", "127.0.0.1:2181", Flag::Plain, |s| parse_servers(s).map(drop));
pub static AUTH: Checked = Checked::new("auth", "", Flag::Sensitive, |s| {
    one_auth(parse_auth(s)?.is_some(), !AUTH_FILE.get().is_empty())
});
/// Its check also reads the file: the auth in it is kept in `FILE_AUTH`.
pub static AUTH_FILE: Checked = Checked::new("auth-file", "", Flag::Plain, |s| {
    let auth = Some(s)
        .filter(|s| !s.is_empty())
        .map(secret::read_auth_file)
        .transpose()?;
    one_auth(!AUTH.get().is_empty(), auth.is_some())?;
    *FILE_AUTH.lock().unwrap_or_else(|e| e.into_inner()) = auth;
    Ok(())
});
pub static MIRRORS: Checked = Checked::new("mirrors", "", Flag::Plain, |s| {
    stream_clear(&STREAM.get(), &parse_mirrors(s)?, &parse_allow(&ALLOW.get())?)
});
pub static GROUP: Checked = Checked::new("group", "", Flag::Plain, |s| {
    group_allowed(&parse_group(s)?, crate::redis::cluster::enabled())
});
pub static ANNOUNCE: Checked = Checked::new("announce", "", Flag::Plain, |s| parse_announce(s).map(drop));
pub static ALLOW: Checked = Checked::new("allow", "", Flag::Plain, |s| {
    stream_clear(&STREAM.get(), &parse_mirrors(&MIRRORS.get())?, &parse_allow(s)?)
});
pub static STREAM: Checked = Checked::new("stream", "", Flag::Plain, |s| {
    stream_clear(s, &parse_mirrors(&MIRRORS.get())?, &parse_allow(&ALLOW.get())?)
});
pub static STREAM_MAXLEN: Number = Number::new("stream-maxlen", 100_000, 0, i64::MAX, Flag::Plain);
// The files come before the switch: at load, Redis sets them in this order.
pub static TLS_CA_CERT_FILE: Checked = Checked::new("tls-ca-cert-file", "", Flag::Plain, |s| {
    tls::check("tls-ca-cert-file", s, Pem::Certificates)?;
    tls::ca_needed(TLS.get(), s)
});
pub static TLS_CERT_FILE: Checked = Checked::new("tls-cert-file", "", Flag::Plain, |s| {
    tls::check("tls-cert-file", s, Pem::Certificates)
});
pub static TLS_KEY_FILE: Checked = Checked::new("tls-key-file", "", Flag::Plain, |s| {
    tls::check("tls-key-file", s, Pem::PrivateKey)
});
pub static TLS: Switch = Switch::new("tls", false, |on| tls::ca_needed(on, &TLS_CA_CERT_FILE.get()));
pub static FAILSAFE: Switch = Switch::new("failsafe", true, |_| Ok(()));
pub static FAILOVER: Mutex<FailoverMode> = Mutex::new(FailoverMode::auto);
/// The auth read from `zksync.auth-file` when it was set.
static FILE_AUTH: Mutex<Option<Auth>> = Mutex::new(None);

/// Every config, in the order Redis registers them (and, at load, sets them).
pub static CONFIGS: [Config; 19] = [
    Config::Number(&SESSION_TIMEOUT_MS),
    Config::Number(&FAILOVER_MAX_LAG),
    Config::Number(&LOAD_INTERVAL_MS),
    Config::Number(&STREAM_MAXLEN),
    Config::Number(&STALL_TIMEOUT_MS),
    Config::Text(&SERVERS),
    Config::Text(&AUTH),
    Config::Text(&AUTH_FILE),
    Config::Text(&MIRRORS),
    Config::Text(&GROUP),
    Config::Text(&ANNOUNCE),
    Config::Text(&ALLOW),
    Config::Text(&STREAM),
    Config::Text(&TLS_CA_CERT_FILE),
    Config::Text(&TLS_CERT_FILE),
    Config::Text(&TLS_KEY_FILE),
    Config::Switch(&TLS),
    Config::Switch(&FAILSAFE),
    Config::Failover {
        name: "failover",
        default: FailoverMode::auto,
        flag: Flag::Plain,
        value: &FAILOVER,
    },
];

/// Reads the current values. They were validated when set, so parsing
/// cannot fail here; should it, the setting is treated as empty.
pub fn settings() -> Settings {
    let timeout_ms = SESSION_TIMEOUT_MS.load(Ordering::Relaxed).max(1) as u64;
    Settings {
        connection: Connection {
            servers: parse_servers(&SERVERS.get()).unwrap_or_default(),
            session_timeout: Duration::from_millis(timeout_ms),
            auth: parse_auth(&AUTH.get())
                .unwrap_or(None)
                .or_else(|| FILE_AUTH.lock().unwrap_or_else(|e| e.into_inner()).clone()),
            tls: TLS.get().then(|| TlsFiles {
                ca: TLS_CA_CERT_FILE.get(),
                cert: TLS_CERT_FILE.get(),
                key: TLS_KEY_FILE.get(),
            }),
        },
        mirrors: parse_mirrors(&MIRRORS.get()).unwrap_or_default(),
        group: Some(GROUP.get()).filter(|name| !name.is_empty()).map(|name| GroupSpec {
            name,
            announce: Some(ANNOUNCE.get()).filter(|a| !a.is_empty()),
        }),
        policy: Policy {
            manual: *FAILOVER.lock().unwrap_or_else(|e| e.into_inner()) == FailoverMode::manual,
            max_lag: FAILOVER_MAX_LAG.load(Ordering::Relaxed),
            failsafe: FAILSAFE.get(),
        },
        stream: stream(),
        load_interval: load_interval(),
        stall_timeout: Duration::from_millis(STALL_TIMEOUT_MS.load(Ordering::Relaxed).max(0) as u64),
    }
}

/// The roots commands may act under (values were validated when set).
pub fn roots() -> Roots {
    Roots {
        mirrors: parse_mirrors(&MIRRORS.get()).unwrap_or_default(),
        allow: parse_allow(&ALLOW.get()).unwrap_or_default(),
    }
}

/// The change stream in force, if any.
fn stream() -> Option<StreamSpec> {
    let key = STREAM.get();
    (!key.is_empty()).then(|| StreamSpec {
        key: key.into_bytes(),
        maxlen: STREAM_MAXLEN.load(Ordering::Relaxed),
    })
}

pub fn load_interval() -> Duration {
    Duration::from_millis(LOAD_INTERVAL_MS.load(Ordering::Relaxed).max(1) as u64)
}

/// Whether `name` (as given to CONFIG SET, any case) is a sensitive config of zksync.
pub fn is_sensitive(name: &[u8]) -> bool {
    let (head, short) = name.split_at(MODULE_PREFIX.len().min(name.len()));
    head.eq_ignore_ascii_case(MODULE_PREFIX.as_bytes())
        && CONFIGS.iter().any(|config| {
            matches!(config, Config::Text(text)
                if text.flag == Flag::Sensitive && text.name.as_bytes().eq_ignore_ascii_case(short))
        })
}

/// `zksync.auth` and `zksync.auth-file` are not both set: which would win
/// would be a guess.
fn one_auth(auth: bool, file: bool) -> Result<(), String> {
    match auth && file {
        false => Ok(()),
        true => Err("zksync.auth and zksync.auth-file are both set: empty one of them first".to_string()),
    }
}

/// Redis Cluster elects its own masters: a group would fight it.
fn group_allowed(group: &str, cluster: bool) -> Result<(), String> {
    if cluster && !group.is_empty() {
        return Err("zksync.group cannot be set in Redis Cluster mode: the cluster elects its own masters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table as Redis has always registered it: names, defaults, bounds, flags.
    #[test]
    fn table() {
        let numbers: Vec<_> = CONFIGS
            .iter()
            .filter_map(|c| match c {
                Config::Number(n) => Some((n.name, n.default, n.min, n.max, n.flag)),
                _ => None,
            })
            .collect();
        assert_eq!(
            numbers,
            [
                ("session-timeout", 6000, 500, 600_000, Flag::Plain),
                ("failover-max-lag", 1_048_576, 0, i64::MAX, Flag::Memory),
                ("load-interval", 1000, 100, 3_600_000, Flag::Plain),
                ("stream-maxlen", 100_000, 0, i64::MAX, Flag::Plain),
                ("stall-timeout", 5000, 0, 3_600_000, Flag::Plain),
            ]
        );
        let texts: Vec<_> = CONFIGS
            .iter()
            .filter_map(|c| match c {
                Config::Text(t) => Some((t.name, t.default, t.flag)),
                _ => None,
            })
            .collect();
        assert_eq!(
            texts,
            [
                ("servers", "127.0.0.1:2181", Flag::Plain),
                ("auth", "", Flag::Sensitive),
                ("auth-file", "", Flag::Plain),
                ("mirrors", "", Flag::Plain),
                ("group", "", Flag::Plain),
                ("announce", "", Flag::Plain),
                ("allow", "", Flag::Plain),
                ("stream", "", Flag::Plain),
                ("tls-ca-cert-file", "", Flag::Plain),
                ("tls-cert-file", "", Flag::Plain),
                ("tls-key-file", "", Flag::Plain),
            ]
        );
        let switches: Vec<_> = CONFIGS
            .iter()
            .filter_map(|c| match c {
                Config::Switch(s) => Some((s.name, s.default)),
                _ => None,
            })
            .collect();
        assert_eq!(switches, [("tls", false), ("failsafe", true)]);
        let Some(Config::Failover {
            name, default, flag, ..
        }) = CONFIGS.last()
        else {
            panic!("failover is registered last");
        };
        assert_eq!((*name, default, *flag), ("failover", &FailoverMode::auto, Flag::Plain));
    }

    /// Every value starts at its default, and that default is valid.
    #[test]
    fn defaults_are_in_force_and_valid() {
        for config in &CONFIGS {
            match config {
                Config::Number(n) => {
                    assert!((n.min..=n.max).contains(&n.default), "{}", n.name);
                    assert_eq!(n.load(Ordering::Relaxed), n.default, "{}", n.name);
                }
                Config::Text(t) => {
                    assert_eq!((t.check)(t.default), Ok(()), "{}", t.name);
                    assert_eq!(t.get(), t.default, "{}", t.name);
                }
                Config::Switch(s) => {
                    assert_eq!((s.check)(s.default), Ok(()), "{}", s.name);
                    assert_eq!(s.get(), s.default, "{}", s.name);
                }
                Config::Failover { .. } => {}
            }
        }
        let mut names: Vec<_> = CONFIGS.iter().map(Config::name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CONFIGS.len());
    }
}
