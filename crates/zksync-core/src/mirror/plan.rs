//! What a batch of ops does to the index and which key writes it calls for,
//! and how a resync's read becomes ops, decided without Redis. The apply
//! thread (`crates/zksync/src/redis/apply.rs`) runs these under the Redis lock and carries
//! the writes out in order.

use super::index::{Advance, Index};
use super::{stat_zxid, Node, Op};
use crate::path;
use crate::settings::MirrorSpec;
use std::collections::HashSet;

/// One write to a mirrored key.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyWrite {
    Set {
        key: Vec<u8>,
        data: Vec<u8>,
        znode: Version,
    },
    /// Set the key unless it already holds `data`: a resync repairs keys
    /// changed outside zksync.
    Repair {
        key: Vec<u8>,
        data: Vec<u8>,
        znode: Version,
    },
    Delete {
        key: Vec<u8>,
        path: String,
        /// The index held the znode: a change even where the key cannot be read.
        indexed: bool,
    },
}

impl KeyWrite {
    pub fn key(&self) -> &[u8] {
        match self {
            KeyWrite::Set { key, .. } | KeyWrite::Repair { key, .. } | KeyWrite::Delete { key, .. } => key,
        }
    }

    /// Whether the index alone tells that this write changes the key (a
    /// newer version of a znode it knew, the delete of one it held): what a
    /// cluster node that cannot read the key (it lives on another node)
    /// records in the change stream. A repair or a first write needs the key.
    pub fn known_change(&self) -> bool {
        match self {
            KeyWrite::Set { znode, .. } => znode.newer,
            KeyWrite::Delete { indexed, .. } => *indexed,
            KeyWrite::Repair { .. } => false,
        }
    }
}

/// The znode version a key write carries (for the change stream).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub path: String,
    pub mzxid: i64,
    pub version: i32,
    /// The index knew an older version: a change even if the bytes are
    /// the same. (Else the key may already hold this very version, written
    /// before a restart or a promotion.)
    pub newer: bool,
}

impl Version {
    fn of(node: &Node, newer: bool) -> Version {
        Version {
            path: node.path.clone(),
            mzxid: node.stat.mzxid,
            version: node.stat.version,
            newer,
        }
    }
}

/// What a batch did to the index, and the key writes it calls for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Empty where the keyspace is not written (a replica).
    pub writes: Vec<KeyWrite>,
    /// The highest zxid written or updated; 0 for none.
    pub zxid: i64,
    /// Live or resync changes that moved the index.
    pub applied: u64,
}

/// Live or resync ops: a key never goes back to an older version; a stat
/// whose children changed is updated without rewriting the key. The
/// mirror's applied zxid moves with them.
pub fn ops(index: &mut Index, spec: &MirrorSpec, ops: Vec<Op>, write: bool) -> Plan {
    let mut plan = Plan::default();
    for op in ops {
        match op {
            Op::Upsert(node) => {
                let zxid = stat_zxid(&node.stat);
                let newer = index.stat(&node.path).is_some();
                let write = write.then(|| (spec.key(&node.path), Version::of(&node, newer)));
                match index.advance(&node.path, node.stat) {
                    Advance::Stale => continue,
                    Advance::ChildrenOnly => {}
                    Advance::Data => plan.writes.extend(write.map(|(key, znode)| KeyWrite::Set {
                        key,
                        data: node.data,
                        znode,
                    })),
                }
                plan.zxid = plan.zxid.max(zxid);
                plan.applied += 1;
            }
            Op::Delete(path) => {
                let indexed = index.remove(&path).is_some();
                if write {
                    plan.writes.push(delete(spec, &path, indexed));
                }
                if indexed {
                    plan.applied += 1;
                }
            }
            Op::Verify(node) => {
                if index.stat(&node.path).is_some_and(|old| old.mzxid > node.stat.mzxid) {
                    continue;
                }
                if write {
                    plan.writes.push(KeyWrite::Repair {
                        key: spec.key(&node.path),
                        znode: Version::of(&node, false),
                        data: node.data,
                    });
                }
                index.insert(&node.path, node.stat);
            }
        }
    }
    if let Some(entry) = index.mirror_mut(&spec.root) {
        entry.applied_zxid = entry.applied_zxid.max(plan.zxid);
    }
    plan
}

