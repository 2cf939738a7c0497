//! Locks: ZKSYNC.LOCK, UNLOCK, CHECK and LOCKS against real servers.
//! Exclusion and increasing tokens among clients of two redis-servers and
//! a Curator `InterProcessMutex` on the same path, on a replica too;
//! release on UNLOCK, disconnect, LEASE and session expiry (a reconnect
//! within the session keeps it); timeouts and
//! disconnected waiters leave no contender znode behind; CHECK guards a
//! write in a script; bad input gets clear errors. ZooKeeper is read back
//! with a client of its own.

use redis::Value;
use std::time::{Duration, Instant};
use testkit::curator::*;
use testkit::proxy::Proxy;
use testkit::*;

const SETTLE: Duration = Duration::from_secs(10);

fn server(zk: &str) -> Redis {
    let redis = Redis::start(zk, &[("zksync.allow", "/t")]);
    redis.wait_state("connected", SETTLE);
    redis
}

fn query(conn: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(conn)
}

fn code(result: redis::RedisResult<Value>) -> String {
    match result {
        Err(e) => e.code().unwrap_or("?").to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn token(value: Value) -> i64 {
    match value {
        Value::Int(t) => t,
        other => panic!("expected a token, got {other:?}"),
    }
}

/// The contender znodes of a lock.
fn contenders(zk: &ZkClient, lock: &str) -> Vec<String> {
    zk.block_on(zk.client().list_children(lock)).unwrap_or_default()
}

fn figure(redis: &Redis, name: &str) -> i64 {
    redis.status()[name].parse().unwrap_or(-1)
}

#[test]
fn lock_check_unlock_and_a_guarded_write() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let redis = server(&shared_zk().connect_string());
    let lock = unique_root("lock-basic");
    let mut a = redis.conn();
    let t = token(query(&mut a, &["ZKSYNC.LOCK", &lock]).unwrap());
    assert!(t > 0);
    assert_eq!(contenders(&zk, &lock).len(), 1);
    let child = &contenders(&zk, &lock)[0];
    assert!(child.starts_with("_c_") && child.contains("-lock-"), "{child}");
    assert_eq!(
        zk.stat(&format!("{lock}/{child}")).unwrap().czxid,
        t,
        "the token is the czxid"
    );
    let ts = t.to_string();
    assert_eq!(query(&mut a, &["ZKSYNC.CHECK", &lock, &ts]).unwrap(), Value::Okay);
    assert_eq!(
        code(query(&mut a, &["ZKSYNC.LOCK", &lock])),
        "ERR",
        "held by this connection"
    );
    // A write guarded in a script happens only while the lock is held.
    let script = "redis.call('ZKSYNC.CHECK', ARGV[1], ARGV[2]) return redis.call('SET', KEYS[1], ARGV[3])";
    let eval = |conn: &mut redis::Connection, token: &str, value: &str| {
        query(conn, &["EVAL", script, "1", "guarded", &lock, token, value])
    };
    assert_eq!(eval(&mut a, &ts, "one").unwrap(), Value::Okay);
    assert_eq!(code(eval(&mut a, &(t + 1).to_string(), "stale")), "FENCED");
    let locks = redis.cmd(&["ZKSYNC.LOCKS"]);
    assert!(format!("{locks:?}").contains(&lock), "{locks:?}");
    assert_eq!(figure(&redis, "locks_held"), 1);
    // Released: CHECK refuses at once, the znode goes.
    assert_eq!(query(&mut a, &["ZKSYNC.UNLOCK", &lock, &ts]).unwrap(), Value::Int(1));
    assert_eq!(code(eval(&mut a, &ts, "two")), "FENCED");
    assert_eq!(query(&mut a, &["ZKSYNC.UNLOCK", &lock, &ts]).unwrap(), Value::Int(0));
    assert_eq!(redis.cmd(&["GET", "guarded"]), Value::BulkString(b"one".to_vec()));
    wait_until(SETTLE, "the contender znode to go", || {
        contenders(&zk, &lock).is_empty()
    });
    let again = token(query(&mut a, &["ZKSYNC.LOCK", &lock]).unwrap());
    assert!(again > t, "tokens increase: {again} after {t}");
}

#[test]
fn bad_input_gets_clear_errors() {
    let redis = server(&shared_zk().connect_string());
    let mut c = redis.conn();
    let lock = unique_root("lock-bad");
    let cases: &[(&[&str], &str)] = &[
        (&["ZKSYNC.LOCK", "relative"], "ERR"),
        (&["ZKSYNC.LOCK", "/elsewhere/x"], "NOPERM"),
        (&["ZKSYNC.LOCK", "/zksync/x"], "NOPERM"),
        (&["ZKSYNC.LOCK", &lock, "TIMEOUT", "-1"], "ERR"),
        (&["ZKSYNC.LOCK", &lock, "TIMEOUT", "x"], "ERR"),
        (&["ZKSYNC.LOCK", &lock, "LEASE", "0"], "ERR"),
        (&["ZKSYNC.LOCK", &lock, "LEASE"], "ERR"),
        (&["ZKSYNC.LOCK", &lock, "WAIT", "1"], "ERR"),
        (&["ZKSYNC.UNLOCK", &lock, "0"], "ERR"),
        (&["ZKSYNC.UNLOCK", &lock, "x"], "ERR"),
        (&["ZKSYNC.UNLOCK", &lock], "ERR"),
        (&["ZKSYNC.CHECK", &lock, "-3"], "ERR"),
        (&["ZKSYNC.CHECK", &lock, "12"], "FENCED"),
        (&["ZKSYNC.LOCKS", "x"], "ERR"),
    ];
    for (args, want) in cases {
        assert_eq!(code(query(&mut c, args)), *want, "{args:?}");
    }
    // Not inside MULTI, nor a script.
    query(&mut c, &["MULTI"]).unwrap();
    let queued = query(&mut c, &["ZKSYNC.LOCK", &lock]);
    let exec = query(&mut c, &["EXEC"]);
    assert!(
        queued.is_err() || format!("{exec:?}").contains("MULTI"),
        "{queued:?} {exec:?}"
    );
    let script = query(
        &mut c,
        &["EVAL", "return redis.call('ZKSYNC.LOCK', ARGV[1])", "0", &lock],
    );
    assert!(script.is_err(), "{script:?}");
    let zk = ZkClient::connect(&shared_zk().connect_string());
    assert!(contenders(&zk, &lock).is_empty(), "nothing was created");
    assert_eq!(redis.cmd(&["PING"]), Value::SimpleString("PONG".into()));
}

/// Takes and releases `lock` `rounds` times, holding each for 2 ms (and
/// checking it meanwhile); the holdings, on Curator's clock.
fn contend(redis: &Redis, lock: &str, rounds: usize) -> std::thread::JoinHandle<Vec<Holding>> {
    let mut conn = redis.conn();
    let lock = lock.to_string();
    std::thread::spawn(move || {
        let mut holdings = Vec::new();
        for _ in 0..rounds {
            let t = token(query(&mut conn, &["ZKSYNC.LOCK", &lock]).unwrap());
            let start_us = epoch_us();
            std::thread::sleep(Duration::from_millis(2));
            assert_eq!(
                query(&mut conn, &["ZKSYNC.CHECK", &lock, &t.to_string()]).unwrap(),
                Value::Okay
            );
            holdings.push(Holding {
                start_us,
                end_us: epoch_us(),
                token: t,
            });
            assert_eq!(
                query(&mut conn, &["ZKSYNC.UNLOCK", &lock, &t.to_string()]).unwrap(),
                Value::Int(1)
            );
        }
        holdings
    })
}

#[test]
fn clients_of_two_servers_and_curator_exclude_each_other_with_increasing_tokens() {
    check_overlaps();
    let connect = shared_zk().connect_string();
    let (one, two) = (server(&connect), server(&connect));
    let lock = unique_root("lock-contended");
    let mut curator = curator_contend(&connect, &lock, 15, Duration::from_millis(2));
    curator.wait_ready();
    let threads: Vec<_> = [&one, &one, &two, &two]
        .into_iter()
        .map(|redis| contend(redis, &lock, 15))
        .collect();
    let mut holdings: Vec<Holding> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    holdings.extend(curator.join());
    assert_eq!(holdings.len(), 75);
    assert_eq!(overlaps(&holdings), None, "two holders at once");
    assert_tokens_increase(&holdings);
    let zk = ZkClient::connect(&connect);
    wait_until(SETTLE, "every contender gone", || contenders(&zk, &lock).is_empty());
    assert_eq!(
        figure(&one, "lock_acquisitions") + figure(&two, "lock_acquisitions"),
        60
    );
}

#[test]
fn a_curator_holder_and_a_redis_client_wait_for_each_other() {
    let connect = shared_zk().connect_string();
    let redis = server(&connect);
    let lock = unique_root("lock-curator");
    let mut a = redis.conn();
    let t = token(query(&mut a, &["ZKSYNC.LOCK", &lock]).unwrap());
    let mut curator = CuratorHolder::start(&connect, &lock);
    assert_eq!(
        curator.held_within(Duration::from_millis(500)),
        None,
        "Curator waits for Redis"
    );
    query(&mut a, &["ZKSYNC.UNLOCK", &lock, &t.to_string()]).unwrap();
    let curators = curator.wait_held(SETTLE);
    assert!(curators > t);
    assert_eq!(
        query(&mut a, &["ZKSYNC.LOCK", &lock, "TIMEOUT", "0"]).unwrap(),
        Value::Nil,
        "Redis waits for Curator"
    );
    let waiter = std::thread::spawn(move || token(query(&mut a, &["ZKSYNC.LOCK", &lock]).unwrap()));
    std::thread::sleep(Duration::from_millis(200));
    curator.release();
    assert!(waiter.join().unwrap() > curators);
}

#[test]
fn a_lock_is_released_when_its_connection_closes_and_waiters_follow_in_order() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let redis = server(&shared_zk().connect_string());
    let lock = unique_root("lock-disconnect");
    let mut holder = redis.conn();
    let first = token(query(&mut holder, &["ZKSYNC.LOCK", &lock]).unwrap());
    let waiter = {
        let mut conn = redis.conn();
        let lock = lock.clone();
        // The connection comes back with the token: it holds the lock while open.
        std::thread::spawn(move || (token(query(&mut conn, &["ZKSYNC.LOCK", &lock]).unwrap()), conn))
    };
    wait_until(SETTLE, "the waiter's znode", || contenders(&zk, &lock).len() == 2);
    assert_eq!(figure(&redis, "lock_waiters"), 1);
    drop(holder);
    let (second, waiter) = waiter.join().unwrap();
    assert!(second > first);
    wait_until(SETTLE, "only the new holder left", || contenders(&zk, &lock).len() == 1);
    drop(waiter);
    wait_until(SETTLE, "no contender left", || contenders(&zk, &lock).is_empty());
}

