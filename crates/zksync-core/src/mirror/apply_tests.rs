//! The apply steps against the in-memory keyspace, driven hold by hold by
//! the apply thread's own procedures (`super::super::applier`) over a
//! `MemoryLock`.

use super::*;
use crate::mirror::applier::memory::{MemoryLock, MemoryState};
use crate::mirror::applier::{Applier, Lock};
use crate::mirror::keyspace::memory::{MemoryKeyspace, StreamEntry};
use crate::mirror::plan::tests::{index, op};
use crate::reply::Reply;
use std::cell::{Ref, RefMut};

/// The procedures over a keyspace and an index in memory, and what their
/// holds recorded.
pub(in crate::mirror) struct World {
    pub applier: Applier<MemoryLock>,
}

/// `+path@zxid` an upsert, `?path@zxid` a verify (`path@mzxid/pzxid` for
/// a pzxid of its own), `-path` a delete. The data is the node's text
/// (`/a/b@5`), so that a key tells the version it holds.
pub(in crate::mirror) fn versioned(text: &str) -> Op {
    let data = |mut n: Node| {
        n.data = text.as_bytes()[1..].to_vec();
        n
    };
    match op(text) {
        Op::Upsert(n) => Op::Upsert(data(n)),
        Op::Verify(n) => Op::Verify(data(n)),
        delete => delete,
    }
}

/// The znodes of a read, as `versioned` writes them.
pub(in crate::mirror) fn read(nodes: &[&str]) -> Vec<Node> {
    nodes
        .iter()
        .map(|n| match versioned(&format!("+{n}")) {
            Op::Upsert(node) => node,
            _ => unreachable!(),
        })
        .collect()
}

impl World {
    /// The mirror `zk:` + `/a` with the index holding `known` (as `plan`'s
    /// tests write them) and the keyspace `keys` (`key=value`).
    pub fn new(known: &[&str], keys: &[&str]) -> World {
        let mut keyspace = MemoryKeyspace::default().with_stream(b"changes");
        for kv in keys {
            let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
            keyspace.keys.insert(key.as_bytes().to_vec(), value.as_bytes().to_vec());
        }
        World {
            applier: Applier::new(MemoryLock::new(keyspace, index(known))),
        }
    }

    /// The keyspace, the index and what the holds recorded.
    pub fn state(&self) -> Ref<'_, MemoryState> {
        self.applier.lock().state.borrow()
    }

    pub fn state_mut(&self) -> RefMut<'_, MemoryState> {
        self.applier.lock().state.borrow_mut()
    }

    /// How many holds were taken so far.
    pub fn holds(&self) -> usize {
        self.applier.lock().holds.get()
    }

    /// This node writes only the keys `owner` accepts (a cluster).
    fn with_owner(&self, owner: impl Fn(&[u8]) -> bool + Send + 'static) {
        let mut state = self.state_mut();
        state.keyspace = std::mem::take(&mut state.keyspace).with_owner(owner);
    }

    /// The mirror at `/a` has applied up to `zxid`.
    pub fn applied_up_to(&self, zxid: i64) {
        if let Some(entry) = self.state_mut().index.mirror_mut("/a") {
            entry.applied_zxid = zxid;
        }
    }

    /// One hold of the lock.
    pub fn hold<R>(&self, f: impl FnOnce(&mut Hold<'_, MemoryKeyspace>) -> R) -> R {
        self.applier.lock().hold(f)
    }

    /// Live changes of `/a`; how many keys were repaired.
    pub fn live(&self, ops: &[&str]) -> usize {
        self.applier.changes("/a", ops.iter().map(|o| versioned(o)).collect())
    }

    /// A whole resync of `/a` whose read is `nodes`, its highest zxid
    /// `zxid`, in one part. `None` if the mirror diverged (or was not
    /// healthy), else how many keys were repaired.
    pub fn resync(&mut self, nodes: &[&str], zxid: i64) -> Option<usize> {
        self.applier.begin_resync("/a");
        self.applier.resync_nodes("/a", read(nodes), zxid);
        self.applier.end_resync("/a", Some(zxid))
    }

    /// A ZKSYNC.PULL of `path` (under `zk:`) at `zxid` that read `nodes`,
    /// by a user who may write the keys `may_write` accepts.
    pub fn pull(&self, path: &str, zxid: i64, nodes: &[&str], may_write: fn(&[u8]) -> bool) -> Result<(), Error> {
        *self.applier.lock().rights.borrow_mut() = Box::new(may_write);
        match self.applier.pull("zk:", path, zxid, read(nodes), Some(b"user")) {
            Reply::Integer(n) if n == nodes.len() as i64 => Ok(()),
            Reply::Error(e) => Err(e),
            other => panic!("{other:?}"),
        }
    }

    /// A sweep of `zk:` + `root`, by a user who may write the keys
    /// `may_write` accepts.
    fn sweep(&self, root: &str, keep: impl Fn(&Index, &str) -> bool, may_write: impl Fn(&[u8]) -> bool + 'static) {
        *self.applier.lock().rights.borrow_mut() = Box::new(may_write);
        self.applier.sweep("zk:", root, Some(b"user"), keep);
    }

    /// The keyspace, `key=value` (stream entries apart).
    pub fn keys(&self) -> Vec<String> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.state()
            .keyspace
            .keys
            .iter()
            .map(|(key, value)| format!("{}={}", text(key), text(value)))
            .collect()
    }

    /// The change stream's entries: `set key mzxid` or `del key zxid`.
    pub fn entries(&self) -> Vec<String> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.state()
            .keyspace
            .entries
            .iter()
            .map(|e| match e {
                StreamEntry::Set { key, mzxid, .. } => format!("set {} {mzxid}", text(key)),
                StreamEntry::Del { key, zxid, .. } => format!("del {} {zxid}", text(key)),
            })
            .collect()
    }

    /// The value of `key`, if it is held.
    pub fn get(&self, key: &str) -> Option<String> {
        let value = self.state().keyspace.get(key.as_bytes()).map(<[u8]>::to_vec);
        value.map(|v| String::from_utf8_lossy(&v).into_owned())
    }
}