/// A resync's znodes: the index holds the same version (mzxid and pzxid) of
/// one → verify its key, else upsert it. The index is the only record of
/// what was written, so an unchanged mirror costs a lookup per znode, no write.
pub fn resynced(index: &mut Index, spec: &MirrorSpec, nodes: Vec<Node>, write: bool) -> Plan {
    let batch = nodes
        .into_iter()
        .map(|node| match index.stat(&node.path) {
            Some(old) if old.mzxid == node.stat.mzxid && old.pzxid == node.stat.pzxid => Op::Verify(node),
            _ => Op::Upsert(node),
        })
        .collect();
    ops(index, spec, batch, write)
}

/// The deletes of znodes a resync did not read, deepest first (a path sorts
/// before the paths below it).
pub fn deepest_first(mut vanished: Vec<String>) -> Vec<Op> {
    vanished.sort_unstable_by(|a, b| b.cmp(a));
    vanished.into_iter().map(Op::Delete).collect()
}

/// One resync of a mirror as its read arrives in parts (the session reads
/// level by level while the apply thread writes). Nothing is written until
/// the read proves ZooKeeper has this history: the mirror's applied zxid is
/// reached, or, at the end, the root-vanished and history checks pass.
pub struct Resync {
    /// The mirror's applied zxid as the read began.
    applied: i64,
    /// Read but not yet proven of this history.
    held: Vec<Node>,
    writing: bool,
    /// Whether the read holds any znode (the root comes first).
    any: bool,
    /// The paths read; `None` when the index held nothing below the root
    /// as the read began (then nothing it holds can have vanished).
    read: Option<HashSet<String>>,
}

impl Resync {
    /// `indexed`: the index holds znodes below the root.
    pub fn new(applied_zxid: i64, indexed: bool) -> Resync {
        Resync {
            applied: applied_zxid,
            held: Vec::new(),
            writing: false,
            any: false,
            read: indexed.then(HashSet::new),
        }
    }

    /// Takes the next znodes of the read (parents before children) and the
    /// highest zxid the read has seen so far; returns those to write now.
    pub fn nodes(&mut self, nodes: Vec<Node>, zxid: i64) -> Vec<Node> {
        if let Some(read) = &mut self.read {
            read.extend(nodes.iter().map(|n| n.path.clone()));
        }
        self.any |= !nodes.is_empty();
        self.held.extend(nodes);
        // In the same history the zxid only grows: once it reaches the
        // applied one, the end's check passes too.
        self.writing |= self.any && zxid >= self.applied;
        if self.writing {
            std::mem::take(&mut self.held)
        } else {
            Vec::new()
        }
    }

    /// The read of `root` is complete, its highest zxid `zxid`; `root_known`:
    /// whether the index or the keyspace holds the root. Returns the znodes
    /// still to write, or why the mirror stops applying.
    pub fn end(&mut self, root: &str, zxid: i64, root_known: impl FnOnce() -> bool) -> Result<Vec<Node>, String> {
        if !self.writing {
            if zxid < self.applied {
                return Err(format!(
                    "ZooKeeper is behind the mirror (highest zxid {zxid:#x} < applied {:#x}): another history",
                    self.applied
                ));
            }
            if !self.any && root_known() {
                return Err(format!("mirror root {root} vanished together with its whole subtree"));
            }
        }
        self.writing = true;
        Ok(std::mem::take(&mut self.held))
    }

    /// Whether the index may hold znodes the read did not.
    pub fn may_have_vanished(&self) -> bool {
        self.read.is_some()
    }

    /// Whether `path`, held by the index, is gone from ZooKeeper.
    pub fn vanished(&self, path: &str) -> bool {
        self.read.as_ref().is_some_and(|read| !read.contains(path))
    }
}

/// A pull, unconditionally; `index` is set when the path is mirrored.
pub fn pulled(mut index: Option<&mut Index>, spec: &MirrorSpec, ops: Vec<Op>, write: bool) -> Plan {
    let mut plan = Plan::default();
    for op in ops {
        match op {
            Op::Upsert(node) | Op::Verify(node) => {
                if write {
                    plan.writes.push(KeyWrite::Set {
                        key: spec.key(&node.path),
                        znode: Version::of(&node, false),
                        data: node.data,
                    });
                }
                plan.zxid = plan.zxid.max(stat_zxid(&node.stat));
                if let Some(index) = index.as_deref_mut() {
                    index.insert(&node.path, node.stat);
                }
            }
            Op::Delete(path) => {
                let indexed = index.as_deref_mut().and_then(|index| index.remove(&path)).is_some();
                if write {
                    plan.writes.push(delete(spec, &path, indexed));
                }
            }
        }
    }
    plan
}

