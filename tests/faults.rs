//! The mirror under faults: an ensemble member killed under writes, a session
//! expired behind a silent network, plain disconnects, redis-server restarted
//! from its RDB, a standalone ZooKeeper restarted, a ZooKeeper with another
//! history, keys clobbered by users, a large initial sync. Every test asserts
//! on data: the mirror ends equal to ZooKeeper, with nothing lost and nothing
//! stale, and the STATUS figures say what happened.
//!
//! The tests run one at a time (`serial()`): they measure Redis's latency and
//! kill servers, and the machine has two cores.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use testkit::proxy::Proxy;
use testkit::*;
use zookeeper_client as zkc;

/// Time for the mirror to converge once the fault is over.
const SETTLE: Duration = Duration::from_secs(10);
/// Redis must answer PING within this while ZooKeeper misbehaves.
const PROMPT: Duration = Duration::from_millis(50);

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// Redis helpers

fn query(conn: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(conn)
}

/// A command whose error reply the test wants to see.
fn try_cmd(redis: &Redis, args: &[&str]) -> redis::RedisResult<redis::Value> {
    query(&mut redis.conn(), args)
}

fn status_of(conn: &mut redis::Connection) -> redis::RedisResult<HashMap<String, String>> {
    Ok(match query(conn, &["ZKSYNC.STATUS"])? {
        redis::Value::Array(items) => items.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect(),
        redis::Value::Map(items) => items.iter().map(|(k, v)| (text(k), text(v))).collect(),
        other => panic!("unexpected ZKSYNC.STATUS reply {other:?}"),
    })
}

fn figure(status: &HashMap<String, String>, name: &str) -> u64 {
    status[name]
        .parse()
        .unwrap_or_else(|_| panic!("STATUS {name} = {:?} is not a number", status[name]))
}

fn key_type(redis: &Redis, key: &str) -> String {
    text(&redis.cmd(&["TYPE", key]))
}

fn exists(redis: &Redis, key: &str) -> bool {
    text(&redis.cmd(&["EXISTS", key])) == "1"
}

/// Polls PING (timed) and ZKSYNC.STATUS on a connection of its own while a
/// fault runs; records the slowest PING and every change of `state`.
struct Observer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Observed>>,
}

#[derive(Debug)]
struct Observed {
    /// `state` as it changed, first sample first.
    states: Vec<String>,
    slowest_ping: Duration,
    pings: usize,
}