#[test]
fn timeouts_and_waiters_that_leave_leave_no_znode_behind() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let redis = server(&shared_zk().connect_string());
    let lock = unique_root("lock-timeout");
    let mut holder = redis.conn();
    token(query(&mut holder, &["ZKSYNC.LOCK", &lock]).unwrap());
    let mut other = redis.conn();
    assert_eq!(
        query(&mut other, &["ZKSYNC.LOCK", &lock, "TIMEOUT", "0"]).unwrap(),
        Value::Nil
    );
    let started = Instant::now();
    assert_eq!(
        query(&mut other, &["ZKSYNC.LOCK", &lock, "TIMEOUT", "300"]).unwrap(),
        Value::Nil
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    wait_until(SETTLE, "only the holder's znode", || contenders(&zk, &lock).len() == 1);
    // A waiter whose connection is killed leaves nothing either.
    let mut waiting = redis.conn();
    let id = match query(&mut waiting, &["CLIENT", "ID"]).unwrap() {
        Value::Int(id) => id,
        other => panic!("{other:?}"),
    };
    let lock2 = lock.clone();
    let blocked = std::thread::spawn(move || query(&mut waiting, &["ZKSYNC.LOCK", &lock2]));
    wait_until(SETTLE, "the waiter's znode", || contenders(&zk, &lock).len() == 2);
    redis.cmd(&["CLIENT", "KILL", "ID", &id.to_string()]);
    assert!(blocked.join().unwrap().is_err());
    wait_until(SETTLE, "the waiter's znode gone", || contenders(&zk, &lock).len() == 1);
    assert_eq!(figure(&redis, "lock_waiters"), 0);
}

