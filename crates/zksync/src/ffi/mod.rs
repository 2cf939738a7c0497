//! The Redis side of the module's edges: what Redis calls us through must not
//! unwind into C (`guard`), the ACL questions zksync asks on a client's behalf
//! (`acl`), clients blocked on another thread and their replies (`blocked`),
//! clients' ids and disconnects (`clients`), commands Redis may already
//! have (`commands`), the configs as Redis registers
//! and sees them (`config`), serverCron and exit (`events`), a command filter (`filter`), the key API writes and reads of the apply
//! thread (`keyspace`), the Redis lock held from a thread of ours (`lock`),
//! the one way to write to the Redis log (`log`), replies and errors as
//! Redis takes them (`reply`), the change stream's append (`stream`), and
//! the one Redis string zksync owns (`string`).

pub mod acl;
pub mod blocked;
pub mod clients;
pub mod commands;
pub mod config;
pub mod events;
pub mod filter;
pub mod guard;
pub mod keyspace;
pub mod lock;
pub mod log;
pub mod reply;
pub mod stream;
pub mod string;
