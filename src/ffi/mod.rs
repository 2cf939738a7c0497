//! The Redis side of the module's edges: what Redis calls us through must not
//! unwind into C (`guard`), the ACL questions zksync asks on a client's behalf
//! (`acl`), string configs as Redis sees them (`config`), clients' ids and
//! disconnects (`clients`), and the one way to write to the Redis log (`log`).

pub mod acl;
pub mod clients;
mod config;
pub mod guard;
pub mod log;
