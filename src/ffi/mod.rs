//! The Redis side of the module's edges: what Redis calls us through must not
//! unwind into C (`guard`), the ACL questions zksync asks on a client's behalf
//! (`acl`), the configs as Redis registers and sees them (`config`), and the one way to
//! write to the Redis log (`log`).

pub mod acl;
pub mod config;
pub mod guard;
pub mod log;
