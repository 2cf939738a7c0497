//! The mirror without faults: initial sync, live updates, commands, run-time
//! configs, loading, bad input. Real redis-server, real ZooKeeper (one
//! standalone server shared by the whole binary, a subtree of its own per
//! test); every test asserts on data.

use redis::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::*;

/// Generous: the contract is 1 s without faults, but two cores run the whole
/// binary (and maybe another one) at once.
const SETTLE: Duration = Duration::from_secs(5);

/// A redis-server mirroring `root` (with the default `zk:` prefix), connected.
fn mirroring(root: &str) -> Redis {
    let redis = Redis::start(&shared_zk().connect_string(), &[("zksync.mirrors", root)]);
    redis.wait_state("connected", SETTLE);
    redis
}

/// `mirroring`, once the mirror equals ZooKeeper's `root`.
fn mirrored(zk: &ZkClient, root: &str) -> Redis {
    let redis = mirroring(root);
    wait_mirror_equals(&redis, zk, root, "zk:", SETTLE);
    redis
}

/// Reconnects `redis` to ZooKeeper (a changed session timeout does), which
/// resyncs every mirror; returns once a resync has run.
fn reconnect_and_resync(redis: &Redis) {
    let resyncs: i64 = redis.status()["resyncs"].parse().unwrap();
    let timeout: i64 = config_get(redis, "zksync.session-timeout").parse().unwrap();
    redis.cmd(&["CONFIG", "SET", "zksync.session-timeout", &(timeout + 1).to_string()]);
    wait_until(SETTLE, "a resync", || {
        redis.status()["resyncs"].parse::<i64>().unwrap() > resyncs
    });
}

fn zk() -> ZkClient {
    ZkClient::connect(&shared_zk().connect_string())
}

fn get(redis: &Redis, key: &str) -> Option<Vec<u8>> {
    match redis.cmd(&["GET", key]) {
        Value::BulkString(b) => Some(b),
        Value::Nil => None,
        other => panic!("GET {key}: {other:?}"),
    }
}

fn int(v: Value) -> i64 {
    match v {
        Value::Int(i) => i,
        other => panic!("not an integer: {other:?}"),
    }
}

/// `(code, message)` of an error reply; panics on success.
fn error(result: redis::RedisResult<Value>) -> (String, String) {
    match result {
        Err(e) => (
            e.code().unwrap_or("?").to_string(),
            e.detail().map(str::to_string).unwrap_or_else(|| e.to_string()),
        ),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn error_code(result: redis::RedisResult<Value>) -> String {
    error(result).0
}

fn map(v: Value) -> HashMap<String, String> {
    match v {
        Value::Array(items) => items.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (text(k), text(v))).collect(),
        other => panic!("not a map: {other:?}"),
    }
}

fn config_get(redis: &Redis, name: &str) -> String {
    map(redis.cmd(&["CONFIG", "GET", name]))
        .remove(name)
        .unwrap_or_else(|| panic!("no config {name}"))
}

fn names(v: Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(text).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

/// A command with binary arguments.
fn bytes_cmd(conn: &mut redis::Connection, args: &[&[u8]]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(std::str::from_utf8(args[0]).unwrap());
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(conn)
}

fn assert_alive(redis: &Redis) {
    assert_eq!(redis.cmd(&["PING"]), Value::SimpleString("PONG".into()));
}

/// The ZooKeeper stat in the shape of ZKSYNC.STAT.
fn stat_map(stat: &zk::Stat) -> HashMap<String, String> {
    [
        ("version", stat.version as i64),
        ("cversion", stat.cversion as i64),
        ("mzxid", stat.mzxid),
        ("czxid", stat.czxid),
        ("pzxid", stat.pzxid),
        ("mtime", stat.mtime),
        ("ctime", stat.ctime),
        ("ephemeral_owner", stat.ephemeral_owner),
        ("data_length", stat.data_length as i64),
        ("num_children", stat.num_children as i64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

// ---------------------------------------------------------------- sync

#[test]
fn initial_sync_of_binary_empty_deep_and_odd_names() {
    let root = unique_root("initial");
    let zk = zk();
    zk.create_all(&root, b"the root");
    let binary: Vec<u8> = (0..=255u8).collect();
    zk.create_all(&format!("{root}/binary"), &binary);
    zk.create_all(&format!("{root}/empty"), b"");
    let mut deep = root.clone();
    for i in 0..30 {
        deep.push_str(&format!("/d{i}"));
    }
    zk.create_all(&deep, b"deep");
    let long = "long".repeat(200);
    let odd = [
        "with space",
        "ünïcödé 日本",
        "glob*?[x]",
        "quote'\"",
        "back\\slash",
        "percent%20",
        "a=b:c",
        "-dash",
        "..dots",
        long.as_str(),
    ];
    for name in odd {
        zk.create_all(&format!("{root}/odd/{name}"), name.as_bytes());
    }
    let redis = mirrored(&zk, &root);
    assert_eq!(get(&redis, &format!("zk:{root}")), Some(b"the root".to_vec()));
    assert_eq!(get(&redis, &format!("zk:{root}/binary")), Some(binary));
    assert_eq!(get(&redis, &format!("zk:{root}/empty")), Some(vec![]));
    assert_eq!(get(&redis, &format!("zk:{deep}")), Some(b"deep".to_vec()));
    for name in odd {
        assert_eq!(
            get(&redis, &format!("zk:{root}/odd/{name}")),
            Some(name.as_bytes().to_vec())
        );
    }
    // Nothing but the mirror in the keyspace; the index agrees.
    assert_eq!(int(redis.cmd(&["DBSIZE"])) as usize, zk.tree(&root).len());
    assert_eq!(redis.status()["znodes"], zk.tree(&root).len().to_string());
    let mut sorted: Vec<String> = odd.iter().map(|s| s.to_string()).collect();
    sorted.sort();
    assert_eq!(names(redis.cmd(&["ZKSYNC.LS", &format!("{root}/odd")])), sorted);
}

#[test]
fn a_missing_root_is_mirrored_once_created_and_a_custom_prefix_is_honoured() {
    let root = unique_root("later");
    let other = unique_root("prefixed");
    let zk = zk();
    zk.create_all(&format!("{other}/x"), b"1");
    let redis = Redis::start(
        &shared_zk().connect_string(),
        &[("zksync.mirrors", &format!("{root} {other}=pfx:"))],
    );
    redis.wait_state("connected", SETTLE);
    assert_eq!(redis.status()["mirrors"], "2");
    wait_mirror_equals(&redis, &zk, &other, "pfx:", SETTLE);
    assert_eq!(get(&redis, &format!("zk:{other}/x")), None, "only under its own prefix");
    assert!(mirror_keys(&redis, "zk:", &root).is_empty());
    assert_eq!(redis.cmd(&["ZKSYNC.STAT", &root]), Value::Nil);

    // The root appears: mirrored, with everything below it.
    zk.create_all(&format!("{root}/a/b"), b"now");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(mirror_keys(&redis, "zk:", &root).len(), 3);

    // Live changes under the custom prefix.
    zk.set(&format!("{other}/x"), b"2");
    zk.create_all(&format!("{other}/y"), b"3");
    wait_mirror_equals(&redis, &zk, &other, "pfx:", SETTLE);
    assert_eq!(get(&redis, &format!("pfx:{other}/x")), Some(b"2".to_vec()));

    // The whole root deleted live: every key goes, the other mirror stays.
    zk.delete_all(&root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert!(mirror_keys(&redis, "zk:", &root).is_empty());
    assert_eq!(mirror_keys(&redis, "pfx:", &other).len(), 3);
    // And it comes back when the root is created again.
    zk.create_all(&root, b"again");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(get(&redis, &format!("zk:{root}")), Some(b"again".to_vec()));
}

#[test]
fn live_create_set_delete_and_subtree_delete() {
    let root = unique_root("live");
    let zk = zk();
    zk.create_all(&root, b"r");
    let redis = mirrored(&zk, &root);

    for i in 0..20 {
        zk.create_all(&format!("{root}/sub/n{i}"), format!("v{i}").as_bytes());
    }
    zk.create_all(&format!("{root}/sub/n0/deeper/still"), b"deep");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);

    let started = Instant::now();
    zk.set(&format!("{root}/sub/n3"), b"changed");
    wait_until(SETTLE, "a set reaches the key", || {
        get(&redis, &format!("zk:{root}/sub/n3")) == Some(b"changed".to_vec())
    });
    println!("set visible after {:?}", started.elapsed());
    zk.set(&format!("{root}/sub/n3"), b"");
    wait_until(SETTLE, "an emptied znode empties the key", || {
        get(&redis, &format!("zk:{root}/sub/n3")) == Some(vec![])
    });

    let started = Instant::now();
    zk.delete_all(&format!("{root}/sub/n5"));
    wait_until(SETTLE, "a delete removes the key", || {
        get(&redis, &format!("zk:{root}/sub/n5")).is_none()
    });
    println!("delete visible after {:?}", started.elapsed());

    // A whole subtree: every key below it goes, the rest stays.
    zk.delete_all(&format!("{root}/sub"));
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(
        mirror_keys(&redis, "zk:", &root).into_keys().collect::<Vec<_>>(),
        std::slice::from_ref(&root)
    );
    assert_eq!(int(redis.cmd(&["DBSIZE"])), 1);
    assert_eq!(redis.status()["znodes"], "1");
}

#[test]
fn many_quick_sets_are_monotonic_and_end_with_the_last_value() {
    let root = unique_root("monotonic");
    let zk = zk();
    let node = format!("{root}/counter");
    zk.create_all(&node, b"0");
    let redis = mirrored(&zk, &root);

    // A reader samples the key the whole time: it must never go back.
    let stop = Arc::new(AtomicBool::new(false));
    let mut conn = redis.conn();
    let key = format!("zk:{node}");
    let stopping = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut seen: Vec<i64> = Vec::new();
        while !stopping.load(Ordering::Relaxed) {
            let v: Option<String> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
            let v: i64 = v.expect("the key never disappears").parse().unwrap();
            if seen.last() != Some(&v) {
                seen.push(v);
            }
        }
        seen
    });
    const SETS: i64 = 500;
    // Pipelined: every request is sent before the first answer is awaited.
    zk.block_on(async {
        let values: Vec<String> = (1..=SETS).map(|i| i.to_string()).collect();
        let pending: Vec<_> = values
            .iter()
            .map(|v| zk.client().set_data(&node, v.as_bytes(), None))
            .collect();
        for p in pending {
            p.await.expect("set");
        }
    });
    wait_until(SETTLE, "the last value", || {
        get(&redis, &format!("zk:{node}")) == Some(SETS.to_string().into_bytes())
    });
    stop.store(true, Ordering::Relaxed);
    let seen = reader.join().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "the key went back: {seen:?}");
    println!("{} distinct values seen out of {SETS}", seen.len());
    let stat = map(redis.cmd(&["ZKSYNC.STAT", &node]));
    assert_eq!(stat["version"], SETS.to_string());
}

#[test]
fn keyspace_notifications_follow_zookeeper_writes() {
    let root = unique_root("notify");
    let zk = zk();
    zk.create_all(&format!("{root}/k"), b"0");
    let redis = mirroring(&root);
    redis.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);

    let mut subscriber = redis.conn();
    let mut sub = subscriber.as_pubsub();
    sub.set_read_timeout(Some(SETTLE)).unwrap();
    sub.subscribe(format!("__keyspace@0__:zk:{root}/k")).unwrap();
    let mut psubscriber = redis.conn();
    let mut psub = psubscriber.as_pubsub();
    psub.set_read_timeout(Some(SETTLE)).unwrap();
    psub.psubscribe(format!("__keyspace@0__:zk:{root}/*")).unwrap();

    let started = Instant::now();
    zk.set(&format!("{root}/k"), b"1");
    let message = sub.get_message().expect("a keyspace notification");
    assert_eq!(message.get_channel_name(), format!("__keyspace@0__:zk:{root}/k"));
    assert_eq!(message.get_payload::<String>().unwrap(), "set");
    println!("notification after {:?}", started.elapsed());

    // Through the pattern: the set above, then a create and a delete (the
    // key mirrored in between: a create and a delete read in one burst
    // never make a key, and so no notification).
    zk.create_all(&format!("{root}/new"), b"x");
    wait_until(SETTLE, "the new key", || {
        redis.try_cmd(&["EXISTS", &format!("zk:{root}/new")]).ok() == Some(redis::Value::Int(1))
    });
    zk.delete_all(&format!("{root}/new"));
    let mut events = Vec::new();
    while events.len() < 3 {
        let message = psub.get_message().expect("a keyspace notification by pattern");
        assert_eq!(
            message.get_pattern::<String>().unwrap(),
            format!("__keyspace@0__:zk:{root}/*")
        );
        let key = message
            .get_channel_name()
            .trim_start_matches("__keyspace@0__:")
            .to_string();
        events.push((key, message.get_payload::<String>().unwrap()));
    }
    assert_eq!(
        events,
        [
            (format!("zk:{root}/k"), "set".to_string()),
            (format!("zk:{root}/new"), "set".to_string()),
            (format!("zk:{root}/new"), "del".to_string()),
        ]
    );
}

#[test]
fn a_large_tree_syncs_quickly() {
    let root = unique_root("large");
    let zk = zk();
    zk.create_all(&root, b"");
    // 40 directories of 50 znodes, created pipelined.
    zk.block_on(async {
        let options = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        let dirs: Vec<String> = (0..40).map(|d| format!("{root}/dir{d}")).collect();
        let pending: Vec<_> = dirs.iter().map(|d| zk.client().create(d, b"dir", &options)).collect();
        for p in pending {
            p.await.expect("create");
        }
        let leaves: Vec<(String, String)> = (0..2000)
            .map(|i| (format!("{root}/dir{}/leaf{i}", i % 40), format!("value {i}")))
            .collect();
        let pending: Vec<_> = leaves
            .iter()
            .map(|(p, v)| zk.client().create(p, v.as_bytes(), &options))
            .collect();
        for p in pending {
            p.await.expect("create");
        }
    });
    let started = Instant::now();
    let redis = mirrored(&zk, &root);
    println!("2041 znodes mirrored in {:?}", started.elapsed());
    assert_eq!(redis.status()["znodes"], "2041");
    // A burst of live changes over the whole tree.
    zk.block_on(async {
        let values: Vec<(String, String)> = (0..2000)
            .step_by(3)
            .map(|i| (format!("{root}/dir{}/leaf{i}", i % 40), format!("changed {i}")))
            .collect();
        let pending: Vec<_> = values
            .iter()
            .map(|(p, v)| zk.client().set_data(p, v.as_bytes(), None))
            .collect();
        for p in pending {
            p.await.expect("set");
        }
    });
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn an_ephemeral_znode_goes_with_its_session() {
    let root = unique_root("ephemeral");
    let zk = zk();
    zk.create_all(&root, b"");
    let redis = mirroring(&root);
    let owner = ZkClient::connect(&shared_zk().connect_string());
    owner.create_ephemeral(&format!("{root}/e"), b"alive");
    wait_until(SETTLE, "the ephemeral mirrored", || {
        get(&redis, &format!("zk:{root}/e")) == Some(b"alive".to_vec())
    });
    assert_eq!(
        map(redis.cmd(&["ZKSYNC.STAT", &format!("{root}/e")]))["ephemeral_owner"],
        owner.session_id().to_string()
    );
    owner.close();
    wait_until(SETTLE, "the ephemeral's key gone", || {
        get(&redis, &format!("zk:{root}/e")).is_none()
    });
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn sibling_roots_that_share_a_name_prefix_are_independent() {
    let root = unique_root("sib");
    let sibling = format!("{root}0");
    let zk = zk();
    zk.create_all(&format!("{root}/a"), b"1");
    zk.create_all(&format!("{sibling}/a"), b"2");
    let redis = mirroring(&format!("{root} {sibling}"));
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    wait_mirror_equals(&redis, &zk, &sibling, "zk:", SETTLE);
    // PULL, a live delete of the whole root and a resync of one leave the other alone.
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &root])), 2);
    assert_eq!(mirror_keys(&redis, "zk:", &sibling).len(), 2);
    zk.delete_all(&root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    reconnect_and_resync(&redis);
    wait_mirror_equals(&redis, &zk, &sibling, "zk:", SETTLE);
    assert_eq!(redis.status()["state"], "connected");
}

