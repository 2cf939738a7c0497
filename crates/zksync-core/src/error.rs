//! The one error type of zksync, mapped once to the `CODE message` of its error replies.

use crate::access::Denied;
use crate::text::quote;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Too few or too many arguments for `command` (its name as registered):
    /// the text Redis gives for its own commands.
    WrongArity {
        command: &'static str,
    },
    /// Bad arguments: a syntax error, an invalid path, number or size.
    BadArgs(String),
    /// The client cannot wait for ZooKeeper's answer where it runs.
    CannotBlock(CannotBlock),
    /// ZKSYNC.LOCK on a path whose lock this connection already holds.
    LockHeld(String),
    /// `command` needs a client connection and ran without one (from
    /// another module, say).
    NoClient {
        command: &'static str,
    },
    /// SENTINEL about a master this server does not describe: not its
    /// group, or no leader it can vouch for. Sentinel's own text.
    NoSuchMaster,
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

/// Why a client cannot be blocked to wait for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CannotBlock {
    /// Inside MULTI or a script, or where Redis denies blocking.
    InMultiOrScript,
    /// This server's module API has no way to block a client.
    Unsupported,
    /// Redis refused to block this client.
    Refused,
}

impl CannotBlock {
    fn message(self) -> &'static str {
        match self {
            CannotBlock::InMultiOrScript => "this command waits for ZooKeeper and cannot run inside MULTI or a script",
            CannotBlock::Unsupported => "blocking is not available",
            CannotBlock::Refused => "this client cannot be blocked",
        }
    }
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            // Refusals of a client's state are `ERR`, as Redis's own are.
            Error::WrongArity { .. }
            | Error::BadArgs(_)
            | Error::CannotBlock(_)
            | Error::LockHeld(_)
            | Error::NoClient { .. }
            | Error::NoSuchMaster
            | Error::Failover(_)
            | Error::Zk { .. } => "ERR",
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
            Error::WrongArity { command } => format!("wrong number of arguments for '{command}' command"),
            Error::CannotBlock(why) => why.message().to_string(),
            Error::LockHeld(path) => format!("this connection already holds the lock at {path}"),
            Error::NoClient { command } => format!("{command} needs a client connection"),
            Error::NoSuchMaster => "No such master with that name".to_string(),
            Error::Failover(m) => format!("failover: {m}"),
            Error::ZkDown(why) => format!("no ZooKeeper session ({why})"),
            Error::NoNode(p) => format!("znode {p} does not exist"),
            Error::NodeExists(p) => format!("znode {p} already exists"),
            Error::BadVersion(p) => format!("version mismatch on znode {p}"),
            Error::NotEmpty(p) => format!("znode {p} has children"),
            Error::NoAuth(p) => format!("ZooKeeper refused access to {p}"),
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

    /// Clients see these texts (and their `ERR`): they are pinned here.
    #[test]
    fn arity_and_refusals_read_as_before() {
        for (error, text) in [
            (
                Error::WrongArity { command: "zksync.pull" },
                "ERR wrong number of arguments for 'zksync.pull' command",
            ),
            (
                Error::CannotBlock(CannotBlock::InMultiOrScript),
                "ERR this command waits for ZooKeeper and cannot run inside MULTI or a script",
            ),
            (
                Error::CannotBlock(CannotBlock::Unsupported),
                "ERR blocking is not available",
            ),
            (
                Error::CannotBlock(CannotBlock::Refused),
                "ERR this client cannot be blocked",
            ),
            (
                Error::LockHeld("/locks/a".into()),
                "ERR this connection already holds the lock at /locks/a",
            ),
            (
                Error::NoClient { command: "ZKSYNC.LOCK" },
                "ERR ZKSYNC.LOCK needs a client connection",
            ),
            (Error::NoSuchMaster, "ERR No such master with that name"),
        ] {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn control_bytes_are_quoted() {
        let e = Error::BadArgs("bad '\0\r\n'".into()).to_string();
        assert!(e.bytes().all(|b| (b' '..=b'~').contains(&b)), "{e:?}");
    }
}
