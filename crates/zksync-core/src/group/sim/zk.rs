//! The simulated ZooKeeper server: znodes with versions and ephemeral
//! owners, sessions that expire no sooner than their timeout after the
//! server last heard from them, and all-or-nothing multi-ops. Pure data:
//! the world carries its requests and its watch events over the network.

use std::collections::BTreeMap;
use std::time::Duration;

/// A znode's stat, as far as the group reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub version: i32,
    /// The owning session of an ephemeral znode; 0 for a persistent one.
    pub owner: i64,
    pub mzxid: i64,
    pub mtime_ms: i64,
}

#[derive(Clone, Debug)]
struct Znode {
    data: Vec<u8>,
    stat: Stat,
}

/// A request, as zookeeper-client sends it.
#[derive(Clone, Debug)]
pub enum Op {
    GetData(String),
    CheckStat(String),
    /// The children of a directory with their data (the members' read).
    Children(String),
    Create {
        path: String,
        data: Vec<u8>,
        ephemeral: bool,
    },
    SetData {
        path: String,
        data: Vec<u8>,
        version: Option<i32>,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    /// Fails unless the znode is at this version (in a multi).
    Check {
        path: String,
        version: i32,
    },
    Multi(Vec<Op>),
}

#[derive(Clone, Debug)]
pub enum Answer {
    Data(Option<(Vec<u8>, Stat)>),
    Stat(Option<Stat>),
    Children(Vec<(String, Vec<u8>, Stat)>),
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZkErr {
    ConnectionLoss,
    NoNode,
    NodeExists,
    BadVersion,
}

/// A live session, as the server keeps it.
#[derive(Clone, Debug)]
pub struct Session {
    pub timeout: Duration,
    /// Expires once the clock passes this (the server's last contact plus the timeout).
    pub deadline: Duration,
    /// The connection bound to it (0: none).
    pub conn: u64,
    /// The directory watched (persistent, recursive) on that connection.
    pub watch: Option<(u64, String)>,
}

#[derive(Default)]
pub struct Zk {
    nodes: BTreeMap<String, Znode>,
    zxid: i64,
    pub sessions: BTreeMap<i64, Session>,
    next_session: i64,
}

/// The paths an operation changed, for watch events.
pub type Changed = Vec<String>;

impl Zk {
    pub fn new(dirs: &[String]) -> Zk {
        let mut zk = Zk {
            next_session: 0x100,
            ..Zk::default()
        };
        for dir in dirs {
            let _ = zk.create(dir, b"", 0, 0, &mut Vec::new());
        }
        zk
    }

    pub fn open_session(&mut self, timeout: Duration, now: Duration, conn: u64) -> i64 {
        self.next_session += 1;
        let session = Session {
            timeout,
            deadline: now + timeout,
            conn,
            watch: None,
        };
        self.sessions.insert(self.next_session, session);
        self.next_session
    }

    /// The server heard from `session`.
    pub fn touch(&mut self, session: i64, now: Duration) {
        if let Some(s) = self.sessions.get_mut(&session) {
            s.deadline = now + s.timeout;
        }
    }

    /// Expires every session whose deadline passed; their ephemeral znodes go.
    pub fn expire(&mut self, now: Duration, now_ms: i64) -> (Vec<i64>, Changed) {
        let gone: Vec<i64> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        let mut changed = Vec::new();
        for id in &gone {
            self.sessions.remove(id);
            let owned: Vec<String> = self
                .nodes
                .iter()
                .filter(|(_, n)| n.stat.owner == *id)
                .map(|(p, _)| p.clone())
                .collect();
            for path in owned {
                let _ = self.delete(&path, None, now_ms, &mut changed);
            }
        }
        (gone, changed)
    }

    /// Runs `op` for `session` at `now_ms` (ZooKeeper's clock, for mtime).
    pub fn apply(&mut self, session: i64, op: &Op, now_ms: i64) -> (Result<Answer, ZkErr>, Changed) {
        let mut changed = Vec::new();
        let result = match op {
            Op::Multi(ops) => self.multi(session, ops, now_ms, &mut changed),
            op => self.single(session, op, now_ms, &mut changed),
        };
        (result, changed)
    }

    /// All or nothing, under one zxid.
    fn multi(&mut self, session: i64, ops: &[Op], now_ms: i64, changed: &mut Changed) -> Result<Answer, ZkErr> {
        let (nodes, zxid) = (self.nodes.clone(), self.zxid);
        let mut written = Vec::new();
        for op in ops {
            if let Err(e) = self.single(session, op, now_ms, &mut written) {
                self.nodes = nodes;
                self.zxid = zxid;
                return Err(e);
            }
        }
        // One transaction: one zxid for every write in it.
        self.zxid = zxid + 1;
        for path in &written {
            if let Some(node) = self.nodes.get_mut(path) {
                node.stat.mzxid = self.zxid;
            }
        }
        changed.extend(written);
        Ok(Answer::Done)
    }