/// The whole ZooKeeper (its own server: the shared one is busy), `/` included.
#[test]
fn mirroring_the_whole_tree_from_slash() {
    let server = Zk::start();
    let zk = ZkClient::connect(&server.connect_string());
    zk.create_all("/app/config/db", b"postgres://");
    zk.create_all("/top", b"level");
    let redis = Redis::start(&server.connect_string(), &[("zksync.mirrors", "/=all:")]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, "/", "all:", SETTLE);
    assert_eq!(get(&redis, "all:/app/config/db"), Some(b"postgres://".to_vec()));
    assert!(get(&redis, "all:/").is_some());
    assert!(get(&redis, "all:/zookeeper").is_some());
    let children = names(redis.cmd(&["ZKSYNC.LS", "/"]));
    assert!(
        children.contains(&"app".to_string()) && children.contains(&"zookeeper".to_string()),
        "{children:?}"
    );
    zk.delete_all("/top");
    zk.create_all("/new/deep", b"x");
    wait_mirror_equals(&redis, &zk, "/", "all:", SETTLE);
    redis.cmd(&["SET", "all:/forged", "x"]);
    assert!(int(redis.cmd(&["ZKSYNC.PULL", "/"])) >= 6);
    assert_eq!(get(&redis, "all:/forged"), None);
    assert_eq!(mirror_keys(&redis, "all:", "/"), zk.tree("/"));
}

#[test]
fn writes_wait_while_clients_are_paused_and_redis_survives() {
    let root = unique_root("pause");
    let zk = zk();
    zk.create_all(&format!("{root}/k"), b"0");
    let master = mirroring(&root);
    let replica = mirroring(&root);
    replica.cmd(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]);
    wait_until(SETTLE, "replication link up", || {
        text(&replica.cmd(&["INFO", "replication"])).contains("master_link_status:up")
    });
    wait_mirror_equals(&master, &zk, &root, "zk:", SETTLE);
    for mode in ["WRITE", "ALL"] {
        master.cmd(&["CLIENT", "PAUSE", "700", mode]);
        let value = format!("during pause {mode}");
        zk.set(&format!("{root}/k"), value.as_bytes());
        zk.create_all(&format!("{root}/{mode}"), b"new");
        // Redis stays up; the change lands once the pause is over.
        wait_mirror_equals(&master, &zk, &root, "zk:", SETTLE);
        assert_alive(&master);
        wait_mirror_equals(&replica, &zk, &root, "zk:", SETTLE);
    }
    assert!(!master.log().contains("ASSERTION"), "{}", master.log());
}

