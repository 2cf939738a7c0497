//! The harness itself: servers come up and go away.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn servers_start_and_stop() {
    let zk = shared_zk();
    let client = ZkClient::connect(&zk.connect_string());
    let root = unique_root("harness");
    client.create_all(&format!("{root}/a/b"), b"x");
    assert_eq!(client.tree(&root).len(), 3);
    client.delete_all(&root);
    assert!(!client.exists(&root));

    let redis = Redis::start(&zk.connect_string(), &[]);
    redis.wait_state("connected", Duration::from_secs(5));
    let port = redis.port();
    drop(redis);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