#[test]
fn a_lease_ends_the_lock_on_its_own() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let redis = server(&shared_zk().connect_string());
    let lock = unique_root("lock-lease");
    let mut a = redis.conn();
    let t = token(query(&mut a, &["ZKSYNC.LOCK", &lock, "LEASE", "300"]).unwrap()).to_string();
    assert_eq!(query(&mut a, &["ZKSYNC.CHECK", &lock, &t]).unwrap(), Value::Okay);
    std::thread::sleep(Duration::from_millis(320));
    assert_eq!(code(query(&mut a, &["ZKSYNC.CHECK", &lock, &t])), "FENCED");
    wait_until(SETTLE, "the znode gone", || contenders(&zk, &lock).is_empty());
    assert_eq!(query(&mut a, &["ZKSYNC.UNLOCK", &lock, &t]).unwrap(), Value::Int(0));
    let mut b = redis.conn();
    token(query(&mut b, &["ZKSYNC.LOCK", &lock, "TIMEOUT", "1000"]).unwrap());
}

#[test]
fn a_holders_znode_deleted_from_outside_fences_it() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let redis = server(&shared_zk().connect_string());
    let lock = unique_root("lock-outside");
    let mut a = redis.conn();
    let t = token(query(&mut a, &["ZKSYNC.LOCK", &lock]).unwrap()).to_string();
    let child = contenders(&zk, &lock).remove(0);
    zk.block_on(zk.client().delete(&format!("{lock}/{child}"), None))
        .unwrap();
    wait_until(SETTLE, "CHECK to say FENCED", || {
        query(&mut a, &["ZKSYNC.CHECK", &lock, &t]).is_err()
    });
    assert_eq!(figure(&redis, "lock_losses"), 1);
    assert_eq!(query(&mut a, &["ZKSYNC.UNLOCK", &lock, &t]).unwrap(), Value::Int(0));
}