#[test]
fn a_prefix_changed_at_run_time_moves_the_mirror() {
    let root = unique_root("reprefix");
    let zk = zk();
    zk.create_all(&format!("{root}/a"), b"1");
    let redis = Redis::start(
        &shared_zk().connect_string(),
        &[("zksync.mirrors", &format!("{root}=x:"))],
    );
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "x:", SETTLE);
    redis.cmd(&["CONFIG", "SET", "zksync.mirrors", &format!("{root}=y:")]);
    wait_mirror_equals(&redis, &zk, &root, "y:", SETTLE);
    zk.set(&format!("{root}/a"), b"2");
    zk.create_all(&format!("{root}/b"), b"3");
    wait_mirror_equals(&redis, &zk, &root, "y:", SETTLE);
    // The old keys stay as they were (a removed mirror keeps its keys).
    assert_eq!(get(&redis, &format!("x:{root}/a")), Some(b"1".to_vec()));
    assert_eq!(get(&redis, &format!("x:{root}/b")), None);
    assert_eq!(map(redis.cmd(&["ZKSYNC.STAT", &format!("{root}/a")]))["version"], "1");
}

// ---------------------------------------------------------------- the namespace

#[test]
fn stale_hand_written_keys_are_swept_by_a_reconnect_resync() {
    let root = unique_root("stale");
    let zk = zk();
    zk.create_all(&format!("{root}/real"), b"yes");
    let redis = mirrored(&zk, &root);
    redis.cmd(&["SET", &format!("zk:{root}/forged"), "no"]);
    redis.cmd(&["SET", &format!("zk:{root}/real/child"), "no"]);
    redis.cmd(&["SET", &format!("zk:{root}x"), "a sibling, outside the mirror"]);
    redis.cmd(&["SET", &format!("other:{root}/forged"), "another prefix"]);
    redis.cmd(&["SET", "unrelated", "kept"]);
    let resyncs: i64 = redis.status()["resyncs"].parse().unwrap();
    // Another connect string for the same server reconnects, and a reconnect resyncs.
    let same_server_twice = format!("{0},{0}", shared_zk().connect_string());
    redis.cmd(&["CONFIG", "SET", "zksync.servers", &same_server_twice]);
    wait_until(SETTLE, "a resync", || {
        redis.status()["resyncs"].parse::<i64>().unwrap() > resyncs
    });
    redis.wait_state("connected", SETTLE);
    // STATUS names the one server behind both entries.
    assert_eq!(redis.status()["server"], shared_zk().connect_string());
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(get(&redis, "unrelated"), Some(b"kept".to_vec()));
    assert!(get(&redis, &format!("zk:{root}x")).is_some());
    assert!(get(&redis, &format!("other:{root}/forged")).is_some());
}

/// The namespace belongs to zksync: a resync also repairs mirrored keys that
/// were overwritten or deleted by hand.
#[test]
fn keys_overwritten_or_deleted_by_hand_are_repaired_by_a_resync() {
    let root = unique_root("repair");
    let zk = zk();
    zk.create_all(&format!("{root}/a"), b"a");
    zk.create_all(&format!("{root}/b"), b"b");
    let redis = mirrored(&zk, &root);
    redis.cmd(&["SET", &format!("zk:{root}/a"), "overwritten by hand"]);
    redis.cmd(&["DEL", &format!("zk:{root}/b")]);
    reconnect_and_resync(&redis);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn a_flushall_is_repaired_by_the_next_resync() {
    let root = unique_root("flushall");
    let zk = zk();
    zk.create_all(&format!("{root}/a"), b"a");
    let redis = mirrored(&zk, &root);
    redis.cmd(&["FLUSHALL"]);
    assert_eq!(redis.status()["znodes"], "2", "the index still counts them");
    reconnect_and_resync(&redis);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

/// What does repair it today: ZKSYNC.PULL of the root.
#[test]
fn pull_repairs_keys_overwritten_deleted_or_flushed_by_hand() {
    let root = unique_root("pull-repair");
    let zk = zk();
    zk.create_all(&format!("{root}/a"), b"a");
    zk.create_all(&format!("{root}/b"), b"b");
    let redis = mirrored(&zk, &root);
    redis.cmd(&["SET", &format!("zk:{root}/a"), "overwritten by hand"]);
    redis.cmd(&["DEL", &format!("zk:{root}/b")]);
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &root])), 3);
    assert_eq!(mirror_keys(&redis, "zk:", &root), zk.tree(&root));
    redis.cmd(&["FLUSHALL"]);
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &root])), 3);
    assert_eq!(mirror_keys(&redis, "zk:", &root), zk.tree(&root));
    // And the mirror goes on from there.
    zk.set(&format!("{root}/b"), b"b2");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn stale_keys_are_swept_by_pull() {
    let root = unique_root("stale-pull");
    let zk = zk();
    zk.create_all(&format!("{root}/a/b"), b"b");
    let redis = mirrored(&zk, &root);
    redis.cmd(&["SET", &format!("zk:{root}/forged"), "no"]);
    redis.cmd(&["SET", &format!("zk:{root}/a/forged/deep"), "no"]);
    redis.cmd(&["SET", &format!("zk:{root}-sibling"), "kept"]);
    // After the reply, the keyspace is ZooKeeper's: no polling.
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &root])), 3);
    assert_eq!(mirror_keys(&redis, "zk:", &root), zk.tree(&root));
    assert_eq!(get(&redis, &format!("zk:{root}-sibling")), Some(b"kept".to_vec()));

    // A PULL of a subtree sweeps only below it.
    redis.cmd(&["SET", &format!("zk:{root}/a/forged"), "no"]);
    redis.cmd(&["SET", &format!("zk:{root}/forged"), "no"]);
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &format!("{root}/a")])), 2);
    assert_eq!(get(&redis, &format!("zk:{root}/a/forged")), None);
    assert_eq!(get(&redis, &format!("zk:{root}/forged")), Some(b"no".to_vec()));
}

// ---------------------------------------------------------------- commands

#[test]
fn push_reads_its_write_creates_parents_and_compares_versions() {
    let root = unique_root("push");
    let zk = zk();
    let redis = mirroring(&root);
    let path = format!("{root}/a/b/c");
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &path, "v1"])), 0);
    // Read your write: the key holds it as soon as the reply is in.
    assert_eq!(get(&redis, &format!("zk:{path}")), Some(b"v1".to_vec()));
    assert_eq!(zk.get(&path), Some(b"v1".to_vec()));
    assert_eq!(zk.get(&format!("{root}/a/b")), Some(vec![]), "parents are created");
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &path, "v2"])), 1);
    assert_eq!(get(&redis, &format!("zk:{path}")), Some(b"v2".to_vec()));
    assert_eq!(map(redis.cmd(&["ZKSYNC.STAT", &path]))["version"], "1");

    // Compare-and-set.
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &path, "v3", "VERSION", "1"])), 2);
    assert_eq!(get(&redis, &format!("zk:{path}")), Some(b"v3".to_vec()));
    let (code, message) = error(redis.try_cmd(&["ZKSYNC.PUSH", &path, "v4", "version", "1"]));
    assert_eq!(code, "ZKBADVERSION", "{message}");
    assert_eq!(zk.get(&path), Some(b"v3".to_vec()));
    assert_eq!(get(&redis, &format!("zk:{path}")), Some(b"v3".to_vec()));
    zk.set(&path, b"someone else");
    assert_eq!(
        error_code(redis.try_cmd(&["ZKSYNC.PUSH", &path, "v4", "VERSION", "2"])),
        "ZKBADVERSION"
    );
    assert_eq!(
        error_code(redis.try_cmd(&["ZKSYNC.PUSH", &format!("{root}/nope"), "x", "VERSION", "0"])),
        "ZKNONODE"
    );
    assert!(!zk.exists(&format!("{root}/nope")));

    // Binary and empty values.
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let mut conn = redis.conn();
    let bin_path = format!("{root}/bin");
    assert_eq!(
        bytes_cmd(&mut conn, &[b"ZKSYNC.PUSH", bin_path.as_bytes(), &binary]).unwrap(),
        Value::Int(0)
    );
    assert_eq!(get(&redis, &format!("zk:{bin_path}")), Some(binary.clone()));
    assert_eq!(zk.get(&bin_path), Some(binary));
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &bin_path, ""])), 1);
    assert_eq!(get(&redis, &format!("zk:{bin_path}")), Some(vec![]));

    // The root itself.
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &root, "root data"])), 1);
    assert_eq!(get(&redis, &format!("zk:{root}")), Some(b"root data".to_vec()));

    // Outside every mirror: refused, unless zksync.allow names a root above
    // it; then it writes ZooKeeper only.
    let outside = unique_root("outside");
    assert_eq!(error_code(redis.try_cmd(&["ZKSYNC.PUSH", &outside, "o"])), "NOPERM");
    assert!(!zk.exists(&outside));
    redis.cmd(&["CONFIG", "SET", "zksync.allow", &outside]);
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &outside, "o"])), 0);
    assert_eq!(zk.get(&outside), Some(b"o".to_vec()));
    assert_eq!(get(&redis, &format!("zk:{outside}")), None);

    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn a_value_near_the_znode_limit_is_pushed_and_one_over_it_refused() {
    let root = unique_root("big");
    let zk = zk();
    let redis = mirroring(&root);
    let mut conn = redis.conn();
    let path = format!("{root}/big");
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        bytes_cmd(&mut conn, &[b"ZKSYNC.PUSH", path.as_bytes(), &big]).unwrap(),
        Value::Int(0)
    );
    assert_eq!(get(&redis, &format!("zk:{path}")), Some(big.clone()));
    assert_eq!(zk.get(&path), Some(big));

    let over = vec![b'x'; 1024 * 1024 + 1];
    let started = Instant::now();
    let (code, message) = error(bytes_cmd(&mut conn, &[b"ZKSYNC.PUSH", path.as_bytes(), &over]));
    assert_eq!(code, "ERR", "{message}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // The same connection goes on.
    let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
    assert_eq!(pong, "PONG");
    assert_eq!(zk.get(&path).map(|v| v.len()), Some(1_000_000));
}

