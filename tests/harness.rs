//! The harness itself: servers come up, stop, restart with their data, and
//! leave nothing behind — not even when the test binary exits without
//! dropping them.

use redis::Value;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use testkit::*;

const CHILD_ENV: &str = "ZKSYNC_HARNESS_CHILD";

fn closed(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn shared_zookeeper_and_a_redis_with_the_module() {
    let zk = shared_zk();
    assert!(std::ptr::eq(zk, shared_zk()), "one ZooKeeper per test binary");
    let client = ZkClient::connect(&zk.connect_string());
    let root = unique_root("harness");
    assert!(root.starts_with("/t/harness-") && root.ends_with(&format!("-{}", std::process::id())));
    assert_ne!(root, unique_root("harness"));
    client.create_all(&format!("{root}/a/b"), b"x");
    client.create_all(&format!("{root}/a/b"), b"y");
    assert_eq!(client.get(&format!("{root}/a/b")), Some(b"y".to_vec()));
    assert_eq!(client.tree(&root).len(), 3);
    client.set(&format!("{root}/a"), b"z");
    assert_eq!(client.tree(&root)[&format!("{root}/a")], b"z");
    client.delete_all(&root);
    assert!(!client.exists(&root));
    assert!(client.tree(&root).is_empty());
    assert_eq!(client.get(&root), None);

    let redis = Redis::start(&zk.connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", Duration::from_secs(5));
    assert_eq!(redis.cmd(&["PING"]), Value::SimpleString("PONG".into()));
    assert_eq!(redis.status()["server"], zk.connect_string());
    let (port, dir) = (redis.port(), redis.dir().to_path_buf());
    assert!(redis.log().contains("zksync"), "the log is readable");
    drop(redis);
    assert!(closed(port));
    assert!(!dir.exists(), "Drop removes the redis dir");
}

#[test]
fn extra_options_override_the_defaults() {
    let redis = Redis::start_plain(&[("save", "3600 1"), ("hz", "20")]);
    let get = |name: &str| match redis.cmd(&["CONFIG", "GET", name]) {
        Value::Array(items) => text(&items[1]),
        Value::Map(items) => text(&items[0].1),
        other => panic!("{other:?}"),
    };
    assert_eq!(get("save"), "3600 1");
    assert_eq!(get("hz"), "20");
    assert_eq!(get("appendonly"), "no");
    assert_eq!(get("repl-diskless-sync-delay"), "0");
    assert_eq!(get("bind"), "127.0.0.1");
    assert_eq!(get("dir"), redis.dir().to_string_lossy());
    assert_eq!(redis.cmd(&["MODULE", "LIST"]), Value::Array(vec![]), "plain: no module");

    let with_module = Redis::start("127.0.0.1:1", &[("zksync.session-timeout", "3000")]);
    assert_eq!(
        with_module.cmd(&["CONFIG", "GET", "zksync.session-timeout"]),
        Value::Array(vec![
            Value::BulkString(b"zksync.session-timeout".to_vec()),
            Value::BulkString(b"3000".to_vec())
        ])
    );
    assert_eq!(with_module.status()["state"], "connecting");
}

#[test]
fn a_standalone_zookeeper_restarts_with_its_data() {
    let zk = Zk::start();
    let (port, dir) = (zk.port(), zk.dir().to_path_buf());
    assert_eq!(zk.connect_string(), format!("127.0.0.1:{port}"));
    assert_eq!(four_letter(&zk.connect_string(), "ruok").as_deref(), Some("imok"));
    let client = ZkClient::connect(&zk.connect_string());
    client.create_all("/kept/here", b"data");
    drop(client);
    zk.kill();
    assert!(closed(port));
    zk.restart();
    let client = ZkClient::connect(&zk.connect_string());
    assert_eq!(client.get("/kept/here"), Some(b"data".to_vec()));
    drop(client);
    drop(zk);
    assert!(closed(port));
    assert!(!dir.exists(), "Drop removes the ZooKeeper dir");
}

#[test]
fn redis_shutdown_save_restart_and_kill() {
    let redis = Redis::start_plain(&[]);
    redis.cmd(&["SET", "k", "v"]);
    redis.shutdown_save();
    assert!(closed(redis.port()));
    assert!(redis.dir().join("dump.rdb").exists());
    redis.restart();
    assert_eq!(redis.cmd(&["GET", "k"]), Value::BulkString(b"v".to_vec()));
    redis.kill();
    assert!(closed(redis.port()));
    redis.restart();
    assert_eq!(redis.cmd(&["GET", "k"]), Value::BulkString(b"v".to_vec()));
    assert!(redis.log().contains("DB loaded from disk"), "{}", redis.log());
}

#[test]
fn a_redis_that_cannot_start_panics_with_its_log() {
    let panic = std::panic::catch_unwind(|| Redis::start_plain(&[("no-such-option", "1")]))
        .err()
        .expect("redis-server must refuse an unknown option");
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_else(|| panic.downcast_ref::<&str>().unwrap_or(&"").to_string());
    assert!(message.contains("did not come up"), "{message}");
    assert!(message.contains("no-such-option"), "the log tail is shown: {message}");
}

#[test]
fn mirror_helpers_escape_globs_and_skip_siblings() {
    let redis = Redis::start_plain(&[]);
    let root = "/t/x[1]*?";
    for key in [
        "zk:/t/x[1]*?",
        "zk:/t/x[1]*?/a",
        "zk:/t/x[1]*?/a/b c",
        "zk:/t/x[1]*?0",
        "zk:/t/x1",
        "zk:/t/x[1]",
        "other:/t/x[1]*?/z",
    ] {
        redis.cmd(&["SET", key, key]);
    }
    redis.cmd(&["HSET", "zk:/t/x[1]*?/hash", "f", "v"]);
    let keys = mirror_keys(&redis, "zk:", root);
    assert_eq!(
        keys.keys().collect::<Vec<_>>(),
        ["/t/x[1]*?", "/t/x[1]*?/a", "/t/x[1]*?/a/b c", "/t/x[1]*?/hash"]
    );
    assert_eq!(keys["/t/x[1]*?/a"], b"zk:/t/x[1]*?/a");
    assert!(String::from_utf8_lossy(&keys["/t/x[1]*?/hash"]).contains("WRONGTYPE"));
    assert_eq!(mirror_keys(&redis, "other:", root).len(), 1);
}

#[test]
fn wait_mirror_equals_explains_the_difference() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("diff");
    zk.create_all(&format!("{root}/same"), b"1");
    zk.create_all(&format!("{root}/changed"), b"zk value");
    zk.create_all(&format!("{root}/missing"), b"");
    let redis = Redis::start_plain(&[]);
    redis.cmd(&["SET", &format!("zk:{root}"), ""]);
    redis.cmd(&["SET", &format!("zk:{root}/same"), "1"]);
    redis.cmd(&["SET", &format!("zk:{root}/changed"), "redis value"]);
    redis.cmd(&["SET", &format!("zk:{root}/extra"), "x"]);
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_millis(200))
    }))
    .expect_err("the mirror differs");
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains(&format!("missing: [\"{root}/missing\"]")), "{message}");
    assert!(message.contains(&format!("extra: [\"{root}/extra\"]")), "{message}");
    assert!(
        message.contains("zk \\\"zk value\\\" redis \\\"redis value\\\""),
        "{message}"
    );

    redis.cmd(&["DEL", &format!("zk:{root}/extra")]);
    redis.cmd(&["SET", &format!("zk:{root}/changed"), "zk value"]);
    redis.cmd(&["SET", &format!("zk:{root}/missing"), ""]);
    wait_mirror_equals(&redis, &zk, &root, "zk:", Duration::from_secs(1));
    let started = std::time::Instant::now();
    wait_until(Duration::from_secs(1), "a condition that holds", || true);
    assert!(started.elapsed() < Duration::from_millis(100));
}

