//! The znodes of the index, in about 90 bytes each (`Trie::bytes`): a trie
//! over path components.
//!
//! Every znode is a fixed-size `Znode` in a slab of chunks just under an
//! allocator size class (no doubling that would leave half of a large block
//! unused); a freed slot is reused. Its name is a range of one byte arena,
//! compacted once half of it is garbage. Its children are a list of slots
//! sorted by name, found by binary search; leaves, most znodes, have none.

use crate::mirror::Stat;
use std::collections::HashMap;

/// Where a znode lives in the slab.
pub type Slot = u32;

/// The slot of `/`, present even when not mirrored.
pub const ROOT: Slot = 0;

/// Set in `Znode::name_len` while the znode is mirrored itself; clear while
/// it is there only as an ancestor of mirrored znodes.
const MIRRORED: u32 = 1 << 31;

/// Znodes per slab chunk: a chunk just fits in 64 KiB, a jemalloc size class.
const CHUNK: usize = (64 << 10) / size_of::<Znode>();

/// The arena size below which garbage is not worth a compaction.
const COMPACT_FROM: usize = 4 << 10;

/// A stat without `aversion` (STAT does not report it) and without
/// `ephemeral_owner` (kept aside for the few ephemeral znodes): 56 bytes.
#[derive(Clone, Copy, Default)]
struct CompactStat {
    czxid: i64,
    mzxid: i64,
    pzxid: i64,
    ctime: i64,
    mtime: i64,
    version: i32,
    cversion: i32,
    data_length: i32,
    num_children: i32,
}

impl CompactStat {
    fn of(stat: &Stat) -> CompactStat {
        CompactStat {
            czxid: stat.czxid,
            mzxid: stat.mzxid,
            pzxid: stat.pzxid,
            ctime: stat.ctime,
            mtime: stat.mtime,
            version: stat.version,
            cversion: stat.cversion,
            data_length: stat.data_length,
            num_children: stat.num_children,
        }
    }

    fn with_owner(self, ephemeral_owner: i64) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            pzxid: self.pzxid,
            ctime: self.ctime,
            mtime: self.mtime,
            version: self.version,
            cversion: self.cversion,
            aversion: 0,
            ephemeral_owner,
            data_length: self.data_length,
            num_children: self.num_children,
        }
    }
}

/// Children sorted by name. Boxed so that a leaf pays one null pointer;
/// only parents pay for the Vec.
#[allow(clippy::box_collection)]
type ChildList = Option<Box<Vec<Child>>>;

/// A child in its parent's list, with the first bytes of its name: a binary
/// search then mostly stays in the list instead of reading a znode and its
/// name at every probe (two cache misses, one after the other).
#[derive(Clone, Copy)]
struct Child {
    name_prefix: u32,
    slot: Slot,
}

/// The first 4 bytes of `name`, zero-padded, as a number that orders as the
/// names do whenever two prefixes differ.
fn name_prefix(name: &[u8]) -> u32 {
    let mut bytes = [0; 4];
    let len = name.len().min(4);
    bytes[..len].copy_from_slice(&name[..len]);
    u32::from_be_bytes(bytes)
}

/// One znode: 72 bytes.
struct Znode {
    stat: CompactStat,
    /// Where the name starts in `Trie::names`.
    name_at: u32,
    /// The name's length, with the `MIRRORED` flag.
    name_len: u32,
    children: ChildList,
}

impl Znode {
    fn is_mirrored(&self) -> bool {
        self.name_len & MIRRORED != 0
    }

    fn name_range(&self) -> std::ops::Range<usize> {
        let at = self.name_at as usize;
        at..at + (self.name_len & !MIRRORED) as usize
    }

    fn children(&self) -> &[Child] {
        self.children.as_deref().map_or(&[], Vec::as_slice)
    }
}

pub struct Trie {
    chunks: Vec<Vec<Znode>>,
    /// Freed slots, reused first.
    free: Vec<Slot>,
    names: Vec<u8>,
    /// Bytes of `names` no znode uses any more.
    garbage: usize,
    ephemeral_owners: HashMap<Slot, i64>,
    mirrored: usize,
    /// Heap bytes of all child lists, kept up to date as they change.
    child_list_bytes: usize,
}