#[test]
fn delete_answers_one_or_zero_and_compares_versions() {
    let root = unique_root("delete");
    let zk = zk();
    zk.create_all(&format!("{root}/parent/child"), b"c");
    zk.create_all(&format!("{root}/leaf"), b"l");
    zk.set(&format!("{root}/leaf"), b"l2");
    let redis = mirrored(&zk, &root);

    let (code, message) = error(redis.try_cmd(&["ZKSYNC.DELETE", &format!("{root}/parent")]));
    assert_eq!(code, "ZKNOTEMPTY", "{message}");
    assert!(zk.exists(&format!("{root}/parent")));
    assert!(get(&redis, &format!("zk:{root}/parent")).is_some());

    let leaf = format!("{root}/leaf");
    assert_eq!(
        error_code(redis.try_cmd(&["ZKSYNC.DELETE", &leaf, "VERSION", "0"])),
        "ZKBADVERSION"
    );
    assert!(zk.exists(&leaf));
    assert_eq!(get(&redis, &format!("zk:{leaf}")), Some(b"l2".to_vec()));
    assert_eq!(int(redis.cmd(&["ZKSYNC.DELETE", &leaf, "VERSION", "1"])), 1);
    // Read your write.
    assert_eq!(get(&redis, &format!("zk:{leaf}")), None);
    assert!(!zk.exists(&leaf));
    assert_eq!(redis.cmd(&["ZKSYNC.STAT", &leaf]), Value::Nil);
    assert_eq!(int(redis.cmd(&["ZKSYNC.DELETE", &leaf])), 0);
    assert_eq!(int(redis.cmd(&["ZKSYNC.DELETE", &leaf, "VERSION", "5"])), 0);

    assert_eq!(int(redis.cmd(&["ZKSYNC.DELETE", &format!("{root}/parent/child")])), 1);
    assert_eq!(int(redis.cmd(&["ZKSYNC.DELETE", &format!("{root}/parent")])), 1);
    assert_eq!(get(&redis, &format!("zk:{root}/parent")), None);

    // Outside every mirror: refused, unless allowed; then ZooKeeper only.
    let outside = unique_root("del-outside");
    zk.create_all(&outside, b"o");
    assert_eq!(error_code(redis.try_cmd(&["ZKSYNC.DELETE", &outside])), "NOPERM");
    assert!(zk.exists(&outside));
    redis.cmd(&["CONFIG", "SET", "zksync.allow", &outside]);
    assert_eq!(int(redis.cmd(&["ZKSYNC.DELETE", &outside])), 1);
    assert!(!zk.exists(&outside));
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn stat_matches_zookeeper_and_ls_is_sorted() {
    let root = unique_root("stat");
    let zk = zk();
    for name in ["b", "a", "B", "10", "9", "ä", "a b"] {
        zk.create_all(&format!("{root}/dir/{name}"), name.as_bytes());
    }
    zk.set(&format!("{root}/dir/a"), b"changed twice");
    zk.set(&format!("{root}/dir/a"), b"changed");
    zk.create_ephemeral(&format!("{root}/dir/ephemeral"), b"e");
    let redis = mirrored(&zk, &root);

    for p in zk.tree(&root).keys() {
        let stat = map(redis.cmd(&["ZKSYNC.STAT", p]));
        assert_eq!(stat, stat_map(&zk.stat(p).unwrap()), "{p}");
    }
    let stat = map(redis.cmd(&["ZKSYNC.STAT", &format!("{root}/dir/ephemeral")]));
    assert_eq!(stat["ephemeral_owner"], zk.session_id().to_string());
    assert_eq!(
        map(redis.cmd(&["ZKSYNC.STAT", &format!("{root}/dir/a")]))["version"],
        "2"
    );
    assert_eq!(
        map(redis.cmd(&["ZKSYNC.STAT", &format!("{root}/dir")]))["num_children"],
        "8"
    );

    let mut want = vec!["b", "a", "B", "10", "9", "ä", "a b", "ephemeral"];
    want.sort();
    assert_eq!(names(redis.cmd(&["ZKSYNC.LS", &format!("{root}/dir")])), want);
    assert_eq!(names(redis.cmd(&["ZKSYNC.LS", &root])), ["dir"]);
    assert!(names(redis.cmd(&["ZKSYNC.LS", &format!("{root}/dir/a")])).is_empty());

    // Outside every root: refused, whether it exists in ZooKeeper or not.
    // Allowed but not mirrored: nil.
    let elsewhere = unique_root("not-mirrored");
    zk.create_all(&elsewhere, b"x");
    for p in [elsewhere.as_str(), "/", "/zookeeper", "/no/such/znode"] {
        assert_eq!(error_code(redis.try_cmd(&["ZKSYNC.STAT", p])), "NOPERM", "{p}");
        assert_eq!(error_code(redis.try_cmd(&["ZKSYNC.LS", p])), "NOPERM", "{p}");
    }
    redis.cmd(&["CONFIG", "SET", "zksync.allow", &format!("{elsewhere} /no")]);
    for p in [elsewhere.as_str(), "/no/such/znode"] {
        assert_eq!(redis.cmd(&["ZKSYNC.STAT", p]), Value::Nil, "{p}");
        assert_eq!(redis.cmd(&["ZKSYNC.LS", p]), Value::Nil, "{p}");
    }
    assert_eq!(redis.cmd(&["ZKSYNC.STAT", &format!("{root}/dir/nope")]), Value::Nil);
    assert_eq!(redis.cmd(&["ZKSYNC.LS", &format!("{root}/dir/nope")]), Value::Nil);

    // Live: a set moves the stat, a delete clears it.
    zk.set(&format!("{root}/dir/b"), b"bee");
    wait_until(SETTLE, "the stat follows a set", || {
        map(redis.cmd(&["ZKSYNC.STAT", &format!("{root}/dir/b")]))["version"] == "1"
    });
    assert_eq!(
        map(redis.cmd(&["ZKSYNC.STAT", &format!("{root}/dir/b")])),
        stat_map(&zk.stat(&format!("{root}/dir/b")).unwrap())
    );
    zk.delete_all(&format!("{root}/dir/9"));
    wait_until(SETTLE, "LS follows a delete", || {
        !names(redis.cmd(&["ZKSYNC.LS", &format!("{root}/dir")])).contains(&"9".to_string())
    });
}

/// A child created or deleted live changes its parent's `num_children`,
/// `cversion` and `pzxid`, not its `mzxid`.
#[test]
fn stat_of_a_parent_follows_live_child_changes() {
    let root = unique_root("parent-stat");
    let zk = zk();
    zk.create_all(&format!("{root}/parent"), b"p");
    let redis = mirrored(&zk, &root);
    let parent = format!("{root}/parent");
    for i in 0..3 {
        zk.create_all(&format!("{parent}/c{i}"), b"");
    }
    zk.delete_all(&format!("{parent}/c0"));
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(names(redis.cmd(&["ZKSYNC.LS", &parent])), ["c1", "c2"]);
    let want = stat_map(&zk.stat(&parent).unwrap());
    let deadline = Instant::now() + SETTLE;
    loop {
        let have = map(redis.cmd(&["ZKSYNC.STAT", &parent]));
        if have == want {
            break;
        }
        assert!(Instant::now() < deadline, "STAT {parent}: have {have:?}\nwant {want:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A reconnect resync does not repair it either.
    reconnect_and_resync(&redis);
    assert_eq!(map(redis.cmd(&["ZKSYNC.STAT", &root]))["num_children"], "1");
}

#[test]
fn pull_counts_and_copies_allowed_paths_outside_every_mirror() {
    let root = unique_root("pull");
    let zk = zk();
    zk.create_all(&format!("{root}/b"), b"bee");
    zk.create_all(&format!("{root}/a"), b"ay");
    let redis = mirrored(&zk, &root);
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &root])), 3);
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &format!("{root}/a")])), 1);

    // Outside every mirror: refused unless allowed; then copied under zk:,
    // counted, and only then.
    let outside = unique_root("pulled");
    zk.create_all(&format!("{outside}/x/y"), b"1");
    zk.create_all(&format!("{outside}/z"), b"");
    assert_eq!(error_code(redis.try_cmd(&["ZKSYNC.PULL", &outside])), "NOPERM");
    assert!(mirror_keys(&redis, "zk:", &outside).is_empty());
    redis.cmd(&["CONFIG", "SET", "zksync.allow", &outside]);
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &outside])), 4);
    assert_eq!(mirror_keys(&redis, "zk:", &outside), zk.tree(&outside));
    assert_eq!(get(&redis, &format!("zk:{outside}/x/y")), Some(b"1".to_vec()));
    assert_eq!(
        redis.cmd(&["ZKSYNC.STAT", &outside]),
        Value::Nil,
        "a copy, not a mirror"
    );
    // Not followed: a later change needs another PULL.
    zk.delete_all(&format!("{outside}/x"));
    zk.set(&format!("{outside}/z"), b"new");
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &outside])), 2);
    assert_eq!(mirror_keys(&redis, "zk:", &outside), zk.tree(&outside));
    // A path that does not exist: 0, and its stale keys go.
    zk.delete_all(&outside);
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &outside])), 0);
    assert!(mirror_keys(&redis, "zk:", &outside).is_empty());
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn status_and_info_report_the_session() {
    let root = unique_root("status");
    let zk = zk();
    zk.create_all(&format!("{root}/a"), b"1");
    zk.create_all(&format!("{root}/b"), b"2");
    let redis = mirrored(&zk, &root);

    let status = redis.status();
    for field in [
        "state",
        "server",
        "session_id",
        "session_timeout",
        "last_zxid",
        "mirrors",
        "znodes",
        "index_bytes",
        "events_applied",
        "resyncs",
        "last_resync_ms",
        "lock_held_us",
    ] {
        assert!(status.contains_key(field), "{field} missing from {status:?}");
    }
    assert_eq!(status["state"], "connected");
    assert_eq!(status["server"], shared_zk().connect_string());
    assert_eq!(status["mirrors"], "1");
    assert_eq!(status["znodes"], "3");
    assert!(status["index_bytes"].parse::<u64>().unwrap() > 0, "{status:?}");
    assert_eq!(status["session_timeout"], "2000");
    assert!(status["resyncs"].parse::<i64>().unwrap() >= 1);
    assert!(status["last_resync_ms"].parse::<i64>().is_ok());
    // The sync wrote under the lock.
    assert!(status["lock_held_us"].parse::<i64>().unwrap() > 0, "{status:?}");
    // The session is a real one: ZooKeeper lists it.
    let session = &status["session_id"];
    assert!(session.starts_with("0x"), "{session}");
    let cons = four_letter(&shared_zk().connect_string(), "cons").unwrap();
    assert!(cons.contains(&format!("sid={session}")), "{session} not in\n{cons}");
    // last_zxid covers what was applied.
    let last_zxid = i64::from_str_radix(status["last_zxid"].trim_start_matches("0x"), 16).unwrap();
    let newest = zk.tree(&root).keys().map(|p| zk.stat(p).unwrap().mzxid).max().unwrap();
    assert!(last_zxid >= newest, "last_zxid {last_zxid:#x} < {newest:#x}");
    let applied: i64 = status["events_applied"].parse().unwrap();
    zk.set(&format!("{root}/a"), b"again");
    wait_until(SETTLE, "events_applied to move", || {
        redis.status()["events_applied"].parse::<i64>().unwrap() > applied
    });

    let info = text(&redis.cmd(&["INFO", "zksync"]));
    assert!(info.contains("# zksync"), "{info}");
    assert!(info.contains("zksync_state:connected"), "{info}");
    for field in status.keys() {
        assert!(
            info.contains(&format!("zksync_{field}:")),
            "{field} missing from {info}"
        );
    }

    // The negotiated timeout is the one reported (ZooKeeper here: 1 to 10 s).
    redis.cmd(&["CONFIG", "SET", "zksync.session-timeout", "600"]);
    wait_until(SETTLE, "a 1000 ms session", || {
        let s = redis.status();
        s["state"] == "connected" && s["session_timeout"] == "1000"
    });
    redis.cmd(&["CONFIG", "SET", "zksync.session-timeout", "60000"]);
    wait_until(SETTLE, "a 10000 ms session", || {
        let s = redis.status();
        s["state"] == "connected" && s["session_timeout"] == "10000"
    });
    assert_eq!(config_get(&redis, "zksync.session-timeout"), "60000");
}

