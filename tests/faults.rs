//! The mirror under faults: ZooKeeper servers killed, sessions expired,
//! connections cut, redis-server restarted, keys clobbered. Every test ends
//! with the mirror equal to ZooKeeper.

mod common;

use common::proxy::Proxy;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(10);

/// Writes into `root` on its own thread until stopped: creates, sets and
/// deletes, so that every kind of change is in flight during a fault.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Writer {
    fn start(connect: String, root: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let zk = ZkClient::connect(&connect);
            let mut n = 0;
            while !stopping.load(Ordering::Relaxed) {
                let p = format!("{root}/w{}", n % 50);
                let result = zk.block_on(async {
                    match n % 3 {
                        0 | 1 => {
                            let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
                            match zk.client().set_data(&p, n.to_string().as_bytes(), None).await {
                                Err(zk::Error::NoNode) => zk.client().create(&p, b"new", &options).await.map(|_| ()),
                                other => other.map(|_| ()),
                            }
                        }
                        _ => zk.client().delete(&format!("{root}/w{}", (n + 25) % 50), None).await,
                    }
                });
                // Errors while a server is down are expected; the client retries the next one.
                let _ = result;
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn ping_ms(redis: &Redis) -> Duration {
    let started = Instant::now();
    redis.cmd(&["PING"]);
    started.elapsed()
}

#[test]
fn killing_the_connected_ensemble_member_while_writes_continue() {
    let ensemble = shared_ensemble();
    let root = unique_root("member-kill");
    let zk = ZkClient::connect(&ensemble.connect_string());
    zk.create_all(&root, b"root");
    let redis = Redis::start(&ensemble.connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);

    // The member that holds our session lists it in `cons`.
    let session = redis.status()["session_id"].clone();
    let victim = (0..3)
        .find(|i| four_letter(&ensemble.member_addr(*i), "cons").is_some_and(|c| c.contains(&format!("sid={session}"))))
        .expect("the member serving the module");
    let others: Vec<String> = (0..3)
        .filter(|i| *i != victim)
        .map(|i| ensemble.member_addr(i))
        .collect();
    let writer = Writer::start(others.join(","), root.clone());
    std::thread::sleep(Duration::from_millis(300));
    ensemble.kill(victim);
    std::thread::sleep(Duration::from_millis(1500));
    let writes = writer.stop();
    println!("killed member {victim}, the one serving the module; {writes} writes meanwhile");
    let zk = ZkClient::connect(&others.join(","));
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(redis.status()["state"], "connected");
    ensemble.start_member(victim);
}

#[test]
fn session_expiry_converges_with_changes_and_deletions_made_meanwhile() {
    let zk_server = shared_zk();
    let root = unique_root("expiry");
    let zk = ZkClient::connect(&zk_server.connect_string());
    for i in 0..10 {
        zk.create_all(&format!("{root}/keep/k{i}"), b"old");
        zk.create_all(&format!("{root}/gone/g{i}"), b"old");
    }
    let proxy = Proxy::start(&zk_server.connect_string());
    let redis = Redis::start(&proxy.addr(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let session = redis.status()["session_id"].clone();
    let resyncs: u64 = redis.status()["resyncs"].parse().unwrap();

    proxy.blackhole();
    let started = Instant::now();
    zk.delete_all(&format!("{root}/gone"));
    for i in 0..10 {
        zk.set(&format!("{root}/keep/k{i}"), b"new");
        zk.create_all(&format!("{root}/added/a{i}"), b"added");
    }
    let mut slowest = Duration::ZERO;
    // Past the negotiated timeout (2 s): the server expires the session.
    while started.elapsed() < Duration::from_secs(4) {
        slowest = slowest.max(ping_ms(&redis));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        slowest < Duration::from_millis(50),
        "PING took {slowest:?} while ZooKeeper was silent"
    );
    assert_ne!(redis.status()["state"], "connected");
    proxy.restore();
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let status = redis.status();
    assert_ne!(status["session_id"], session, "a new session after expiry");
    assert!(status["resyncs"].parse::<u64>().unwrap() > resyncs);
    assert!(redis.log().contains("expired"));
    // And it keeps following.
    zk.set(&format!("{root}/keep/k0"), b"after");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn a_plain_disconnect_keeps_the_session_and_resyncs() {
    let zk_server = shared_zk();
    let root = unique_root("disconnect");
    let zk = ZkClient::connect(&zk_server.connect_string());
    zk.create_all(&format!("{root}/a"), b"1");
    zk.create_all(&format!("{root}/b"), b"1");
    let proxy = Proxy::start(&zk_server.connect_string());
    let redis = Redis::start(&proxy.addr(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let session = redis.status()["session_id"].clone();
    let resyncs: u64 = redis.status()["resyncs"].parse().unwrap();

    // Silence shorter than the session timeout, with changes meanwhile that
    // the persistent watch will not replay.
    proxy.blackhole();
    zk.set(&format!("{root}/a"), b"2");
    zk.delete_all(&format!("{root}/b"));
    zk.create_all(&format!("{root}/c"), b"3");
    std::thread::sleep(Duration::from_millis(700));
    proxy.restore();
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    wait_until(SETTLE, "a resync after the reconnect", || {
        redis.status()["resyncs"].parse::<u64>().unwrap() > resyncs
    });
    assert_eq!(redis.status()["session_id"], session, "the same session");
    // Live events flow again after the reconnect (the watch is restored).
    zk.set(&format!("{root}/a"), b"live after the reconnect");
    wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_secs(2));

    proxy.cut();
    zk.set(&format!("{root}/a"), b"4");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn redis_restart_from_rdb_converges_to_what_changed_meanwhile() {
    let root = unique_root("restart");
    let zk = ZkClient::connect(&shared_zk().connect_string());
    for i in 0..10 {
        zk.create_all(&format!("{root}/n{i}"), b"before");
    }
    zk.create_all(&format!("{root}/sub/x"), b"before");
    let redis = Redis::start(&shared_zk().connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    redis.cmd(&["SET", &format!("zk:{root}/forged"), "hand-written"]);
    redis.shutdown_save();

    zk.set(&format!("{root}/n0"), b"after");
    zk.delete_all(&format!("{root}/n1"));
    zk.delete_all(&format!("{root}/sub"));
    zk.create_all(&format!("{root}/new/y"), b"after");

    redis.restart();
    assert!(redis.log().contains("DB loaded from disk"), "the restart loads the RDB");
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn a_standalone_zookeeper_killed_and_restarted() {
    let server = Zk::start();
    let root = unique_root("zk-restart");
    let zk = ZkClient::connect(&server.connect_string());
    zk.create_all(&format!("{root}/a"), b"1");
    let redis = Redis::start(&server.connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    drop(zk);

    server.kill();
    wait_until(SETTLE, "the module notices", || redis.status()["state"] != "connected");
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        slowest = slowest.max(ping_ms(&redis));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        slowest < Duration::from_millis(50),
        "PING took {slowest:?} while ZooKeeper was down"
    );
    assert!(redis
        .try_cmd(&["ZKSYNC.PUSH", &format!("{root}/a"), "x"])
        .unwrap_err()
        .code()
        .is_some_and(|c| c == "ZKDOWN"));

    server.restart();
    let zk = ZkClient::connect(&server.connect_string());
    zk.set(&format!("{root}/a"), b"2");
    zk.create_all(&format!("{root}/b"), b"3");
    redis.wait_state("connected", Duration::from_secs(20));
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn a_mirrored_key_clobbered_with_another_type_is_repaired() {
    let root = unique_root("clobber");
    let zk = ZkClient::connect(&shared_zk().connect_string());
    zk.create_all(&format!("{root}/k"), b"1");
    zk.create_all(&format!("{root}/other"), b"1");
    let redis = Redis::start(&shared_zk().connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let key = format!("zk:{root}/k");
    redis.cmd(&["DEL", &key]);
    redis.cmd(&["LPUSH", &key, "a list now"]);
    zk.set(&format!("{root}/k"), b"2");
    zk.set(&format!("{root}/other"), b"2");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(text(&redis.cmd(&["TYPE", &key])), "string");
}

#[test]
fn redis_stays_responsive_during_a_large_initial_sync() {
    let root = unique_root("large");
    let zk = ZkClient::connect(&shared_zk().connect_string());
    zk.create_all(&root, b"");
    let count = 20_000;
    zk.block_on(async {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        for dir in 0..100 {
            zk.client()
                .create(&format!("{root}/d{dir}"), b"", &options)
                .await
                .unwrap();
        }
        let paths: Vec<String> = (0..count).map(|i| format!("{root}/d{}/n{i}", i % 100)).collect();
        let mut pending = Vec::new();
        for path in &paths {
            pending.push(zk.client().create(path, &[b'x'; 100], &options));
            if pending.len() == 1000 {
                for p in pending.drain(..) {
                    p.await.unwrap();
                }
            }
        }
        for p in pending {
            p.await.unwrap();
        }
    });
    let redis = Redis::start(&shared_zk().connect_string(), &[]);
    redis.wait_state("connected", SETTLE);
    let started = Instant::now();
    redis.cmd(&["CONFIG", "SET", "zksync.mirrors", &root]);
    let mut slowest = Duration::ZERO;
    let want = count + 101;
    while redis.status()["znodes"].parse::<usize>().unwrap() < want {
        slowest = slowest.max(ping_ms(&redis));
        assert!(started.elapsed() < Duration::from_secs(30), "sync too slow");
    }
    println!(
        "{want} znodes mirrored in {:?}; slowest PING meanwhile {slowest:?}",
        started.elapsed()
    );
    assert!(
        slowest < Duration::from_millis(50),
        "PING took {slowest:?} during the sync"
    );
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    zk.delete_all(&root);
}
