//! Which znode paths a client may act on through zksync, and under which key
//! prefix. zksync talks to ZooKeeper with its own identity on behalf of
//! every Redis client, so it decides here what a client may reach: only
//! paths under a mirror root or a root of `zksync.allow`, never a write into
//! ZooKeeper's own tree or zksync's, and no copy of zksync's tree. (The
//! Redis ACL check of the key comes after, at the edge.)

use crate::path;
use crate::settings::{self, MirrorSpec, DEFAULT_PREFIX};

/// ZooKeeper's own tree (quotas, the ensemble's config).
pub const ZOOKEEPER_TREE: &str = "/zookeeper";
/// zksync's own tree: groups, members, leaders, epochs, history.
pub const ZKSYNC_TREE: &str = "/zksync";

/// What a command does at a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
    Stat,
    Ls,
    /// LOCK and UNLOCK: contender znodes are created and deleted.
    Lock,
    Check,
}

/// What a command does to the key of its path, for the Redis ACL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAccess {
    Read,
    Write,
}

impl Action {
    pub fn key_access(self) -> KeyAccess {
        match self {
            Action::Pull | Action::Push | Action::Delete | Action::Lock => KeyAccess::Write,
            Action::Stat | Action::Ls | Action::Check => KeyAccess::Read,
        }
    }
}

/// Why a command may not act at a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    OutsideRoots {
        path: String,
    },
    Reserved {
        path: String,
        tree: &'static str,
    },
    /// The Redis ACL refuses the calling user this key.
    Key {
        key: Vec<u8>,
        access: KeyAccess,
    },
    /// An internal command, called by another user than the one it is for.
    Internal {
        command: &'static str,
        user: String,
    },
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Denied::OutsideRoots { path } => write!(
                f,
                "'{path}' is outside every mirror root and zksync.allow; add a root above it to zksync.allow"
            ),
            Denied::Reserved { path, tree } if *tree == ZOOKEEPER_TREE => {
                write!(
                    f,
                    "'{path}' is in ZooKeeper's own tree {tree}, which zksync never changes"
                )
            }
            Denied::Reserved { path, tree } => write!(
                f,
                "'{path}' is in zksync's own tree {tree}, which commands never change or copy"
            ),
            Denied::Key { key, access } => {
                let verb = match access {
                    KeyAccess::Read => "read",
                    KeyAccess::Write => "write",
                };
                write!(
                    f,
                    "this user has no permissions to {verb} the key '{}'",
                    String::from_utf8_lossy(key)
                )
            }
            Denied::Internal { command, user } => write!(
                f,
                "{command} is internal to a zksync group: only the user '{user}' (masteruser, else default) may call it"
            ),
        }
    }
}

/// Where a permitted command acts: the key prefix of its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The covering mirror's prefix, else the default one.
    pub prefix: String,
    /// Whether the path lies in a mirror.
    pub mirrored: bool,
}

impl Target {
    pub fn key(&self, path: &str) -> Vec<u8> {
        settings::key(&self.prefix, path)
    }
}

/// The roots commands may act under: the mirror roots and `zksync.allow`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roots {
    pub mirrors: Vec<MirrorSpec>,
    pub allow: Vec<String>,
}

impl Roots {
    /// Whether `action` may act at `path` (a valid absolute path), and where.
    pub fn check(&self, p: &str, action: Action) -> Result<Target, Denied> {
        let reserved = match action {
            Action::Push | Action::Delete | Action::Lock => [ZOOKEEPER_TREE, ZKSYNC_TREE]
                .into_iter()
                .find(|t| path::is_within(p, t)),
            Action::Pull => Some(ZKSYNC_TREE).filter(|t| path::is_within(p, t)),
            Action::Stat | Action::Ls | Action::Check => None,
        };
        if let Some(tree) = reserved {
            return Err(Denied::Reserved {
                path: p.to_string(),
                tree,
            });
        }
        if let Some(mirror) = self.mirrors.iter().find(|m| path::is_within(p, &m.root)) {
            return Ok(Target {
                prefix: mirror.prefix.clone(),
                mirrored: true,
            });
        }
        if self.allow.iter().any(|root| path::is_within(p, root)) {
            return Ok(Target {
                prefix: DEFAULT_PREFIX.to_string(),
                mirrored: false,
            });
        }
        Err(Denied::OutsideRoots { path: p.to_string() })
    }
}

