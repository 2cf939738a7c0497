//! What the keyspace holds for every mirror: the stat of each mirrored znode
//! and each mirror's health. Written by the apply thread and read by commands,
//! both only while holding the Redis lock (`zksync::redis::INDEX`). The
//! znodes are kept in a trie (`trie`), about 90 bytes each.

mod trie;

use crate::mirror::Stat;
use crate::path;
use crate::settings::MirrorSpec;
use std::sync::Arc;
use trie::Trie;

pub struct MirrorEntry {
    /// Shared: the apply thread holds it across a batch for the price of a count.
    pub spec: Arc<MirrorSpec>,
    /// Why the mirror stopped applying; `None` while healthy.
    pub diverged: Option<String>,
    /// The highest zxid applied: a ZooKeeper below it has another history.
    pub applied_zxid: i64,
}

/// What an update changed, by `Index::advance`.
#[derive(Debug, PartialEq)]
pub enum Advance {
    /// A new znode, or new data: the key is written.
    Data,
    /// Only the children changed: the stat moves, the key stays.
    ChildrenOnly,
    /// The index already holds this version or a newer one.
    Stale,
}

#[derive(Default)]
pub struct Index {
    mirrors: Vec<MirrorEntry>,
    znodes: Trie,
}

impl Index {
    /// Installs the mirrors in force. Entries of unchanged mirrors are kept;
    /// the stats of removed ones are forgotten (their keys stay).
    pub fn set_mirrors(&mut self, specs: &[MirrorSpec]) {
        let mut old = std::mem::take(&mut self.mirrors);
        for spec in specs {
            match old.iter().position(|m| *m.spec == *spec) {
                Some(i) => self.mirrors.push(old.swap_remove(i)),
                None => {
                    self.forget_below(&spec.root);
                    self.mirrors.push(MirrorEntry {
                        spec: Arc::new(spec.clone()),
                        diverged: None,
                        applied_zxid: 0,
                    });
                }
            }
        }
        for removed in old {
            self.forget_below(&removed.spec.root);
        }
    }

    pub fn mirrors(&self) -> &[MirrorEntry] {
        &self.mirrors
    }

    /// The mirror whose subtree holds `path`.
    pub fn mirror_of(&self, path: &str) -> Option<&MirrorEntry> {
        self.mirrors.iter().find(|m| path::is_within(path, &m.spec.root))
    }

    pub fn mirror_mut(&mut self, root: &str) -> Option<&mut MirrorEntry> {
        self.mirrors.iter_mut().find(|m| m.spec.root == root)
    }

    pub fn diverged_count(&self) -> usize {
        self.mirrors.iter().filter(|m| m.diverged.is_some()).count()
    }

    /// Mirrored znodes.
    pub fn len(&self) -> usize {
        self.znodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.znodes.len() == 0
    }

    /// Heap bytes of the znodes' part of the index (see `Trie::bytes`), in O(1).
    pub fn bytes(&self) -> usize {
        self.znodes.bytes()
    }

    /// The stat of a mirrored znode (`aversion` is not kept: 0).
    pub fn stat(&self, path: &str) -> Option<Stat> {
        self.znodes.stat(self.znodes.find(path)?)
    }

    /// Records `stat` for `path` (a malformed path is not recorded).
    pub fn insert(&mut self, path: &str, stat: Stat) {
        if let Some(slot) = self.znodes.find_or_add(path) {
            self.znodes.record(slot, &stat);
        }
    }

    /// Records `stat` for `path` unless the index holds the same or a newer
    /// version (one lookup: this runs under the Redis lock for every update).
    pub fn advance(&mut self, path: &str, stat: Stat) -> Advance {
        let Some(slot) = self.znodes.find_or_add(path) else {
            return Advance::Stale;
        };
        let advance = match self.znodes.stat(slot) {
            None => Advance::Data,
            Some(old) if old.mzxid > stat.mzxid || (old.mzxid == stat.mzxid && old.pzxid >= stat.pzxid) => {
                return Advance::Stale;
            }
            Some(old) if old.mzxid == stat.mzxid => Advance::ChildrenOnly,
            Some(_) => Advance::Data,
        };
        self.znodes.record(slot, &stat);
        advance
    }

