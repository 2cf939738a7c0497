//! A keyspace in memory: string keys in order, the change stream's entries
//! in a list, and which keys this node writes. For the apply steps' tests
//! and for simulations; it replicates nothing.

use super::{Cursor, Keyspace, Scanned, WriteError};
use crate::mirror::stream::Entry;
use crate::settings::StreamSpec;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// Which keys a node writes.
pub type Owner = Box<dyn Fn(&[u8]) -> bool + Send>;

pub struct MemoryKeyspace {
    /// The string keys.
    pub keys: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The change stream configured; a string key of the same name makes
    /// every append fail as Redis does for a key of another type.
    pub stream: Option<Arc<StreamSpec>>,
    /// The entries appended, oldest first.
    pub entries: Vec<StreamEntry>,
    /// Keys a step of `scan` returns at most.
    pub scan_count: usize,
    /// Which keys this node writes; `None`: all (no cluster).
    owner: Option<Owner>,
}

/// An entry of the change stream, as `Entry` is, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEntry {
    Set {
        key: Vec<u8>,
        path: String,
        mzxid: i64,
        version: i32,
        value: Vec<u8>,
    },
    Del {
        key: Vec<u8>,
        path: String,
        zxid: i64,
    },
}

impl From<&Entry<'_>> for StreamEntry {
    fn from(entry: &Entry) -> StreamEntry {
        match *entry {
            Entry::Set { key, znode, value } => StreamEntry::Set {
                key: key.to_vec(),
                path: znode.path.clone(),
                mzxid: znode.mzxid,
                version: znode.version,
                value: value.to_vec(),
            },
            Entry::Del { key, path, zxid } => StreamEntry::Del {
                key: key.to_vec(),
                path: path.to_string(),
                zxid,
            },
        }
    }
}

impl Default for MemoryKeyspace {
    fn default() -> MemoryKeyspace {
        MemoryKeyspace {
            keys: BTreeMap::new(),
            stream: None,
            entries: Vec::new(),
            scan_count: 1000,
            owner: None,
        }
    }
}

impl MemoryKeyspace {
    /// With a change stream at `key`, never trimmed.
    pub fn with_stream(mut self, key: &[u8]) -> MemoryKeyspace {
        self.stream = Some(Arc::new(StreamSpec {
            key: key.to_vec(),
            maxlen: 0,
        }));
        self
    }

    /// A cluster node that writes only the keys `owner` accepts.
    pub fn with_owner(mut self, owner: impl Fn(&[u8]) -> bool + Send + 'static) -> MemoryKeyspace {
        self.owner = Some(Box::new(owner));
        self
    }

    /// A string key's value.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.keys.get(key).map(Vec::as_slice)
    }
}

impl Keyspace for MemoryKeyspace {
    type Written<'a> = ();

    fn set<'a>(&mut self, key: &'a [u8], value: &'a [u8]) -> Result<(), WriteError> {
        self.keys.insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> bool {
        self.keys.remove(key).is_some()
    }

    fn holds(&self, key: &[u8], value: &[u8]) -> bool {
        self.get(key) == Some(value)
    }

    fn exists(&self, key: &[u8]) -> bool {
        self.keys.contains_key(key)
    }

    fn writes(&mut self, key: &[u8]) -> bool {
        self.owner.as_ref().is_none_or(|owner| owner(key))
    }

    fn stream(&self) -> Option<Arc<StreamSpec>> {
        self.stream.clone()
    }

    fn append(&mut self, stream: &StreamSpec, entry: &Entry, _: Option<&()>) -> Result<(), WriteError> {
        if self.keys.contains_key(&stream.key) {
            return Err(WriteError::WrongType);
        }
        self.entries.push(entry.into());
        if let Ok(maxlen) = usize::try_from(stream.maxlen) {
            if maxlen > 0 && self.entries.len() > maxlen {
                self.entries.drain(..self.entries.len() - maxlen);
            }
        }
        Ok(())
    }

    /// Resumes after the last key the previous step returned.
    fn scan(&mut self, prefix: &[u8], cursor: Option<&Cursor>) -> Option<Scanned> {
        let from = match cursor {
            Some(Cursor(last)) => Bound::Excluded(last.clone()),
            None => Bound::Included(prefix.to_vec()),
        };
        let count = self.scan_count.max(1);
        let keys: Vec<Vec<u8>> = self
            .keys
            .range((from, Bound::Unbounded))
            .map(|(key, _)| key)
            .take_while(|key| key.starts_with(prefix))
            .take(count)
            .cloned()
            .collect();
        let next = if keys.len() == count {
            keys.last().cloned().map(Cursor)
        } else {
            None
        };
        Some(Scanned { keys, next })
    }
}
