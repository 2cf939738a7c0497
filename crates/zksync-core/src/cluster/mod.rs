//! Redis Cluster: which mirrored keys this node writes. Each master writes
//! only the keys of the hash slots it serves (`slot`), as `CLUSTER NODES`
//! tells them (`nodes`); a node that serves no slot holds no mirrored key.
//! Pure: the shell reads `CLUSTER NODES` (`zksync::redis::cluster`).

pub mod catchup;
pub mod nodes;
pub mod slot;

pub use catchup::Catchup;
pub use nodes::{KeyRule, Route, Topology};
pub use slot::{Slot, Slots};