#[test]
fn a_silent_network_fences_at_once_and_an_expired_session_loses_the_lock() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let proxy = Proxy::start(&shared_zk().connect_string());
    let redis = server(&proxy.addr());
    let lock = unique_root("lock-expiry");
    let mut a = redis.conn();
    let t = token(query(&mut a, &["ZKSYNC.LOCK", &lock]).unwrap()).to_string();
    let timeout = Duration::from_millis(figure(&redis, "session_timeout") as u64);
    proxy.blackhole();
    let silent = Instant::now();
    // Within 2/3 of the session timeout CHECK stops vouching.
    wait_until(timeout, "CHECK to refuse", || {
        query(&mut a, &["ZKSYNC.CHECK", &lock, &t]).is_err()
    });
    let fenced_after = silent.elapsed();
    assert!(
        fenced_after <= timeout * 2 / 3 + Duration::from_millis(100),
        "{fenced_after:?}"
    );
    while silent.elapsed() < timeout * 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_until(SETTLE, "ZooKeeper to drop the contender", || {
        contenders(&zk, &lock).is_empty()
    });
    proxy.restore();
    wait_until(SETTLE, "a new session", || redis.status()["state"] == "connected");
    assert_eq!(code(query(&mut a, &["ZKSYNC.CHECK", &lock, &t])), "FENCED");
    assert_eq!(query(&mut a, &["ZKSYNC.UNLOCK", &lock, &t]).unwrap(), Value::Int(0));
    assert_eq!(figure(&redis, "lock_losses"), 1);
    // The connection may lock again on the new session.
    let again = token(query(&mut a, &["ZKSYNC.LOCK", &lock, "TIMEOUT", "2000"]).unwrap());
    assert!(again > t.parse().unwrap());
}

#[test]
fn locks_work_on_a_replica() {
    let connect = shared_zk().connect_string();
    let master = server(&connect);
    let replica = server(&connect);
    replica.cmd(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]);
    wait_until(SETTLE, "the replica to follow", || {
        format!("{:?}", replica.cmd(&["ROLE"])).contains("slave")
    });
    let lock = unique_root("lock-replica");
    let mut on_replica = replica.conn();
    let t = token(query(&mut on_replica, &["ZKSYNC.LOCK", &lock]).unwrap());
    assert_eq!(
        query(&mut on_replica, &["ZKSYNC.CHECK", &lock, &t.to_string()]).unwrap(),
        Value::Okay
    );
    let mut on_master = master.conn();
    assert_eq!(
        query(&mut on_master, &["ZKSYNC.LOCK", &lock, "TIMEOUT", "0"]).unwrap(),
        Value::Nil
    );
    assert_eq!(
        query(&mut on_replica, &["ZKSYNC.UNLOCK", &lock, &t.to_string()]).unwrap(),
        Value::Int(1)
    );
    assert!(token(query(&mut on_master, &["ZKSYNC.LOCK", &lock, "TIMEOUT", "2000"]).unwrap()) > t);
}

#[test]
fn a_reconnect_within_the_session_keeps_the_lock() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let proxy = Proxy::start(&shared_zk().connect_string());
    let redis = server(&proxy.addr());
    let lock = unique_root("lock-reconnect");
    let mut a = redis.conn();
    let t = token(query(&mut a, &["ZKSYNC.LOCK", &lock]).unwrap()).to_string();
    let session = redis.status()["session_id"].clone();
    proxy.cut();
    wait_until(SETTLE, "the connection back, same session", || {
        let status = redis.status();
        status["state"] == "connected" && status["session_id"] == session
    });
    // Confirmed again once the session answers: CHECK vouches, nothing lost.
    wait_until(SETTLE, "CHECK to vouch again", || {
        query(&mut a, &["ZKSYNC.CHECK", &lock, &t]).is_ok()
    });
    assert_eq!(contenders(&zk, &lock).len(), 1);
    assert_eq!(figure(&redis, "lock_losses"), 0);
    assert_eq!(query(&mut a, &["ZKSYNC.UNLOCK", &lock, &t]).unwrap(), Value::Int(1));
}