    fn single(&mut self, session: i64, op: &Op, now_ms: i64, changed: &mut Changed) -> Result<Answer, ZkErr> {
        match op {
            Op::GetData(path) => Ok(Answer::Data(self.nodes.get(path).map(|n| (n.data.clone(), n.stat)))),
            Op::CheckStat(path) => Ok(Answer::Stat(self.nodes.get(path).map(|n| n.stat))),
            Op::Children(dir) => {
                let prefix = format!("{dir}/");
                let children = self
                    .nodes
                    .range(prefix.clone()..)
                    .take_while(|(p, _)| p.starts_with(&prefix))
                    .filter(|(p, _)| !p[prefix.len()..].contains('/'))
                    .map(|(p, n)| (p.clone(), n.data.clone(), n.stat))
                    .collect();
                Ok(Answer::Children(children))
            }
            Op::Create { path, data, ephemeral } => {
                let owner = if *ephemeral { session } else { 0 };
                self.create(path, data, owner, now_ms, changed)
            }
            Op::SetData { path, data, version } => {
                let node = self.nodes.get_mut(path).ok_or(ZkErr::NoNode)?;
                if version.is_some_and(|v| v != node.stat.version) {
                    return Err(ZkErr::BadVersion);
                }
                self.zxid += 1;
                node.data = data.clone();
                node.stat.version += 1;
                node.stat.mzxid = self.zxid;
                node.stat.mtime_ms = now_ms;
                changed.push(path.clone());
                Ok(Answer::Done)
            }
            Op::Delete { path, version } => self.delete(path, *version, now_ms, changed),
            Op::Check { path, version } => match self.nodes.get(path) {
                Some(node) if node.stat.version == *version => Ok(Answer::Done),
                Some(_) => Err(ZkErr::BadVersion),
                None => Err(ZkErr::NoNode),
            },
            Op::Multi(_) => Err(ZkErr::BadVersion),
        }
    }

    fn create(
        &mut self,
        path: &str,
        data: &[u8],
        owner: i64,
        now_ms: i64,
        changed: &mut Changed,
    ) -> Result<Answer, ZkErr> {
        if self.nodes.contains_key(path) {
            return Err(ZkErr::NodeExists);
        }
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        if !parent.is_empty() && !self.nodes.contains_key(parent) {
            return Err(ZkErr::NoNode);
        }
        self.zxid += 1;
        let stat = Stat {
            version: 0,
            owner,
            mzxid: self.zxid,
            mtime_ms: now_ms,
        };
        self.nodes.insert(
            path.to_string(),
            Znode {
                data: data.to_vec(),
                stat,
            },
        );
        changed.push(path.to_string());
        Ok(Answer::Done)
    }

    fn delete(
        &mut self,
        path: &str,
        version: Option<i32>,
        _now_ms: i64,
        changed: &mut Changed,
    ) -> Result<Answer, ZkErr> {
        let node = self.nodes.get(path).ok_or(ZkErr::NoNode)?;
        if version.is_some_and(|v| v != node.stat.version) {
            return Err(ZkErr::BadVersion);
        }
        let prefix = format!("{path}/");
        if self
            .nodes
            .range(prefix.clone()..)
            .next()
            .is_some_and(|(p, _)| p.starts_with(&prefix))
        {
            return Err(ZkErr::NodeExists);
        }
        self.zxid += 1;
        self.nodes.remove(path);
        changed.push(path.to_string());
        Ok(Answer::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(path: &str, ephemeral: bool) -> Op {
        Op::Create {
            path: path.into(),
            data: b"x".to_vec(),
            ephemeral,
        }
    }

    #[test]
    fn versions_owners_multi_and_expiry() {
        let mut zk = Zk::new(&["/g".to_string()]);
        let s = zk.open_session(Duration::from_secs(2), Duration::ZERO, 1);
        assert!(zk.apply(s, &create("/g/e", false), 0).0.is_ok());
        assert_eq!(zk.apply(s, &create("/g/e", false), 0).0.unwrap_err(), ZkErr::NodeExists);
        assert_eq!(zk.apply(s, &create("/x/y", false), 0).0.unwrap_err(), ZkErr::NoNode);
        let bad = Op::SetData {
            path: "/g/e".into(),
            data: b"1".to_vec(),
            version: Some(3),
        };
        assert_eq!(zk.apply(s, &bad, 0).0.unwrap_err(), ZkErr::BadVersion);
        // A multi whose last op fails leaves nothing behind.
        let multi = Op::Multi(vec![create("/g/leader", true), bad]);
        assert_eq!(zk.apply(s, &multi, 0).0.unwrap_err(), ZkErr::BadVersion);
        assert!(matches!(
            zk.apply(s, &Op::CheckStat("/g/leader".into()), 0).0,
            Ok(Answer::Stat(None))
        ));
        let (result, changed) = zk.apply(s, &Op::Multi(vec![create("/g/leader", true)]), 0);
        assert!(result.is_ok());
        assert_eq!(changed, ["/g/leader"]);
        let Ok(Answer::Stat(Some(stat))) = zk.apply(s, &Op::CheckStat("/g/leader".into()), 0).0 else {
            panic!("no leader")
        };
        assert_eq!(stat.owner, s);
        // Never before the timeout after the last contact.
        zk.touch(s, Duration::from_secs(1));
        assert!(zk.expire(Duration::from_millis(2999), 0).0.is_empty());
        let (gone, changed) = zk.expire(Duration::from_secs(3), 0);
        assert_eq!((gone, changed), (vec![s], vec!["/g/leader".to_string()]));
        let Ok(Answer::Children(children)) = zk.apply(0, &Op::Children("/g".into()), 0).0 else {
            panic!("no children")
        };
        assert_eq!(children.len(), 1, "the persistent znode stays");
    }
}
