//! The contenders of a lock as Curator's `InterProcessMutex` lays them out,
//! so that zksync and Curator clients on one path exclude each other: each
//! contender is an ephemeral sequential child `_c_<uuid>-lock-<sequence>` of
//! the lock's znode (the `_c_<uuid>-` protection finds one's own child after
//! a lost connection); the holder is the lowest sequence, and each waiter
//! watches only the one just before it.

/// Curator's lock name: the sequence follows it.
const LOCK_NAME: &str = "lock-";

/// The prefix of one contender's child, unique to one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Protected {
    prefix: String,
}

impl Protected {
    /// From 128 bits no other attempt shares (this session's id and a
    /// counter of its attempts), in the layout of a UUID.
    pub fn new(session: i64, attempt: u64) -> Protected {
        let (hi, lo) = (session as u64, attempt);
        let uuid = format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        );
        Protected {
            prefix: format!("_c_{uuid}-{LOCK_NAME}"),
        }
    }

    /// The path to create (ZooKeeper appends the sequence).
    pub fn path(&self, lock: &str) -> String {
        format!("{}/{}", lock.trim_end_matches('/'), self.prefix)
    }

    /// Whether `child` (a name) was created by this attempt.
    pub fn owns(&self, child: &str) -> bool {
        child.starts_with(&self.prefix) && sequence(child).is_some()
    }
}

/// The sequence of a contender's name; `None` for a child that is not one.
pub fn sequence(child: &str) -> Option<u64> {
    let (_, digits) = child.rsplit_once(LOCK_NAME)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Where a contender stands among the children of the lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Position {
    /// The lowest sequence: it holds the lock.
    Holder,
    /// Behind this child (a name), the one to watch.
    Behind(String),
    /// Not among them (deleted from outside, or its session is gone).
    Missing,
}

/// Where `mine` (a name) stands among `children` (names).
pub fn position(children: &[String], mine: &str) -> Position {
    let Some(own) = sequence(mine) else {
        return Position::Missing;
    };
    if !children.iter().any(|c| c == mine) {
        return Position::Missing;
    }
    let ahead = children
        .iter()
        .filter_map(|c| Some((sequence(c)?, c)))
        .filter(|(s, _)| *s < own)
        .max_by_key(|(s, _)| *s);
    match ahead {
        None => Position::Holder,
        Some((_, child)) => Position::Behind(child.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_names_are_curators() {
        let p = Protected::new(0x0123_4567_89ab_cdef, 42);
        assert_eq!(
            p.path("/locks/a"),
            "/locks/a/_c_01234567-89ab-cdef-0000-00000000002a-lock-"
        );
        assert!(p.owns("_c_01234567-89ab-cdef-0000-00000000002a-lock-0000000007"));
        assert!(!p.owns("_c_01234567-89ab-cdef-0000-00000000002b-lock-0000000007"));
        assert!(!p.owns("_c_01234567-89ab-cdef-0000-00000000002a-lock-"));
        assert_ne!(Protected::new(1, 1), Protected::new(1, 2));
        assert_ne!(Protected::new(1, 1), Protected::new(2, 1));
    }

    #[test]
    fn sequences() {
        let cases = [
            ("_c_6b4c8d2e-3f1a-4b5c-9d8e-7f6a5b4c3d2e-lock-0000000012", Some(12)),
            ("lock-0000000003", Some(3)),
            ("_c_x-lock-", None),
            ("_c_x-lock-12a", None),
            ("leases", None),
            ("_c_x-latch-0000000001", None),
        ];
        for (child, want) in cases {
            assert_eq!(sequence(child), want, "{child}");
        }
    }

    #[test]
    fn the_lowest_sequence_holds_and_each_waiter_watches_the_one_before() {
        let children: Vec<String> = [
            "_c_c-lock-0000000007",
            "_c_a-lock-0000000003",
            "not-a-contender",
            "_c_b-lock-0000000005",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let cases = [
            ("_c_a-lock-0000000003", Position::Holder),
            ("_c_b-lock-0000000005", Position::Behind("_c_a-lock-0000000003".into())),
            ("_c_c-lock-0000000007", Position::Behind("_c_b-lock-0000000005".into())),
            ("_c_d-lock-0000000009", Position::Missing),
            ("not-a-contender", Position::Missing),
        ];
        for (mine, want) in cases {
            assert_eq!(position(&children, mine), want, "{mine}");
        }
    }
}
