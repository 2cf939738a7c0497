//! The ZooKeeper secret: read from a private file, and kept out of SLOWLOG,
//! MONITOR, the log, INFO and STATUS. Real redis-server (or valkey-server),
//! real ZooKeeper with a digest-protected subtree.

use redis::Value;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use testkit::*;

const SETTLE: Duration = Duration::from_secs(10);
const SECRET: &str = "s3cr3t-in-file";

/// A subtree only `alice` (password `SECRET`) may change, with a znode only
/// she may read.
fn protected_root(name: &str) -> (String, ZkClient) {
    let root = unique_root(name);
    let owner = ZkClient::connect_with_auth(
        &shared_zk().connect_string(),
        "digest",
        format!("alice:{SECRET}").as_bytes(),
    );
    owner.create_all(&root, b"");
    owner.create_all_with(&format!("{root}/hidden"), b"for alice", zk::Acls::creator_all());
    (root, owner)
}

fn write_file(dir: &Path, name: &str, contents: &str, mode: u32) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_string_lossy().into_owned()
}

fn config_get(redis: &Redis, name: &str) -> String {
    match redis.cmd(&["CONFIG", "GET", name]) {
        Value::Array(items) if items.len() == 2 => text(&items[1]),
        Value::Map(items) if items.len() == 1 => text(&items[0].1),
        other => panic!("CONFIG GET {name}: {other:?}"),
    }
}

/// The message of CONFIG SET's refusal.
fn refusal(redis: &Redis, name: &str, value: &str) -> String {
    match redis.try_cmd(&["CONFIG", "SET", name, value]) {
        Err(e) => e.to_string(),
        Ok(v) => panic!("CONFIG SET {name} {value} was accepted: {v:?}"),
    }
}

