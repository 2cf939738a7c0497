//! Access: no client reaches further than it may, and nothing crashes
//! redis-server. The allowed roots and the reserved trees, the Redis ACL on
//! the keys of paths (with ACL LOG) and its categories on the commands, the
//! ZooKeeper ACL of znodes zksync creates under digest auth, config values
//! with control bytes, and a seeded fuzz of every command and config. After
//! every refusal ZooKeeper is read back with a client of its own: unchanged.

use redis::Value;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use testkit::*;
use zookeeper_client as zk;

const SETTLE: Duration = Duration::from_secs(5);

fn zk() -> ZkClient {
    ZkClient::connect(&shared_zk().connect_string())
}

/// The error code of a reply; panics on success.
fn code(result: redis::RedisResult<Value>) -> String {
    match result {
        Err(e) => e.code().unwrap_or("?").to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// A connection as `user` (password `pw`).
fn conn_as(redis: &Redis, user: &str) -> redis::Connection {
    redis::Client::open(format!("redis://{user}:pw@127.0.0.1:{}/", redis.port()))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

fn query(conn: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(conn)
}

/// `ACL LOG` entries, newest first, as field maps.
fn acl_log(redis: &Redis) -> Vec<BTreeMap<String, String>> {
    let Value::Array(entries) = redis.cmd(&["ACL", "LOG"]) else {
        panic!("ACL LOG is not an array");
    };
    entries
        .iter()
        .map(|entry| match entry {
            Value::Array(kv) => kv.chunks(2).map(|p| (text(&p[0]), text(&p[1]))).collect(),
            Value::Map(kv) => kv.iter().map(|(k, v)| (text(k), text(v))).collect(),
            other => panic!("ACL LOG entry {other:?}"),
        })
        .collect()
}

#[test]
fn commands_act_only_under_mirror_roots_and_allowed_roots() {
    let zk = zk();
    let root = unique_root("roots");
    let other = unique_root("other");
    zk.create_all(&format!("{root}/a"), b"1");
    zk.create_all(&format!("{other}/b"), b"2");
    let redis = Redis::start(&shared_zk().connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);

    let before = zk.tree(&other);
    let b = format!("{other}/b");
    let new = format!("{other}/new");
    for args in [
        vec!["ZKSYNC.PULL", &other],
        vec!["ZKSYNC.PUSH", &b, "x"],
        vec!["ZKSYNC.PUSH", &new, "x"],
        vec!["ZKSYNC.DELETE", &b],
        vec!["ZKSYNC.STAT", &b],
        vec!["ZKSYNC.LS", &other],
        vec!["ZKSYNC.PUSH", "/", "x"],
    ] {
        let err = redis.try_cmd(&args).expect_err("refused");
        assert_eq!(err.code(), Some("NOPERM"), "{args:?}: {err}");
        assert!(err.to_string().contains("zksync.allow"), "{args:?}: {err}");
    }
    assert_eq!(zk.tree(&other), before, "ZooKeeper unchanged");
    assert!(mirror_keys(&redis, "zk:", &other).is_empty());

    // A mirror root is allowed; a root of zksync.allow too, not mirrored.
    assert_eq!(redis.cmd(&["ZKSYNC.PUSH", &format!("{root}/a"), "2"]), Value::Int(1));
    redis.cmd(&["CONFIG", "SET", "zksync.allow", &format!("/elsewhere {other}")]);
    assert_eq!(redis.cmd(&["ZKSYNC.PUSH", &new, "x"]), Value::Int(0));
    assert_eq!(zk.get(&new), Some(b"x".to_vec()));
    assert_eq!(redis.cmd(&["ZKSYNC.STAT", &b]), Value::Nil);
    assert_eq!(redis.cmd(&["ZKSYNC.PULL", &other]), Value::Int(3));
    assert_eq!(mirror_keys(&redis, "zk:", &other), zk.tree(&other));
    assert_eq!(redis.cmd(&["ZKSYNC.DELETE", &new]), Value::Int(1));
    assert!(!zk.exists(&new));

    // A bad value is refused and the old one stays in force.
    assert!(redis.try_cmd(&["CONFIG", "SET", "zksync.allow", "relative"]).is_err());
    assert_eq!(
        redis.cmd(&["CONFIG", "GET", "zksync.allow"]),
        Value::Array(vec![
            Value::BulkString(b"zksync.allow".to_vec()),
            Value::BulkString(format!("/elsewhere {other}").into_bytes()),
        ])
    );
    redis.cmd(&["CONFIG", "SET", "zksync.allow", ""]);
    assert_eq!(code(redis.try_cmd(&["ZKSYNC.STAT", &b])), "NOPERM");
}

/// Its own ZooKeeper: the PULL of `/` copies the whole tree.
#[test]
fn reserved_trees_stay_out_of_reach_whatever_the_configs() {
    let server = Zk::start();
    let zk = ZkClient::connect(&server.connect_string());
    zk.create_all("/app/x", b"1");
    let redis = Redis::start(
        &server.connect_string(),
        &[("zksync.allow", "/"), ("zksync.group", "g")],
    );
    redis.wait_state("connected", SETTLE);
    wait_until(SETTLE, "this server leads its group", || {
        redis.cmd(&["ZKSYNC.LEADER"]) != Value::Nil
    });
    let epoch = zk.stat("/zksync/g/epoch").expect("epoch");
    let epoch_data = zk.get("/zksync/g/epoch");
    let leader = zk.stat("/zksync/g/leader").expect("leader");
    let quota = zk.tree("/zookeeper");

    for args in [
        ["ZKSYNC.PUSH", "/zksync/g/epoch", "999"].as_slice(),
        &["ZKSYNC.DELETE", "/zksync/g/leader"],
        &["ZKSYNC.DELETE", "/zksync/g/epoch", "VERSION", "0"],
        &["ZKSYNC.PUSH", "/zksync/new", "x"],
        &["ZKSYNC.PUSH", "/zksync", "x"],
        &["ZKSYNC.PUSH", "/zookeeper/quota/x", "1"],
        &["ZKSYNC.DELETE", "/zookeeper/config"],
        &["ZKSYNC.PULL", "/zksync"],
        &["ZKSYNC.PULL", "/zksync/g/members"],
    ] {
        assert_eq!(code(redis.try_cmd(args)), "NOPERM", "{args:?}");
    }
    assert_eq!(zk.stat("/zksync/g/epoch").map(|s| s.version), Some(epoch.version));
    assert_eq!(zk.get("/zksync/g/epoch"), epoch_data);
    assert_eq!(zk.stat("/zksync/g/leader").map(|s| s.czxid), Some(leader.czxid));
    assert!(!zk.exists("/zksync/new"));
    assert_eq!(zk.tree("/zookeeper"), quota);
    // The group did not notice: no election happened.
    assert_eq!(redis.status()["epoch"], "1");

    // A copy of everything leaves zksync's own tree out; ZooKeeper's is read.
    let Value::Int(copied) = redis.cmd(&["ZKSYNC.PULL", "/"]) else {
        panic!("PULL / is not an integer");
    };
    assert!(copied >= 4, "{copied}");
    assert_eq!(redis.cmd(&["KEYS", "zk:/zksync*"]), Value::Array(vec![]));
    assert_eq!(redis.cmd(&["GET", "zk:/app/x"]), Value::BulkString(b"1".to_vec()));
    assert_ne!(redis.cmd(&["EXISTS", "zk:/zookeeper"]), Value::Int(0));
    // Reading is not changing: STAT and LS under an allowed root answer.
    assert_eq!(redis.cmd(&["ZKSYNC.STAT", "/zksync/g"]), Value::Nil);
}

#[test]
fn the_redis_acl_governs_the_keys_of_paths() {
    let zk = zk();
    let root = unique_root("acl");
    for p in ["a", "app/a1", "app/b1"] {
        zk.create_all(&format!("{root}/{p}"), p.as_bytes());
    }
    let redis = Redis::start(&shared_zk().connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let app = format!("{root}/app");
    redis.cmd(&["ACL", "SETUSER", "reader", "on", ">pw", "%R~zk:*", "~app:*", "+@all"]);
    let (confined_self, confined_below) = (format!("~zk:{app}"), format!("~zk:{app}/*"));
    redis.cmd(&[
        "ACL",
        "SETUSER",
        "confined",
        "on",
        ">pw",
        &confined_self,
        &confined_below,
        "+@all",
    ]);
    let partial = format!("~zk:{app}/a*");
    redis.cmd(&[
        "ACL",
        "SETUSER",
        "partial",
        "on",
        ">pw",
        &confined_self,
        &partial,
        "+@all",
    ]);
    let tree = zk.tree(&root);

    // Reads the whole mirror, pushes nothing.
    let mut reader = conn_as(&redis, "reader");
    let a = format!("{root}/a");
    assert_ne!(query(&mut reader, &["ZKSYNC.STAT", &a]).unwrap(), Value::Nil);
    assert!(matches!(query(&mut reader, &["ZKSYNC.LS", &root]), Ok(Value::Array(_))));
    let refusals =
        |log: &[BTreeMap<String, String>]| -> usize { log.iter().map(|e| e["count"].parse::<usize>().unwrap()).sum() };
    let logged = refusals(&acl_log(&redis));
    for args in [
        vec!["ZKSYNC.PUSH", &a, "x"],
        vec!["ZKSYNC.DELETE", &a],
        vec!["ZKSYNC.PULL", &root],
    ] {
        let err = query(&mut reader, &args).expect_err("refused");
        assert_eq!(err.code(), Some("NOPERM"), "{args:?}: {err}");
    }
    // Redis folds repeated refusals of one key into one entry with a count.
    let log = acl_log(&redis);
    assert_eq!(refusals(&log), logged + 3, "{log:?}");
    assert_eq!(log[0]["reason"], "key");
    assert_eq!(log[0]["username"], "reader");
    assert_eq!(log[0]["object"], format!("zk:{root}"));
    assert_eq!(log[1]["object"], format!("zk:{a}"));
    assert_eq!(zk.tree(&root), tree, "ZooKeeper unchanged");

    // Confined to the app subtree: acts there, nowhere else, not even a read.
    let mut confined = conn_as(&redis, "confined");
    let mine = format!("{app}/mine");
    assert_eq!(
        query(&mut confined, &["ZKSYNC.PUSH", &mine, "m"]).unwrap(),
        Value::Int(0)
    );
    assert_eq!(zk.get(&mine), Some(b"m".to_vec()));
    assert_eq!(query(&mut confined, &["ZKSYNC.PULL", &app]).unwrap(), Value::Int(4));
    assert_eq!(query(&mut confined, &["ZKSYNC.DELETE", &mine]).unwrap(), Value::Int(1));
    for args in [vec!["ZKSYNC.PUSH", &a, "x"], vec!["ZKSYNC.STAT", &a]] {
        assert_eq!(code(query(&mut confined, &args)), "NOPERM", "{args:?}");
    }
    assert_eq!(zk.tree(&root), tree, "ZooKeeper unchanged");

    // A PULL writes all of its subtree or nothing: `partial` may not write
    // the key of app/b1, so the key of app/a1 (deleted by hand) stays gone.
    let a1 = format!("zk:{app}/a1");
    redis.cmd(&["DEL", &a1]);
    let mut partial = conn_as(&redis, "partial");
    assert_eq!(code(query(&mut partial, &["ZKSYNC.PULL", &app])), "NOPERM");
    assert_eq!(redis.cmd(&["EXISTS", &a1]), Value::Int(0));
    let log = acl_log(&redis);
    assert_eq!(
        (log[0]["username"].as_str(), log[0]["object"].clone()),
        ("partial", format!("zk:{app}/b1"))
    );
    // The default user may: the PULL repairs it.
    assert_eq!(redis.cmd(&["ZKSYNC.PULL", &app]), Value::Int(3));
    assert_eq!(redis.cmd(&["GET", &a1]), Value::BulkString(b"app/a1".to_vec()));
}

/// The documented ACL categories, on servers that let modules declare them
/// (Valkey, Redis 7.2+). Redis 7.0 gives module commands none: `-@write`
/// does not cover PUSH there.
#[test]
fn acl_categories_cover_the_commands_where_the_server_has_them() {
    let redis = Redis::start(&shared_zk().connect_string(), &[]);
    let commands: [(&str, &[&str]); 13] = [
        ("PULL", &["write"]),
        ("PUSH", &["write"]),
        ("DELETE", &["write"]),
        ("STAT", &["read"]),
        ("LS", &["read"]),
        ("LOAD", &["read"]),
        ("LEADER", &["read"]),
        ("STATUS", &["dangerous"]),
        ("FAILOVER", &["admin", "dangerous"]),
        ("LOCK", &["blocking"]),
        ("UNLOCK", &["fast"]),
        ("CHECK", &["fast"]),
        ("LOCKS", &[]),
    ];
    for category in ["read", "write", "admin", "dangerous", "blocking", "fast"] {
        let user = format!("no-{category}");
        redis.cmd(&[
            "ACL",
            "SETUSER",
            &user,
            "on",
            ">pw",
            "~*",
            "+@all",
            &format!("-@{category}"),
        ]);
        for (command, categories) in commands {
            let name = format!("ZKSYNC.{command}");
            let allowed = matches!(redis.cmd(&["ACL", "DRYRUN", &user, &name]), Value::Okay);
            let want = server() == Server::Redis || !categories.contains(&category);
            assert_eq!(allowed, want, "{name} for a user with -@{category} on {:?}", server());
        }
    }
}

#[test]
fn znodes_zksync_creates_belong_to_its_identity_under_digest_auth() {
    let root = unique_root("zkacl");
    let group = root.trim_start_matches("/t/").to_string();
    let redis = Redis::start(
        &shared_zk().connect_string(),
        &[
            ("zksync.allow", &root),
            ("zksync.auth", "digest:alice:s3cr3t"),
            ("zksync.group", &group),
        ],
    );
    redis.wait_state("connected", SETTLE);
    // A group's master writes once it holds its lease.
    wait_until(SETTLE, "this server leads its group", || {
        redis.try_cmd(&["SET", "probe", "1"]).is_ok()
    });
    let deep = format!("{root}/a/b");
    assert_eq!(redis.cmd(&["ZKSYNC.PUSH", &deep, "v"]), Value::Int(0));

    let anyone = zk();
    let member = format!("/zksync/{group}/members/127.0.0.1:{}", redis.port());
    wait_until(SETTLE, "the member znode", || anyone.exists(&member));
    for p in [root.clone(), format!("{root}/a"), deep.clone(), member] {
        let (acls, _) = anyone.block_on(anyone.client().get_acl(&p)).expect("get_acl");
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
    // Everyone reads; only alice writes.
    assert_eq!(anyone.get(&deep), Some(b"v".to_vec()));
    let refused = anyone.block_on(anyone.client().set_data(&deep, b"forged", None));
    assert_eq!(refused.err(), Some(zk::Error::NoAuth));
    assert_eq!(redis.cmd(&["ZKSYNC.PUSH", &deep, "w"]), Value::Int(1));
}

#[test]
fn config_values_with_control_bytes_are_refused_and_the_server_lives() {
    let redis = Redis::start(&shared_zk().connect_string(), &[]);
    redis.wait_state("connected", SETTLE);
    let mut conn = redis.conn();
    let strings = ["servers", "auth", "mirrors", "group", "announce", "allow"];
    let others = ["session-timeout", "failover", "failover-max-lag", "load-interval"];
    for name in strings.iter().chain(&others) {
        let name = format!("zksync.{name}");
        let before = redis.cmd(&["CONFIG", "GET", &name]);
        for bad in [&b"/a\0b"[..], b"/a\r\nb", b"\x1b[31m/x", b"/a\x7f", b"\xff\xfe"] {
            let reply: redis::RedisResult<Value> = redis::cmd("CONFIG").arg("SET").arg(&name).arg(bad).query(&mut conn);
            let message = reply.expect_err("refused").to_string();
            assert!(
                !message.bytes().any(|b| b.is_ascii_control()),
                "{name} {bad:?}: {message:?}"
            );
        }
        assert_eq!(
            redis.cmd(&["CONFIG", "GET", &name]),
            before,
            "{name}: an invalid value leaves the old one"
        );
    }
    // printf directives in a logged value are text, not formats.
    redis.cmd(&["CONFIG", "SET", "zksync.servers", "%s%s%n%s:1"]);
    wait_until(SETTLE, "the connect warning", || {
        redis.log().contains("cannot reach ZooKeeper at %s%s%n%s:1")
    });
    redis.cmd(&["CONFIG", "SET", "zksync.servers", &shared_zk().connect_string()]);
    redis.wait_state("connected", SETTLE);
    assert_eq!(redis.cmd(&["PING"]), Value::SimpleString("PONG".into()));
    assert_eq!(redis.status()["state"], "connected");
    assert!(!redis.log().contains("panic"), "{}", redis.log_tail());
}

/// xorshift64*: a deterministic stream from a fixed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One random argument: a path, a number, a keyword or raw bytes.
fn fuzz_arg(rng: &mut Rng) -> Vec<u8> {
    const PATHS: &[&str] = &[
        "/",
        "/fz",
        "/fz/a",
        "/fz/a/b",
        "/fz/%s%n",
        "relative",
        "",
        "/a/",
        "//",
        "/fz/../x",
        "/zksync/g/epoch",
        "/zksync",
        "/zookeeper/quota/x",
        "/fz/ü",
        "/fz/\u{e000}",
    ];
    const WORDS: &[&str] = &[
        "0",
        "-1",
        "1",
        "2147483648",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775809",
        "1e3",
        "abc",
        " 1",
        "VERSION",
        "version",
        "TO",
        "TIMEOUT",
        "FORCE",
        "PICK",
        "MASTER",
        "REPLICA",
        "ANY",
        "ZK",
        "127.0.0.1:1",
        "h:0",
    ];
    match rng.below(10) {
        0..=3 => PATHS[rng.below(PATHS.len())].as_bytes().to_vec(),
        4..=6 => WORDS[rng.below(WORDS.len())].as_bytes().to_vec(),
        7 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        8 => {
            let mut path = b"/fz/".to_vec();
            path.extend((0..rng.below(8)).map(|_| rng.next() as u8));
            path
        }
        _ => vec![
            b'v';
            if rng.below(4) == 0 {
                1024 * 1024 + 1
            } else {
                rng.below(4096)
            }
        ],
    }
}

/// Its own ZooKeeper: random pushes with `zksync.allow /` may land anywhere.
#[test]
fn fuzzed_commands_and_configs_always_get_a_reply_and_the_server_lives() {
    const COMMANDS: &[&str] = &[
        "ZKSYNC.PULL",
        "ZKSYNC.PUSH",
        "ZKSYNC.DELETE",
        "ZKSYNC.STAT",
        "ZKSYNC.LS",
        "ZKSYNC.STATUS",
        "ZKSYNC.LOAD",
        "ZKSYNC.LEADER",
        "ZKSYNC.FAILOVER",
        "ZKSYNC.FENCED",
        "ZKSYNC.FENCED-SYNC",
    ];
    const CONFIGS: &[&str] = &[
        "servers",
        "session-timeout",
        "auth",
        "mirrors",
        "group",
        "announce",
        "failover",
        "failover-max-lag",
        "load-interval",
        "allow",
    ];
    let server = Zk::start();
    let connect = server.connect_string();
    let redis = Redis::start(&connect, &[("zksync.mirrors", "/fz"), ("zksync.allow", "/")]);
    redis.wait_state("connected", SETTLE);
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port())).unwrap();
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(15))).unwrap();

    let mut rng = Rng(0x5eed_2026_1206);
    let started = Instant::now();
    let (mut calls, mut errors) = (0, 0);
    while calls < 5000 && started.elapsed() < Duration::from_secs(40) {
        let mut cmd = if rng.below(6) == 0 {
            let mut c = redis::cmd("CONFIG");
            c.arg("SET")
                .arg(format!("zksync.{}", rng.pick(CONFIGS)))
                .arg(fuzz_arg(&mut rng));
            c
        } else {
            let name: &str = COMMANDS[rng.below(COMMANDS.len())];
            let mut c = redis::cmd(name);
            for _ in 0..rng.below(6) {
                c.arg(fuzz_arg(&mut rng));
            }
            c
        };
        if rng.below(20) == 0 {
            // The same inside a script: blocking commands must refuse there.
            let mut script = redis::cmd("EVAL");
            script.arg("return redis.pcall(unpack(ARGV))").arg(0);
            for arg in cmd.args_iter() {
                if let redis::Arg::Simple(bytes) = arg {
                    script.arg(bytes);
                }
            }
            cmd = script;
        }
        calls += 1;
        match cmd.query::<Value>(&mut conn) {
            Ok(_) => {}
            Err(e) if e.kind() == redis::ErrorKind::IoError || e.is_connection_dropped() || e.is_timeout() => {
                panic!(
                    "call {calls} {:?} got no reply: {e}\n{}",
                    cmd.get_packed_command(),
                    redis.log_tail()
                )
            }
            Err(_) => errors += 1,
        }
    }
    assert!(calls >= 200, "only {calls} calls in the time");
    assert!(errors > 0 && errors < calls, "{errors} errors of {calls}");
    // Back to a sane configuration: the session recovers.
    for (name, value) in [
        ("zksync.servers", connect.as_str()),
        ("zksync.auth", ""),
        ("zksync.group", ""),
        ("zksync.mirrors", "/fz"),
    ] {
        redis.cmd(&["CONFIG", "SET", name, value]);
    }
    redis.wait_state("connected", Duration::from_secs(20));
    assert_eq!(redis.cmd(&["PING"]), Value::SimpleString("PONG".into()));
    let zk = ZkClient::connect(&connect);
    wait_mirror_equals(&redis, &zk, "/fz", "zk:", SETTLE);
    assert!(!redis.log().contains("panic"), "{}", redis.log_tail());
}
