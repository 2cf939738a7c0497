//! The mirror without faults: initial sync, live updates, commands, run-time
//! configs, loading, bad input. Real redis-server, real ZooKeeper; every test
//! asserts on data.

mod common;

use common::*;
use redis::Value;
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(5);

/// A redis-server mirroring `root` (with the default `zk:` prefix).
fn mirroring(root: &str) -> Redis {
    let redis = Redis::start(&shared_zk().connect_string(), &[("zksync.mirrors", root)]);
    redis.wait_state("connected", SETTLE);
    redis
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

fn error_code(result: redis::RedisResult<Value>) -> String {
    match result {
        Err(e) => e.code().unwrap_or("?").to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

fn map(v: Value) -> std::collections::HashMap<String, String> {
    match v {
        Value::Array(items) => items.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect(),
        Value::Map(items) => items.iter().map(|(k, v)| (text(k), text(v))).collect(),
        other => panic!("not a map: {other:?}"),
    }
}

#[test]
fn initial_sync_of_binary_empty_deep_and_odd_names() {
    let root = unique_root("initial");
    let zk = zk();
    let binary: Vec<u8> = (0..=255u8).collect();
    zk.create_all(&format!("{root}/binary"), &binary);
    zk.create_all(&format!("{root}/empty"), b"");
    let mut deep = root.clone();
    for i in 0..30 {
        deep.push_str(&format!("/d{i}"));
    }
    zk.create_all(&deep, b"deep");
    for name in ["with space", "ünïcödé", "glob*?[x]", "quote'\"", "percent%20"] {
        zk.create_all(&format!("{root}/odd/{name}"), name.as_bytes());
    }
    let redis = mirroring(&root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(get(&redis, &format!("zk:{root}/binary")), Some(binary));
    assert_eq!(get(&redis, &format!("zk:{root}/empty")), Some(vec![]));
    assert_eq!(get(&redis, &format!("zk:{deep}")), Some(b"deep".to_vec()));
    assert_eq!(int(redis.cmd(&["DBSIZE"])) as usize, zk.tree(&root).len());
}

#[test]
fn a_missing_root_is_mirrored_once_created_and_prefixes_are_honoured() {
    let root = unique_root("later");
    let other = unique_root("prefixed");
    let zk = zk();
    zk.create_all(&format!("{other}/x"), b"1");
    let redis = Redis::start(
        &shared_zk().connect_string(),
        &[("zksync.mirrors", &format!("{root} {other}=pfx:"))],
    );
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &other, "pfx:", SETTLE);
    assert_eq!(get(&redis, &format!("zk:{other}/x")), None);
    assert_eq!(mirror_keys(&redis, "zk:", &root).len(), 0);
    zk.create_all(&format!("{root}/a/b"), b"now");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn live_create_set_delete_and_subtree_delete() {
    let root = unique_root("live");
    let zk = zk();
    zk.create_all(&root, b"r");
    let redis = mirroring(&root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);

    for i in 0..20 {
        zk.create_all(&format!("{root}/sub/n{i}"), format!("v{i}").as_bytes());
    }
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    zk.set(&format!("{root}/sub/n3"), b"changed");
    let started = Instant::now();
    wait_until(SETTLE, "a set reaches the key", || {
        get(&redis, &format!("zk:{root}/sub/n3")) == Some(b"changed".to_vec())
    });
    println!("set visible after {:?}", started.elapsed());
    // Many quick sets of one znode: the key ends with the last one.
    for i in 0..200 {
        zk.set(&format!("{root}/sub/n4"), format!("{i}").as_bytes());
    }
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(get(&redis, &format!("zk:{root}/sub/n4")), Some(b"199".to_vec()));

    zk.delete_all(&format!("{root}/sub"));
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(mirror_keys(&redis, "zk:", &root).len(), 1);
}

#[test]
fn keyspace_notifications_follow_zookeeper_writes() {
    let root = unique_root("notify");
    let zk = zk();
    zk.create_all(&format!("{root}/k"), b"0");
    let redis = mirroring(&root);
    redis.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KA"]);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let mut conn = redis.conn();
    let mut pubsub = conn.as_pubsub();
    pubsub.set_read_timeout(Some(SETTLE)).unwrap();
    pubsub.subscribe(format!("__keyspace@0__:zk:{root}/k")).unwrap();
    let started = Instant::now();
    zk.set(&format!("{root}/k"), b"1");
    let message = pubsub.get_message().expect("a keyspace notification");
    let event: String = message.get_payload().unwrap();
    assert_eq!(event, "set");
    println!("notification after {:?}", started.elapsed());
}

#[test]
fn stale_hand_written_keys_are_swept_by_a_resync() {
    let root = unique_root("stale");
    let zk = zk();
    zk.create_all(&format!("{root}/real"), b"yes");
    let redis = mirroring(&root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    redis.cmd(&["SET", &format!("zk:{root}/forged"), "no"]);
    redis.cmd(&["SET", &format!("zk:{root}/real/child"), "no"]);
    redis.cmd(&["SET", &format!("zk:{root}x"), "a sibling, outside the mirror"]);
    redis.cmd(&["SET", "unrelated", "kept"]);
    let resyncs: i64 = redis.status()["resyncs"].parse().unwrap();
    // A new session timeout reconnects, and a reconnect resyncs.
    redis.cmd(&["CONFIG", "SET", "zksync.session-timeout", "2500"]);
    wait_until(SETTLE, "a resync", || {
        redis.status()["resyncs"].parse::<i64>().unwrap() > resyncs
    });
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(get(&redis, "unrelated"), Some(b"kept".to_vec()));
    assert!(get(&redis, &format!("zk:{root}x")).is_some());
}

#[test]
fn push_reads_its_write_and_compares_versions() {
    let root = unique_root("push");
    let zk = zk();
    let redis = mirroring(&root);
    let path = format!("{root}/a/b/c");
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &path, "v1"])), 0);
    // Read your write: the key holds it as soon as the reply is in.
    assert_eq!(get(&redis, &format!("zk:{path}")), Some(b"v1".to_vec()));
    assert_eq!(zk.get(&path), Some(b"v1".to_vec()));
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &path, "v2", "VERSION", "0"])), 1);
    assert_eq!(get(&redis, &format!("zk:{path}")), Some(b"v2".to_vec()));
    assert_eq!(
        error_code(redis.try_cmd(&["ZKSYNC.PUSH", &path, "v3", "VERSION", "0"])),
        "ZKBADVERSION"
    );
    assert_eq!(zk.get(&path), Some(b"v2".to_vec()));
    assert_eq!(
        error_code(redis.try_cmd(&["ZKSYNC.PUSH", &format!("{root}/nope"), "x", "VERSION", "0"])),
        "ZKNONODE"
    );

    // A push outside every mirror writes ZooKeeper only.
    let outside = unique_root("outside");
    assert_eq!(int(redis.cmd(&["ZKSYNC.PUSH", &outside, "o"])), 0);
    assert_eq!(zk.get(&outside), Some(b"o".to_vec()));
    assert_eq!(get(&redis, &format!("zk:{outside}")), None);

    assert_eq!(
        error_code(redis.try_cmd(&["ZKSYNC.DELETE", &format!("{root}/a")])),
        "ZKNOTEMPTY"
    );
    assert_eq!(
        error_code(redis.try_cmd(&["ZKSYNC.DELETE", &path, "VERSION", "0"])),
        "ZKBADVERSION"
    );
    assert_eq!(int(redis.cmd(&["ZKSYNC.DELETE", &path, "VERSION", "1"])), 1);
    assert_eq!(get(&redis, &format!("zk:{path}")), None);
    assert_eq!(int(redis.cmd(&["ZKSYNC.DELETE", &path])), 0);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn pull_stat_ls_status_and_info() {
    let root = unique_root("pull");
    let zk = zk();
    zk.create_all(&format!("{root}/b"), b"bee");
    zk.create_all(&format!("{root}/a"), b"ay");
    let redis = mirroring(&root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);

    let stat = map(redis.cmd(&["ZKSYNC.STAT", &format!("{root}/a")]));
    let want = zk.stat(&format!("{root}/a")).unwrap();
    assert_eq!(stat["version"], want.version.to_string());
    assert_eq!(stat["mzxid"], want.mzxid.to_string());
    assert_eq!(stat["czxid"], want.czxid.to_string());
    assert_eq!(stat["data_length"], "2");
    assert_eq!(stat["num_children"], "0");
    assert_eq!(stat["ephemeral_owner"], "0");
    for field in ["cversion", "pzxid", "mtime", "ctime"] {
        assert!(stat.contains_key(field), "{field}");
    }
    assert_eq!(redis.cmd(&["ZKSYNC.STAT", "/not/mirrored"]), Value::Nil);
    assert_eq!(
        redis.cmd(&["ZKSYNC.LS", &root]),
        Value::Array(vec![Value::BulkString(b"a".to_vec()), Value::BulkString(b"b".to_vec())])
    );
    assert_eq!(redis.cmd(&["ZKSYNC.LS", "/not/mirrored"]), Value::Nil);

    // PULL of a path outside every mirror copies it under zk: and counts it.
    let outside = unique_root("pulled");
    zk.create_all(&format!("{outside}/x"), b"1");
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &outside])), 2);
    assert_eq!(get(&redis, &format!("zk:{outside}/x")), Some(b"1".to_vec()));
    zk.delete_all(&format!("{outside}/x"));
    assert_eq!(int(redis.cmd(&["ZKSYNC.PULL", &outside])), 1);
    assert_eq!(get(&redis, &format!("zk:{outside}/x")), None);

    let status = redis.status();
    assert_eq!(status["state"], "connected");
    assert_eq!(status["mirrors"], "1");
    assert_eq!(status["znodes"], "3");
    assert_eq!(status["session_timeout"], "2000");
    assert!(status["session_id"].starts_with("0x"));
    for field in ["server", "last_zxid", "events_applied", "resyncs", "last_resync_ms"] {
        assert!(status.contains_key(field), "{field}");
    }
    let info = text(&redis.cmd(&["INFO", "zksync"]));
    assert!(info.contains("# zksync"), "{info}");
    assert!(info.contains("zksync_state:connected"), "{info}");
}

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
    wait_mirror_equals(&master, &zk, &root, "zk:", SETTLE);
    wait_mirror_equals(&replica, &zk, &root, "zk:", SETTLE);
    assert_eq!(error_code(replica.try_cmd(&["ZKSYNC.PULL", &root])), "READONLY");
    assert_eq!(
        error_code(replica.try_cmd(&["ZKSYNC.PUSH", &format!("{root}/x"), "no"])),
        "READONLY"
    );
    assert_eq!(zk.get(&format!("{root}/x")), Some(b"1".to_vec()));

    // Promoted, it takes over writing its mirror.
    replica.cmd(&["REPLICAOF", "NO", "ONE"]);
    zk.set(&format!("{root}/x"), b"after promotion");
    wait_mirror_equals(&replica, &zk, &root, "zk:", SETTLE);
}