impl Default for Trie {
    fn default() -> Trie {
        let mut trie = Trie {
            chunks: Vec::new(),
            free: Vec::new(),
            names: Vec::new(),
            garbage: 0,
            ephemeral_owners: HashMap::new(),
            mirrored: 0,
            child_list_bytes: 0,
        };
        trie.allocate(Znode {
            stat: CompactStat::default(),
            name_at: 0,
            name_len: 0,
            children: None,
        });
        trie
    }
}

impl Trie {
    /// Mirrored znodes (not their unmirrored ancestors).
    pub fn len(&self) -> usize {
        self.mirrored
    }

    /// Heap bytes, from capacities rounded up to jemalloc's size classes: the
    /// slab, the name arena, the child lists, the free list and the
    /// ephemeral owners (the last estimated from the hash table's layout).
    /// Kept in O(1): the apply thread reports it after every lock hold.
    pub fn bytes(&self) -> usize {
        let slab = match self.chunks.split_last() {
            Some((last, full)) => {
                full.len() * allocated(CHUNK * size_of::<Znode>()) + allocated(last.capacity() * size_of::<Znode>())
            }
            None => 0,
        };
        slab + allocated(self.chunks.capacity() * size_of::<Vec<Znode>>())
            + allocated(self.free.capacity() * size_of::<Slot>())
            + allocated(self.names.capacity())
            + self.child_list_bytes
            + hash_map_bytes(&self.ephemeral_owners)
    }

    /// The slot of `path`, mirrored or not.
    pub fn find(&self, path: &str) -> Option<Slot> {
        let mut slot = ROOT;
        for name in names_of(path)? {
            let at = self.search(slot, name).ok()?;
            slot = self.znode(slot).children()[at].slot;
        }
        Some(slot)
    }

    /// The slots from `/` to `path`, if it is there.
    pub fn trail(&self, path: &str) -> Option<Vec<Slot>> {
        let mut trail = vec![ROOT];
        for name in names_of(path)? {
            let parent = *trail.last()?;
            let at = self.search(parent, name).ok()?;
            trail.push(self.znode(parent).children()[at].slot);
        }
        Some(trail)
    }

    /// The slot of `path`, added (unmirrored) with its missing ancestors;
    /// `None` for a malformed path.
    pub fn find_or_add(&mut self, path: &str) -> Option<Slot> {
        let mut slot = ROOT;
        for name in names_of(path)? {
            slot = match self.search(slot, name) {
                Ok(at) => self.znode(slot).children()[at].slot,
                Err(at) => self.add_child(slot, at, name)?,
            };
        }
        Some(slot)
    }

    /// The stat of the znode at `slot` if it is mirrored.
    pub fn stat(&self, slot: Slot) -> Option<Stat> {
        let znode = self.znode(slot);
        if !znode.is_mirrored() {
            return None;
        }
        let owner = self.ephemeral_owners.get(&slot).copied().unwrap_or(0);
        Some(znode.stat.with_owner(owner))
    }

    /// Marks the znode at `slot` mirrored, with `stat`.
    pub fn record(&mut self, slot: Slot, stat: &Stat) {
        let znode = self.znode_mut(slot);
        znode.stat = CompactStat::of(stat);
        if !znode.is_mirrored() {
            znode.name_len |= MIRRORED;
            self.mirrored += 1;
        }
        if stat.ephemeral_owner != 0 {
            self.ephemeral_owners.insert(slot, stat.ephemeral_owner);
        } else if !self.ephemeral_owners.is_empty() {
            self.ephemeral_owners.remove(&slot);
        }
    }

    /// Unmarks the znode at the end of `trail` and frees the slots that then
    /// hold nothing mirrored; returns its stat if it was mirrored.
    pub fn remove(&mut self, trail: &[Slot]) -> Option<Stat> {
        let stat = self.unmark(*trail.last()?);
        self.prune(trail);
        stat
    }

    /// Forgets the znode at the end of `trail` and its whole subtree.
    pub fn remove_subtree(&mut self, trail: &[Slot]) {
        let Some(&top) = trail.last() else { return };
        let mut below = self.take_children(top);
        while let Some(slot) = below.pop() {
            below.extend(self.take_children(slot));
            self.unmark(slot);
            self.release(slot);
        }
        self.unmark(top);
        self.prune(trail);
    }

