//! The configuration as the core sees it: parsed, validated values and the
//! one snapshot of them (`Settings`) the background threads work from. The
//! module keeps the values themselves and registers them with Redis.

use crate::group::election::Policy;
use crate::path;
use std::time::Duration;

pub const DEFAULT_PREFIX: &str = "zk:";

/// One `ROOT[=PREFIX]` entry of `zksync.mirrors`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MirrorSpec {
    pub root: String,
    pub prefix: String,
}

impl MirrorSpec {
    /// The Redis key of the znode at `path`.
    pub fn key(&self, path: &str) -> Vec<u8> {
        key(&self.prefix, path)
    }
}

pub fn key(prefix: &str, path: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + path.len());
    key.extend_from_slice(prefix.as_bytes());
    key.extend_from_slice(path.as_bytes());
    key
}

/// `zksync.auth`, split into scheme and credentials. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Auth {
    pub scheme: String,
    pub credentials: Vec<u8>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:<redacted>", self.scheme)
    }
}

/// What the ZooKeeper session is made of: a change of any of it reconnects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connection {
    pub servers: ConnectString,
    pub session_timeout: Duration,
    pub auth: Option<Auth>,
    /// `None` for plaintext.
    pub tls: Option<TlsFiles>,
}

/// The group this server joins (`zksync.group`, `zksync.announce`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSpec {
    pub name: String,
    /// `host:port` peers use to reach this server; `None` for `127.0.0.1:<port>`.
    pub announce: Option<String>,
}

/// A consistent snapshot of the configs, handed to the background threads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub connection: Connection,
    pub mirrors: Vec<MirrorSpec>,
    pub group: Option<GroupSpec>,
    /// How the group elects (`zksync.failover`, `failover-max-lag`, `failsafe`).
    pub policy: Policy,
    /// The change stream, if any.
    pub stream: Option<StreamSpec>,
    pub load_interval: Duration,
    /// A main thread silent this long is stalled; zero: stalls are not watched.
    pub stall_timeout: Duration,
}

/// The change stream's key and trimming (`zksync.stream`, `zksync.stream-maxlen`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    pub key: Vec<u8>,
    /// Trimmed approximately to this many entries; 0 for never.
    pub maxlen: i64,
}

/// The PEM files of a TLS connection to ZooKeeper (`zksync.tls-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: String,
    /// The client certificate and key; empty for none.
    pub cert: String,
    pub key: String,
}

/// `zksync.servers`, parsed once: the ZooKeeper client takes the text,
/// `mntr` and the connected-server lookup the `host:port` servers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectString {
    /// As configured, chroot included.
    text: String,
    servers: Vec<String>,
}

impl ConnectString {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The `host:port` of each server, in order, without the chroot.
    pub fn servers(&self) -> &[String] {
        &self.servers
    }
}

impl std::fmt::Display for ConnectString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// `host:port[,host:port...][/chroot]`. The chroot is only validated: the
/// ZooKeeper client applies it from the text.
pub fn parse_servers(text: &str) -> Result<ConnectString, String> {
    let trimmed = text.trim();
    let (hosts, chroot) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], Some(&trimmed[i..])),
        None => (trimmed, None),
    };
    if hosts.is_empty() {
        return Err("zksync.servers needs at least one host:port".to_string());
    }
    let servers = hosts.split(',').map(parse_server).collect::<Result<_, _>>()?;
    if let Some(chroot) = chroot {
        path::validate(chroot).map_err(|e| format!("bad chroot: {e}"))?;
    }
    Ok(ConnectString {
        text: text.to_string(),
        servers,
    })
}

/// One `host:port` of a connect string.
fn parse_server(server: &str) -> Result<String, String> {
    let (host, port) = server
        .rsplit_once(':')
        .ok_or_else(|| format!("'{server}' is not host:port"))?;
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(format!("'{server}' has no valid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(server.to_string()),
        _ => Err(format!("'{server}' has no valid port")),
    }
}

/// `scheme:credentials`, or empty for none.
pub fn parse_auth(text: &str) -> Result<Option<Auth>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.split_once(':') {
        Some((scheme, credentials)) if !scheme.is_empty() && !credentials.is_empty() => Ok(Some(Auth {
            scheme: scheme.to_string(),
            credentials: credentials.as_bytes().to_vec(),
        })),
        _ => Err("zksync.auth must be scheme:credentials, e.g. digest:user:secret".to_string()),
    }
}

/// Whitespace-separated `ROOT[=PREFIX]`; roots absolute and not overlapping.
pub fn parse_mirrors(text: &str) -> Result<Vec<MirrorSpec>, String> {
    let mut mirrors: Vec<MirrorSpec> = Vec::new();
    for spec in text.split_whitespace() {
        let (root, prefix) = match spec.split_once('=') {
            Some((root, prefix)) => (root, prefix),
            None => (spec, DEFAULT_PREFIX),
        };
        path::validate(root).map_err(|e| format!("bad mirror root: {e}"))?;
        if let Some(other) = mirrors
            .iter()
            .find(|m| path::is_within(root, &m.root) || path::is_within(&m.root, root))
        {
            return Err(format!("mirror roots {} and {root} overlap", other.root));
        }
        mirrors.push(MirrorSpec {
            root: root.to_string(),
            prefix: prefix.to_string(),
        });
    }
    Ok(mirrors)
}

