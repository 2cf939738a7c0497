//! zksync's decisions, without Redis, ZooKeeper I/O or an async runtime.