#[test]
fn commands_that_wait_for_zookeeper_are_refused_in_multi_and_scripts() {
    let root = unique_root("multi");
    let zk = zk();
    zk.create_all(&format!("{root}/x"), b"1");
    let redis = mirrored(&zk, &root);
    let mut conn = redis.conn();
    let _: () = redis::cmd("MULTI").query(&mut conn).unwrap();
    let queued: String = redis::cmd("ZKSYNC.PUSH")
        .arg(format!("{root}/m"))
        .arg("v")
        .query(&mut conn)
        .unwrap();
    assert_eq!(queued, "QUEUED");
    let queued: String = redis::cmd("ZKSYNC.PULL").arg(&root).query(&mut conn).unwrap();
    assert_eq!(queued, "QUEUED");
    let _: String = redis::cmd("ZKSYNC.STAT")
        .arg(format!("{root}/x"))
        .query(&mut conn)
        .unwrap();
    // Not `query`: it turns an error inside the EXEC array into an Err.
    let exec = redis::ConnectionLike::req_command(&mut conn, &redis::cmd("EXEC")).unwrap();
    let Value::Array(replies) = exec else {
        panic!("EXEC: {exec:?}")
    };
    for reply in &replies[..2] {
        match reply {
            Value::ServerError(e) => {
                assert_eq!(e.code(), "ERR", "{e:?}");
                assert!(e.details().unwrap_or("").contains("MULTI"), "{e:?}");
            }
            other => panic!("expected an error inside EXEC, got {other:?}"),
        }
    }
    // Commands that do not wait run in a transaction as usual.
    assert_eq!(map(replies[2].clone())["data_length"], "1");
    assert!(zk.get(&format!("{root}/m")).is_none());

    for script in [
        format!("return redis.call('ZKSYNC.PUSH', '{root}/e', 'v')"),
        format!("return redis.call('ZKSYNC.DELETE', '{root}/x')"),
        format!("return redis.pcall('ZKSYNC.PULL', '{root}')"),
    ] {
        let (code, message) = error(redis.try_cmd(&["EVAL", &script, "0"]));
        assert_eq!(code, "ERR", "{message}");
        assert!(message.contains("script"), "{message}");
    }
    assert!(zk.get(&format!("{root}/e")).is_none());
    assert!(zk.exists(&format!("{root}/x")));
    assert_eq!(
        redis.cmd(&["EVAL", &format!("return redis.call('ZKSYNC.LS', '{root}')"), "0"]),
        Value::Array(vec![Value::BulkString(b"x".to_vec())])
    );
    assert_alive(&redis);
}

// ---------------------------------------------------------------- replicas

#[test]
fn a_replica_gets_the_mirror_by_replication_and_refuses_mirror_writes() {
    let root = unique_root("replica");
    let zk = zk();
    zk.create_all(&format!("{root}/x"), b"1");
    let master = mirroring(&root);
    let replica = mirroring(&root);
    replica.cmd(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]);
    wait_until(SETTLE, "replication link up", || {
        text(&replica.cmd(&["INFO", "replication"])).contains("master_link_status:up")
    });
    zk.create_all(&format!("{root}/y"), b"2");
    zk.set(&format!("{root}/x"), b"1b");
    wait_mirror_equals(&master, &zk, &root, "zk:", SETTLE);
    wait_mirror_equals(&replica, &zk, &root, "zk:", SETTLE);
    assert_eq!(mirror_keys(&replica, "zk:", &root), mirror_keys(&master, "zk:", &root));
    for cmd in [
        vec!["ZKSYNC.PULL", root.as_str()],
        vec!["ZKSYNC.PUSH", &format!("{root}/x"), "no"],
        vec!["ZKSYNC.DELETE", &format!("{root}/y")],
    ] {
        assert_eq!(error_code(replica.try_cmd(&cmd)), "READONLY", "{cmd:?}");
    }
    assert_eq!(zk.get(&format!("{root}/x")), Some(b"1b".to_vec()));
    assert!(zk.exists(&format!("{root}/y")));
    // Reads work on a replica.
    assert_eq!(names(replica.cmd(&["ZKSYNC.LS", &root])), ["x", "y"]);
    assert_eq!(replica.status()["state"], "connected");

    // Promoted, it takes over writing its mirror.
    replica.cmd(&["REPLICAOF", "NO", "ONE"]);
    zk.set(&format!("{root}/x"), b"after promotion");
    wait_mirror_equals(&replica, &zk, &root, "zk:", SETTLE);
}

/// The master mirrors nothing; its replica is configured with a mirror:
/// the replica must not write it (it would diverge from its master).
#[test]
fn a_replica_does_not_write_its_own_mirror_until_promoted() {
    let root = unique_root("replica-only");
    let zk = zk();
    zk.create_all(&format!("{root}/x"), b"1");
    let master = Redis::start(&shared_zk().connect_string(), &[]);
    let replica = Redis::start(
        &shared_zk().connect_string(),
        &[
            ("zksync.mirrors", &root),
            ("replicaof", &format!("127.0.0.1 {}", master.port())),
        ],
    );
    wait_until(SETTLE, "replication link up", || {
        text(&replica.cmd(&["INFO", "replication"])).contains("master_link_status:up")
    });
    replica.wait_state("connected", SETTLE);
    zk.create_all(&format!("{root}/y"), b"2");
    // The replica's index follows ZooKeeper (STAT, LS answer) ...
    wait_until(SETTLE, "the replica's index", || {
        replica.cmd(&["ZKSYNC.LS", &root])
            == Value::Array(vec![Value::BulkString(b"x".to_vec()), Value::BulkString(b"y".to_vec())])
    });
    // ... but no key is written on either side.
    assert!(mirror_keys(&replica, "zk:", &root).is_empty());
    assert!(mirror_keys(&master, "zk:", &root).is_empty());
    assert_eq!(int(replica.cmd(&["DBSIZE"])), 0);

    replica.cmd(&["REPLICAOF", "NO", "ONE"]);
    wait_mirror_equals(&replica, &zk, &root, "zk:", SETTLE);
    assert!(mirror_keys(&master, "zk:", &root).is_empty());
}

/// `replica-read-only no`: Redis no longer refuses write commands, the module must.
#[test]
fn a_writable_replica_still_refuses_mirror_writes() {
    let root = unique_root("writable-replica");
    let zk = zk();
    zk.create_all(&format!("{root}/x"), b"1");
    let master = mirroring(&root);
    let replica = Redis::start(
        &shared_zk().connect_string(),
        &[
            ("zksync.mirrors", &root),
            ("replica-read-only", "no"),
            ("replicaof", &format!("127.0.0.1 {}", master.port())),
        ],
    );
    wait_until(SETTLE, "replication link up", || {
        text(&replica.cmd(&["INFO", "replication"])).contains("master_link_status:up")
    });
    wait_mirror_equals(&replica, &zk, &root, "zk:", SETTLE);
    assert_eq!(error_code(replica.try_cmd(&["ZKSYNC.PULL", &root])), "READONLY");
    // PUSH and DELETE: refused, or else they keep their read-your-writes promise.
    let path = format!("{root}/x");
    match replica.try_cmd(&["ZKSYNC.PUSH", &path, "from the replica"]) {
        Err(e) => assert_eq!(e.code(), Some("READONLY"), "{e}"),
        Ok(v) => {
            assert_eq!(
                get(&replica, &format!("zk:{path}")),
                Some(b"from the replica".to_vec()),
                "PUSH on a replica answered {v:?} before its mirror held the value"
            );
        }
    }
    match replica.try_cmd(&["ZKSYNC.DELETE", &path]) {
        Err(e) => assert_eq!(e.code(), Some("READONLY"), "{e}"),
        Ok(v) => assert_eq!(
            get(&replica, &format!("zk:{path}")),
            None,
            "DELETE on a replica answered {v:?} before its mirror dropped the key"
        ),
    }
}