    /// Sorted names of the mirrored children of `slot`.
    pub fn child_names(&self, slot: Slot) -> Vec<String> {
        let children = self.znode(slot).children().iter().map(|c| self.znode(c.slot));
        children
            .filter(|child| child.is_mirrored())
            .map(|child| self.name(child).to_string())
            .collect()
    }

    /// Up to `limit` paths of the mirrored znodes at or below `top`, whose
    /// path is `path` (a parent before its children, siblings in name
    /// order), those after `after` in that order (`after` lies at or below
    /// `path`, and need not be in the trie any more): a walk resumable from
    /// the last path it returned.
    pub fn paths_below_after(&self, top: Slot, path: &str, after: Option<&str>, limit: usize) -> Vec<String> {
        let mut paths = Vec::new();
        // Per level: a znode, its path, and the next of its children to visit.
        let mut frames: Vec<(Slot, String, usize)> = Vec::new();
        match after.and_then(|after| after.strip_prefix(path)) {
            None => {
                if self.znode(top).is_mirrored() {
                    paths.push(path.to_string());
                }
                frames.push((top, path.to_string(), 0));
            }
            Some(rest) => self.seek(top, path, rest, &mut frames),
        }
        while paths.len() < limit {
            let Some((slot, parent, next)) = frames.last_mut() else {
                break;
            };
            let Some(child) = self.znode(*slot).children().get(*next) else {
                frames.pop();
                continue;
            };
            *next += 1;
            let znode = self.znode(child.slot);
            let child_path = crate::path::child(parent, self.name(znode));
            if znode.is_mirrored() {
                paths.push(child_path.clone());
            }
            frames.push((child.slot, child_path, 0));
        }
        paths
    }

    /// The frames of a walk positioned just after the path `top`'s `path`
    /// followed by `rest` (names separated by '/').
    fn seek(&self, top: Slot, path: &str, rest: &str, frames: &mut Vec<(Slot, String, usize)>) {
        let (mut slot, mut at_path) = (top, path.to_string());
        for name in rest.split('/').filter(|name| !name.is_empty()) {
            match self.search(slot, name) {
                Ok(at) => {
                    let child = self.znode(slot).children()[at].slot;
                    let child_path = crate::path::child(&at_path, name);
                    frames.push((slot, at_path, at + 1));
                    (slot, at_path) = (child, child_path);
                }
                Err(at) => {
                    frames.push((slot, at_path, at));
                    return;
                }
            }
        }
        frames.push((slot, at_path, 0));
    }

    fn znode(&self, slot: Slot) -> &Znode {
        &self.chunks[slot as usize / CHUNK][slot as usize % CHUNK]
    }

    fn znode_mut(&mut self, slot: Slot) -> &mut Znode {
        &mut self.chunks[slot as usize / CHUNK][slot as usize % CHUNK]
    }

    fn name(&self, znode: &Znode) -> &str {
        // Names are stored from a `&str` split at '/', so they are whole UTF-8.
        std::str::from_utf8(&self.names[znode.name_range()]).unwrap_or_default()
    }

    /// Where the child named `name` of `parent` is in its child list, or
    /// where it would go.
    fn search(&self, parent: Slot, name: &str) -> Result<usize, usize> {
        let prefix = name_prefix(name.as_bytes());
        self.znode(parent).children().binary_search_by(|child| {
            let full_name = || &self.names[self.znode(child.slot).name_range()];
            child
                .name_prefix
                .cmp(&prefix)
                .then_with(|| full_name().cmp(name.as_bytes()))
        })
    }

    fn allocate(&mut self, znode: Znode) -> Option<Slot> {
        if let Some(slot) = self.free.pop() {
            *self.znode_mut(slot) = znode;
            return Some(slot);
        }
        if self.chunks.last().is_none_or(|chunk| chunk.len() == CHUNK) {
            self.chunks.push(Vec::new());
        }
        let first = (self.chunks.len() - 1) * CHUNK;
        let chunk = self.chunks.last_mut()?;
        if chunk.len() == chunk.capacity() {
            // Doubles up to a full chunk, so that a small index stays small.
            let more = chunk.capacity().max(4).min(CHUNK - chunk.capacity());
            chunk.reserve_exact(more);
        }
        let slot = Slot::try_from(first + chunk.len()).ok()?;
        chunk.push(znode);
        Some(slot)
    }

