//! The change stream: one entry per mirrored key change, appended by the
//! apply thread in the same lock hold as the change (`zksync.stream`,
//! `zksync.stream-maxlen`).

use super::plan::Version;
use crate::config::StreamSpec;
use std::sync::{Arc, Mutex};

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
    /// The entry's field/value pairs, in order.
    pub fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        match self {
            Entry::Set { key, znode, value } => vec![
                ("op", b"set".to_vec()),
                ("key", key.to_vec()),
                ("path", znode.path.as_bytes().to_vec()),
                ("mzxid", znode.mzxid.to_string().into_bytes()),
                ("version", znode.version.to_string().into_bytes()),
                ("value", value.to_vec()),
            ],
            Entry::Del { key, path, zxid } => vec![
                ("op", b"del".to_vec()),
                ("key", key.to_vec()),
                ("path", path.as_bytes().to_vec()),
                ("mzxid", zxid.to_string().into_bytes()),
            ],
        }
    }
}

static CURRENT: Mutex<Option<Arc<StreamSpec>>> = Mutex::new(None);

/// The stream in force, if any (read once per batch by the apply thread).
pub fn current() -> Option<Arc<StreamSpec>> {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// After a config change.
pub fn set(stream: Option<StreamSpec>) {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = stream.map(Arc::new);
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let names: Vec<_> = set.fields().into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["op", "key", "path", "mzxid", "version", "value"]);
        assert_eq!(set.fields()[5].1, b"v\x00");
        let del = Entry::Del {
            key: b"zk:/a/b",
            path: "/a/b",
            zxid: 50,
        };
        let fields = del.fields();
        assert_eq!(fields[0], ("op", b"del".to_vec()));
        assert_eq!(fields[3], ("mzxid", b"50".to_vec()));
        assert_eq!(fields.len(), 4);
    }
}
