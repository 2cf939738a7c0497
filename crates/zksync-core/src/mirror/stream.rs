//! The change stream: one entry per mirrored key change, appended by the
//! apply thread in the same lock hold as the change (`zksync.stream`,
//! `zksync.stream-maxlen`).

use super::plan::Version;

/// One entry: a key set to a znode's version, or deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    Set {
        key: &'a [u8],
        znode: &'a Version,
        value: &'a [u8],
    },
    /// `zxid`: the highest zxid seen when the deletion was applied, never
    /// below the deleted znode's last mzxid.
    Del { key: &'a [u8], path: &'a str, zxid: i64 },
}

impl Entry<'_> {
    /// Calls `f` with the entry's field/value pairs, in order. The integers
    /// are written on the stack: an entry allocates nothing of its own.
    pub fn with_fields<R>(&self, f: impl FnOnce(&[(&'static [u8], &[u8])]) -> R) -> R {
        let mut mzxid = itoa::Buffer::new();
        match self {
            Entry::Set { key, znode, value } => {
                let mut version = itoa::Buffer::new();
                f(&[
                    (b"op", b"set"),
                    (b"key", key),
                    (b"path", znode.path.as_bytes()),
                    (b"mzxid", mzxid.format(znode.mzxid).as_bytes()),
                    (b"version", version.format(znode.version).as_bytes()),
                    (b"value", value),
                ])
            }
            Entry::Del { key, path, zxid } => f(&[
                (b"op", b"del"),
                (b"key", key),
                (b"path", path.as_bytes()),
                (b"mzxid", mzxid.format(*zxid).as_bytes()),
            ]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The entry's fields as owned pairs.
    fn fields(entry: &Entry) -> Vec<(String, Vec<u8>)> {
        entry.with_fields(|fields| {
            fields
                .iter()
                .map(|(name, value)| (String::from_utf8_lossy(name).into_owned(), value.to_vec()))
                .collect()
        })
    }

    #[test]
    fn entries_name_their_fields_in_order() {
        let znode = Version {
            path: "/a/b".into(),
            mzxid: 42,
            version: 3,
            newer: true,
        };
        let set = Entry::Set {
            key: b"zk:/a/b",
            znode: &znode,
            value: b"v\x00",
        };
        let set = fields(&set);
        let names: Vec<_> = set.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["op", "key", "path", "mzxid", "version", "value"]);
        assert_eq!(set[3].1, b"42");
        assert_eq!(set[4].1, b"3");
        assert_eq!(set[5].1, b"v\x00");
        let del = Entry::Del {
            key: b"zk:/a/b",
            path: "/a/b",
            zxid: -50,
        };
        let del = fields(&del);
        assert_eq!(del[0], ("op".to_string(), b"del".to_vec()));
        assert_eq!(del[3], ("mzxid".to_string(), b"-50".to_vec()));
        assert_eq!(del.len(), 4);
    }
}