    /// Adds an unmirrored child named `name` at position `at` of the child
    /// list of `parent`.
    fn add_child(&mut self, parent: Slot, at: usize, name: &str) -> Option<Slot> {
        let name_at = u32::try_from(self.names.len()).ok()?;
        let name_len = u32::try_from(name.len()).ok().filter(|len| len & MIRRORED == 0)?;
        let slot = self.allocate(Znode {
            stat: CompactStat::default(),
            name_at,
            name_len,
            children: None,
        })?;
        self.names.extend_from_slice(name.as_bytes());
        let child = Child {
            name_prefix: name_prefix(name.as_bytes()),
            slot,
        };
        self.edit_children(parent, |list| list.get_or_insert_with(Box::default).insert(at, child));
        Some(slot)
    }

    /// Edits the child list of `parent`, keeping `child_list_bytes` up to date.
    fn edit_children<R>(&mut self, parent: Slot, edit: impl FnOnce(&mut ChildList) -> R) -> R {
        let list = &mut self.znode_mut(parent).children;
        let before = child_list_bytes(list);
        let result = edit(list);
        let after = child_list_bytes(list);
        self.child_list_bytes = self.child_list_bytes + after - before;
        result
    }

    fn take_children(&mut self, slot: Slot) -> Vec<Slot> {
        let list = self.edit_children(slot, Option::take);
        list.map_or_else(Vec::new, |list| list.iter().map(|child| child.slot).collect())
    }

    fn unmark(&mut self, slot: Slot) -> Option<Stat> {
        let stat = self.stat(slot)?;
        self.znode_mut(slot).name_len &= !MIRRORED;
        self.mirrored -= 1;
        self.ephemeral_owners.remove(&slot);
        Some(stat)
    }

    /// Frees, from the end of `trail` up, the znodes that are neither
    /// mirrored nor parents any more; never `/`.
    fn prune(&mut self, trail: &[Slot]) {
        for pair in trail.windows(2).rev() {
            let (parent, slot) = (pair[0], pair[1]);
            let znode = self.znode(slot);
            if znode.is_mirrored() || znode.children.is_some() {
                break;
            }
            if let Ok(at) = self.search(parent, self.name(znode)) {
                self.edit_children(parent, |list| {
                    if let Some(children) = list {
                        children.remove(at);
                        if children.is_empty() {
                            *list = None;
                        } else if children.len() * 4 <= children.capacity() {
                            children.shrink_to(children.len() * 2);
                        }
                    }
                });
            }
            self.release(slot);
        }
        if self.znode(ROOT).children.is_none() && !self.znode(ROOT).is_mirrored() && !self.free.is_empty() {
            // Nothing left (a mirror removed): give the slab back too.
            *self = Trie::default();
        }
        self.compact_names_if_sparse();
    }

    /// Returns an unmirrored, childless slot to the free list.
    fn release(&mut self, slot: Slot) {
        let znode = self.znode_mut(slot);
        let name_len = znode.name_range().len();
        znode.name_len = 0;
        self.garbage += name_len;
        self.free.push(slot);
    }

    /// Rewrites the name arena without its garbage once that is half of it.
    fn compact_names_if_sparse(&mut self) {
        if self.names.len() < COMPACT_FROM || self.garbage * 2 < self.names.len() {
            return;
        }
        let mut names = Vec::with_capacity(self.names.len() - self.garbage);
        let mut pending = vec![ROOT];
        while let Some(slot) = pending.pop() {
            let range = self.znode(slot).name_range();
            let name_at = u32::try_from(names.len()).unwrap_or(u32::MAX);
            names.extend_from_slice(&self.names[range]);
            let znode = self.znode_mut(slot);
            znode.name_at = name_at;
            pending.extend(znode.children().iter().map(|child| child.slot));
        }
        self.names = names;
        self.garbage = 0;
    }
}

/// The names along `path`: none for `/`; `None` for a path that is not
/// absolute or has an empty segment.
fn names_of(path: &str) -> Option<impl Iterator<Item = &str>> {
    let rest = path.strip_prefix('/')?;
    let well_formed = rest.is_empty() || rest.split('/').all(|name| !name.is_empty());
    well_formed.then(|| rest.split('/').filter(|name| !name.is_empty()))
}

