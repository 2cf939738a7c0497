//! zksync's test harness: real ZooKeeper and redis-server (or valkey-server)
//! processes on free loopback ports, a synchronous ZooKeeper client for the
//! test side, mirror assertions, and the tools of the fault and failover
//! tests. The system tests (tests/*.rs) and the benches (bench/*.rs) use it.
//!
//! One standalone ZooKeeper (and, if asked for, one 3-node ensemble) serves a
//! whole test binary; each test works under its own `unique_root`. Every
//! process runs under a watchdog shell that kills it when the test binary
//! exits, however it exits: statics are never dropped.
//!
//! - `process`: the watchdog (`Guarded`), free ports, temp dirs, `wait_until`;
//! - `server`: redis-server or valkey-server (`ZKSYNC_SERVER`), with the module;
//! - `zookeeper`: standalone ZooKeeper and ensembles, four-letter words;
//! - `zk_client`: the test side's ZooKeeper client;
//! - `mirror`: the mirrored keys, waited on until they equal ZooKeeper's tree;
//! - `proxy`, `netns`: network faults, through a TCP proxy or a real partition;
//! - `tls`: certificates, and ZooKeeper serving TLS;
//! - `writer`, `group`: failover groups under a writer and a prober;
//! - `curator`, `sentinel_client`: other clients, in Java, Python and Go.

pub mod curator;
pub mod group;
mod mirror;
pub mod netns;
mod process;
pub mod proxy;
pub mod sentinel_client;
mod server;
pub mod tls;
pub mod writer;
mod zk_client;
mod zookeeper;

pub use mirror::{mirror_keys, show, wait_mirror_equals, wait_tree_equals};
pub use process::{free_port, temp_dir, unique_root, wait_until, Guarded};
pub use server::{module_path, server, server_program, text, valkey, Redis, Server};
pub use zk_client::ZkClient;
pub use zookeeper::{four_letter, shared_ensemble, shared_zk, Ensemble, Zk};
pub use zookeeper_client as zk;

use std::path::Path;

/// The repository's root, where the harness finds the module
/// (`target/release/libzksync.so`), the servers `scripts/setup` installs
/// under `target/`, and the tests' helper programs (`tests/java`, `tests/go`,
/// `tests/py`).
pub fn workspace_root() -> &'static Path {
    // Cannot fail: this crate is crates/testkit, two levels below the root.
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.ancestors().nth(2).expect("crates/testkit has a grandparent")
}