#[test]
fn a_mirrored_write_acts_like_set_on_ttl_and_watch() {
    let root = unique_root("like-set");
    let zk = zk();
    zk.create_all(&format!("{root}/k"), b"0");
    let redis = mirrored(&zk, &root);
    let key = format!("zk:{root}/k");
    redis.cmd(&["EXPIRE", &key, "1000"]);
    let mut watcher = redis.conn();
    let watched: Value = redis::cmd("WATCH").arg(&key).query(&mut watcher).unwrap();
    assert_eq!(watched, Value::Okay);

    zk.set(&format!("{root}/k"), b"1");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(int(redis.cmd(&["TTL", &key])), -1, "SET drops a TTL");
    let exec: Value = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("unrelated")
        .arg("x")
        .query(&mut watcher)
        .unwrap();
    assert_eq!(exec, Value::Nil, "a WATCHed mirrored key changed: EXEC aborts");
    assert_eq!(get(&redis, "unrelated"), None);
}

#[test]
fn mirrored_writes_reach_the_aof() {
    let root = unique_root("aof");
    let zk = zk();
    zk.create_all(&format!("{root}/a"), b"in the aof");
    let redis = Redis::start(
        &shared_zk().connect_string(),
        &[
            ("zksync.mirrors", &root),
            ("appendonly", "yes"),
            ("appendfsync", "always"),
        ],
    );
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    zk.set(&format!("{root}/a"), b"changed live");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let aof = || -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(redis.dir().join("appendonlydir")).unwrap().flatten() {
            all.extend(std::fs::read(entry.path()).unwrap());
        }
        all
    };
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    wait_until(SETTLE, "the AOF has the live write", || {
        contains(&aof(), b"changed live")
    });
    let log = aof();
    assert!(contains(&log, format!("zk:{root}/a").as_bytes()));
    assert!(contains(&log, b"in the aof"));
    // A restart loads the mirror from the AOF.
    redis.kill();
    redis.restart();
    assert_eq!(get(&redis, &format!("zk:{root}/a")), Some(b"changed live".to_vec()));
}

// ---------------------------------------------------------------- configs

#[test]
fn mirrors_are_added_and_removed_at_run_time() {
    let first = unique_root("first");
    let second = unique_root("second");
    let zk = zk();
    zk.create_all(&format!("{first}/a"), b"1");
    zk.create_all(&format!("{second}/b"), b"2");
    let redis = mirroring(&first);
    wait_mirror_equals(&redis, &zk, &first, "zk:", SETTLE);

    redis.cmd(&["CONFIG", "SET", "zksync.mirrors", &format!("{first} {second}=s:")]);
    wait_mirror_equals(&redis, &zk, &second, "s:", SETTLE);
    assert_eq!(redis.status()["mirrors"], "2");
    assert_eq!(config_get(&redis, "zksync.mirrors"), format!("{first} {second}=s:"));
    zk.set(&format!("{second}/b"), b"live");
    wait_mirror_equals(&redis, &zk, &second, "s:", SETTLE);

    // A removed mirror stops; its keys stay.
    redis.cmd(&["CONFIG", "SET", "zksync.mirrors", &format!("{second}=s:")]);
    // STATUS follows the change asynchronously.
    wait_until(SETTLE, "one mirror", || redis.status()["mirrors"] == "1");
    zk.set(&format!("{first}/a"), b"changed");
    zk.create_all(&format!("{first}/new"), b"new");
    zk.set(&format!("{second}/b"), b"changed");
    wait_mirror_equals(&redis, &zk, &second, "s:", SETTLE);
    assert_eq!(get(&redis, &format!("zk:{first}/a")), Some(b"1".to_vec()));
    assert_eq!(get(&redis, &format!("zk:{first}/new")), None);
    assert_eq!(
        error_code(redis.try_cmd(&["ZKSYNC.STAT", &format!("{first}/a")])),
        "NOPERM"
    );

    // Added back: synced again, changes made meanwhile included.
    redis.cmd(&["CONFIG", "SET", "zksync.mirrors", &format!("{first} {second}=s:")]);
    wait_mirror_equals(&redis, &zk, &first, "zk:", SETTLE);

    // No mirror at all.
    redis.cmd(&["CONFIG", "SET", "zksync.mirrors", ""]);
    wait_until(SETTLE, "no mirror", || {
        let status = redis.status();
        status["mirrors"] == "0" && status["znodes"] == "0"
    });
    assert_eq!(redis.status()["state"], "connected");
}

#[test]
fn bad_config_values_are_refused_and_the_old_value_stays() {
    let root = unique_root("bad-config");
    let redis = mirroring(&root);
    for (name, bad) in [
        ("zksync.mirrors", "relative"),
        ("zksync.mirrors", "/a /a/b"),
        ("zksync.mirrors", "/a/b /a"),
        ("zksync.mirrors", "/a /a=x:"),
        ("zksync.mirrors", "/a/"),
        ("zksync.mirrors", "/a//b"),
        ("zksync.servers", ""),
        ("zksync.servers", "nohostport"),
        ("zksync.servers", "host:0"),
        ("zksync.servers", "host:99999"),
        ("zksync.servers", "host:1/chroot/"),
        ("zksync.session-timeout", "abc"),
        ("zksync.session-timeout", "10"),
        ("zksync.session-timeout", "-5"),
        ("zksync.session-timeout", "99999999999"),
        ("zksync.auth", "nocolon"),
        ("zksync.auth", ":x"),
        ("zksync.group", "a/b"),
        ("zksync.announce", "noport"),
        ("zksync.failover", "sometimes"),
        ("zksync.load-interval", "0"),
    ] {
        let before = config_get(&redis, name);
        let (code, message) = error(redis.try_cmd(&["CONFIG", "SET", name, bad]));
        assert_eq!(code, "ERR", "{name} {bad}: {message}");
        assert!(message.len() > 20, "{name} {bad}: the error says why: {message}");
        assert_eq!(config_get(&redis, name), before, "{name} {bad}");
        assert_alive(&redis);
    }
    // Several at once: all or nothing.
    let other = unique_root("never");
    let (code, _) = error(redis.try_cmd(&[
        "CONFIG",
        "SET",
        "zksync.mirrors",
        &other,
        "zksync.session-timeout",
        "abc",
    ]));
    assert_eq!(code, "ERR");
    assert_eq!(config_get(&redis, "zksync.mirrors"), root);
    let status = redis.status();
    assert_eq!(status["state"], "connected");
    assert_eq!(status["mirrors"], "1");
    assert_eq!(status["server"], shared_zk().connect_string());
    assert_eq!(status["session_timeout"], "2000");
}

#[test]
fn a_new_connect_string_reconnects_and_another_history_is_not_wiped() {
    let root = unique_root("history");
    let zk = zk();
    zk.create_all(&format!("{root}/a"), b"1");
    let redis = mirrored(&zk, &root);
    let before = mirror_keys(&redis, "zk:", &root);

    // A brand-new ZooKeeper: its history is behind the mirror's.
    let other = Zk::start();
    let other_zk = ZkClient::connect(&other.connect_string());
    other_zk.create_all(&format!("{root}/b"), b"2");
    redis.cmd(&["CONFIG", "SET", "zksync.servers", &other.connect_string()]);
    wait_until(SETTLE, "diverged", || redis.status()["state"] == "diverged");
    assert_eq!(redis.status()["server"], other.connect_string());
    assert_eq!(mirror_keys(&redis, "zk:", &root), before, "nothing may be deleted");
    let log = redis.log();
    assert!(
        log.lines().any(|l| l.contains(&root) && l.contains("ZKSYNC.PULL")),
        "the log says why and what to do:\n{log}"
    );
    // Diverged, it applies nothing from the new ZooKeeper.
    other_zk.set(&format!("{root}/b"), b"3");
    other_zk.create_all(&format!("{root}/c"), b"4");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        mirror_keys(&redis, "zk:", &root),
        before,
        "nothing applied while diverged"
    );
    assert_eq!(redis.status()["state"], "diverged");
    // Commands still reach the new ZooKeeper.
    let outside = unique_root("diverged-push");
    redis.cmd(&["CONFIG", "SET", "zksync.allow", &outside]);
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &outside, "x"])), 0);
    assert_eq!(other_zk.get(&outside), Some(b"x".to_vec()));

    // The operator decides: PULL of the root adopts the new ZooKeeper.
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &root])), 3);
    assert_eq!(redis.status()["state"], "connected");
    assert_eq!(mirror_keys(&redis, "zk:", &root), other_zk.tree(&root));
    other_zk.set(&format!("{root}/b"), b"5");
    other_zk.create_all(&format!("{root}/d"), b"6");
    wait_mirror_equals(&redis, &other_zk, &root, "zk:", SETTLE);

    // And back to the first ZooKeeper (a later history): followed, no PULL needed.
    redis.cmd(&["CONFIG", "SET", "zksync.servers", &shared_zk().connect_string()]);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(redis.status()["state"], "connected");
}

