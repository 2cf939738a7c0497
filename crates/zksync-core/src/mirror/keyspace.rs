//! The keyspace as the apply steps (`super::apply`) see it, in one hold of
//! the Redis lock: string keys to set, delete and compare, the change stream
//! to append to, a scan by prefix, and which keys this node writes. The
//! module implements it over Redis (`crates/zksync/src/redis/keyspace.rs`); `memory` keeps
//! it in memory, for tests.

pub mod memory;

use super::stream::Entry;
use crate::settings::StreamSpec;
use std::fmt;
use std::sync::Arc;

/// The keyspace the apply thread writes, as of one hold of the Redis lock.
/// Every write reaches replicas and the AOF as the command would.
pub trait Keyspace {
    /// What `set` leaves for the stream entry of the same change to reuse
    /// (in Redis, the strings of the key and the value); `()` where nothing is
    /// worth reusing.
    type Written<'a>;

    /// Sets `key` to the string `value`, whatever it held (its TTL goes too).
    fn set<'a>(&mut self, key: &'a [u8], value: &'a [u8]) -> Result<Self::Written<'a>, WriteError>;

    /// Deletes `key` if it exists; whether it did.
    fn delete(&mut self, key: &[u8]) -> bool;

    /// Whether `key` is a string holding `value`.
    fn holds(&self, key: &[u8], value: &[u8]) -> bool;

    /// Whether `key` exists, of any type.
    fn exists(&self, key: &[u8]) -> bool;

    /// Whether this node writes (sets or deletes) `key` now: in a Redis
    /// Cluster, by the key's slot; elsewhere every key.
    fn writes(&mut self, key: &[u8]) -> bool;

    /// The change stream configured now, if any (whether this node writes
    /// its key is `writes`'s answer).
    fn stream(&self) -> Option<Arc<StreamSpec>>;

    /// Appends `entry` to `stream`, trimmed to about its `maxlen`; `written`:
    /// the `set` this entry goes with.
    fn append(
        &mut self,
        stream: &StreamSpec,
        entry: &Entry,
        written: Option<&Self::Written<'_>>,
    ) -> Result<(), WriteError>;

    /// One step of a scan of the keys that start with `prefix`, from
    /// `cursor` (`None`: the first step); `None` if the keyspace gave no
    /// answer. Like SCAN: a key present throughout the scan is found at
    /// least once, whatever the steps delete meanwhile.
    fn scan(&mut self, prefix: &[u8], cursor: Option<&Cursor>) -> Option<Scanned>;
}

/// Where a scan resumes, as the keyspace's previous step gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(pub Vec<u8>);

/// One step of a scan.
#[derive(Debug, PartialEq, Eq)]
pub struct Scanned {
    pub keys: Vec<Vec<u8>>,
    /// Where the next step resumes; `None`: the scan is complete.
    pub next: Option<Cursor>,
}

/// Why a key write or an append to the change stream failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// Redis could not make a string of the key or of a value.
    NoString,
    CannotOpen,
    /// The server lacks a function of the module API the write needs.
    NoKeyApi,
    NoStreamApi,
    /// The change stream's key holds another type (set by hand).
    WrongType,
    /// Redis refused to set the key.
    SetRefused,
    /// Redis refused to add the stream entry.
    AddRefused,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WriteError::NoString => "cannot create a string",
            WriteError::CannotOpen => "cannot open the key",
            WriteError::NoKeyApi => "the key API is missing",
            WriteError::NoStreamApi => "the stream API is missing",
            WriteError::WrongType => "the key holds another type",
            WriteError::SetRefused => "cannot set the key",
            WriteError::AddRefused => "cannot add the entry",
        })
    }
}