/// Whitespace-separated absolute znode paths (`zksync.allow`).
pub fn parse_allow(text: &str) -> Result<Vec<String>, String> {
    text.split_whitespace()
        .map(|root| {
            path::validate(root)
                .map(|()| root.to_string())
                .map_err(|e| format!("bad zksync.allow root: {e}"))
        })
        .collect()
}

/// Refuses a change stream key (empty: none) that a mirror or a PULL under
/// `zksync.allow` could write or sweep: inside `PREFIX + ROOT` of a mirror,
/// or `zk:` + an allowed root.
pub fn stream_clear(key: &str, mirrors: &[MirrorSpec], allow: &[String]) -> Result<(), String> {
    let namespaces = mirrors
        .iter()
        .map(|m| (m.prefix.as_str(), m.root.as_str()))
        .chain(allow.iter().map(|root| (DEFAULT_PREFIX, root.as_str())));
    for (prefix, root) in namespaces {
        let inside = key.strip_prefix(prefix).is_some_and(|rest| path::is_within(rest, root));
        if inside {
            return Err(format!(
                "the change stream key '{key}' would be inside the keys of {root} (prefix '{prefix}'); choose a key outside it"
            ));
        }
    }
    Ok(())
}

/// A group name is one znode name, or empty for none.
pub fn parse_group(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    path::validate(&format!("/{text}"))
        .ok()
        .filter(|_| !text.contains('/'))
        .map(|_| text.to_string())
        .ok_or_else(|| format!("'{text}' is not a valid group name (one znode name, no '/')"))
}

/// `host:port`, or empty for `127.0.0.1:<port>`.
pub fn parse_announce(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Ok(String::new());
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(text.to_string()),
        _ => Err(format!("'{text}' is not host:port")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers() {
        let ok: [(&str, &[&str]); 5] = [
            ("127.0.0.1:2181", &["127.0.0.1:2181"]),
            ("a:1,b:2,c:3/chroot/x", &["a:1", "b:2", "c:3"]),
            ("a:1/", &["a:1"]),
            (" a:1,b:2 ", &["a:1", "b:2"]),
            ("[::1]:2181", &["[::1]:2181"]),
        ];
        for (text, servers) in ok {
            let connect = parse_servers(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(connect.servers(), servers, "{text}");
            // The client gets the text as configured.
            assert_eq!(connect.as_str(), text);
            assert_eq!(connect.to_string(), text);
        }
        let bad = [
            "", " ", "host", "a:0", "a:x", ":1", "a:1,", "a:1,,b:2", "a:1, b:2", "a:1/x/", "a:1//x", "/x",
        ];
        for text in bad {
            assert!(parse_servers(text).is_err(), "{text}");
        }
    }

    #[test]
    fn mirrors() {
        let m = parse_mirrors(" /app/config  /services=svc: /x= ").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[0],
            MirrorSpec {
                root: "/app/config".into(),
                prefix: "zk:".into()
            }
        );
        assert_eq!(m[1].prefix, "svc:");
        assert_eq!(m[2].prefix, "");
        assert_eq!(m[0].key("/app/config/db"), b"zk:/app/config/db");
        assert!(parse_mirrors("").unwrap().is_empty());
        for bad in ["relative", "/a /a/b", "/a/b /a", "/a /a=x:", "/ /a", "/a/"] {
            assert!(parse_mirrors(bad).is_err(), "{bad}");
        }
        assert!(parse_mirrors("/a /ab").is_ok());
    }

    #[test]
    fn auth_group_announce() {
        assert_eq!(parse_auth("").unwrap(), None);
        let auth = parse_auth("digest:u:p").unwrap().unwrap();
        assert_eq!(
            (auth.scheme.as_str(), auth.credentials.as_slice()),
            ("digest", &b"u:p"[..])
        );
        assert!(!format!("{auth:?}").contains("u:p"));
        assert!(parse_auth("digest").is_err());
        assert!(parse_group("cache").is_ok());
        assert!(parse_group("a/b").is_err());
        assert!(parse_group("..").is_err());
        assert!(parse_announce("10.0.0.1:6379").is_ok());
        assert!(parse_announce("10.0.0.1").is_err());
    }

    #[test]
    fn the_change_stream_stays_out_of_mirrored_keys() {
        let mirrors = parse_mirrors("/app /svc=s:").unwrap();
        let allow = parse_allow("/locks").unwrap();
        let cases = [
            ("", true),
            ("zksync:changes", true),
            ("zk:/app", false),
            ("zk:/app/x", false),
            ("zk:/apple", true),
            ("s:/svc/a", false),
            ("zk:/svc/a", true),
            ("zk:/locks/changes", false),
            ("zk:changes", true),
        ];
        for (key, clear) in cases {
            assert_eq!(stream_clear(key, &mirrors, &allow).is_ok(), clear, "{key}");
        }
        assert!(stream_clear("zk:/x", &parse_mirrors("/=zk:").unwrap(), &[]).is_err());
    }

    #[test]
    fn allow() {
        assert_eq!(parse_allow("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_allow(" /locks  /jobs/a ").unwrap(), ["/locks", "/jobs/a"]);
        assert_eq!(parse_allow("/").unwrap(), ["/"]);
        for bad in ["locks", "/a/", "/a //b"] {
            assert!(parse_allow(bad).is_err(), "{bad}");
        }
    }
}