#[test]
fn the_ensemble_forms_and_survives_a_member() {
    let ensemble = shared_ensemble();
    let members: Vec<String> = (0..3).map(|i| ensemble.member_addr(i)).collect();
    assert_eq!(ensemble.connect_string(), members.join(","));
    let modes: Vec<String> = members
        .iter()
        .map(|m| four_letter(m, "srvr").unwrap_or_default())
        .collect();
    assert_eq!(
        modes.iter().filter(|m| m.contains("Mode: leader")).count(),
        1,
        "{modes:?}"
    );
    assert_eq!(
        modes.iter().filter(|m| m.contains("Mode: follower")).count(),
        2,
        "{modes:?}"
    );

    let client = ZkClient::connect(&ensemble.connect_string());
    let root = unique_root("ensemble");
    client.create_all(&root, b"before");
    // Kill a follower: the quorum stays, the member's data comes back with it.
    let follower = (0..3).find(|i| modes[*i].contains("follower")).unwrap();
    ensemble.kill(follower);
    assert!(four_letter(&members[follower], "ruok").is_none());
    let survivor = ZkClient::connect(&members[(follower + 1) % 3]);
    survivor.set(&root, b"during");
    ensemble.start_member(follower);
    let returned = ZkClient::connect(&members[follower]);
    wait_until(Duration::from_secs(10), "the returned member catches up", || {
        returned.get(&root) == Some(b"during".to_vec())
    });
}

/// Not a test on its own: run by `servers_die_with_the_test_binary` in a child
/// process, where it starts servers and exits without dropping them.
#[test]
fn leaves_servers_behind_when_run_as_a_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let zk = shared_zk();
    let redis = Redis::start(&zk.connect_string(), &[]);
    println!(
        "SERVERS {} {} {} {}",
        zk.port(),
        zk.dir().display(),
        redis.port(),
        redis.dir().display()
    );
    std::mem::forget(redis);
}

#[test]
fn servers_die_with_the_test_binary() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "leaves_servers_behind_when_run_as_a_child", "--nocapture"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("run the child test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("SERVERS "))
        .unwrap_or_else(|| panic!("no SERVERS line in {stdout}"));
    let fields: Vec<&str> = line.split(' ').collect();
    let (zk_port, zk_dir, redis_port, redis_dir): (u16, &Path, u16, &Path) = (
        fields[0].parse().unwrap(),
        Path::new(fields[1]),
        fields[2].parse().unwrap(),
        Path::new(fields[3]),
    );
    wait_until(Duration::from_secs(5), "the child's servers to die", || {
        closed(zk_port)
            && closed(redis_port)
            && processes_mentioning(&zk_dir.to_string_lossy()).is_empty()
            && processes_mentioning(&redis_dir.to_string_lossy()).is_empty()
    });
    wait_until(Duration::from_secs(5), "the child's dirs to go", || {
        !zk_dir.exists() && !redis_dir.exists()
    });
}