/// What happens to `zk:/a/b`, the index knowing `/a/b@5` and the key
/// holding that version, as changes of `/a/b` arrive: live batches
/// (`live ...`) or whole resyncs (`resync <read> <zxid>`; `resync!` when
/// the mirror diverges).
#[test]
fn a_key_never_goes_back_to_an_older_version() {
    /// What, the steps, the key's value after (`None`: deleted), the entries.
    type Case = (
        &'static str,
        &'static [&'static str],
        Option<&'static str>,
        &'static [&'static str],
    );
    #[rustfmt::skip]
    let cases: [Case; 12] = [
        ("a newer event is written", &["live +/a/b@6"], Some("/a/b@6"), &["set zk:/a/b 6"]),
        ("an older event after a newer one", &["live +/a/b@7", "live +/a/b@6"], Some("/a/b@7"), &["set zk:/a/b 7"]),
        ("older and newer in one batch", &["live +/a/b@7 +/a/b@6"], Some("/a/b@7"), &["set zk:/a/b 7"]),
        ("the same event replayed", &["live +/a/b@6", "live +/a/b@6"], Some("/a/b@6"), &["set zk:/a/b 6"]),
        ("an event older than the index", &["live +/a/b@4"], Some("/a/b@5"), &[]),
        ("new children move only the stat", &["live +/a/b@5/9"], Some("/a/b@5"), &[]),
        ("a resync's older read after a live change", &["live +/a/b@6", "resync /a@1,/a/b@5 6"], Some("/a/b@6"), &["set zk:/a/b 6"]),
        ("a resync behind the mirror stops it", &["live +/a/b@6", "resync! /a@1,/a/b@5 5"], Some("/a/b@6"), &["set zk:/a/b 6"]),
        ("a resync of this very version writes nothing", &["resync /a@1,/a/b@5 5"], Some("/a/b@5"), &[]),
        ("a resync of a newer version", &["resync /a@1,/a/b@8 8"], Some("/a/b@8"), &["set zk:/a/b 8"]),
        ("a delete replayed", &["live +/a/b@6", "live -/a/b", "live -/a/b"], None, &["set zk:/a/b 6", "del zk:/a/b 6"]),
        ("a delete then a recreate", &["live -/a/b", "live +/a/b@9"], Some("/a/b@9"), &["del zk:/a/b 5", "set zk:/a/b 9"]),
    ];
    for (what, steps, value, entries) in cases {
        let mut world = World::new(&["/a@1", "/a/b@5"], &["zk:/a=/a@1", "zk:/a/b=/a/b@5"]);
        world.state_mut().last_zxid = 5;
        world.applied_up_to(5);
        for step in steps {
            match step.split_once(' ') {
                Some(("live", ops)) => {
                    world.live(&ops.split(' ').collect::<Vec<_>>());
                }
                Some((resync @ ("resync" | "resync!"), read)) => {
                    let Some((nodes, Ok(zxid))) = read.split_once(' ').map(|(n, z)| (n, z.parse())) else {
                        panic!("{what}: a resync step is `resync nodes zxid`");
                    };
                    let nodes: Vec<&str> = nodes.split(',').collect();
                    let resynced = world.resync(&nodes, zxid);
                    // `resync!`: the mirror diverges.
                    assert_eq!(resynced.is_none(), resync == "resync!", "{what}");
                }
                _ => panic!("{step}"),
            }
        }
        assert_eq!(world.get("zk:/a/b").as_deref(), value, "{what}");
        assert_eq!(world.entries(), entries, "{what}");
        assert_eq!(world.get("zk:/a").as_deref(), Some("/a@1"), "{what}");
    }
}