/// Whether a PULL of `root`, outside every mirror, leaves out the znode at
/// `p`: zksync's own tree is never copied into the keyspace.
pub fn left_out_of_copy(p: &str) -> bool {
    path::is_within(p, ZKSYNC_TREE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Roots {
        Roots {
            mirrors: crate::settings::parse_mirrors("/app/config /services=svc:").unwrap(),
            allow: vec!["/locks".into(), "/jobs".into()],
        }
    }

    /// The prefix and whether mirrored, or `None` for a refusal.
    type Expected = Option<(&'static str, bool)>;

    #[test]
    fn roots_decide_and_name_the_prefix() {
        use Action::*;
        let r = roots();
        #[rustfmt::skip]
        let table: &[(&str, Action, Expected)] = &[
            ("/app/config", Pull, Some(("zk:", true))),
            ("/app/config/db", Push, Some(("zk:", true))),
            ("/services/api", Stat, Some(("svc:", true))),
            ("/locks/a", Delete, Some(("zk:", false))),
            ("/jobs", Ls, Some(("zk:", false))),
            ("/app", Pull, None),
            ("/app/configx", Push, None),
            ("/", Stat, None),
            ("/lock", Push, None),
            ("/locks/a", Lock, Some(("zk:", false))),
            ("/locks/a", Check, Some(("zk:", false))),
            ("/lock", Lock, None),
        ];
        for (p, action, want) in table {
            let got = r.check(p, *action).ok();
            let want = want.map(|(prefix, mirrored)| Target {
                prefix: prefix.to_string(),
                mirrored,
            });
            assert_eq!(got, want, "{p} {action:?}");
        }
        assert_eq!(
            r.check("/app", Action::Pull),
            Err(Denied::OutsideRoots { path: "/app".into() })
        );
    }

    #[test]
    fn reserved_trees_whatever_the_roots() {
        let everything = Roots {
            mirrors: crate::settings::parse_mirrors("/=all:").unwrap(),
            allow: vec!["/".into()],
        };
        let reserved = |p: &str, tree| {
            Err(Denied::Reserved {
                path: p.to_string(),
                tree,
            })
        };
        #[rustfmt::skip]
        let table: &[(&str, Action, Result<Target, Denied>)] = &[
            ("/zksync/g/epoch", Action::Push, reserved("/zksync/g/epoch", ZKSYNC_TREE)),
            ("/zksync/g/leader", Action::Delete, reserved("/zksync/g/leader", ZKSYNC_TREE)),
            ("/zksync", Action::Pull, reserved("/zksync", ZKSYNC_TREE)),
            ("/zookeeper/quota/x", Action::Push, reserved("/zookeeper/quota/x", ZOOKEEPER_TREE)),
            ("/zookeeper", Action::Delete, reserved("/zookeeper", ZOOKEEPER_TREE)),
            ("/zksync/g/leader", Action::Lock, reserved("/zksync/g/leader", ZKSYNC_TREE)),
        ];
        for (p, action, want) in table {
            assert_eq!(everything.check(p, *action), *want, "{p} {action:?}");
        }
        // Reading is not changing: a mirror of / may show them.
        for (p, action) in [
            ("/zksync/g", Action::Stat),
            ("/zookeeper", Action::Ls),
            ("/zookeeper", Action::Pull),
        ] {
            assert!(everything.check(p, action).is_ok(), "{p} {action:?}");
        }
        // Names that only start like a reserved tree are not in it.
        for p in ["/zksyncx", "/zookeeperx/a"] {
            assert!(everything.check(p, Action::Push).is_ok(), "{p}");
        }
        assert!(left_out_of_copy("/zksync/g/members/m"));
        assert!(!left_out_of_copy("/zksyncx"));
    }

    #[test]
    fn refusals_say_what_would_allow() {
        let text = Denied::OutsideRoots { path: "/x".into() }.to_string();
        assert!(text.contains("'/x'") && text.contains("zksync.allow"), "{text}");
        let text = Denied::Key {
            key: b"zk:/a".to_vec(),
            access: KeyAccess::Write,
        }
        .to_string();
        assert!(text.contains("write the key 'zk:/a'"), "{text}");
    }
}