fn delete(spec: &MirrorSpec, path: &str, indexed: bool) -> KeyWrite {
    KeyWrite::Delete {
        key: spec.key(path),
        path: path.to_string(),
        indexed,
    }
}

/// Whether a sweep of `root` deletes `key`, found under `prefix`: the key of
/// a path below `root` that `keep` does not know, or a key that is no znode
/// path (yet in the mirror's namespace).
pub fn sweeps(key: &[u8], prefix: &str, root: &str, keep: impl Fn(&str) -> bool) -> bool {
    let Some(path) = key.strip_prefix(prefix.as_bytes()) else {
        return false;
    };
    match std::str::from_utf8(path) {
        Ok(path) => path::is_within(path, root) && !keep(path),
        Err(_) => true,
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::mirror::Node;
    use crate::mirror::Stat;

    fn spec() -> MirrorSpec {
        MirrorSpec {
            root: "/a".into(),
            prefix: "zk:".into(),
        }
    }

    /// `path@mzxid` or `path@mzxid/pzxid`.
    fn node(text: &str) -> Node {
        let (path, zxids) = text.split_once('@').unwrap();
        let (mzxid, pzxid) = zxids.split_once('/').unwrap_or((zxids, zxids));
        Node {
            path: path.to_string(),
            data: path.as_bytes().to_vec(),
            stat: Stat {
                mzxid: mzxid.parse().unwrap(),
                pzxid: pzxid.parse().unwrap(),
                ..crate::mirror::test_stat()
            },
        }
    }

    /// `+node` an upsert, `?node` a verify, `-path` a delete.
    pub(crate) fn op(text: &str) -> Op {
        match text.split_at(1) {
            ("+", n) => Op::Upsert(node(n)),
            ("?", n) => Op::Verify(node(n)),
            ("-", p) => Op::Delete(p.to_string()),
            _ => panic!("{text}"),
        }
    }

    fn describe(writes: &[KeyWrite]) -> Vec<String> {
        let text = |key: &[u8]| String::from_utf8_lossy(key).into_owned();
        writes
            .iter()
            .map(|w| match w {
                KeyWrite::Set { key, .. } => format!("set {}", text(key)),
                KeyWrite::Repair { key, .. } => format!("repair {}", text(key)),
                KeyWrite::Delete { key, .. } => format!("del {}", text(key)),
            })
            .collect()
    }

    pub(crate) fn index(nodes: &[&str]) -> Index {
        let mut index = Index::default();
        index.set_mirrors(&[spec()]);
        for n in nodes {
            let n = node(n);
            index.insert(&n.path, n.stat);
        }
        index
    }

    /// What, the index before, the ops, the writes, how many applied, the zxid.
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        u64,
        i64,
    );

    #[test]
    fn live_and_resync_ops() {
        #[rustfmt::skip]
        let cases: [Case; 10] = [
            ("a new znode is written", &[], &["+/a/b@5"], &["set zk:/a/b"], 1, 5),
            ("the same version is stale", &["/a/b@5"], &["+/a/b@5"], &[], 0, 0),
            ("an older version is stale", &["/a/b@5"], &["+/a/b@4"], &[], 0, 0),
            ("new data is written", &["/a/b@5"], &["+/a/b@6"], &["set zk:/a/b"], 1, 6),
            ("new children move only the stat", &["/a/b@5"], &["+/a/b@5/7"], &[], 1, 7),
            ("a known znode's delete", &["/a/b@5"], &["-/a/b"], &["del zk:/a/b"], 1, 0),
            ("an unknown znode's key is deleted all the same", &[], &["-/a/b"], &["del zk:/a/b"], 0, 0),
            ("a verify checks the key", &["/a/b@5"], &["?/a/b@5"], &["repair zk:/a/b"], 0, 0),
            ("a verify older than the index is dropped", &["/a/b@6"], &["?/a/b@5"], &[], 0, 0),
            ("in order", &[], &["+/a/x@3", "-/a/y", "?/a/z@2", "+/a/w@9"],
                &["set zk:/a/x", "del zk:/a/y", "repair zk:/a/z", "set zk:/a/w"], 2, 9),
        ];
        for (what, known, batch, writes, applied, zxid) in cases {
            for write in [true, false] {
                let mut index = index(known);
                let plan = ops(&mut index, &spec(), batch.iter().map(|o| op(o)).collect(), write);
                let expected: &[&str] = if write { writes } else { &[] };
                assert_eq!(describe(&plan.writes), expected, "{what} (write {write})");
                assert_eq!((plan.applied, plan.zxid), (applied, zxid), "{what}");
                assert_eq!(index.mirrors()[0].applied_zxid, zxid, "{what}");
            }
        }
    }

    #[test]
    fn changes_the_index_alone_tells() {
        // What, the index before, the op, whether the write is a known change.
        let cases: [(&str, &[&str], &str, bool); 5] = [
            ("a newer version", &["/a/b@5"], "+/a/b@6", true),
            ("a znode the index did not know", &[], "+/a/b@6", false),
            ("the delete of a known znode", &["/a/b@5"], "-/a/b", true),
            ("the delete of an unknown one", &[], "-/a/b", false),
            ("a repair", &["/a/b@5"], "?/a/b@5", false),
        ];
        for (what, known, o, want) in cases {
            let plan = ops(&mut index(known), &spec(), vec![op(o)], true);
            let known_change: Vec<bool> = plan.writes.iter().map(KeyWrite::known_change).collect();
            assert_eq!(known_change, [want], "{what}");
        }
    }

    #[test]
    fn ops_move_the_index() {
        let mut index = index(&["/a/gone@1", "/a/old@1", "/a/newer@9"]);
        let batch = ["+/a/new@2", "-/a/gone", "?/a/old@3", "?/a/newer@4"];
        ops(&mut index, &spec(), batch.iter().map(|o| op(o)).collect(), false);
        let mzxid = |p: &str| index.stat(p).map(|s| s.mzxid);
        assert_eq!(
            [mzxid("/a/new"), mzxid("/a/gone"), mzxid("/a/old"), mzxid("/a/newer")],
            [Some(2), None, Some(3), Some(9)]
        );
    }

    /// A whole resync as the apply thread runs it: the parts of the read
    /// through the gate, what is ready upserted or verified, the end, then
    /// the vanished found by a walk of the index in steps of 2. The writes,
    /// each step's after a `part` or `end` mark, and how many applied.
    fn resync(index: &mut Index, parts: &[(&[&str], i64)], end: i64) -> Result<(Vec<String>, u64), String> {
        let indexed = !index.paths_below_after("/a", None, 1).is_empty();
        let mut gate = Resync::new(index.mirrors()[0].applied_zxid, indexed);
        let (mut writes, mut applied) = (Vec::new(), 0);
        let mut note = |mark: &str, plan: Plan| {
            writes.extend((!mark.is_empty()).then(|| mark.to_string()));
            writes.extend(describe(&plan.writes));
            applied += plan.applied;
        };
        for (nodes, zxid) in parts {
            let ready = gate.nodes(nodes.iter().map(|n| node(n)).collect(), *zxid);
            note("part", resynced(index, &spec(), ready, true));
        }
        let ready = gate.end("/a", end, || index.stat("/a").is_some())?;
        note("end", resynced(index, &spec(), ready, true));
        let mut vanished = Vec::new();
        let mut after: Option<String> = None;
        while gate.may_have_vanished() {
            let step = index.paths_below_after("/a", after.as_deref(), 2);
            after = step.last().cloned();
            let done = step.len() < 2;
            vanished.extend(step.into_iter().filter(|p| gate.vanished(p)));
            if done {
                break;
            }
        }
        note("", ops(index, &spec(), deepest_first(vanished), true));
        Ok((writes, applied))
    }

    #[test]
    fn resyncs_write_only_changes() {
        type Outcome = Result<(&'static [&'static str], u64), &'static str>;
        /// What, the index before, its applied zxid, the read's parts, its
        /// final zxid, the writes (`Err`: why the mirror stops).
        type Case = (
            &'static str,
            &'static [&'static str],
            i64,
            &'static [(&'static [&'static str], i64)],
            i64,
            Outcome,
        );
        #[rustfmt::skip]
        let cases: [Case; 9] = [
            ("only changes are set, the vanished deleted deepest first",
                &["/a@1", "/a/b@2", "/a/b/c@3", "/a/d@4"], 4, &[(&["/a@1", "/a/b@5", "/a/e@6"], 6)], 6,
                Ok((&["part", "repair zk:/a", "set zk:/a/b", "set zk:/a/e", "end", "del zk:/a/d", "del zk:/a/b/c"], 4))),
            ("the same version is verified", &["/a@1", "/a/b@2"], 2, &[(&["/a@1", "/a/b@2"], 2)], 2,
                Ok((&["part", "repair zk:/a", "repair zk:/a/b", "end"], 0))),
            ("new children move only the stat", &["/a@1"], 1, &[(&["/a@1/3"], 3)], 3, Ok((&["part", "end"], 1))),
            ("after a forget every key is rewritten", &[], 2, &[(&["/a@1", "/a/b@2"], 2)], 2,
                Ok((&["part", "set zk:/a", "set zk:/a/b", "end"], 2))),
            ("parts are held until the read reaches the applied zxid", &["/a@1", "/a/b@5"], 5,
                &[(&["/a@1"], 1), (&["/a/b@5", "/a/c@6"], 6)], 6,
                Ok((&["part", "part", "repair zk:/a", "repair zk:/a/b", "set zk:/a/c", "end"], 1))),
            ("or until the end's check", &["/a@1", "/a/b@5", "/a/c@7"], 7, &[(&["/a@1"], 1)], 8,
                Ok((&["part", "end", "repair zk:/a", "del zk:/a/c", "del zk:/a/b"], 2))),
            ("a read behind the mirror is another history", &["/a@1", "/a/b@5"], 5, &[(&["/a@1"], 1), (&["/a/x@2"], 2)], 2,
                Err("another history")),
            ("a vanished root stops the mirror", &["/a@1"], 1, &[], 3, Err("vanished")),
            ("an absent root never mirrored writes nothing", &[], 0, &[], 3, Ok((&["end"], 0))),
        ];
        for (what, known, applied_zxid, parts, end, outcome) in cases {
            let mut index = index(known);
            if let Some(entry) = index.mirror_mut("/a") {
                entry.applied_zxid = applied_zxid;
            }
            match (resync(&mut index, parts, end), outcome) {
                (Ok((writes, applied)), Ok((want, want_applied))) => {
                    assert_eq!(
                        (writes, applied),
                        (want.iter().map(|w| w.to_string()).collect(), want_applied),
                        "{what}"
                    );
                }
                (Err(reason), Err(want)) => assert!(reason.contains(want), "{what}: {reason}"),
                (got, want) => panic!("{what}: {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn pulls_write_everything() {
        let batch = || ["+/a/b@5", "?/a/c@7", "-/a/d"].iter().map(|o| op(o)).collect();
        let plan = pulled(None, &spec(), batch(), true);
        assert_eq!(describe(&plan.writes), ["set zk:/a/b", "set zk:/a/c", "del zk:/a/d"]);
        assert_eq!((plan.zxid, plan.applied), (7, 0));
        // Even over newer versions, and into the index when mirrored.
        let mut index = index(&["/a/b@9", "/a/d@1"]);
        let plan = pulled(Some(&mut index), &spec(), batch(), false);
        assert!(plan.writes.is_empty());
        let mzxid = |p: &str| index.stat(p).map(|s| s.mzxid);
        assert_eq!([mzxid("/a/b"), mzxid("/a/c"), mzxid("/a/d")], [Some(5), Some(7), None]);
    }

    #[test]
    fn sweeps_unknown_keys_below_the_root() {
        let known = |p: &str| p == "/a/known";
        let cases: [(&[u8], &str, bool); 7] = [
            (b"zk:/a/known", "/a", false),
            (b"zk:/a/unknown", "/a", true),
            (b"zk:/a", "/a", true),
            (b"zk:/ab", "/a", false),
            (b"other:/a/x", "/a", false),
            (b"zk:/a/\xff", "/a", true),
            (b"zk:/a/unknown", "/a/unknown/x", false),
        ];
        for (key, root, swept) in cases {
            assert_eq!(
                sweeps(key, "zk:", root, known),
                swept,
                "{}",
                String::from_utf8_lossy(key)
            );
        }
    }
}