#[test]
fn mirrors_and_servers_change_at_run_time() {
    let first = unique_root("first");
    let second = unique_root("second");
    let zk = zk();
    zk.create_all(&format!("{first}/a"), b"1");
    zk.create_all(&format!("{second}/b"), b"2");
    let redis = mirroring(&first);
    wait_mirror_equals(&redis, &zk, &first, "zk:", SETTLE);

    redis.cmd(&["CONFIG", "SET", "zksync.mirrors", &format!("{first} {second}")]);
    wait_mirror_equals(&redis, &zk, &second, "zk:", SETTLE);
    assert_eq!(redis.status()["mirrors"], "2");

    // A removed mirror stops; its keys stay.
    redis.cmd(&["CONFIG", "SET", "zksync.mirrors", &second]);
    zk.set(&format!("{first}/a"), b"changed");
    zk.set(&format!("{second}/b"), b"changed");
    wait_mirror_equals(&redis, &zk, &second, "zk:", SETTLE);
    assert_eq!(get(&redis, &format!("zk:{first}/a")), Some(b"1".to_vec()));

    // Bad values are refused and the old ones stay.
    for (name, bad) in [
        ("zksync.mirrors", "relative"),
        ("zksync.mirrors", "/a /a/b"),
        ("zksync.mirrors", "/a/"),
        ("zksync.servers", ""),
        ("zksync.servers", "nohostport"),
        ("zksync.session-timeout", "abc"),
        ("zksync.session-timeout", "10"),
        ("zksync.auth", "nocolon"),
        ("zksync.group", "a/b"),
        ("zksync.announce", "noport"),
        ("zksync.failover", "sometimes"),
    ] {
        let before = redis.cmd(&["CONFIG", "GET", name]);
        let err = redis.try_cmd(&["CONFIG", "SET", name, bad]).unwrap_err();
        assert!(!err.to_string().is_empty());
        assert_eq!(redis.cmd(&["CONFIG", "GET", name]), before, "{name} {bad}");
    }
    assert_eq!(redis.status()["state"], "connected");
}