/// The flaw of the rule above, pinned: a delete carries no zxid, so the
/// index forgets the znode and an upsert arriving after it is written
/// whatever its version. The session sends in ZooKeeper's order, so it
/// does not happen; if it did, the next resync would delete the key.
#[test]
fn an_upsert_after_a_delete_is_written_whatever_its_version() {
    let mut world = World::new(&["/a@1", "/a/b@5"], &["zk:/a=/a@1", "zk:/a/b=/a/b@5"]);
    world.live(&["-/a/b"]);
    world.live(&["+/a/b@3"]);
    assert_eq!(world.get("zk:/a/b").as_deref(), Some("/a/b@3"));
    assert_eq!(world.resync(&["/a@1"], 6), Some(0));
    assert_eq!(world.get("zk:/a/b"), None);
}

#[test]
fn a_replica_moves_the_index_and_writes_nothing() {
    let mut world = World::new(&["/a@1", "/a/b@5"], &["zk:/a/b=/a/b@5", "zk:/a/hand=x"]);
    world.state_mut().access = Access::IndexOnly;
    world.live(&["+/a/b@6", "+/a/c@7", "-/a/gone"]);
    assert_eq!(world.resync(&["/a@1", "/a/b@6", "/a/c@7"], 7), Some(0));
    assert_eq!(world.keys(), ["zk:/a/b=/a/b@5", "zk:/a/hand=x"]);
    assert!(world.entries().is_empty());
    let mzxid = |w: &World, p: &str| w.state().index.stat(p).map(|s| s.mzxid);
    assert_eq!([mzxid(&world, "/a/b"), mzxid(&world, "/a/c")], [Some(6), Some(7)]);
    assert_eq!((world.state().last_zxid, world.state().applied), (7, 2));
}

/// The keys of a sweep of `zk:` + `/a`, in a keyspace that holds them
/// all, the index knowing `/a/known`.
const SWEPT_KEYSPACE: [&str; 9] = [
    "zk:/a/known",
    "zk:/a/unknown",
    "zk:/a/x/deep",
    "zk:/a/locked",
    "zk:/a/elsewhere",
    "zk:/ab",
    "zk:/b/x",
    "other:/a/x",
    "zk:/a",
];

