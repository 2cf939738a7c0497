//! The procedures' holds and their order, over the lock in memory.

use super::*;
use crate::access::KeyAccess;
use crate::mirror::apply::tests::{read, versioned, World};
use crate::mirror::apply::Warning;

/// The index knowing `/a` and `n` znodes below it (`/a/00001`...).
fn wide(n: usize) -> World {
    let known: Vec<String> = std::iter::once("/a@1".to_string())
        .chain((1..=n).map(|i| format!("/a/{i:05}@1")))
        .collect();
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    World::new(&known, &[])
}

/// How many holds `f` takes.
fn holds_of(world: &World, f: impl FnOnce(&World)) -> usize {
    let before = world.holds();
    f(world);
    world.holds() - before
}

#[test]
fn a_resync_whose_read_is_behind_the_mirror_diverges_and_deletes_nothing() {
    let keys = ["zk:/a=/a@1", "zk:/a/b=/a/b@9", "zk:/a/c=/a/c@9", "zk:/a/hand=x"];
    let mut world = World::new(&["/a@1", "/a/b@9", "/a/c@9"], &keys);
    world.applied_up_to(9);
    // The read lacks `/a/b` and `/a/c`, and has seen only zxid 5.
    assert_eq!(world.resync(&["/a@1"], 5), None);
    assert_eq!(world.keys(), keys);
    assert!(world.entries().is_empty());
    let state = world.state();
    assert_eq!(state.diverged, Some(1));
    assert!(matches!(&state.warnings[..], [Warning::Diverged { root, .. }] if root == "/a"));
    // The index still knows what the keyspace holds.
    assert_eq!(state.index.paths_below_after("/a", None, 10), ["/a", "/a/b", "/a/c"]);
}

#[test]
fn vanished_znodes_are_deleted_deepest_first_then_swept() {
    let known = ["/a@1", "/a/b@2", "/a/b/c@3", "/a/b/c/d@4", "/a/e@4"];
    let keys = [
        "zk:/a=/a@1",
        "zk:/a/b=/a/b@2",
        "zk:/a/b/c=/a/b/c@3",
        "zk:/a/b/c/d=/a/b/c/d@4",
        "zk:/a/e=/a/e@4",
        "zk:/a/hand=x",
    ];
    let mut world = World::new(&known, &keys);
    world.applied_up_to(4);
    world.state_mut().last_zxid = 4;
    assert_eq!(world.resync(&["/a@1", "/a/e@4"], 6), Some(0));
    assert_eq!(world.keys(), ["zk:/a=/a@1", "zk:/a/e=/a/e@4"]);
    // The vanished deepest first, then what the sweep found without a znode.
    assert_eq!(
        world.entries(),
        [
            "del zk:/a/b/c/d 4",
            "del zk:/a/b/c 4",
            "del zk:/a/b 4",
            "del zk:/a/hand 4"
        ]
    );
    assert_eq!(world.state().index.paths_below_after("/a", None, 10), ["/a", "/a/e"]);
    assert!(world.state().repaired.is_empty());
}

#[test]
fn a_resync_that_repaired_keys_says_so() {
    let mut world = World::new(&["/a@1", "/a/b@5"], &["zk:/a=/a@1", "zk:/a/b=hand"]);
    assert_eq!(world.resync(&["/a@1", "/a/b@5"], 5), Some(1));
    assert_eq!(world.state().repaired, [("/a".to_string(), 1)]);
}

#[test]
fn a_pull_by_a_user_denied_one_key_writes_nothing_and_answers_noperm() {
    let keys = ["zk:/a=/a@1", "zk:/a/b=/a/b@5", "zk:/a/hand=x"];
    let world = World::new(&["/a@1", "/a/b@5"], &keys);
    // `/a/b` is gone: its delete is what the user may not write.
    *world.applier.lock().rights.borrow_mut() = Box::new(|key| key != b"zk:/a/b");
    let reply = world
        .applier
        .pull("zk:", "/a", 7, read(&["/a@1", "/a/c@7"]), Some(b"user"));
    let denied = Denied::Key {
        key: b"zk:/a/b".to_vec(),
        access: KeyAccess::Write,
    };
    assert_eq!(reply, Reply::Error(Error::NoPerm(denied)));
    assert_eq!(world.keys(), keys);
    assert!(world.entries().is_empty());
    assert_eq!(world.state().index.paths_below_after("/a", None, 10), ["/a", "/a/b"]);
    // Without a user, no check: the subtree is written, the rest swept.
    let reply = world.applier.pull("zk:", "/a", 7, read(&["/a@1", "/a/c@7"]), None);
    assert_eq!(reply, Reply::Integer(2));
    assert_eq!(world.keys(), ["zk:/a=/a@1", "zk:/a/c=/a/c@7"]);
}

#[test]
fn changes_are_written_in_batches_of_batch_keys() {
    for (ops, holds) in [(0, 0), (1, 1), (BATCH, 1), (BATCH + 1, 2), (300, 3)] {
        let world = World::new(&[], &[]);
        let ops: Vec<String> = (0..ops).map(|i| format!("+/a/{i:05}@1")).collect();
        let ops: Vec<&str> = ops.iter().map(String::as_str).collect();
        assert_eq!(holds_of(&world, |w| _ = w.live(&ops)), holds, "{} ops", ops.len());
        assert_eq!(world.keys().len(), ops.len());
    }
}

#[test]
fn the_index_is_walked_in_steps_of_walk_paths() {
    // A step shorter than `WALK` ends the walk: a multiple takes one more.
    for (below, holds) in [(0, 1), (WALK - 2, 1), (WALK - 1, 2), (2 * WALK, 3)] {
        let world = wide(below);
        let mut paths = Vec::new();
        let taken = holds_of(&world, |w| paths = w.applier.indexed_below("/a", |p| p != "/a"));
        assert_eq!((taken, paths.len()), (holds, below), "{below} below");
        assert!(paths.windows(2).all(|w| w[0] < w[1]), "{below} below");
    }
}

#[test]
fn rights_are_checked_in_chunks_of_acl_checks() {
    for (ops, holds) in [(ACL_CHECKS, 1), (ACL_CHECKS + 1, 2), (2 * ACL_CHECKS + 1, 3)] {
        let world = World::new(&[], &[]);
        let ops: Vec<Op> = (0..ops).map(|i| versioned(&format!("+/p/{i:05}@1"))).collect();
        let taken = holds_of(&world, |w| {
            assert_eq!(w.applier.permitted(b"user", "zk:", &ops), Ok(()))
        });
        assert_eq!(taken, holds, "{} ops", ops.len());
    }
}

#[test]
fn a_pull_takes_its_holds_in_order() {
    // `/a` and 300 znodes below it, all gone but one, read by a user:
    // begin_pull, the walk, the rights, the batches, the sweep.
    let world = wide(300);
    world.state_mut().keyspace.scan_count = 1000;
    let taken = holds_of(&world, |w| {
        let reply = w
            .applier
            .pull("zk:", "/a", 7, read(&["/a@1", "/a/00001@7"]), Some(b"user"));
        assert_eq!(reply, Reply::Integer(2));
    });
    // 1 + 1 + 1 + ceil(301 / BATCH) + 1.
    assert_eq!(taken, 1 + 1 + 1 + 3 + 1);
    assert_eq!(
        world.state().index.paths_below_after("/a", None, 10),
        ["/a", "/a/00001"]
    );
}
