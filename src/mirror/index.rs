//! What the keyspace holds for every mirror: the stat of each mirrored znode
//! and each mirror's health. Written by the apply thread and read by commands,
//! both only while holding the Redis lock (`crate::redis::INDEX`).

use crate::config::MirrorSpec;
use crate::path;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use zookeeper_client::Stat;

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
    nodes: BTreeMap<String, Stat>,
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

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn stat(&self, path: &str) -> Option<&Stat> {
        self.nodes.get(path)
    }

    pub fn insert(&mut self, path: String, stat: Stat) {
        self.nodes.insert(path, stat);
    }

    /// Records `stat` for `path` unless the index holds the same or a newer
    /// version (one lookup: this runs under the Redis lock for every update).
    pub fn advance(&mut self, path: String, stat: Stat) -> Advance {
        let Some(old) = self.nodes.get_mut(&path) else {
            self.nodes.insert(path, stat);
            return Advance::Data;
        };
        let advance = if old.mzxid > stat.mzxid || (old.mzxid == stat.mzxid && old.pzxid >= stat.pzxid) {
            return Advance::Stale;
        } else if old.mzxid == stat.mzxid {
            Advance::ChildrenOnly
        } else {
            Advance::Data
        };
        *old = stat;
        advance
    }

    pub fn remove(&mut self, path: &str) -> Option<Stat> {
        self.nodes.remove(path)
    }

    pub fn forget_all(&mut self) {
        self.nodes.clear();
    }

    /// Paths of the mirrored znodes at or below `root`.
    pub fn paths_below(&self, root: &str) -> Vec<String> {
        self.nodes
            .range::<str, _>((Bound::Included(root), Bound::Unbounded))
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(root))
            .filter(|p| path::is_within(p, root))
            .cloned()
            .collect()
    }

    /// Up to `limit` (at least 1) paths of the mirrored znodes at or below
    /// `root`, after `after` (`None`: from the first). The contract a walk
    /// relies on: starting from `None` and resuming after the last path each
    /// call returned yields each path at or below `root` exactly once, in a
    /// stable order, as long as the index does not change in between; fewer
    /// than `limit` paths end the walk. (Bounded, so that a walk of a large
    /// mirror holds the Redis lock in short steps.)
    pub fn paths_below_after(&self, root: &str, after: Option<&str>, limit: usize) -> Vec<String> {
        // Below `root` is the range ["root/", "root0"): '0' follows '/'.
        let (dir, end) = match root {
            "/" => ("/".to_string(), "0".to_string()),
            _ => (format!("{root}/"), format!("{root}0")),
        };
        let mut paths = Vec::new();
        if after.is_none() && root != "/" && self.nodes.contains_key(root) {
            paths.push(root.to_string());
        }
        let start = match after {
            Some(after) if after >= dir.as_str() => Bound::Excluded(after),
            _ => Bound::Included(dir.as_str()),
        };
        let rest = limit.saturating_sub(paths.len());
        paths.extend(
            self.nodes
                .range::<str, _>((start, Bound::Excluded(end.as_str())))
                .take(rest)
                .map(|(p, _)| p.clone()),
        );
        paths
    }

    fn forget_below(&mut self, root: &str) {
        for p in self.paths_below(root) {
            self.nodes.remove(&p);
        }
    }

    /// Sorted names of the children of `parent`, `None` if it is not mirrored.
    /// Skips each child's own subtree instead of walking it.
    pub fn children(&self, parent: &str) -> Option<Vec<String>> {
        self.nodes.get(parent)?;
        let base = if parent == "/" {
            "/".to_string()
        } else {
            format!("{parent}/")
        };
        let mut names = Vec::new();
        let mut from = base.clone();
        loop {
            let next = self
                .nodes
                .range::<str, _>((Bound::Excluded(from.as_str()), Bound::Unbounded))
                .next()
                .map(|(p, _)| p);
            let Some(p) = next.filter(|p| p.starts_with(&base)) else {
                break;
            };
            let name = p[base.len()..].split('/').next().unwrap_or_default();
            let child = format!("{base}{name}");
            if p.len() == child.len() {
                names.push(name.to_string());
            }
            // Past `child` and everything below it ("child/..." sorts before "child0").
            from = format!("{child}0");
            if p.len() == child.len() {
                // A sibling "child!" sorts between "child" and "child/": step past "child" only.
                from = child;
            }
        }
        names.sort();
        Some(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_is_monotonic_and_tells_data_from_children() {
        let mut index = Index::default();
        let at = |mzxid, pzxid| Stat {
            mzxid,
            pzxid,
            ..crate::mirror::test_stat()
        };
        assert_eq!(index.advance("/a".into(), at(5, 5)), Advance::Data);
        assert_eq!(index.advance("/a".into(), at(5, 5)), Advance::Stale);
        assert_eq!(index.advance("/a".into(), at(5, 7)), Advance::ChildrenOnly);
        assert_eq!(index.advance("/a".into(), at(4, 9)), Advance::Stale);
        assert_eq!(index.advance("/a".into(), at(6, 7)), Advance::Data);
        assert_eq!(index.stat("/a").map(|s| (s.mzxid, s.pzxid)), Some((6, 7)));
    }

    #[test]
    fn children_skip_subtrees() {
        let mut index = Index::default();
        for p in [
            "/a",
            "/a/x",
            "/a/x/deep",
            "/a/x/deep/er",
            "/a/x!",
            "/a/x!/y",
            "/a/y",
            "/ab",
            "/a/z z",
        ] {
            index.insert(p.to_string(), crate::mirror::test_stat());
        }
        assert_eq!(index.children("/a").unwrap(), ["x", "x!", "y", "z z"]);
        assert_eq!(index.children("/a/x").unwrap(), ["deep"]);
        assert_eq!(index.children("/a/y").unwrap(), Vec::<String>::new());
        assert!(index.children("/nope").is_none());
        assert_eq!(index.paths_below("/a").len(), 8);
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
            index.insert(p.to_string(), crate::mirror::test_stat());
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
            ("/", 4, &["/", "/a", "/a!", "/a!/x", "/a/x", "/a/x/deep", "/a/y", "/ab", "/ab/z", "/b"], 3),
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
        let spec = |root: &str| MirrorSpec {
            root: root.into(),
            prefix: "zk:".into(),
        };
        let mut index = Index::default();
        index.set_mirrors(&[spec("/a"), spec("/b")]);
        index.insert("/a/1".into(), crate::mirror::test_stat());
        index.insert("/b/1".into(), crate::mirror::test_stat());
        index.set_mirrors(&[spec("/a")]);
        assert!(index.stat("/a/1").is_some());
        assert!(index.stat("/b/1").is_none());
        assert_eq!(index.mirror_of("/a/1/2").map(|m| m.spec.root.as_str()), Some("/a"));
    }
}