fn child_list_bytes(list: &ChildList) -> usize {
    list.as_ref().map_or(0, |children| {
        allocated(size_of::<Vec<Child>>()) + allocated(children.capacity() * size_of::<Child>())
    })
}

/// What jemalloc, Redis's allocator, hands out for `bytes`: 8 or 16, then
/// four size classes per doubling.
fn allocated(bytes: usize) -> usize {
    if bytes <= 16 {
        return bytes.next_multiple_of(8);
    }
    let spacing = (bytes.next_power_of_two() / 8).max(16);
    bytes.next_multiple_of(spacing)
}

/// The heap of a std `HashMap` (a SwissTable: a power of two of buckets, at
/// most 7/8 full, one control byte each plus a group's worth).
fn hash_map_bytes<K, V>(map: &HashMap<K, V>) -> usize {
    let capacity = map.capacity();
    if capacity == 0 {
        return 0;
    }
    let buckets = if capacity < 8 { capacity + 1 } else { capacity * 8 / 7 }.next_power_of_two();
    allocated(buckets * (size_of::<(K, V)>() + 1) + 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(trie: &mut Trie, path: &str) {
        let slot = trie.find_or_add(path).expect("well-formed");
        trie.record(slot, &crate::mirror::test_stat());
    }

    fn remove(trie: &mut Trie, path: &str) {
        let trail = trie.trail(path).expect("present");
        trie.remove(&trail);
    }

    fn slots(trie: &Trie) -> usize {
        trie.chunks.iter().map(Vec::len).sum()
    }

    /// The child lists' bytes counted afresh, to check the running count.
    fn recount_child_list_bytes(trie: &Trie) -> usize {
        let mut bytes = 0;
        let mut pending = vec![ROOT];
        while let Some(slot) = pending.pop() {
            bytes += child_list_bytes(&trie.znode(slot).children);
            pending.extend(trie.znode(slot).children().iter().map(|child| child.slot));
        }
        bytes
    }

    #[test]
    fn freed_slots_and_names_are_reused() {
        let mut trie = Trie::default();
        let paths = |round: usize| (0..2000).map(move |i| format!("/r{round}/dir{}/name{i:05}", i % 7));
        for path in paths(0).chain(["/kept".to_string()]) {
            insert(&mut trie, &path);
        }
        let (used, bytes) = (slots(&trie), trie.bytes());
        for round in 1..4 {
            // Remove every other one, then all: the ancestors go too.
            for path in paths(round - 1).step_by(2).chain(paths(round - 1).skip(1).step_by(2)) {
                remove(&mut trie, &path);
                assert_eq!(trie.child_list_bytes, recount_child_list_bytes(&trie));
            }
            assert_eq!((trie.len(), trie.free.len() + 2), (1, slots(&trie)), "round {round}");
            assert!(trie.names.len() < COMPACT_FROM, "names compacted: {}", trie.names.len());
            for path in paths(round) {
                insert(&mut trie, &path);
            }
            assert_eq!(slots(&trie), used, "round {round}: no new slot");
            assert!(
                trie.bytes() <= bytes + bytes / 5,
                "round {round}: {} > {bytes}",
                trie.bytes()
            );
        }
        // Empty again: the slab is given back.
        for path in paths(3).chain(["/kept".to_string()]) {
            remove(&mut trie, &path);
        }
        assert_eq!((slots(&trie), trie.bytes()), (1, Trie::default().bytes()));
    }

    #[test]
    fn a_subtree_goes_at_once() {
        let mut trie = Trie::default();
        for path in ["/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/e", "/x/y"] {
            insert(&mut trie, path);
        }
        for (top, left) in [("/a/b", &["/a", "/a/e", "/x/y"][..]), ("/", &[][..])] {
            let trail = trie.trail(top).expect("present");
            trie.remove_subtree(&trail);
            assert_eq!(trie.paths_below_after(ROOT, "/", None, usize::MAX), left, "{top}");
            assert_eq!(trie.len(), left.len(), "{top}");
            assert_eq!(trie.child_list_bytes, recount_child_list_bytes(&trie));
        }
        assert_eq!((slots(&trie), trie.bytes()), (1, Trie::default().bytes()));
    }

    /// Random inserts, removals and subtree removals, checked after every
    /// step against a `BTreeMap` keyed by path components (whose order is
    /// the walk's: a parent before its children, siblings by name). Names
    /// share prefixes and sort around `/` to stress the child search.
    #[test]
    fn random_changes_match_a_btreemap() {
        use crate::group::sim::rng::Rng;
        use std::collections::BTreeMap;
        const NAMES: [&str; 6] = ["a", "a-", "ab", "b", "b0", "abcde"];
        let path_of = |names: &[&str]| format!("/{}", names.join("/"));
        for seed in 0..40 {
            let mut rng = Rng::new(seed);
            let mut trie = Trie::default();
            let mut model: BTreeMap<Vec<&str>, i64> = BTreeMap::new();
            for step in 0..400 {
                let depth = rng.between(1, 4) as usize;
                let names: Vec<&str> = (0..depth).map(|_| *rng.pick(&NAMES)).collect();
                let path = path_of(&names);
                let at = format!("seed {seed} step {step} {path}");
                match rng.between(0, 9) {
                    0..=5 => {
                        let mzxid = step as i64 + 1;
                        let slot = trie.find_or_add(&path).expect("well-formed");
                        trie.record(
                            slot,
                            &Stat {
                                mzxid,
                                ..crate::mirror::test_stat()
                            },
                        );
                        model.insert(names, mzxid);
                    }
                    6..=8 => {
                        let removed = trie.trail(&path).and_then(|trail| trie.remove(&trail));
                        assert_eq!(removed.map(|s| s.mzxid), model.remove(&names), "{at}");
                    }
                    _ => {
                        if let Some(trail) = trie.trail(&path) {
                            trie.remove_subtree(&trail);
                        }
                        model.retain(|key, _| !key.starts_with(&names));
                    }
                }
                check_against(&trie, &model, &at);
                let after = Some(path.as_str()).filter(|_| rng.chance(50));
                let limit = rng.between(1, 20) as usize;
                let want: Vec<String> = model
                    .keys()
                    .map(|k| path_of(k))
                    .filter(|p| after.is_none_or(|a| in_walk_order(p, a) == std::cmp::Ordering::Greater))
                    .take(limit)
                    .collect();
                assert_eq!(trie.paths_below_after(ROOT, "/", after, limit), want, "{at}");
            }
        }
    }

    /// The order of the walk: by path components.
    fn in_walk_order(a: &str, b: &str) -> std::cmp::Ordering {
        a.split('/').cmp(b.split('/'))
    }

    fn check_against(trie: &Trie, model: &std::collections::BTreeMap<Vec<&str>, i64>, at: &str) {
        assert_eq!(trie.len(), model.len(), "{at}");
        assert_eq!(trie.child_list_bytes, recount_child_list_bytes(trie), "{at}");
        let all: Vec<String> = model.keys().map(|k| format!("/{}", k.join("/"))).collect();
        assert_eq!(trie.paths_below_after(ROOT, "/", None, usize::MAX), all, "{at}");
        for (names, mzxid) in model {
            let path = format!("/{}", names.join("/"));
            let stat = trie.find(&path).and_then(|slot| trie.stat(slot));
            assert_eq!(stat.map(|s| s.mzxid), Some(*mzxid), "{at}: {path}");
            let parent = crate::path::parent(&path)
                .and_then(|p| trie.find(p))
                .expect("an ancestor is kept");
            assert!(
                trie.child_names(parent).contains(&names[names.len() - 1].to_string()),
                "{at}"
            );
        }
        // Nothing but `/`, mirrored znodes and their ancestors holds a slot.
        let mut kept: std::collections::BTreeSet<Vec<&str>> = model
            .keys()
            .flat_map(|k| (0..=k.len()).map(|n| k[..n].to_vec()))
            .collect();
        kept.insert(Vec::new());
        assert_eq!(slots(trie) - trie.free.len(), kept.len(), "{at}");
    }

    #[test]
    fn allocations_round_up_to_jemalloc_size_classes() {
        for (asked, got) in [
            (0, 0),
            (1, 8),
            (8, 8),
            (9, 16),
            (17, 32),
            (33, 48),
            (65, 80),
            (100, 112),
            (129, 160),
            (4000, 4096),
            (CHUNK * size_of::<Znode>(), 64 << 10),
            (73_728, 81_920),
        ] {
            assert_eq!(allocated(asked), got, "{asked}");
        }
        assert_eq!(size_of::<Znode>(), 72);
    }
}