#[test]
fn a_new_connect_string_reconnects_and_another_history_is_not_wiped() {
    let root = unique_root("history");
    let zk = zk();
    zk.create_all(&format!("{root}/a"), b"1");
    let redis = mirroring(&root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let before = mirror_keys(&redis, "zk:", &root);

    // A brand-new, empty ZooKeeper: its history is behind the mirror's.
    let other = Zk::start();
    redis.cmd(&["CONFIG", "SET", "zksync.servers", &other.connect_string()]);
    wait_until(SETTLE, "diverged", || redis.status()["state"] == "diverged");
    assert_eq!(redis.status()["server"], other.connect_string());
    assert_eq!(mirror_keys(&redis, "zk:", &root), before, "nothing may be deleted");
    assert!(redis.log().contains("ZKSYNC.PULL"));

    // The operator decides: PULL of the root adopts the new ZooKeeper.
    let other_zk = ZkClient::connect(&other.connect_string());
    other_zk.create_all(&format!("{root}/b"), b"2");
    redis.cmd(&["ZKSYNC.PULL", &root]);
    assert_eq!(redis.status()["state"], "connected");
    wait_mirror_equals(&redis, &other_zk, &root, "zk:", SETTLE);
    other_zk.set(&format!("{root}/b"), b"3");
    wait_mirror_equals(&redis, &other_zk, &root, "zk:", SETTLE);
}

#[test]
fn config_file_and_config_rewrite() {
    let root = unique_root("conf");
    let dir = std::env::temp_dir().join(format!("zksync-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("redis.conf");
    std::fs::write(
        &conf,
        format!(
            "loadmodule {}\nzksync.servers {}\nzksync.mirrors \"{root}\"\nzksync.session-timeout 3000\n",
            module_path().display(),
            shared_zk().connect_string()
        ),
    )
    .unwrap();
    let redis = Redis::start_with_config(&conf);
    redis.wait_state("connected", SETTLE);
    assert_eq!(redis.status()["mirrors"], "1");
    assert_eq!(redis.status()["session_timeout"], "3000");
    redis.cmd(&["CONFIG", "SET", "zksync.load-interval", "2000"]);
    redis.cmd(&["CONFIG", "REWRITE"]);
    let rewritten = std::fs::read_to_string(&conf).unwrap();
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(rewritten.contains("zksync.load-interval 2000"), "{rewritten}");
    assert!(rewritten.contains("zksync.session-timeout 3000"), "{rewritten}");
    assert!(
        rewritten.contains(&format!("zksync.mirrors \"{root}\""))
            || rewritten.contains(&format!("zksync.mirrors {root}")),
        "{rewritten}"
    );
}

#[test]
fn module_load_loadex_and_unload_refused() {
    let plain = Redis::start_plain(&[]);
    let so = module_path();
    plain.cmd(&[
        "MODULE",
        "LOADEX",
        so.to_str().unwrap(),
        "CONFIG",
        "zksync.servers",
        &shared_zk().connect_string(),
    ]);
    plain.wait_state("connected", SETTLE);
    let err = plain.try_cmd(&["MODULE", "UNLOAD", "zksync"]).unwrap_err();
    assert!(err.to_string().contains("unloading"), "{err}");
    assert_eq!(plain.status()["state"], "connected");
    assert!(plain.log().contains("cannot be unloaded"));

    let other = Redis::start_plain(&[]);
    other.cmd(&["MODULE", "LOAD", so.to_str().unwrap()]);
    assert_eq!(
        other.cmd(&["CONFIG", "GET", "zksync.servers"]),
        Value::Array(vec![
            Value::BulkString(b"zksync.servers".to_vec()),
            Value::BulkString(b"127.0.0.1:2181".to_vec())
        ])
    );
}

#[test]
fn bad_input_gets_an_error_never_a_crash() {
    let root = unique_root("bad");
    let redis = mirroring(&root);
    let big = "x".repeat(1024 * 1024 + 1);
    let nul = format!("{root}/a\0b");
    let cases: Vec<Vec<&str>> = vec![
        vec!["ZKSYNC.PULL"],
        vec!["ZKSYNC.PULL", "/a", "extra"],
        vec!["ZKSYNC.PUSH", "/a"],
        vec!["ZKSYNC.PUSH", "/a", "v", "VERSION"],
        vec!["ZKSYNC.PUSH", "/a", "v", "VERSION", "x"],
        vec!["ZKSYNC.PUSH", "/a", "v", "NOTVERSION", "1"],
        vec!["ZKSYNC.DELETE"],
        vec!["ZKSYNC.DELETE", "/a", "VERSION", "1.5"],
        vec!["ZKSYNC.STAT"],
        vec!["ZKSYNC.LS"],
        vec!["ZKSYNC.STATUS", "extra"],
        vec!["ZKSYNC.PUSH", "foo", "v"],
        vec!["ZKSYNC.PUSH", "/a/", "v"],
        vec!["ZKSYNC.PUSH", "/a//b", "v"],
        vec!["ZKSYNC.PUSH", "", "v"],
        vec!["ZKSYNC.STAT", "foo"],
        vec!["ZKSYNC.LS", "/a/"],
        vec!["ZKSYNC.PULL", "/a/../b"],
        vec!["ZKSYNC.PUSH", &nul, "v"],
        vec!["ZKSYNC.PUSH", "/big", &big],
    ];
    for args in &cases {
        let started = Instant::now();
        let err = redis.try_cmd(args).unwrap_err();
        assert!(
            err.code().is_some_and(|c| c == "ERR") || err.to_string().contains("wrong number"),
            "{:?}: {err}",
            &args[..args.len().min(2)]
        );
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(redis.cmd(&["PING"]), Value::SimpleString("PONG".into()));
    }
    // Commands that wait for ZooKeeper cannot run in MULTI or a script.
    let mut conn = redis.conn();
    let _: Value = redis::cmd("MULTI").query(&mut conn).unwrap();
    let _: Value = redis::cmd("ZKSYNC.PUSH")
        .arg(format!("{root}/m"))
        .arg("v")
        .query(&mut conn)
        .unwrap();
    let exec: redis::RedisResult<Value> = redis::cmd("EXEC").query(&mut conn);
    assert!(format!("{exec:?}").contains("MULTI"), "{exec:?}");
    let err = redis
        .try_cmd(&[
            "EVAL",
            &format!("return redis.call('ZKSYNC.PUSH', '{root}/e', 'v')"),
            "0",
        ])
        .unwrap_err();
    assert!(err.to_string().contains("script"), "{err}");
    assert!(zk().get(&format!("{root}/e")).is_none());
    assert_eq!(redis.cmd(&["PING"]), Value::SimpleString("PONG".into()));
}

#[test]
fn zookeeper_unreachable_at_load_then_appears() {
    let port = free_port();
    let root = unique_root("appears");
    let redis = Redis::start(&format!("127.0.0.1:{port}"), &[("zksync.mirrors", &root)]);
    assert_eq!(redis.status()["state"], "connecting");
    for _ in 0..20 {
        let started = Instant::now();
        redis.cmd(&["PING"]);
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "PING took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(error_code(redis.try_cmd(&["ZKSYNC.PUSH", &root, "v"])), "ZKDOWN");
    let zk_server = Zk::start_on(port);
    let zk = ZkClient::connect(&zk_server.connect_string());
    zk.create_all(&format!("{root}/x"), b"1");
    redis.wait_state("connected", Duration::from_secs(10));
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
}

#[test]
fn digest_auth_mirrors_protected_data_and_wrong_credentials_say_auth_failed() {
    let root = unique_root("auth");
    let owner = ZkClient::connect_with_auth(&shared_zk().connect_string(), "digest", b"alice:secret");
    owner.create_all(&root, b"");
    owner.create_all_with(&format!("{root}/secret"), b"s3cr3t", zk::Acls::creator_all());
    let good = Redis::start(
        &shared_zk().connect_string(),
        &[("zksync.mirrors", &root), ("zksync.auth", "digest:alice:secret")],
    );
    good.wait_state("connected", SETTLE);
    wait_until(SETTLE, "the protected znode mirrored", || {
        get(&good, &format!("zk:{root}/secret")) == Some(b"s3cr3t".to_vec())
    });
    let leaked = format!("{:?} {}", good.status(), text(&good.cmd(&["INFO", "zksync"])));
    assert!(!leaked.contains("secret"), "{leaked}");

    let bad = Redis::start(
        &shared_zk().connect_string(),
        &[("zksync.mirrors", &root), ("zksync.auth", "digest:alice:wrong")],
    );
    wait_until(SETTLE, "auth_failed", || bad.status()["state"] == "auth_failed");
    assert_eq!(get(&bad, &format!("zk:{root}/secret")), None);
    std::thread::sleep(Duration::from_secs(3));
    let warnings = bad
        .log()
        .lines()
        .filter(|l| l.contains("zksync") && l.contains("auth"))
        .count();
    assert!(warnings <= 5, "log flood: {warnings} warnings\n{}", bad.log());
    assert!(!bad.log().contains("wrong"), "the secret must not be logged");
}
