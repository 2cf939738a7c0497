//! The one error type of zksync, mapped once to the `CODE message` of its error replies.

use crate::access::Denied;
use crate::text::quote;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The wrong number of arguments: Redis's own error, which names the
    /// command as registered (the module replies through Redis's call).
    WrongArity,
    /// Wrong arguments: paths, numbers, sizes, unknown options.
    BadArgs(String),
    ZkDown(String),
    NoNode(String),
    NodeExists(String),
    BadVersion(String),
    NotEmpty(String),
    NoAuth(String),
    Timeout,
    ReadOnly(String),
    /// A replica's PSYNC or SYNC to a fenced master. NOMASTERLINK makes the
    /// replica try PSYNC again later; any other error sends it to the old
    /// SYNC, after which Redis 7.0 never streams to it (it sends no ACK).
    NoMasterLink(String),
    /// A load or failover command on a server without `zksync.group`.
    NoGroup,
    /// Outside the allowed roots, in a reserved tree, or refused by the Redis ACL.
    NoPerm(Denied),
    /// A switchover refused or rolled back.
    Failover(String),
    /// ZKSYNC.CHECK: the token does not hold the lock as far as this server can vouch.
    Fenced(String),
    /// ZKSYNC.FAILSAFE: this member does not grant the asking master.
    Refused(String),
    /// Anything else ZooKeeper answered: reported as is.
    Zk {
        path: String,
        message: String,
    },
    /// Redis Cluster: the path's mirrored key lives in `slot`, served at
    /// `addr`; cluster clients follow the redirection.
    Ask {
        slot: u16,
        addr: String,
    },
    /// Redis Cluster: no master serves the key's slot, or the cluster cannot be read.
    ClusterDown(String),
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Error::WrongArity | Error::BadArgs(_) | Error::Failover(_) | Error::Zk { .. } => "ERR",
            Error::ZkDown(_) => "ZKDOWN",
            Error::NoNode(_) => "ZKNONODE",
            Error::NodeExists(_) => "ZKNODEEXISTS",
            Error::BadVersion(_) => "ZKBADVERSION",
            Error::NotEmpty(_) => "ZKNOTEMPTY",
            Error::NoAuth(_) => "ZKNOAUTH",
            Error::Timeout => "ZKTIMEOUT",
            Error::ReadOnly(_) => "READONLY",
            Error::NoMasterLink(_) => "NOMASTERLINK",
            Error::NoGroup => "NOGROUP",
            Error::NoPerm(_) => "NOPERM",
            Error::Fenced(_) => "FENCED",
            Error::Refused(_) => "REFUSED",
            Error::Ask { .. } => "ASK",
            Error::ClusterDown(_) => "CLUSTERDOWN",
        }
    }

    fn message(&self) -> String {
        match self {
            Error::BadArgs(m)
            | Error::ReadOnly(m)
            | Error::NoMasterLink(m)
            | Error::Fenced(m)
            | Error::Refused(m)
            | Error::ClusterDown(m) => m.clone(),
            Error::Failover(m) => format!("failover: {m}"),
            Error::ZkDown(why) => format!("no ZooKeeper session ({why})"),
            Error::NoNode(p) => format!("znode {p} does not exist"),
            Error::NodeExists(p) => format!("znode {p} already exists"),
            Error::BadVersion(p) => format!("version mismatch on znode {p}"),
            Error::NotEmpty(p) => format!("znode {p} has children"),
            Error::NoAuth(p) => format!("ZooKeeper refused access to {p}"),
            Error::WrongArity => "wrong number of arguments".to_string(),
            Error::Timeout => "ZooKeeper did not answer in time".to_string(),
            Error::NoGroup => "this server is in no group (set zksync.group)".to_string(),
            Error::Zk { path, message } => format!("ZooKeeper error on {path}: {message}"),
            Error::NoPerm(denied) => denied.to_string(),
            Error::Ask { slot, addr } => format!("{slot} {addr}"),
        }
    }
}

/// `CODE message`, the text of the error reply: what came from a client or
/// from ZooKeeper is quoted, never echoed raw.
impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code(), quote(&self.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_start_with_the_code() {
        assert_eq!(Error::Timeout.to_string(), "ZKTIMEOUT ZooKeeper did not answer in time");
        assert!(Error::BadVersion("/a".into()).to_string().starts_with("ZKBADVERSION "));
        assert!(Error::BadArgs("wrong".into()).to_string().starts_with("ERR "));
        let ask = Error::Ask {
            slot: 6907,
            addr: "127.0.0.1:7001".into(),
        };
        assert_eq!(ask.to_string(), "ASK 6907 127.0.0.1:7001");
    }

    /// Every error reply the docs quote is the text the code gives.
    #[test]
    fn the_docs_quote_the_errors_as_given() {
        let docs = [
            ("README.md", include_str!("../../../README.md")),
            ("docs/mirror.md", include_str!("../../../docs/mirror.md")),
            ("docs/locks.md", include_str!("../../../docs/locks.md")),
            ("docs/failover.md", include_str!("../../../docs/failover.md")),
            ("docs/access.md", include_str!("../../../docs/access.md")),
        ];
        let quoted = [("docs/mirror.md", Error::BadVersion("/app/config/db".into()))];
        for (doc, error) in &quoted {
            let text = docs.iter().find(|(name, _)| name == doc).map_or("", |(_, text)| *text);
            assert!(
                text.contains(&format!("(error) {error}")),
                "{doc} quotes {error} otherwise"
            );
        }
        let lines = docs
            .iter()
            .flat_map(|(_, text)| text.lines())
            .filter(|l| l.starts_with("(error) "));
        assert_eq!(
            lines.count(),
            quoted.len(),
            "an error quoted in the docs is not checked here"
        );
    }

    #[test]
    fn control_bytes_are_quoted() {
        let e = Error::BadArgs("bad '\0\r\n'".into()).to_string();
        assert!(e.bytes().all(|b| (b' '..=b'~').contains(&b)), "{e:?}");
    }
}