impl Observer {
    fn start(redis: &Redis) -> Observer {
        let mut conn = redis.conn();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut observed = Observed {
                states: Vec::new(),
                slowest_ping: Duration::ZERO,
                pings: 0,
            };
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                let pong = query(&mut conn, &["PING"]).expect("PING");
                observed.slowest_ping = observed.slowest_ping.max(started.elapsed());
                observed.pings += 1;
                assert_eq!(text(&pong), "PONG");
                let state = status_of(&mut conn).expect("ZKSYNC.STATUS")["state"].clone();
                if observed.states.last() != Some(&state) {
                    observed.states.push(state);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            observed
        });
        Observer {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Observed {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the observer")
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------
// ZooKeeper helpers

/// An async ZooKeeper client for what the harness's `ZkClient` does not do:
/// pipelined creates, and writes that may fail while servers die.
struct Raw {
    runtime: tokio::runtime::Runtime,
    client: zkc::Client,
}

impl Raw {
    fn connect(connect: &str) -> Raw {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let client = runtime
            .block_on(
                zkc::Client::connector()
                    .with_session_timeout(Duration::from_secs(6))
                    .connect(connect),
            )
            .unwrap_or_else(|e| panic!("connect to ZooKeeper {connect}: {e}"));
        Raw { runtime, client }
    }

    fn run<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// Sets `path`, creating it (its parent must exist) when absent.
    fn upsert(&self, path: &str, data: &[u8]) -> Result<(), zkc::Error> {
        self.run(async {
            match self.client.set_data(path, data, None).await {
                Err(zkc::Error::NoNode) => self.client.create(path, data, &persistent()).await.map(|_| ()),
                other => other.map(|_| ()),
            }
        })
    }

    /// Deletes `path` and its children (one level); absent is fine.
    fn delete_tree(&self, path: &str) -> Result<(), zkc::Error> {
        self.run(async {
            let children = match self.client.list_children(path).await {
                Err(zkc::Error::NoNode) => return Ok(()),
                other => other?,
            };
            for child in children {
                match self.client.delete(&format!("{path}/{child}"), None).await {
                    Ok(()) | Err(zkc::Error::NoNode) => {}
                    Err(e) => return Err(e),
                }
            }
            match self.client.delete(path, None).await {
                Ok(()) | Err(zkc::Error::NoNode) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }

    /// Creates every path (parents first in the list), 1000 requests in flight.
    fn create_many(&self, paths: &[String], data: &[u8]) {
        let options = persistent();
        self.run(async {
            for window in paths.chunks(1000) {
                // A request is sent when its future is created.
                let pending: Vec<_> = window.iter().map(|p| self.client.create(p, data, &options)).collect();
                for (p, result) in window.iter().zip(pending) {
                    result.await.unwrap_or_else(|e| panic!("create {p}: {e}"));
                }
            }
        })
    }
}

fn persistent() -> zkc::CreateOptions<'static> {
    zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all())
}

/// The member STATUS `server` names.
fn serving_member(ensemble: &Ensemble, status: &HashMap<String, String>) -> Option<usize> {
    (0..3).find(|i| status["server"] == ensemble.member_addr(*i))
}

/// The member whose `cons` lists the session: the ensemble's own word.
fn member_holding(ensemble: &Ensemble, status: &HashMap<String, String>) -> Option<usize> {
    let sid = format!("sid={}", status["session_id"]);
    (0..3).find(|i| four_letter(&ensemble.member_addr(*i), "cons").is_some_and(|c| c.contains(&sid)))
}

/// Creates, sets and deletes znodes under `root` on a thread of its own until
/// stopped, so that every kind of change is in flight during a fault.
/// Failures (a member dying, a new leader being elected) are counted, not fatal.
struct Writer {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    thread: Option<JoinHandle<(usize, usize)>>,
}

impl Writer {
    fn start(connect: String, root: String) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let (stopping, counting) = (stop.clone(), done.clone());
        let thread = std::thread::spawn(move || {
            let zk = Raw::connect(&connect);
            let (mut ok, mut failed) = (0, 0);
            let mut n = 0usize;
            while !stopping.load(Ordering::Relaxed) {
                let result = match n % 8 {
                    0..=3 => zk.upsert(&format!("{root}/w{}", n % 40), format!("v{n}").as_bytes()),
                    4 | 5 => zk.delete_tree(&format!("{root}/w{}", (n + 20) % 40)),
                    6 => zk
                        .upsert(&format!("{root}/s{}", n % 5), b"dir")
                        .and_then(|()| zk.upsert(&format!("{root}/s{}/leaf{n}", n % 5), b"leaf")),
                    _ => zk.delete_tree(&format!("{root}/s{}", (n + 2) % 5)),
                };
                match result {
                    Ok(()) => {
                        ok += 1;
                        counting.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => failed += 1,
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            (ok, failed)
        });
        Writer {
            stop,
            done,
            thread: Some(thread),
        }
    }

    fn succeeded(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Stops it; returns (writes that succeeded, writes that failed).
    fn stop(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().expect("the writer")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Restarts an ensemble member when dropped, so the shared ensemble is whole
/// again even if the test fails.
struct Revive<'a> {
    ensemble: &'a Ensemble,
    member: usize,
}

impl Drop for Revive<'_> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.ensemble.start_member(self.member);
        } else {
            // No second panic while unwinding: start it, do not wait for it.
            let ensemble = self.ensemble;
            let member = self.member;
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ensemble.start_member(member)));
        }
    }
}

// ---------------------------------------------------------------------------
// 1. An ensemble member dies under writes.

#[test]
fn killing_the_ensemble_member_serving_the_module_while_writes_continue() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let root = unique_root("member-kill");
    let zk = ZkClient::connect(&ensemble.connect_string());
    for i in 0..40 {
        zk.create_all(&format!("{root}/w{i}"), b"initial");
    }
    let redis = Redis::start(&ensemble.connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    drop(zk);

    let before = redis.status();
    let victim = serving_member(ensemble, &before).expect("STATUS names the member serving the module");
    assert_eq!(member_holding(ensemble, &before), Some(victim), "STATUS {before:?}");
    let others: Vec<String> = (0..3)
        .filter(|i| *i != victim)
        .map(|i| ensemble.member_addr(i))
        .collect();
    let writer = Writer::start(others.join(","), root.clone());
    wait_until(SETTLE, "writes in flight", || writer.succeeded() >= 50);
    let observer = Observer::start(&redis);

    let revive = Revive {
        ensemble,
        member: victim,
    };
    ensemble.kill(victim);
    let killed = Instant::now();
    // The module moves its session to a surviving member while writes go on.
    wait_until(SETTLE, "the module served by a surviving member", || {
        let status = redis.status();
        status["state"] == "connected" && serving_member(ensemble, &status).is_some_and(|m| m != victim)
    });
    let moved = killed.elapsed();
    let written_at_move = writer.succeeded();
    wait_until(SETTLE, "more writes after the move", || {
        writer.succeeded() >= written_at_move + 100
    });
    let (ok, failed) = writer.stop();
    let observed = observer.stop();

    let zk = ZkClient::connect(&others.join(","));
    let settle = Instant::now();
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    println!(
        "member {victim} killed: module on another member after {moved:?}, mirror equal {:?} after the writes \
         stopped; {ok} writes ok, {failed} failed; states {:?}; slowest PING {:?}",
        settle.elapsed(),
        observed.states,
        observed.slowest_ping
    );
    let after = redis.status();
    assert_eq!(after["state"], "connected");
    assert_eq!(
        member_holding(ensemble, &after),
        serving_member(ensemble, &after),
        "STATUS {after:?}"
    );
    assert_eq!(
        after["session_id"], before["session_id"],
        "the session moves, it does not expire"
    );
    assert!(
        figure(&after, "resyncs") > figure(&before, "resyncs"),
        "a resync after the reconnect: {before:?} → {after:?}"
    );
    assert!(observed.slowest_ping < PROMPT, "PING took {:?}", observed.slowest_ping);
    // And it keeps following after the move.
    zk.create_all(&format!("{root}/after-the-move"), b"live");
    wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_secs(2));
    let restarted = Instant::now();
    drop(revive);
    println!("member {victim} back in {:?}", restarted.elapsed());
}

// ---------------------------------------------------------------------------
// 2. The session expires behind a silent network.

#[test]
fn session_expiry_behind_a_silent_network_converges_with_what_changed_meanwhile() {
    let _serial = serial();
    let server = shared_zk();
    let root = unique_root("expiry");
    let zk = ZkClient::connect(&server.connect_string());
    for i in 0..10 {
        zk.create_all(&format!("{root}/keep/k{i}"), b"old");
        zk.create_all(&format!("{root}/same/s{i}"), b"unchanged");
        zk.create_all(&format!("{root}/gone/g{i}"), b"old");
        zk.create_all(&format!("{root}/gone/deep/d{i}"), b"old");
    }
    let proxy = Proxy::start(&server.connect_string());
    let redis = Redis::start(&proxy.addr(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let before = redis.status();
    assert!(
        figure(&before, "session_timeout") <= 2000,
        "negotiated {}",
        before["session_timeout"]
    );

    let observer = Observer::start(&redis);
    proxy.blackhole();
    let silent = Instant::now();
    zk.delete_all(&format!("{root}/gone"));
    for i in 0..10 {
        zk.set(&format!("{root}/keep/k{i}"), b"new");
        zk.create_all(&format!("{root}/added/a{i}"), b"added");
    }
    zk.create_all(&format!("{root}/added/deep/x"), b"added deep");
    // The module notices the silence; commands needing ZooKeeper fail fast.
    wait_until(SETTLE, "the module to notice the silence", || {
        redis.status()["state"] != "connected"
    });
    let noticed = silent.elapsed();
    let started = Instant::now();
    let push = try_cmd(&redis, &["ZKSYNC.PUSH", &format!("{root}/keep/k0"), "x"]);
    let push_took = started.elapsed();
    assert_eq!(push.as_ref().err().and_then(|e| e.code()), Some("ZKDOWN"), "{push:?}");
    assert!(push_took < PROMPT, "ZKSYNC.PUSH took {push_took:?} to say ZKDOWN");
    // Twice the negotiated timeout: the server expires the session.
    while silent.elapsed() < Duration::from_secs(4) {
        std::thread::sleep(Duration::from_millis(50));
    }
    proxy.restore();
    let restored = Instant::now();
    wait_until(SETTLE, "a new session", || {
        let status = redis.status();
        status["state"] == "connected" && status["session_id"] != before["session_id"]
    });
    let reconnected = restored.elapsed();
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let converged = restored.elapsed();
    let observed = observer.stop();
    println!(
        "silence noticed after {noticed:?}; after restore: new session in {reconnected:?}, mirror equal in \
         {converged:?}; states {:?}; slowest PING {:?} over {} pings",
        observed.states, observed.slowest_ping, observed.pings
    );

    let after = redis.status();
    assert!(figure(&after, "resyncs") > figure(&before, "resyncs"));
    // expired → connected: the log says the session expired, then opens the new one.
    let log = redis.log();
    let expired_at = log
        .find("ZooKeeper session expired")
        .expect("the log says the session expired");
    assert!(
        log[expired_at..].contains(&format!("(session {}", after["session_id"])),
        "the new session is opened after the expiry"
    );
    assert!(
        observed.states.iter().any(|s| s == "suspended"),
        "states {:?}",
        observed.states
    );
    assert!(
        observed.slowest_ping < PROMPT,
        "PING took {:?} while ZooKeeper was silent",
        observed.slowest_ping
    );
    assert!(!exists(&redis, &format!("zk:{root}/gone")));
    assert!(!exists(&redis, &format!("zk:{root}/gone/deep/d3")));
    assert_eq!(text(&redis.cmd(&["GET", &format!("zk:{root}/keep/k7")])), "new");
    assert_eq!(
        text(&redis.cmd(&["GET", &format!("zk:{root}/added/deep/x")])),
        "added deep"
    );
    // The new session follows live changes.
    zk.set(&format!("{root}/same/s0"), b"after");
    wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_secs(2));
}

// ---------------------------------------------------------------------------
// 3. A disconnect without expiry: same session, and still a resync.

#[test]
fn a_disconnect_without_expiry_keeps_the_session_and_resyncs() {
    let _serial = serial();
    let server = shared_zk();
    let root = unique_root("disconnect");
    let zk = ZkClient::connect(&server.connect_string());
    for name in ["a", "b/b1", "b/b2", "c"] {
        zk.create_all(&format!("{root}/{name}"), b"1");
    }
    let proxy = Proxy::start(&server.connect_string());
    let redis = Redis::start(&proxy.addr(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let before = redis.status();
    let accepted = proxy.accepted();

    // Silence, changes that the persistent watch will never replay, then the
    // connection closed while reconnects still meet silence: `suspended`.
    let observer = Observer::start(&redis);
    proxy.blackhole();
    let silent = Instant::now();
    zk.set(&format!("{root}/a"), b"2");
    zk.delete_all(&format!("{root}/b"));
    zk.create_all(&format!("{root}/d/d1"), b"3");
    proxy.cut();
    wait_until(Duration::from_secs(1), "state suspended", || {
        redis.status()["state"] == "suspended"
    });
    proxy.restore();
    let silence = silent.elapsed();
    assert!(
        silence < Duration::from_millis(1200),
        "the silence ({silence:?}) must stay well below the 2 s session timeout"
    );
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let observed = observer.stop();
    let after = redis.status();
    println!(
        "silent for {silence:?}; states {:?}; slowest PING {:?}; resyncs {} → {}",
        observed.states, observed.slowest_ping, before["resyncs"], after["resyncs"]
    );
    assert_eq!(after["session_id"], before["session_id"], "the same session");
    assert!(proxy.accepted() > accepted, "the module reconnected");
    assert!(
        figure(&after, "resyncs") > figure(&before, "resyncs"),
        "a resync after the reconnect"
    );
    assert!(observed.states.iter().any(|s| s == "suspended"));
    assert_eq!(observed.states.last().map(String::as_str), Some("connected"));
    assert!(observed.slowest_ping < PROMPT, "PING took {:?}", observed.slowest_ping);

    // Live events flow after the reconnect (the watch was added again).
    zk.set(&format!("{root}/a"), b"live after the reconnect");
    zk.create_all(&format!("{root}/e"), b"live");
    wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_secs(2));

    // A plain cut with changes right behind it.
    let resyncs = figure(&after, "resyncs");
    proxy.cut();
    zk.set(&format!("{root}/a"), b"after the cut");
    zk.delete_all(&format!("{root}/d"));
    wait_until(SETTLE, "a resync after the cut", || {
        figure(&redis.status(), "resyncs") > resyncs
    });
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(
        redis.status()["session_id"],
        before["session_id"],
        "still the same session"
    );
}

// ---------------------------------------------------------------------------
// 4. redis-server restarts from its RDB while ZooKeeper moves on.

#[test]
fn redis_restart_from_rdb_converges_and_drops_stale_keys() {
    let _serial = serial();
    let root = unique_root("restart");
    let zk = ZkClient::connect(&shared_zk().connect_string());
    for i in 0..10 {
        zk.create_all(&format!("{root}/n{i}"), b"before");
    }
    zk.create_all(&format!("{root}/sub/x"), b"before");
    zk.create_all(&format!("{root}/sub/y/z"), b"before");
    let redis = Redis::start(&shared_zk().connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    // Hand-written keys in the mirror's namespace, saved in the RDB with it,
    // and one next to it (same text prefix, not below the root).
    let stale = [
        format!("zk:{root}/forged"),
        format!("zk:{root}/sub/forged/deep"),
        format!("zk:{root}/n3/forged"),
    ];
    for key in &stale {
        redis.cmd(&["SET", key, "hand-written"]);
    }
    let stale_list = format!("zk:{root}/forged-list");
    redis.cmd(&["RPUSH", &stale_list, "hand-written"]);
    let neighbour = format!("zk:{root}-neighbour");
    redis.cmd(&["SET", &neighbour, "not ours"]);
    let keys_saved = text(&redis.cmd(&["DBSIZE"]));
    redis.shutdown_save();

    zk.set(&format!("{root}/n0"), b"after");
    zk.delete_all(&format!("{root}/n1"));
    zk.delete_all(&format!("{root}/sub"));
    zk.create_all(&format!("{root}/new/y"), b"after");

    let restarted = Instant::now();
    redis.restart();
    assert!(redis.log().contains("DB loaded from disk"), "the restart loads the RDB");
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    println!(
        "{keys_saved} keys in the RDB; mirror equal {:?} after the restart",
        restarted.elapsed()
    );
    for key in stale.iter().chain([&stale_list]) {
        assert!(!exists(&redis, key), "{key} survived the resync");
    }
    assert_eq!(
        text(&redis.cmd(&["GET", &neighbour])),
        "not ours",
        "a key outside the root is not the mirror's"
    );
    assert_eq!(text(&redis.cmd(&["GET", &format!("zk:{root}/n0")])), "after");
    assert!(figure(&redis.status(), "resyncs") >= 1);

    // A crash: the RDB is older than the mirror was (SAVE, live changes, SIGKILL).
    redis.cmd(&["SAVE"]);
    zk.set(&format!("{root}/n2"), b"after the save");
    zk.delete_all(&format!("{root}/new"));
    zk.create_all(&format!("{root}/newer"), b"after the save");
    wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_secs(2));
    redis.kill();
    zk.set(&format!("{root}/n3"), b"while down");
    let restarted = Instant::now();
    redis.restart();
    assert_eq!(
        redis.log().matches("DB loaded from disk").count(),
        2,
        "the second restart loads the RDB too"
    );
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    println!(
        "after a crash: mirror equal {:?} after the restart",
        restarted.elapsed()
    );
}

// ---------------------------------------------------------------------------
// 5. A standalone ZooKeeper dies and comes back with its data.

#[test]
fn a_standalone_zookeeper_killed_and_restarted() {
    let _serial = serial();
    let server = Zk::start();
    let root = unique_root("zk-restart");
    let zk = ZkClient::connect(&server.connect_string());
    zk.create_all(&format!("{root}/a"), b"1");
    zk.create_all(&format!("{root}/gone/g"), b"1");
    let redis = Redis::start(&server.connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let before = redis.status();
    drop(zk);

    let observer = Observer::start(&redis);
    server.kill();
    let killed = Instant::now();
    wait_until(SETTLE, "the module to notice", || {
        redis.status()["state"] != "connected"
    });
    let noticed = killed.elapsed();
    let started = Instant::now();
    let push = try_cmd(&redis, &["ZKSYNC.PUSH", &format!("{root}/a"), "x"]);
    let push_took = started.elapsed();
    assert_eq!(push.as_ref().err().and_then(|e| e.code()), Some("ZKDOWN"), "{push:?}");
    assert!(push_took < PROMPT, "ZKSYNC.PUSH took {push_took:?} to say ZKDOWN");
    // The keys stay readable while ZooKeeper is away.
    assert_eq!(text(&redis.cmd(&["GET", &format!("zk:{root}/a")])), "1");
    std::thread::sleep(Duration::from_millis(500));

    server.restart();
    let zk = ZkClient::connect(&server.connect_string());
    zk.set(&format!("{root}/a"), b"2");
    zk.create_all(&format!("{root}/b/c"), b"3");
    zk.delete_all(&format!("{root}/gone"));
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let observed = observer.stop();
    let after = redis.status();
    println!(
        "noticed after {noticed:?}; back and equal {:?} after the kill; session {} → {}; states {:?}; \
         slowest PING {:?}",
        killed.elapsed(),
        before["session_id"],
        after["session_id"],
        observed.states,
        observed.slowest_ping
    );
    assert!(figure(&after, "resyncs") > figure(&before, "resyncs"));
    assert!(
        observed.slowest_ping < PROMPT,
        "PING took {:?} while ZooKeeper was down",
        observed.slowest_ping
    );
    assert!(observed.states.iter().any(|s| s != "connected"));
    zk.set(&format!("{root}/a"), b"live");
    wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_secs(2));
}

// ---------------------------------------------------------------------------
// 6. Another history: a brand-new ZooKeeper must not wipe the mirror.

#[test]
fn an_empty_zookeeper_with_another_history_diverges_instead_of_wiping() {
    let _serial = serial();
    let a = shared_zk();
    let root = unique_root("diverge");
    let zk_a = ZkClient::connect(&a.connect_string());
    for i in 0..10 {
        zk_a.create_all(&format!("{root}/n{i}"), format!("from A {i}").as_bytes());
    }
    zk_a.create_all(&format!("{root}/sub/x"), b"from A");
    let redis = Redis::start(&a.connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk_a, &root, "zk:", SETTLE);
    let mirrored = mirror_keys(&redis, "zk:", &root);
    assert_eq!(mirrored.len(), 13);

    let b = Zk::start();
    redis.cmd(&["CONFIG", "SET", "zksync.servers", &b.connect_string()]);
    redis.wait_state("diverged", SETTLE);
    assert_eq!(redis.status()["server"], b.connect_string());
    assert!(
        redis.log().contains("stopped applying"),
        "the log says why the mirror stopped"
    );
    assert_eq!(mirror_keys(&redis, "zk:", &root), mirrored, "no mirrored key deleted");

    // B gets the root with other data: still nothing applied until the operator pulls.
    let zk_b = ZkClient::connect(&b.connect_string());
    zk_b.create_all(&format!("{root}/n0"), b"from B");
    zk_b.create_all(&format!("{root}/only-b/y"), b"from B");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(redis.status()["state"], "diverged");
    assert_eq!(
        mirror_keys(&redis, "zk:", &root),
        mirrored,
        "a diverged mirror applies nothing"
    );

    let written = redis.cmd(&["ZKSYNC.PULL", &root]);
    assert_eq!(
        text(&written),
        zk_b.tree(&root).len().to_string(),
        "PULL counts the znodes"
    );
    wait_mirror_equals(&redis, &zk_b, &root, "zk:", Duration::from_secs(2));
    assert_eq!(redis.status()["state"], "connected");
    assert!(redis.log().contains("resumes after ZKSYNC.PULL"));
    // Live again, following B.
    zk_b.set(&format!("{root}/n0"), b"from B, later");
    zk_b.create_all(&format!("{root}/n1"), b"new on B");
    wait_mirror_equals(&redis, &zk_b, &root, "zk:", Duration::from_secs(2));
    assert_eq!(redis.status()["state"], "connected");
}

// ---------------------------------------------------------------------------
// 7. A user overwrites mirrored keys with other types.

#[test]
fn a_mirrored_key_clobbered_with_another_type_is_repaired_by_the_next_change() {
    let _serial = serial();
    let root = unique_root("clobber");
    let zk = ZkClient::connect(&shared_zk().connect_string());
    for name in ["list", "hash", "doomed", "other"] {
        zk.create_all(&format!("{root}/{name}"), b"1");
    }
    let redis = Redis::start(&shared_zk().connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let key = |name: &str| format!("zk:{root}/{name}");
    for name in ["list", "doomed"] {
        redis.cmd(&["DEL", &key(name)]);
        redis.cmd(&["RPUSH", &key(name), "a list now"]);
    }
    redis.cmd(&["DEL", &key("hash")]);
    redis.cmd(&["HSET", &key("hash"), "field", "a hash now"]);

    zk.set(&format!("{root}/list"), b"2");
    zk.set(&format!("{root}/hash"), b"2");
    zk.delete_all(&format!("{root}/doomed"));
    zk.set(&format!("{root}/other"), b"2");
    zk.create_all(&format!("{root}/new"), b"2");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    // `wait_mirror_equals` reads strings only: check the types too.
    assert_eq!(key_type(&redis, &key("list")), "string");
    assert_eq!(key_type(&redis, &key("hash")), "string");
    assert!(!exists(&redis, &key("doomed")));
    assert_eq!(text(&redis.cmd(&["PING"])), "PONG");
}

#[test]
fn a_clobbered_key_is_repaired_by_the_next_resync() {
    let _serial = serial();
    let root = unique_root("clobber-resync");
    let zk = ZkClient::connect(&shared_zk().connect_string());
    for name in ["list", "value", "deleted", "other"] {
        zk.create_all(&format!("{root}/{name}"), b"1");
    }
    let proxy = Proxy::start(&shared_zk().connect_string());
    let redis = Redis::start(&proxy.addr(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let key = |name: &str| format!("zk:{root}/{name}");
    redis.cmd(&["DEL", &key("list")]);
    redis.cmd(&["RPUSH", &key("list"), "a list now"]);
    redis.cmd(&["SET", &key("value"), "hand-written"]);
    redis.cmd(&["DEL", &key("deleted")]);

    // A reconnect resyncs; the clobbered znodes themselves do not change.
    let resyncs = figure(&redis.status(), "resyncs");
    proxy.cut();
    zk.set(&format!("{root}/other"), b"2");
    wait_until(SETTLE, "a resync after the cut", || {
        figure(&redis.status(), "resyncs") > resyncs
    });
    redis.wait_state("connected", SETTLE);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_secs(3));
    }));
    println!(
        "after the resync: {} is a {}, {} = {:?}, {} exists: {}",
        key("list"),
        key_type(&redis, &key("list")),
        key("value"),
        text(&redis.cmd(&["GET", &key("value")])),
        key("deleted"),
        exists(&redis, &key("deleted"))
    );
    assert_eq!(text(&redis.cmd(&["PING"])), "PONG");
    assert!(result.is_ok(), "the resync left clobbered keys wrong");
    assert_eq!(key_type(&redis, &key("list")), "string");
}

// ---------------------------------------------------------------------------
// 8. Redis stays responsive during a large initial sync.

#[test]
fn redis_stays_responsive_during_a_large_initial_sync() {
    let _serial = serial();
    let root = unique_root("large");
    let raw = Raw::connect(&shared_zk().connect_string());
    let zk = ZkClient::connect(&shared_zk().connect_string());
    zk.create_all(&root, b"");
    let (dirs, count) = (100, 20_000);
    let created = Instant::now();
    let mut paths: Vec<String> = (0..dirs).map(|d| format!("{root}/d{d}")).collect();
    paths.extend((0..count).map(|i| format!("{root}/d{}/n{i}", i % dirs)));
    raw.create_many(&paths[..dirs], b"");
    raw.create_many(&paths[dirs..], &[b'x'; 100]);
    println!("{count} znodes created in {:?}", created.elapsed());

    let redis = Redis::start(&shared_zk().connect_string(), &[]);
    redis.wait_state("connected", SETTLE);
    let mut conn = redis.conn();
    let want = (count + dirs + 1) as u64;
    let started = Instant::now();
    redis.cmd(&["CONFIG", "SET", "zksync.mirrors", &root]);
    let mut slowest = Duration::ZERO;
    let mut pings = 0;
    loop {
        let ping = Instant::now();
        query(&mut conn, &["PING"]).expect("PING");
        slowest = slowest.max(ping.elapsed());
        pings += 1;
        if figure(&status_of(&mut conn).expect("STATUS"), "znodes") >= want {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "sync too slow");
        std::thread::sleep(Duration::from_millis(1));
    }
    let synced = started.elapsed();
    let checked = Instant::now();
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let status = redis.status();
    println!(
        "{want} znodes mirrored in {synced:?} (last_resync_ms {}); slowest of {pings} PINGs meanwhile \
         {slowest:?}; equality checked in {:?}",
        status["last_resync_ms"],
        checked.elapsed()
    );
    assert!(slowest < PROMPT, "PING took {slowest:?} during the sync");
    assert!(synced < Duration::from_secs(10), "the sync took {synced:?}");
    assert_eq!(figure(&status, "znodes"), want);
}

// ---------------------------------------------------------------------------
// STATUS `server` names the ZooKeeper server the session is on.

#[test]
fn status_server_names_the_server_holding_the_session() {
    let _serial = serial();
    let zk = shared_zk().connect_string();
    // Nothing listens on the first address: the session can only be on the second.
    let servers = format!("127.0.0.1:{},{zk}", free_port());
    let redis = Redis::start(&servers, &[]);
    redis.wait_state("connected", SETTLE);
    let status = redis.status();
    assert_eq!(status["server"], zk, "STATUS {status:?}");
    // A host name is named as the connect string spells it.
    let by_name = format!("localhost:{}", shared_zk().port());
    let redis = Redis::start(&format!("127.0.0.1:{},{by_name}", free_port()), &[]);
    redis.wait_state("connected", SETTLE);
    let status = redis.status();
    assert_eq!(status["server"], by_name, "STATUS {status:?}");
}

// ---------------------------------------------------------------------------
// The proxy itself: silence is silence, restore and cut close.

/// An echo server whose accepted connections the test can close.
struct Echo {
    addr: String,
    accepted: Arc<Mutex<Vec<TcpStream>>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let keeping = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                keeping.lock().unwrap().push(stream.try_clone().unwrap());
                std::thread::spawn(move || {
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Echo { addr, accepted }
    }

    fn close_all(&self) {
        for stream in self.accepted.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn dial(addr: &str) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect through the proxy");
    stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    stream
}

/// What a read sees: data, the end of the connection, or silence.
fn read_outcome(stream: &mut TcpStream) -> String {
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => "closed".into(),
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => "silence".into(),
        Err(_) => "closed".into(),
    }
}

#[test]
fn the_proxy_blackholes_restores_and_cuts() {
    let echo = Echo::start();
    let proxy = Proxy::start(&echo.addr);
    let mut old = dial(&proxy.addr());
    old.write_all(b"one").unwrap();
    assert_eq!(read_outcome(&mut old), "one");

    proxy.blackhole();
    old.write_all(b"two").unwrap();
    assert_eq!(read_outcome(&mut old), "silence", "an old connection is silent");
    let mut new = dial(&proxy.addr());
    new.write_all(b"three").unwrap();
    assert_eq!(
        read_outcome(&mut new),
        "silence",
        "a new connection is accepted, silent"
    );
    // The upstream closing (a server expiring the session) is not passed on.
    echo.close_all();
    assert_eq!(read_outcome(&mut old), "silence", "an upstream close is not passed on");

    proxy.restore();
    assert_eq!(read_outcome(&mut old), "closed", "restore closes what was silenced");
    assert_eq!(read_outcome(&mut new), "closed", "restore closes what was silenced");
    let mut fresh = dial(&proxy.addr());
    fresh.write_all(b"four").unwrap();
    assert_eq!(read_outcome(&mut fresh), "four", "forwarding again");

    proxy.cut();
    assert_eq!(read_outcome(&mut fresh), "closed", "cut closes");
    let mut after = dial(&proxy.addr());
    after.write_all(b"five").unwrap();
    assert_eq!(read_outcome(&mut after), "five", "still accepting after a cut");
    assert!(proxy.accepted() >= 4);
    // An upstream close is passed on while forwarding.
    echo.close_all();
    assert_eq!(read_outcome(&mut after), "closed");
    let addr = proxy.addr();
    drop(proxy);
    assert!(TcpStream::connect(&addr).is_err(), "dropped: nothing listens");
}