#[test]
fn a_sweep_deletes_only_unknown_keys_below_the_root_it_may_write() {
    /// What, whether the user may write `locked`, whether this node
    /// writes `elsewhere`, whether it is a replica, the keys deleted.
    type Case = (&'static str, bool, bool, bool, &'static [&'static str]);
    #[rustfmt::skip]
    let cases: [Case; 4] = [
        ("every key without a znode below the root", true, true, false,
            &["zk:/a", "zk:/a/elsewhere", "zk:/a/locked", "zk:/a/unknown", "zk:/a/x/deep"]),
        ("not the keys the user may not write", false, true, false,
            &["zk:/a", "zk:/a/elsewhere", "zk:/a/unknown", "zk:/a/x/deep"]),
        ("not the keys another cluster node writes", true, false, false,
            &["zk:/a", "zk:/a/locked", "zk:/a/unknown", "zk:/a/x/deep"]),
        ("nothing on a replica", true, true, true, &[]),
    ];
    for (what, may_write_locked, writes_elsewhere, replica, deleted) in cases {
        for scan_count in [1, 2, 1000] {
            let world = World::new(&["/a/known@1"], &SWEPT_KEYSPACE);
            world.state_mut().last_zxid = 42;
            world.state_mut().keyspace.scan_count = scan_count;
            if !writes_elsewhere {
                world.with_owner(|key| key != b"zk:/a/elsewhere");
            }
            if replica {
                world.state_mut().access = Access::IndexOnly;
            }
            let may_write = move |key: &[u8]| may_write_locked || key != b"zk:/a/locked";
            world.sweep("/a", |index, p| index.stat(p).is_some(), may_write);
            let mut kept: Vec<&str> = SWEPT_KEYSPACE.to_vec();
            kept.retain(|k| !deleted.contains(k));
            kept.sort();
            let kept: Vec<String> = kept.iter().map(|k| format!("{k}=")).collect();
            assert_eq!(world.keys(), kept, "{what} (by {scan_count})");
            // One entry per key deleted, with the highest zxid seen.
            let entries: Vec<String> = deleted.iter().map(|k| format!("del {k} 42")).collect();
            assert_eq!(world.entries(), entries, "{what} (by {scan_count})");
        }
    }
}

#[test]
fn a_sweep_of_a_pull_keeps_the_znodes_read() {
    let world = World::new(&[], &["zk:/p/x=old", "zk:/p/hand=x", "zk:/q=y"]);
    assert_eq!(world.pull("/p", 9, &["/p@2", "/p/x@9"], |_| true), Ok(()));
    assert_eq!(world.keys(), ["zk:/p=/p@2", "zk:/p/x=/p/x@9", "zk:/q=y"]);
    // Not mirrored: the index does not move.
    assert_eq!(world.state().index.stat("/p"), None);
}

#[test]
fn a_pull_needs_every_key_written() {
    let world = World::new(&[], &["zk:/p/hand=x"]);
    let refused = world.pull("/p", 9, &["/p@2", "/p/secret@9"], |key| key != b"zk:/p/secret");
    assert_eq!(
        refused,
        Err(Error::NoPerm(Denied::Key {
            key: b"zk:/p/secret".to_vec(),
            access: KeyAccess::Write,
        }))
    );
    assert_eq!(world.keys(), ["zk:/p/hand=x"]);
}

/// A mirror stops applying when a resync finds another history, and a
/// PULL of its root resumes it from that ZooKeeper.
#[test]
fn a_pull_of_the_root_resumes_a_diverged_mirror() {
    let mut world = World::new(&["/a@1", "/a/b@9"], &["zk:/a=/a@1", "zk:/a/b=/a/b@9", "zk:/a/hand=x"]);
    world.applied_up_to(9);
    // ZooKeeper is behind the mirror: another history. Nothing is written.
    assert_eq!(world.resync(&["/a@1", "/a/c@5"], 5), None);
    assert_eq!(world.state().diverged, Some(1));
    assert!(
        matches!(&world.state().warnings[..], [Warning::Diverged { root, reason }]
        if root == "/a" && reason.contains("another history"))
    );
    let before = world.keys();
    // Diverged: no live change is applied, no resync begins.
    world.live(&["+/a/c@6", "-/a/b"]);
    assert!(world.hold(|hold| hold.begin_resync("/a")).is_none());
    assert_eq!((world.keys(), world.entries().len()), (before.clone(), 0));
    // A pull below the root writes its subtree but does not resume the mirror.
    assert_eq!(world.pull("/a/c", 5, &["/a/c@5"], |_| true), Ok(()));
    assert!(world.state().index.mirrors()[0].diverged.is_some());
    world.live(&["+/a/c@6"]);
    assert_eq!(world.get("zk:/a/c").as_deref(), Some("/a/c@5"));
    // The root's pull: the keyspace becomes this ZooKeeper's tree.
    assert_eq!(world.pull("/a", 5, &["/a@1", "/a/c@5"], |_| true), Ok(()));
    assert_eq!(world.keys(), ["zk:/a=/a@1", "zk:/a/c=/a/c@5"]);
    assert_eq!(world.state().diverged, Some(0));
    assert_eq!(
        world.state().warnings.last(),
        Some(&Warning::Resumed { root: "/a".into() })
    );
    {
        let state = world.state();
        let entry = &state.index.mirrors()[0];
        assert_eq!((entry.diverged.is_none(), entry.applied_zxid), (true, 5));
    }
    assert_eq!(world.state().index.paths_below_after("/a", None, 10), ["/a", "/a/c"]);
    // Healthy again: live changes and resyncs apply.
    world.live(&["+/a/c@6"]);
    assert_eq!(world.resync(&["/a@1", "/a/c@6", "/a/d@7"], 7), Some(0));
    assert_eq!(world.keys(), ["zk:/a=/a@1", "zk:/a/c=/a/c@6", "zk:/a/d=/a/d@7"]);
}

#[test]
fn a_pull_on_a_replica_is_refused() {
    let world = World::new(&["/a@1"], &[]);
    world.state_mut().access = Access::IndexOnly;
    let refused = world.pull("/a", 5, &["/a@1"], |_| true);
    assert!(matches!(refused, Err(Error::ReadOnly(_))), "{refused:?}");
}

/// One entry per change of a key, in a keyspace whose stream is
/// `changes`, after the steps.
#[test]
fn one_stream_entry_per_change() {
    /// What, the index before, the keyspace before, the live ops, the
    /// entries, the keys repaired.
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
        usize,
    );
    #[rustfmt::skip]
    let cases: [Case; 10] = [
        ("a new key", &[], &[], &["+/a/b@5"], &["set zk:/a/b 5"], 0),
        ("a key that holds this very version (before a restart)", &[], &["zk:/a/b=/a/b@5"], &["+/a/b@5"], &[], 0),
        ("a newer version", &["/a/b@5"], &["zk:/a/b=/a/b@5"], &["+/a/b@6"], &["set zk:/a/b 6"], 0),
        ("a stale version", &["/a/b@5"], &["zk:/a/b=/a/b@5"], &["+/a/b@4"], &[], 0),
        ("the delete of a key", &["/a/b@5"], &["zk:/a/b=/a/b@5"], &["-/a/b"], &["del zk:/a/b 7"], 0),
        ("the delete of no key", &["/a/b@5"], &[], &["-/a/b"], &[], 0),
        ("a verify of a key that holds its data", &["/a/b@5"], &["zk:/a/b=/a/b@5"], &["?/a/b@5"], &[], 0),
        ("a verify of a key changed by hand", &["/a/b@5"], &["zk:/a/b=hand"], &["?/a/b@5"], &["set zk:/a/b 5"], 1),
        ("a verify of a key deleted by hand", &["/a/b@5"], &[], &["?/a/b@5"], &["set zk:/a/b 5"], 1),
        ("each change of a batch, in order; a delete carries the highest zxid seen", &["/a/b@5"], &["zk:/a/b=/a/b@5"],
            &["+/a/b@6", "+/a/c@8", "-/a/b", "-/a/nothing"], &["set zk:/a/b 6", "set zk:/a/c 8", "del zk:/a/b 8"], 0),
    ];
    for (what, known, keys, ops, entries, repaired) in cases {
        for stream in [true, false] {
            let world = World::new(known, keys);
            world.state_mut().last_zxid = 7;
            if !stream {
                world.state_mut().keyspace.stream = None;
            }
            assert_eq!(world.live(ops), repaired, "{what}");
            let want: &[&str] = if stream { entries } else { &[] };
            assert_eq!(world.entries(), want, "{what} (stream {stream})");
        }
    }
}

/// In a cluster: the keys another node writes are not touched; their
/// entries are appended here only where the index alone tells a change.
#[test]
fn entries_for_keys_another_node_writes() {
    /// What, the index before, the live ops, the entries.
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [&'static str],
    );
    #[rustfmt::skip]
    let cases: [Case; 6] = [
        ("a newer version of a known znode", &["/a/b@5"], &["+/a/b@6"], &["set zk:/a/b 6"]),
        ("a znode the index did not know", &[], &["+/a/b@6"], &[]),
        ("a stale version", &["/a/b@5"], &["+/a/b@4"], &[]),
        ("the delete of a known znode", &["/a/b@5"], &["-/a/b"], &["del zk:/a/b 7"]),
        ("the delete of an unknown one", &[], &["-/a/b"], &[]),
        ("a verify", &["/a/b@5"], &["?/a/b@5"], &[]),
    ];
    for (what, known, ops, entries) in cases {
        let world = World::new(known, &["zk:/a/b=untouched"]);
        world.state_mut().last_zxid = 7;
        world.with_owner(|key| key != b"zk:/a/b");
        assert_eq!(world.live(ops), 0, "{what}");
        assert_eq!(world.entries(), entries, "{what}");
        assert_eq!(world.keys(), ["zk:/a/b=untouched"], "{what}");
    }
    // A node that does not write the stream's key appends nothing.
    let world = World::new(&["/a/b@5"], &[]);
    world.with_owner(|key| key != b"changes");
    world.live(&["+/a/b@6", "+/a/c@1"]);
    assert_eq!(world.keys(), ["zk:/a/b=/a/b@6", "zk:/a/c=/a/c@1"]);
    assert!(world.entries().is_empty());
}

/// A stream key that holds another type: the keys are written all the
/// same, and the failure is warned of once until an append succeeds.
#[test]
fn a_failing_stream_is_warned_of_once() {
    let world = World::new(&[], &["changes=a string"]);
    world.live(&["+/a/b@1", "+/a/c@1"]);
    world.live(&["+/a/d@1"]);
    assert_eq!(
        world.keys(),
        ["changes=a string", "zk:/a/b=/a/b@1", "zk:/a/c=/a/c@1", "zk:/a/d=/a/d@1"]
    );
    let failed = Warning::AppendFailed {
        stream: b"changes".to_vec(),
        error: WriteError::WrongType,
    };
    assert_eq!(world.state().warnings, std::slice::from_ref(&failed));
    assert_eq!(
        failed.to_string(),
        "cannot append to the change stream changes: the key holds another type"
    );
    world.state_mut().keyspace.keys.remove(&b"changes"[..]);
    world.live(&["+/a/e@1"]);
    world
        .state_mut()
        .keyspace
        .keys
        .insert(b"changes".to_vec(), b"again".to_vec());
    world.live(&["+/a/f@1"]);
    assert_eq!(world.state().warnings, [failed.clone(), failed]);
    assert_eq!(world.entries(), ["set zk:/a/e 1"]);
}

#[test]
fn resync_repairs_count_and_zxids_are_recorded() {
    let mut world = World::new(&["/a@1", "/a/b@5", "/a/c@6"], &["zk:/a=/a@1", "zk:/a/b=hand"]);
    world.applied_up_to(6);
    // `/a/b` changed by hand, `/a/c` deleted by hand, `/a/d` new.
    assert_eq!(world.resync(&["/a@1", "/a/b@5", "/a/c@6", "/a/d@8"], 8), Some(2));
    assert_eq!(
        world.keys(),
        ["zk:/a=/a@1", "zk:/a/b=/a/b@5", "zk:/a/c=/a/c@6", "zk:/a/d=/a/d@8"]
    );
    assert_eq!((world.state().last_zxid, world.state().applied), (8, 1));
    assert_eq!(world.state().index.mirrors()[0].applied_zxid, 8);
    assert!(world.state().warnings.is_empty());
}

#[test]
fn an_unhealthy_or_unknown_mirror_is_not_applied() {
    let world = World::new(&["/a@1"], &[]);
    assert_eq!(
        world.hold(|hold| hold.apply_ops("/nope", vec![versioned("+/nope@1")])),
        0
    );
    world.hold(|hold| hold.diverge("/a", "a test".into()));
    world.live(&["+/a/b@2"]);
    assert!(world.keys().is_empty());
    assert_eq!(world.state().diverged, Some(1));
    assert_eq!(
        world.state().warnings[0].to_string(),
        "mirror /a stopped applying: a test. Nothing was deleted; run ZKSYNC.PULL /a to resume from this ZooKeeper."
    );
    // The spec the steps use is the index's.
    assert_eq!(world.hold(|hold| hold.healthy_mirror("/a")), None);
}