/// Points the module at a closed port and waits until it has noticed.
fn go_away(redis: &Redis) {
    redis.cmd(&["CONFIG", "SET", "zksync.servers", &format!("127.0.0.1:{}", free_port())]);
    wait_until(SETTLE, "connecting", || redis.status()["state"] == "connecting");
}

#[test]
fn znodes_deleted_while_away_are_swept_on_return() {
    let root = unique_root("away");
    let zk = zk();
    for i in 0..10 {
        zk.create_all(&format!("{root}/n{i}"), b"v");
    }
    let redis = mirrored(&zk, &root);
    go_away(&redis);
    assert_eq!(error_code(redis.try_cmd(&["ZKSYNC.PUSH", &root, "x"])), "ZKDOWN");
    zk.delete_all(&format!("{root}/n3"));
    zk.delete_all(&format!("{root}/n7"));
    zk.set(&format!("{root}/n1"), b"changed while away");
    zk.create_all(&format!("{root}/new"), b"created while away");
    assert_eq!(mirror_keys(&redis, "zk:", &root).len(), 11, "nothing moves while away");
    redis.cmd(&["CONFIG", "SET", "zksync.servers", &shared_zk().connect_string()]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn a_root_that_vanished_while_away_is_not_wiped() {
    let root = unique_root("vanished");
    let zk = zk();
    for i in 0..5 {
        zk.create_all(&format!("{root}/n{i}"), b"v");
    }
    let redis = mirrored(&zk, &root);
    let before = mirror_keys(&redis, "zk:", &root);
    go_away(&redis);
    zk.delete_all(&root);
    redis.cmd(&["CONFIG", "SET", "zksync.servers", &shared_zk().connect_string()]);
    wait_until(SETTLE, "diverged", || redis.status()["state"] == "diverged");
    assert_eq!(mirror_keys(&redis, "zk:", &root), before, "nothing may be deleted");
    assert!(redis.log().contains("vanished"), "{}", redis.log());
    // The operator agrees: the mirror is emptied and follows ZooKeeper again.
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &root])), 0);
    assert_eq!(redis.status()["state"], "connected");
    assert!(mirror_keys(&redis, "zk:", &root).is_empty());
    zk.create_all(&format!("{root}/back"), b"again");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn config_file_and_config_rewrite() {
    let root = unique_root("conf");
    let dir = std::env::temp_dir().join(format!("zksync-conf-{}-{}", std::process::id(), root.replace('/', "_")));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("redis.conf");
    std::fs::write(
        &conf,
        format!(
            "loadmodule {}\nzksync.servers {}\nzksync.mirrors \"{root}=c:\"\nzksync.session-timeout 3000\n",
            module_path().display(),
            shared_zk().connect_string()
        ),
    )
    .unwrap();
    let zk = zk();
    zk.create_all(&format!("{root}/x"), b"from the file");
    let redis = Redis::start_with_config(&conf);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "c:", SETTLE);
    assert_eq!(redis.status()["session_timeout"], "3000");
    redis.cmd(&["CONFIG", "SET", "zksync.load-interval", "2000"]);
    redis.cmd(&["CONFIG", "SET", "zksync.mirrors", &format!("{root}=d:")]);
    redis.cmd(&["CONFIG", "REWRITE"]);
    let rewritten = std::fs::read_to_string(&conf).unwrap();
    // The rewritten file starts the server the same way.
    redis.kill();
    redis.restart();
    redis.wait_state("connected", SETTLE);
    assert_eq!(config_get(&redis, "zksync.load-interval"), "2000");
    assert_eq!(config_get(&redis, "zksync.mirrors"), format!("{root}=d:"));
    wait_mirror_equals(&redis, &zk, &root, "d:", SETTLE);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(rewritten.contains("zksync.load-interval 2000"), "{rewritten}");
    assert!(rewritten.contains("zksync.session-timeout 3000"), "{rewritten}");
    assert!(
        rewritten.contains(&format!("zksync.mirrors \"{root}=d:\""))
            || rewritten.contains(&format!("zksync.mirrors {root}=d:")),
        "{rewritten}"
    );
}

// ---------------------------------------------------------------- loading

/// MODULE LOADEX into `plain`, mirroring `root`, and waits for the mirror.
fn loadex_mirroring(plain: &Redis, so: &std::path::Path, zk: &ZkClient, root: &str) {
    plain.cmd(&[
        "MODULE",
        "LOADEX",
        so.to_str().unwrap(),
        "CONFIG",
        "zksync.servers",
        &shared_zk().connect_string(),
        "CONFIG",
        "zksync.mirrors",
        root,
    ]);
    plain.wait_state("connected", SETTLE);
    wait_mirror_equals(plain, zk, root, "zk:", SETTLE);
}

#[test]
fn module_load_and_loadex_into_a_plain_server_and_unload_refused() {
    let root = unique_root("loadex");
    let zk = zk();
    zk.create_all(&format!("{root}/x"), b"1");
    let plain = Redis::start_plain(&[]);
    let so = module_path();
    loadex_mirroring(&plain, &so, &zk, &root);
    let (code, message) = error(plain.try_cmd(&["MODULE", "UNLOAD", "zksync"]));
    assert_eq!(code, "ERR", "{message}");
    assert!(message.contains("unloading"), "{message}");
    // Refused by the module's deinit, or by Redis itself for the load sampler's timer.
    assert!(
        plain.log().contains("cannot be unloaded") || message.contains("timer"),
        "{message}"
    );
    // Still loaded, still mirroring.
    assert_alive(&plain);
    assert!(
        text(&plain.cmd(&["MODULE", "LIST"])).contains("zksync")
            || format!("{:?}", plain.cmd(&["MODULE", "LIST"])).contains("zksync")
    );
    zk.set(&format!("{root}/x"), b"after unload");
    wait_mirror_equals(&plain, &zk, &root, "zk:", SETTLE);
    // Loading it twice is refused, harmlessly.
    assert_eq!(
        error_code(plain.try_cmd(&["MODULE", "LOAD", so.to_str().unwrap()])),
        "ERR"
    );
    assert_alive(&plain);
    wait_mirror_equals(&plain, &zk, &root, "zk:", SETTLE);

    // MODULE LOAD with the defaults, then configured at run time.
    let other = Redis::start_plain(&[]);
    other.cmd(&["MODULE", "LOAD", so.to_str().unwrap()]);
    assert_eq!(config_get(&other, "zksync.servers"), "127.0.0.1:2181");
    assert_eq!(config_get(&other, "zksync.session-timeout"), "6000");
    assert_eq!(config_get(&other, "zksync.mirrors"), "");
    other.cmd(&["CONFIG", "SET", "zksync.servers", &shared_zk().connect_string()]);
    other.cmd(&["CONFIG", "SET", "zksync.mirrors", &root]);
    other.wait_state("connected", SETTLE);
    wait_mirror_equals(&other, &zk, &root, "zk:", SETTLE);
}

#[test]
fn a_bad_config_at_startup_stops_redis_with_the_reason() {
    for (name, bad, why) in [
        ("zksync.mirrors", "relative", "bad mirror root"),
        ("zksync.mirrors", "/a /a/b", "overlap"),
        ("zksync.servers", "nohostport", "host:port"),
    ] {
        let panic = std::panic::catch_unwind(|| Redis::start(&shared_zk().connect_string(), &[(name, bad)]))
            .err()
            .unwrap_or_else(|| panic!("redis-server started with {name} {bad:?}"));
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(message.contains("did not come up"), "{message}");
        assert!(message.contains(why), "{name} {bad:?}: the log says why: {message}");
    }
}

/// A LOADEX refused for a bad config must leave nothing behind, so that the
/// corrected LOADEX loads the module.
#[test]
fn loadex_with_a_bad_config_fails_cleanly() {
    let root = unique_root("bad-loadex");
    let zk = zk();
    zk.create_all(&root, b"r");
    let plain = Redis::start_plain(&[]);
    let so = module_path();
    for (name, bad) in [
        ("zksync.mirrors", "relative"),
        ("zksync.servers", ""),
        ("zksync.session-timeout", "abc"),
        // Not one of zksync's: Redis unloads the module after its OnLoad.
        ("zksync.bogus", "x"),
    ] {
        let (code, message) = error(plain.try_cmd(&["MODULE", "LOADEX", so.to_str().unwrap(), "CONFIG", name, bad]));
        assert_eq!(code, "ERR", "{name} {bad}: {message}");
        assert_alive(&plain);
        assert!(
            !format!("{:?}", plain.cmd(&["MODULE", "LIST"])).contains("zksync"),
            "a refused LOADEX leaves no module behind: {:?}",
            plain.cmd(&["MODULE", "LIST"])
        );
    }
    loadex_mirroring(&plain, &so, &zk, &root);
}

// ---------------------------------------------------------------- bad input

