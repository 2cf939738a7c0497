//! The session thread's record of what it has sent for one mirror: each
//! znode's highest zxid (`mzxid`, or `pzxid` once its children changed).
//! Diffing a fresh read against it yields the few keys (or stats) a resync
//! must write.

use super::{stat_zxid, Node, Op};
use crate::path;
use std::collections::HashMap;

#[derive(Default)]
pub struct Tree {
    versions: HashMap<String, i64>,
}

impl Tree {
    /// Replaces the record with a full read of the mirror (parents before
    /// children) and returns the ops that bring the keyspace to it: changed and
    /// new znodes, the unchanged ones to verify, then the vanished ones,
    /// deepest first.
    pub fn resync(&mut self, nodes: Vec<Node>) -> Vec<Op> {
        let mut old = std::mem::take(&mut self.versions);
        let mut ops = Vec::new();
        for node in nodes {
            let known = old.remove(&node.path);
            let zxid = stat_zxid(&node.stat);
            self.versions.insert(node.path.clone(), zxid);
            if known != Some(zxid) {
                ops.push(Op::Upsert(node));
            } else {
                ops.push(Op::Verify(node));
            }
        }
        let mut gone: Vec<String> = old.into_keys().collect();
        gone.sort_by(|a, b| b.cmp(a));
        ops.extend(gone.into_iter().map(Op::Delete));
        ops
    }

    /// Records one fresh read of `path` (`None`: it does not exist) and returns
    /// the op it calls for, if any.
    pub fn observe(&mut self, path: &str, node: Option<Node>) -> Option<Op> {
        match node {
            Some(node) => {
                let zxid = stat_zxid(&node.stat);
                let known = self.versions.insert(node.path.clone(), zxid);
                (known != Some(zxid)).then_some(Op::Upsert(node))
            }
            None => self.versions.remove(path).map(|_| Op::Delete(path.to_string())),
        }
    }

    /// Replaces the record below `root` with `nodes` (ZKSYNC.PULL inside a mirror).
    pub fn replace_below(&mut self, root: &str, nodes: &[Node]) {
        self.versions.retain(|p, _| !path::is_within(p, root));
        for node in nodes {
            self.versions.insert(node.path.clone(), stat_zxid(&node.stat));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zookeeper_client::Stat;

    fn node(path: &str, mzxid: i64) -> Node {
        Node {
            path: path.to_string(),
            data: vec![],
            stat: Stat {
                mzxid,
                ..crate::mirror::test_stat()
            },
        }
    }

    fn describe(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                Op::Upsert(n) => format!("set {}", n.path),
                Op::Verify(n) => format!("verify {}", n.path),
                Op::Delete(p) => format!("del {p}"),
            })
            .collect()
    }

    #[test]
    fn resync_writes_only_changes() {
        let mut tree = Tree::default();
        let first = tree.resync(vec![node("/a", 1), node("/a/b", 2), node("/a/b/c", 3), node("/a/d", 4)]);
        assert_eq!(first.len(), 4);
        let second = tree.resync(vec![node("/a", 1), node("/a/b", 5), node("/a/e", 6)]);
        assert_eq!(
            describe(&second),
            ["verify /a", "set /a/b", "set /a/e", "del /a/d", "del /a/b/c"]
        );
    }

    #[test]
    fn observe_is_idempotent() {
        let mut tree = Tree::default();
        assert!(tree.observe("/a", Some(node("/a", 1))).is_some());
        assert!(tree.observe("/a", Some(node("/a", 1))).is_none());
        assert!(tree.observe("/a", None).is_some());
        assert!(tree.observe("/a", None).is_none());
    }
}
