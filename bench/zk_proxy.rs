//! bench/scale's TCP proxy between zksync and ZooKeeper: the tests' proxy
//! (crates/testkit/src/proxy.rs), driven by lines on stdin. Prints its
//! address, then "ok" after each command:
//!   cut        close every connection now (RST); new ones are forwarded
//!   blackhole  forward nothing, old or new connections (accepted, silent)
//!   restore    forward again; the silenced connections are closed
//! `blackhole` then `cut` keeps a client disconnected until `restore`.

use std::io::BufRead;
use testkit::proxy::Proxy;

fn main() {
    let upstream = std::env::args().nth(1).expect("usage: zk-proxy <zookeeper host:port>");
    let proxy = Proxy::start(&upstream);
    println!("{}", proxy.addr());
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "cut" => proxy.cut(),
            "blackhole" => proxy.blackhole(),
            "restore" => proxy.restore(),
            other => eprintln!("zk-proxy: unknown command {other:?}"),
        }
        println!("ok");
    }
}
