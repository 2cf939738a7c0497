//! A burst of watch events, coalesced: per watched root, the znodes to read
//! once each. The session thread drains up to 10,000 events at a time, and a
//! znode changed many times in a burst is read only once.

use crate::path;
use std::collections::HashSet;

/// A change under a watched root, from its persistent recursive watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    pub root: String,
    pub path: String,
    /// A create or a delete: the parent's stat changed too.
    pub parent_changed: bool,
}

/// What to read for one root of a burst.
#[derive(Debug, PartialEq, Eq)]
pub enum Reads {
    /// Under the group's root: the paths named, for the group to look at.
    Group(Vec<String>),
    /// Under a mirror root: each path named once, in the order of its first
    /// event, then the parents whose stat changed.
    Mirror { root: String, paths: Vec<String> },
}

/// Coalesces `events` per root, roots in the order of their first event.
pub fn coalesce(events: Vec<WatchEvent>, group_root: Option<&str>) -> Vec<Reads> {
    let mut bursts: Vec<Burst> = Vec::new();
    for event in events {
        let index = match bursts.iter().position(|b| b.root == event.root) {
            Some(index) => index,
            None => {
                bursts.push(Burst::new(event.root.clone()));
                bursts.len() - 1
            }
        };
        bursts[index].add(event);
    }
    bursts.into_iter().map(|b| b.into_reads(group_root)).collect()
}

/// The events of one root so far: a set beside the list, as bursts run to
/// 10,000 events.
struct Burst {
    root: String,
    paths: Vec<String>,
    seen: HashSet<String>,
    parents: Vec<String>,
}

impl Burst {
    fn new(root: String) -> Burst {
        Burst {
            root,
            paths: Vec::new(),
            seen: HashSet::new(),
            parents: Vec::new(),
        }
    }

    fn add(&mut self, event: WatchEvent) {
        if event.parent_changed {
            // A child created or deleted changes its parent's stat (pzxid,
            // cversion, num_children), and no event says so: read it too.
            if let Some(parent) = path::parent(&event.path).filter(|parent| path::is_within(parent, &self.root)) {
                self.parents.push(parent.to_string());
            }
        }
        if self.seen.insert(event.path.clone()) {
            self.paths.push(event.path);
        }
    }

    /// The group reads only the znodes named: it keeps no stats.
    fn into_reads(mut self, group_root: Option<&str>) -> Reads {
        if Some(self.root.as_str()) == group_root {
            return Reads::Group(self.paths);
        }
        for parent in self.parents {
            if self.seen.insert(parent.clone()) {
                self.paths.push(parent);
            }
        }
        Reads::Mirror {
            root: self.root,
            paths: self.paths,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `+path` a create, `-path` a delete, `path` a data change.
    fn events(root: &str, list: &[&str]) -> Vec<WatchEvent> {
        list.iter()
            .map(|e| WatchEvent {
                root: root.to_string(),
                path: e.trim_start_matches(['+', '-']).to_string(),
                parent_changed: e.starts_with(['+', '-']),
            })
            .collect()
    }

    fn mirror(root: &str, paths: &[&str]) -> Reads {
        Reads::Mirror {
            root: root.to_string(),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn group(paths: &[&str]) -> Reads {
        Reads::Group(paths.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn one_root() {
        let cases: [(&str, &[&str], &[&str]); 8] = [
            ("nothing", &[], &[]),
            (
                "each path once, in order",
                &["/a/x", "/a/y", "/a/x", "/a/y", "/a/z"],
                &["/a/x", "/a/y", "/a/z"],
            ),
            ("a data change leaves the parent", &["/a/b/c"], &["/a/b/c"]),
            (
                "a create adds the parent, last",
                &["+/a/b/c", "/a/x"],
                &["/a/b/c", "/a/x", "/a/b"],
            ),
            ("a delete adds the parent", &["-/a/b"], &["/a/b", "/a"]),
            (
                "a parent already named is not added again",
                &["/a/b", "+/a/b/c", "-/a/b/d"],
                &["/a/b", "/a/b/c", "/a/b/d"],
            ),
            ("nor twice", &["+/a/x", "+/a/y", "-/a/x"], &["/a/x", "/a/y", "/a"]),
            ("the root's parent lies outside it", &["+/a", "-/a"], &["/a"]),
        ];
        for (what, list, expected) in cases {
            let reads = coalesce(events("/a", list), None);
            let expected: Vec<Reads> = if list.is_empty() {
                vec![]
            } else {
                vec![mirror("/a", expected)]
            };
            assert_eq!(reads, expected, "{what}");
        }
    }

    #[test]
    fn root_slash() {
        let reads = coalesce(events("/", &["+/x", "+/x/y"]), None);
        assert_eq!(reads, [mirror("/", &["/x", "/x/y", "/"])]);
    }

    #[test]
    fn several_roots_in_order_of_first_event() {
        let mut burst = events("/b", &["+/b/1"]);
        burst.extend(events("/a", &["/a/1", "+/a/2"]));
        burst.extend(events("/b", &["/b/1", "/b/2"]));
        burst.extend(events("/a", &["/a/1"]));
        assert_eq!(
            coalesce(burst, None),
            [
                mirror("/b", &["/b/1", "/b/2", "/b"]),
                mirror("/a", &["/a/1", "/a/2", "/a"])
            ]
        );
    }

    #[test]
    fn the_group_root_reads_no_parents() {
        let g = "/zksync/cache";
        let mut burst = events(
            g,
            &[
                "+/zksync/cache/members/m1",
                "/zksync/cache/leader",
                "+/zksync/cache/members/m1",
            ],
        );
        burst.extend(events("/a", &["+/a/b"]));
        assert_eq!(
            coalesce(burst, Some(g)),
            [
                group(&["/zksync/cache/members/m1", "/zksync/cache/leader"]),
                mirror("/a", &["/a/b", "/a"])
            ]
        );
        // Without a group, the same root is just a root.
        let reads = coalesce(events(g, &["+/zksync/cache/leader"]), None);
        assert_eq!(reads, [mirror(g, &["/zksync/cache/leader", g])]);
    }
}