#[test]
fn bad_input_gets_an_error_never_a_crash() {
    let root = unique_root("bad");
    let zk = zk();
    zk.create_all(&format!("{root}/x"), b"1");
    let redis = mirroring(&root);
    let pid = redis.pid().unwrap();
    let nul = format!("{root}/a\0b");
    let control = format!("{root}/a\u{1}b");
    let cases: Vec<Vec<&str>> = vec![
        // Arity.
        vec!["ZKSYNC.PULL"],
        vec!["ZKSYNC.PULL", "/a", "extra"],
        vec!["ZKSYNC.PUSH"],
        vec!["ZKSYNC.PUSH", "/a"],
        vec!["ZKSYNC.PUSH", "/a", "v", "VERSION"],
        vec!["ZKSYNC.PUSH", "/a", "v", "VERSION", "1", "extra"],
        vec!["ZKSYNC.DELETE"],
        vec!["ZKSYNC.DELETE", "/a", "VERSION"],
        vec!["ZKSYNC.DELETE", "/a", "VERSION", "1", "extra"],
        vec!["ZKSYNC.STAT"],
        vec!["ZKSYNC.STAT", "/a", "extra"],
        vec!["ZKSYNC.LS"],
        vec!["ZKSYNC.LS", "/a", "extra"],
        vec!["ZKSYNC.STATUS", "extra"],
        // Numbers and keywords.
        vec!["ZKSYNC.PUSH", "/a", "v", "VERSION", "x"],
        vec!["ZKSYNC.PUSH", "/a", "v", "VERSION", "1.5"],
        vec!["ZKSYNC.PUSH", "/a", "v", "VERSION", "99999999999"],
        vec!["ZKSYNC.PUSH", "/a", "v", "VERSION", ""],
        vec!["ZKSYNC.PUSH", "/a", "v", "NOTVERSION", "1"],
        vec!["ZKSYNC.DELETE", "/a", "VERSION", "abc"],
        vec!["ZKSYNC.DELETE", "/a", "NOTVERSION", "1"],
        // Paths.
        vec!["ZKSYNC.PUSH", "foo", "v"],
        vec!["ZKSYNC.PUSH", "/a/", "v"],
        vec!["ZKSYNC.PUSH", "/a//b", "v"],
        vec!["ZKSYNC.PUSH", "", "v"],
        vec!["ZKSYNC.PUSH", "/a/./b", "v"],
        vec!["ZKSYNC.PUSH", &nul, "v"],
        vec!["ZKSYNC.PULL", "foo"],
        vec!["ZKSYNC.PULL", ""],
        vec!["ZKSYNC.PULL", "/a/../b"],
        vec!["ZKSYNC.PULL", &nul],
        vec!["ZKSYNC.DELETE", "/a/"],
        vec!["ZKSYNC.DELETE", ""],
        vec!["ZKSYNC.STAT", "foo"],
        vec!["ZKSYNC.STAT", ""],
        vec!["ZKSYNC.STAT", &nul],
        vec!["ZKSYNC.LS", "/a/"],
        vec!["ZKSYNC.LS", "a"],
        // ZooKeeper itself refuses this one.
        vec!["ZKSYNC.PUSH", &control, "v"],
    ];
    let mut conn = redis.conn();
    for args in &cases {
        let started = Instant::now();
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        let (code, message) = error(cmd.query::<Value>(&mut conn));
        assert_eq!(code, "ERR", "{args:?}: {message}");
        assert!(started.elapsed() < Duration::from_secs(1), "{args:?}");
        // The same connection answers the next command.
        let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
        assert_eq!(pong, "PONG", "{args:?}");
    }
    // ZooKeeper refuses these: an error with any code, never a crash.
    let zk_refuses: Vec<Vec<String>> = vec![
        vec!["ZKSYNC.DELETE".into(), "/".into()],
        vec!["ZKSYNC.DELETE".into(), "/zookeeper".into()],
        vec!["ZKSYNC.PUSH".into(), "/zookeeper/config".into(), "x".into()],
        vec!["ZKSYNC.PUSH".into(), format!("{root}/x/../y"), "v".into()],
    ];
    for args in &zk_refuses {
        let mut cmd = redis::cmd(&args[0]);
        for arg in &args[1..] {
            cmd.arg(arg);
        }
        let (code, message) = error(cmd.query::<Value>(&mut conn));
        println!("{args:?}: {code} {message}");
        let pong: String = redis::cmd("PING").query(&mut conn).unwrap();
        assert_eq!(pong, "PONG", "{args:?}");
    }
    // Not UTF-8.
    for cmd in [
        &b"ZKSYNC.PUSH"[..],
        b"ZKSYNC.PULL",
        b"ZKSYNC.STAT",
        b"ZKSYNC.LS",
        b"ZKSYNC.DELETE",
    ] {
        let mut args: Vec<&[u8]> = vec![cmd, b"/a\xff\xfe"];
        if cmd == b"ZKSYNC.PUSH" {
            args.push(b"v");
        }
        assert_eq!(error(bytes_cmd(&mut conn, &args)).0, "ERR");
    }
    assert_alive(&redis);
    assert_eq!(redis.pid(), Some(pid));
    assert!(!zk.exists("/a"), "nothing was written");
    assert_eq!(redis.status()["state"], "connected");
    assert!(!redis.log().contains("panicked"), "{}", redis.log());
}

// ---------------------------------------------------------------- ZooKeeper away

#[test]
fn zookeeper_unreachable_at_load_then_appears() {
    let port = free_port();
    let root = unique_root("appears");
    let redis = Redis::start(&format!("127.0.0.1:{port}"), &[("zksync.mirrors", &root)]);
    assert_eq!(redis.status()["state"], "connecting");
    let mut conn = redis.conn();
    let mut slowest = Duration::ZERO;
    for _ in 0..50 {
        let started = Instant::now();
        let _: String = redis::cmd("PING").query(&mut conn).unwrap();
        slowest = slowest.max(started.elapsed());
    }
    assert!(slowest < Duration::from_millis(50), "PING took {slowest:?}");
    for cmd in [
        vec!["ZKSYNC.PUSH", root.as_str(), "v"],
        vec!["ZKSYNC.PULL", root.as_str()],
        vec!["ZKSYNC.DELETE", root.as_str()],
    ] {
        let started = Instant::now();
        let (code, message) = error(redis.try_cmd(&cmd));
        assert_eq!(code, "ZKDOWN", "{cmd:?}: {message}");
        assert!(started.elapsed() < Duration::from_millis(500), "{cmd:?}");
    }
    assert_eq!(redis.cmd(&["ZKSYNC.STAT", &root]), Value::Nil);
    assert_eq!(redis.cmd(&["SET", "still", "writable"]), Value::Okay);

    let zk_server = Zk::start_on(port);
    let zk = ZkClient::connect(&zk_server.connect_string());
    zk.create_all(&format!("{root}/x"), b"1");
    redis.wait_state("connected", Duration::from_secs(10));
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &format!("{root}/y"), "2"])), 0);
    assert_eq!(get(&redis, &format!("zk:{root}/y")), Some(b"2".to_vec()));
}

// ---------------------------------------------------------------- auth

#[test]
fn digest_auth_mirrors_protected_data_and_wrong_credentials_say_auth_failed() {
    let root = unique_root("auth");
    let owner = ZkClient::connect_with_auth(&shared_zk().connect_string(), "digest", b"alice:s3cr3t-pw");
    owner.create_all(&root, b"");
    owner.create_all_with(&format!("{root}/secret"), b"hidden", zk::Acls::creator_all());
    assert!(
        zk().block_on(zk().client().get_data(&format!("{root}/secret")))
            .is_err(),
        "the znode is protected"
    );
    let good = Redis::start(
        &shared_zk().connect_string(),
        &[("zksync.mirrors", &root), ("zksync.auth", "digest:alice:s3cr3t-pw")],
    );
    good.wait_state("connected", SETTLE);
    wait_mirror_equals(&good, &owner, &root, "zk:", SETTLE);
    assert_eq!(get(&good, &format!("zk:{root}/secret")), Some(b"hidden".to_vec()));
    assert_eq!(int(good.cmd(&["ZKSYNC.PUSH", &format!("{root}/secret"), "new"])), 1);
    assert_eq!(owner.get(&format!("{root}/secret")), Some(b"new".to_vec()));
    let shown = format!(
        "{:?} {} {}",
        good.status(),
        text(&good.cmd(&["INFO", "zksync"])),
        good.log()
    );
    assert!(!shown.contains("s3cr3t"), "the secret leaks: {shown}");

    let bad = Redis::start(
        &shared_zk().connect_string(),
        &[("zksync.mirrors", &root), ("zksync.auth", "digest:alice:wr0ng-pw")],
    );
    wait_until(SETTLE, "auth_failed", || bad.status()["state"] == "auth_failed");
    assert_eq!(get(&bad, &format!("zk:{root}/secret")), None);
    assert_eq!(
        error_code(bad.try_cmd(&["ZKSYNC.PUSH", &format!("{root}/secret"), "x"])),
        "ZKNOAUTH"
    );
    assert_eq!(owner.get(&format!("{root}/secret")), Some(b"new".to_vec()));
    assert_alive(&bad);
    // Retries go on, the log is not flooded.
    std::thread::sleep(Duration::from_secs(4));
    let log = bad.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("zksync") && l.contains(" # "))
        .collect();
    assert!(!warnings.is_empty(), "a warning says why:\n{log}");
    assert!(warnings.len() <= 5, "log flood: {warnings:#?}");
    let shown = format!("{:?} {} {log}", bad.status(), text(&bad.cmd(&["INFO", "zksync"])));
    assert!(!shown.contains("wr0ng"), "the secret leaks: {shown}");
    assert_eq!(bad.status()["state"], "auth_failed");

    // The right credentials at run time: it recovers.
    bad.cmd(&["CONFIG", "SET", "zksync.auth", "digest:alice:s3cr3t-pw"]);
    bad.wait_state("connected", SETTLE);
    wait_mirror_equals(&bad, &owner, &root, "zk:", SETTLE);
    assert!(!bad.log().contains("s3cr3t"), "the secret must not be logged");
}

/// Znodes near ZooKeeper's 1 MB limit: a multi-read of many of them would be
/// a reply far over any buffer limit; they still sync, and change live.
#[test]
fn near_limit_znodes_sync_and_update() {
    let root = unique_root("big");
    let zk = zk();
    let big = vec![b'x'; 1_000_000];
    for i in 0..12 {
        zk.create_all(&format!("{root}/n{i}"), &big);
    }
    let redis = mirroring(&root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_secs(20));
    let changed = vec![b'y'; 999_000];
    zk.set(&format!("{root}/n3"), &changed);
    zk.set(&format!("{root}/n7"), &changed);
    wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_secs(20));
}