/// Every string in a reply, nested ones too.
fn flat(v: &Value) -> String {
    match v {
        Value::Array(items) | Value::Set(items) => items.iter().map(flat).collect::<Vec<_>>().join(" "),
        Value::Map(items) => items
            .iter()
            .map(|(k, v)| format!("{} {}", flat(k), flat(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => text(other),
    }
}

/// Everything the server shows of itself that a secret must stay out of.
fn shown(redis: &Redis) -> String {
    format!(
        "{:?} {} {} {}",
        redis.status(),
        text(&redis.cmd(&["INFO", "everything"])),
        flat(&redis.cmd(&["SLOWLOG", "GET", "1000"])),
        redis.log()
    )
}

fn wait_hidden_mirrored(redis: &Redis, root: &str) {
    redis.wait_state("connected", SETTLE);
    let key = format!("zk:{root}/hidden");
    wait_until(SETTLE, "the protected znode mirrored", || {
        redis.cmd(&["GET", &key]) == Value::BulkString(b"for alice".to_vec())
    });
}

#[test]
fn the_auth_file_authenticates_and_stays_private() {
    let (root, owner) = protected_root("auth-file");
    let dir = temp_dir("auth-file");
    let file = write_file(
        &dir,
        "zk.auth",
        &format!("digest:alice:{SECRET}\n# a comment line\n"),
        0o600,
    );
    let redis = Redis::start(
        &shared_zk().connect_string(),
        &[
            ("zksync.mirrors", &root),
            ("zksync.auth-file", &file),
            ("slowlog-log-slower-than", "0"),
        ],
    );
    wait_hidden_mirrored(&redis, &root);

    // Znodes it creates: all rights for alice, read for everyone.
    let pushed = format!("{root}/pushed/deep");
    assert_eq!(redis.cmd(&["ZKSYNC.PUSH", &pushed, "v"]), Value::Int(0));
    for p in [format!("{root}/pushed"), pushed] {
        let (acls, _) = owner.block_on(owner.client().get_acl(&p)).expect("get_acl");
        let mut acls: Vec<_> = acls
            .iter()
            .map(|a| (a.permission(), a.scheme().to_string(), a.id().to_string()))
            .collect();
        acls.sort_by_key(|(_, scheme, _)| scheme.clone());
        assert_eq!(acls.len(), 2, "{p}: {acls:?}");
        assert_eq!((acls[0].0, acls[0].1.as_str()), (zk::Permission::ALL, "digest"), "{p}");
        assert!(acls[0].2.starts_with("alice:"), "{p}: {acls:?}");
        assert_eq!(acls[1], (zk::Permission::READ, "world".into(), "anyone".into()), "{p}");
    }
    assert_eq!(config_get(&redis, "zksync.auth-file"), file);
    assert_eq!(config_get(&redis, "zksync.auth"), "");

    // Refused, with the reason, and the old file stays in force.
    let open = write_file(&dir, "open.auth", &format!("digest:alice:{SECRET}\n"), 0o644);
    let bad_line = write_file(&dir, "bad.auth", &format!("{SECRET}\n"), 0o600);
    let cases = [
        (open.as_str(), "chmod 600"),
        ("/nonexistent/zk.auth", "No such file"),
        (dir.to_str().unwrap(), "not a regular file"),
        (bad_line.as_str(), "scheme:credentials"),
    ];
    for (path, why) in cases {
        let message = refusal(&redis, "zksync.auth-file", path);
        assert!(message.contains(why), "{path}: {message}");
        assert!(!message.contains(SECRET), "{message}");
    }
    let both = refusal(&redis, "zksync.auth", &format!("digest:alice:{SECRET}"));
    assert!(both.contains("both set"), "{both}");
    assert_eq!(config_get(&redis, "zksync.auth-file"), file);
    assert_eq!(redis.status()["state"], "connected");

    // A new file (another password) set at run time is read then: refused by ZooKeeper.
    let wrong = write_file(&dir, "wrong.auth", "digest:alice:wr0ng-pw\n", 0o400);
    redis.cmd(&["CONFIG", "SET", "zksync.auth-file", &wrong]);
    wait_until(SETTLE, "auth_failed", || redis.status()["state"] == "auth_failed");
    // Emptied, then zksync.auth in its place.
    redis.cmd(&[
        "CONFIG",
        "SET",
        "zksync.auth-file",
        "",
        "zksync.auth",
        &format!("digest:alice:{SECRET}"),
    ]);
    wait_hidden_mirrored(&redis, &root);
    let shown = shown(&redis);
    for secret in [SECRET, "wr0ng-pw"] {
        assert!(!shown.contains(secret), "{secret} leaks: {shown}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A MONITOR connection that records everything it is sent.
struct Monitor {
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Monitor {
    fn start(port: u16) -> Monitor {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buf) {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let monitor = Monitor { seen };
        wait_until(SETTLE, "MONITOR's +OK", || monitor.text().starts_with("+OK"));
        monitor
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }
}

#[test]
fn config_set_keeps_the_secret_out_of_slowlog_and_monitor() {
    let (root, _owner) = protected_root("slowlog");
    let redis = Redis::start(
        &shared_zk().connect_string(),
        &[("zksync.mirrors", &root), ("slowlog-log-slower-than", "0")],
    );
    let monitor = Monitor::start(redis.port());
    let auth = format!("digest:alice:{SECRET}");

    // Alone, among other configs, twice, in a transaction.
    redis.cmd(&["CONFIG", "SET", "zksync.auth", &auth]);
    wait_hidden_mirrored(&redis, &root);
    redis.cmd(&[
        "CONFIG",
        "SET",
        "slowlog-max-len",
        "1000",
        "ZKSYNC.AUTH",
        "digest:alice:other-pw",
    ]);
    assert_eq!(config_get(&redis, "zksync.auth"), "digest:alice:other-pw");
    let mut conn = redis.conn();
    let replies: Vec<Value> = redis::pipe()
        .atomic()
        .cmd("CONFIG")
        .arg(&["SET", "zksync.auth", &auth])
        .query(&mut conn)
        .unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(
        config_get(&redis, "zksync.auth"),
        auth,
        "the placeholder stood for the secret"
    );
    wait_hidden_mirrored(&redis, &root);
    // A refused value is not echoed either.
    let refused = refusal(&redis, "zksync.auth", "no-colon-s3cr3t");
    assert!(!refused.contains("s3cr3t"), "{refused}");
    redis.cmd(&["PING"]);

    let slowlog = flat(&redis.cmd(&["SLOWLOG", "GET", "1000"]));
    assert!(
        slowlog.contains("hidden secret"),
        "the CONFIG SETs are logged: {slowlog}"
    );
    wait_until(SETTLE, "MONITOR sees the PING", || monitor.text().contains("\"PING\""));
    let everything = format!("{slowlog} {} {}", monitor.text(), shown(&redis));
    for secret in [SECRET, "other-pw", "s3cr3t"] {
        assert!(!everything.contains(secret), "{secret} leaks: {everything}");
    }
}