    /// Forgets a mirrored znode (not its children); returns its stat.
    pub fn remove(&mut self, path: &str) -> Option<Stat> {
        self.znodes.remove(&self.znodes.trail(path)?)
    }

    pub fn forget_all(&mut self) {
        self.znodes = Trie::default();
    }

    /// Up to `limit` (at least 1) paths of the mirrored znodes at or below
    /// `root`, after `after` (`None`: from the first). The contract a walk
    /// relies on: starting from `None` and resuming after the last path each
    /// call returned yields each path at or below `root` exactly once,
    /// parents before children and siblings by name, as long as the index
    /// does not change in between (a path removed meanwhile may still be
    /// resumed after); fewer
    /// than `limit` paths end the walk. (Bounded, so that a walk of a large
    /// mirror holds the Redis lock in short steps.)
    pub fn paths_below_after(&self, root: &str, after: Option<&str>, limit: usize) -> Vec<String> {
        match self.znodes.find(root) {
            Some(slot) => self.znodes.paths_below_after(slot, root, after, limit.max(1)),
            None => Vec::new(),
        }
    }

    fn forget_below(&mut self, root: &str) {
        if let Some(trail) = self.znodes.trail(root) {
            self.znodes.remove_subtree(&trail);
        }
    }

    /// Sorted names of the mirrored children of `parent`, `None` if it is
    /// not mirrored.
    pub fn children(&self, parent: &str) -> Option<Vec<String>> {
        let slot = self.znodes.find(parent)?;
        self.znodes.stat(slot)?;
        Some(self.znodes.child_names(slot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_at(mzxid: i64, pzxid: i64) -> Stat {
        Stat {
            mzxid,
            pzxid,
            ..crate::mirror::test_stat()
        }
    }

    fn index_of(paths: &[&str]) -> Index {
        let mut index = Index::default();
        for p in paths {
            index.insert(p, crate::mirror::test_stat());
        }
        index
    }

    #[test]
    fn advance_is_monotonic_and_tells_data_from_children() {
        let mut index = Index::default();
        for (mzxid, pzxid, want) in [
            (5, 5, Advance::Data),
            (5, 5, Advance::Stale),
            (5, 7, Advance::ChildrenOnly),
            (4, 9, Advance::Stale),
            (6, 7, Advance::Data),
        ] {
            assert_eq!(index.advance("/a", stat_at(mzxid, pzxid)), want, "({mzxid}, {pzxid})");
        }
        assert_eq!(index.stat("/a").map(|s| (s.mzxid, s.pzxid)), Some((6, 7)));
        // An unmirrored ancestor of a mirrored znode is new data too.
        index.insert("/b/c", stat_at(1, 1));
        assert_eq!(index.advance("/b", stat_at(1, 1)), Advance::Data);
    }

    #[test]
    fn stats_round_trip_every_field_but_aversion() {
        let full = Stat {
            czxid: 0x1_0000_0001,
            mzxid: 0x7fff_ffff_ffff_fff0,
            pzxid: -3,
            ctime: 1_700_000_000_123,
            mtime: 1_700_000_000_456,
            version: i32::MAX,
            cversion: -1,
            aversion: 9,
            ephemeral_owner: 0,
            data_length: 1 << 20,
            num_children: 1000,
        };
        let ephemeral = Stat {
            ephemeral_owner: 0x1234_5678_9abc,
            ..full
        };
        let mut index = Index::default();
        for (path, stat) in [("/s", full), ("/s/e", ephemeral), ("/s", ephemeral), ("/s", full)] {
            index.insert(path, stat);
            assert_eq!(index.stat(path), Some(Stat { aversion: 0, ..stat }), "{path}");
        }
        // A freed slot reused by another znode does not inherit the owner.
        assert_eq!(
            index.remove("/s/e").map(|s| s.ephemeral_owner),
            Some(ephemeral.ephemeral_owner)
        );
        index.insert("/s/f", full);
        assert_eq!(index.stat("/s/f").map(|s| s.ephemeral_owner), Some(0));
    }

    #[test]
    fn children_are_sorted_mirrored_names() {
        let index = index_of(&[
            "/a",
            "/a/x",
            "/a/x/deep",
            "/a/x/deep/er",
            "/a/x!",
            "/a/x!/y",
            "/a/y",
            "/ab",
            "/a/z z",
            "/a/X",
            "/a/é",
            "/a/x0",
            "/u/v/w",
        ]);
        for (parent, want) in [
            ("/a", Some(&["X", "x", "x!", "x0", "y", "z z", "é"][..])),
            ("/a/x", Some(&["deep"][..])),
            ("/a/y", Some(&[][..])),
            ("/nope", None),
            // Ancestors of a mirrored znode that are not mirrored themselves.
            ("/", None),
            ("/u", None),
            ("/u/v", None),
        ] {
            let want = want.map(|names| names.iter().map(|n| n.to_string()).collect::<Vec<_>>());
            assert_eq!(index.children(parent), want, "{parent}");
        }
    }

    #[test]
    fn paths_below_list_mirrored_znodes_only() {
        let index = index_of(&["/a", "/a/x", "/a/x/deep", "/a/x!", "/ab", "/u/v/w"]);
        for (root, want) in [
            ("/a", &["/a", "/a/x", "/a/x/deep", "/a/x!"][..]),
            ("/a/x", &["/a/x", "/a/x/deep"][..]),
            ("/a/x/deep", &["/a/x/deep"][..]),
            ("/u", &["/u/v/w"][..]),
            ("/", &["/a", "/a/x", "/a/x/deep", "/a/x!", "/ab", "/u/v/w"][..]),
            ("/nope", &[][..]),
        ] {
            assert_eq!(index.paths_below_after(root, None, usize::MAX), want, "{root}");
        }
    }

    #[test]
    fn removal_keeps_children_and_frees_empty_ancestors() {
        let mut index = index_of(&["/a", "/a/x", "/a/x/deep", "/a/y"]);
        // (removed, its stat was there, len after, paths below /a after)
        for (removed, was, len, below) in [
            ("/a/x", true, 3, &["/a", "/a/x/deep", "/a/y"][..]),
            ("/a/x", false, 3, &["/a", "/a/x/deep", "/a/y"][..]),
            ("/a/x/deep", true, 2, &["/a", "/a/y"][..]),
            ("/a", true, 1, &["/a/y"][..]),
            ("/a/y", true, 0, &[][..]),
            ("/nope", false, 0, &[][..]),
        ] {
            assert_eq!(index.remove(removed).is_some(), was, "{removed}");
            assert_eq!(index.len(), len, "{removed}");
            assert_eq!(index.paths_below_after("/a", None, usize::MAX), below, "{removed}");
        }
        assert_eq!(index.children("/a"), None);
    }

    #[test]
    fn malformed_paths_are_not_recorded() {
        let mut index = Index::default();
        for path in ["", "a", "/a/", "/a//b", "//"] {
            index.insert(path, crate::mirror::test_stat());
            assert_eq!(
                index.advance(path, crate::mirror::test_stat()),
                Advance::Stale,
                "{path:?}"
            );
            assert_eq!(index.stat(path), None, "{path:?}");
        }
        assert_eq!(index.len(), 0);
        index.insert("/", crate::mirror::test_stat());
        assert_eq!(index.paths_below_after("/", None, usize::MAX), ["/"]);
    }

    #[test]
    fn forget_all_keeps_the_mirrors_and_frees_the_znodes() {
        let mut index = Index::default();
        let empty = index.bytes();
        index.set_mirrors(&[spec("/a")]);
        for i in 0..1000 {
            index.insert(&format!("/a/d{}/n{i}", i % 10), crate::mirror::test_stat());
        }
        assert!(index.bytes() > empty);
        index.forget_all();
        assert_eq!((index.len(), index.bytes(), index.mirrors().len()), (0, empty, 1));
        assert_eq!(index.paths_below_after("/", None, usize::MAX), Vec::<String>::new());
    }

    fn spec(root: &str) -> MirrorSpec {
        MirrorSpec {
            root: root.into(),
            prefix: "zk:".into(),
        }
    }

    #[test]
    fn walks_below_a_root_in_resumable_steps() {
        let mut index = Index::default();
        for p in [
            "/",
            "/a",
            "/a!",
            "/a!/x",
            "/a/x",
            "/a/x/deep",
            "/a/y",
            "/ab",
            "/ab/z",
            "/b",
        ] {
            index.insert(p, crate::mirror::test_stat());
        }
        let walk = |root: &str, limit: usize| {
            let (mut all, mut after, mut steps) = (Vec::new(), None::<String>, 0);
            loop {
                let step = index.paths_below_after(root, after.as_deref(), limit);
                steps += 1;
                let done = step.len() < limit;
                after = step.last().cloned().or(after);
                all.extend(step);
                if done {
                    return (all, steps);
                }
            }
        };
        #[rustfmt::skip]
        let cases: [(&str, usize, &[&str], usize); 7] = [
            ("/a", 1, &["/a", "/a/x", "/a/x/deep", "/a/y"], 5),
            ("/a", 2, &["/a", "/a/x", "/a/x/deep", "/a/y"], 3),
            ("/a", 100, &["/a", "/a/x", "/a/x/deep", "/a/y"], 1),
            ("/a/x", 1, &["/a/x", "/a/x/deep"], 3),
            ("/a!", 1, &["/a!", "/a!/x"], 3),
            ("/nope", 3, &[], 1),
            ("/", 4, &["/", "/a", "/a/x", "/a/x/deep", "/a/y", "/a!", "/a!/x", "/ab", "/ab/z", "/b"], 3),
        ];
        for (root, limit, paths, steps) in cases {
            assert_eq!(
                walk(root, limit),
                (paths.iter().map(|p| p.to_string()).collect(), steps),
                "{root} by {limit}"
            );
        }
    }

    #[test]
    fn mirrors_keep_or_forget() {
        let mut index = Index::default();
        index.set_mirrors(&[spec("/a"), spec("/b")]);
        index.insert("/a/1", crate::mirror::test_stat());
        index.insert("/b/1", crate::mirror::test_stat());
        index.insert("/b/1/2", crate::mirror::test_stat());
        index.set_mirrors(&[spec("/a")]);
        assert!(index.stat("/a/1").is_some());
        assert!(index.stat("/b/1").is_none());
        assert_eq!(index.paths_below_after("/", None, usize::MAX), ["/a/1"]);
        assert_eq!(index.len(), 1);
        assert_eq!(index.mirror_of("/a/1/2").map(|m| m.spec.root.as_str()), Some("/a"));
        index.set_mirrors(&[]);
        assert_eq!((index.len(), index.bytes()), (0, Index::default().bytes()));
    }

    /// Issue 16: at most 100 bytes a mirrored znode, at 10k, 100k and 1M
    /// znodes of the benchmark's shape (/bench/dNNNN/nNNNN).
    #[test]
    fn index_bytes_per_znode() {
        for (znodes, fanout) in [
            (10_000, 100),
            (10_000, 1000),
            (100_000, 100),
            (100_000, 1000),
            (1_000_000, 1000),
        ] {
            let mut index = Index::default();
            index.insert("/bench", crate::mirror::test_stat());
            for i in 0..znodes {
                let dir = format!("/bench/d{:04}", i / fanout);
                if i % fanout == 0 {
                    index.insert(&dir, crate::mirror::test_stat());
                }
                index.insert(&format!("{dir}/n{:04}", i % fanout), crate::mirror::test_stat());
            }
            let per_znode = index.bytes() as f64 / index.len() as f64;
            println!(
                "{} znodes, {fanout} a directory: {per_znode:.1} bytes each",
                index.len()
            );
            assert!(per_znode <= 100.0, "{per_znode} bytes a znode at {znodes}");
        }
    }
}
