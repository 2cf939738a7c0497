//! A lock in memory over a `MemoryKeyspace` and an `Index`: each hold
//! records what its steps leave to record, as the shell records it in
//! STATUS and the log. For the procedures' tests and for simulations.

use super::Lock;
use crate::mirror::apply::{Access, Hold, Record, Warning};
use crate::mirror::index::Index;
use crate::mirror::keyspace::memory::MemoryKeyspace;
use std::cell::{Cell, RefCell};

/// Which keys a user may write.
pub type Rights = Box<dyn Fn(&[u8]) -> bool>;

pub struct MemoryLock {
    pub state: RefCell<MemoryState>,
    /// Which keys every user may write (the ACL).
    pub rights: RefCell<Rights>,
    /// How many holds were taken.
    pub holds: Cell<usize>,
}

/// What the holds write and what they recorded, carried from hold to hold.
pub struct MemoryState {
    pub keyspace: MemoryKeyspace,
    pub index: Index,
    /// What each hold may do (a replica: `IndexOnly`).
    pub access: Access,
    /// The highest zxid recorded (STATUS `last_zxid`).
    pub last_zxid: i64,
    pub append_failing: bool,
    /// STATUS `events_applied`.
    pub applied: u64,
    /// STATUS `diverged`, once a hold set it.
    pub diverged: Option<usize>,
    /// The log's warnings, in order.
    pub warnings: Vec<Warning>,
    /// The resyncs that repaired keys: the root and how many.
    pub repaired: Vec<(String, usize)>,
}

impl MemoryLock {
    /// Every user may write every key, until `rights` says otherwise.
    pub fn new(keyspace: MemoryKeyspace, index: Index) -> MemoryLock {
        MemoryLock {
            state: RefCell::new(MemoryState {
                keyspace,
                index,
                access: Access::Write,
                last_zxid: 0,
                append_failing: false,
                applied: 0,
                diverged: None,
                warnings: Vec::new(),
                repaired: Vec::new(),
            }),
            rights: RefCell::new(Box::new(|_| true)),
            holds: Cell::new(0),
        }
    }
}

impl MemoryState {
    fn record(&mut self, record: Record) {
        self.last_zxid = self.last_zxid.max(record.zxid);
        self.append_failing = record.append_failing;
        self.applied += record.applied;
        self.diverged = record.diverged.or(self.diverged);
        self.warnings.extend(record.warnings);
    }
}

impl Lock for MemoryLock {
    type Keyspace<'k> = MemoryKeyspace;

    fn hold<R>(&self, f: impl FnOnce(&mut Hold<'_, MemoryKeyspace>) -> R) -> R {
        self.holds.set(self.holds.get() + 1);
        let mut state = self.state.borrow_mut();
        let MemoryState {
            keyspace,
            index,
            access,
            last_zxid,
            append_failing,
            ..
        } = &mut *state;
        let mut hold = Hold::new(keyspace, index, *access, *last_zxid, *append_failing);
        let result = f(&mut hold);
        let record = hold.finish();
        state.record(record);
        result
    }

    fn may_write(&self, _user: &[u8]) -> impl Fn(&[u8]) -> bool {
        |key| (self.rights.borrow())(key)
    }

    fn repaired(&self, root: &str, keys: usize) {
        self.state.borrow_mut().repaired.push((root.to_string(), keys));
    }
}
