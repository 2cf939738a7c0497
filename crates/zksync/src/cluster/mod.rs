//! Redis Cluster: which mirrored keys this node writes. Each master writes
//! only the keys of the hash slots it serves (`slot`), as `CLUSTER NODES`
//! tells them (`nodes`); a node that serves no slot holds no mirrored key.
//! Pure: the shell reads `CLUSTER NODES` (`crate::redis::cluster`).

pub mod catchup;
pub mod nodes;
pub mod slot;

pub use catchup::Catchup;
pub use nodes::{KeyRule, Route, Topology};
pub use slot::{Slot, Slots};

use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Notes whether this server runs with `cluster-enabled yes` (fixed for the
/// life of the process; set at module load, before the configs).
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}
