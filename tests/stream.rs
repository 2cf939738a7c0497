//! The change stream: every mirrored key change as an entry of a Redis
//! Stream. A consumer replaying the stream ends with exactly ZooKeeper's
//! state: after the initial sync, live changes, a burst read through a
//! consumer group, changes made while the session expired, and a repaired
//! key. A resync after a cut writes only what changed. A blocked XREAD
//! wakes with a change. A replica holds the same entries, trimmed too, and
//! so does the AOF; trimming; configs at run time, and bad ones refused with
//! the old value kept. A stream key of another type is logged once; the
//! keyspace events are XADD's.

use redis::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use testkit::proxy::Proxy;
use testkit::*;

const SETTLE: Duration = Duration::from_secs(10);
const STREAM: &str = "changes";

/// One entry's fields, by name.
type Fields = BTreeMap<String, Vec<u8>>;

fn entries_of(reply: &Value) -> Vec<(String, Fields)> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| {
            let Value::Array(parts) = item else {
                panic!("entry {item:?}")
            };
            let Value::Array(kv) = &parts[1] else {
                panic!("fields {parts:?}")
            };
            let fields = kv
                .chunks(2)
                .map(|p| match &p[1] {
                    Value::BulkString(v) => (text(&p[0]), v.clone()),
                    other => (text(&p[0]), text(other).into_bytes()),
                })
                .collect();
            (text(&parts[0]), fields)
        })
        .collect()
}

fn entries(redis: &Redis) -> Vec<(String, Fields)> {
    entries_of(&redis.cmd(&["XRANGE", STREAM, "-", "+"]))
}

fn field(fields: &Fields, name: &str) -> String {
    String::from_utf8_lossy(&fields[name]).into_owned()
}

/// The state a consumer builds from `entries` for the paths under `root`.
fn replay(entries: &[(String, Fields)], root: &str) -> BTreeMap<String, Vec<u8>> {
    let mut state = BTreeMap::new();
    for (_, fields) in entries {
        let path = field(fields, "path");
        if !(path == root || path.starts_with(&format!("{root}/"))) {
            continue;
        }
        match field(fields, "op").as_str() {
            "set" => state.insert(path, fields["value"].clone()),
            "del" => state.remove(&path),
            op => panic!("op {op}"),
        };
    }
    state
}

fn wait_replay_equals(redis: &Redis, zk: &ZkClient, root: &str) {
    wait_until(SETTLE, "the stream's replay to equal ZooKeeper", || {
        replay(&entries(redis), root) == zk.tree(root)
    });
}

fn server(zk: &str, root: &str) -> Redis {
    let redis = Redis::start(zk, &[("zksync.mirrors", root), ("zksync.stream", STREAM)]);
    redis.wait_state("connected", SETTLE);
    redis
}

#[test]
fn the_initial_sync_and_live_changes_are_entries_in_order() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("stream-live");
    for i in 0..20 {
        zk.create_all(&format!("{root}/n{i}"), format!("v{i}").as_bytes());
    }
    let redis = server(&shared_zk().connect_string(), &root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let synced = entries(&redis);
    assert_eq!(synced.len(), 21, "one entry per key of the initial sync");
    assert_eq!(replay(&synced, &root), zk.tree(&root));
    let (_, first) = synced
        .iter()
        .find(|(_, f)| field(f, "path") == format!("{root}/n3"))
        .unwrap();
    assert_eq!(field(first, "op"), "set");
    assert_eq!(field(first, "key"), format!("zk:{root}/n3"));
    assert_eq!(field(first, "value"), "v3");
    let stat = zk.stat(&format!("{root}/n3")).unwrap();
    assert_eq!(field(first, "mzxid"), stat.mzxid.to_string());
    assert_eq!(field(first, "version"), "0");

    // Create, set, set, delete one znode, each seen before the next (a burst
    // would be read once, at its latest version): four entries, in order,
    // mzxid rising.
    let path = format!("{root}/live");
    let mine = || -> Vec<Fields> {
        entries(&redis)
            .into_iter()
            .skip(synced.len())
            .map(|(_, f)| f)
            .filter(|f| field(f, "path") == path)
            .collect()
    };
    let steps: [&dyn Fn(); 4] = [
        &|| zk.create_all(&path, b"a"),
        &|| zk.set(&path, b"b"),
        &|| zk.set(&path, b"b"),
        &|| zk.delete_all(&path),
    ];
    for (n, step) in steps.iter().enumerate() {
        step();
        wait_until(SETTLE, "the change's entry", || mine().len() > n);
    }
    wait_replay_equals(&redis, &zk, &root);
    let mine = mine();
    let ops: Vec<String> = mine.iter().map(|f| field(f, "op")).collect();
    assert_eq!(
        ops,
        ["set", "set", "set", "del"],
        "a new version of the same bytes is a change too"
    );
    let zxids: Vec<i64> = mine.iter().map(|f| field(f, "mzxid").parse().unwrap()).collect();
    assert!(zxids.windows(2).all(|w| w[0] < w[1]), "{zxids:?}");
    let versions: Vec<String> = mine[..3].iter().map(|f| field(f, "version")).collect();
    assert_eq!(versions, ["0", "1", "2"]);
}

#[test]
fn a_consumer_group_replays_a_burst_to_zookeepers_state() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("stream-burst");
    zk.create_all(&root, b"");
    let redis = server(&shared_zk().connect_string(), &root);
    redis.cmd(&["XGROUP", "CREATE", STREAM, "readers", "0", "MKSTREAM"]);
    for i in 0..300 {
        let path = format!("{root}/k{}", i % 37);
        match i % 5 {
            0 if zk.exists(&path) => zk.delete_all(&path),
            _ if zk.exists(&path) => zk.set(&path, format!("{i}").as_bytes()),
            _ => zk.create_all(&path, format!("{i}").as_bytes()),
        }
    }
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    // The consumer reads in pages and acknowledges, as a worker would.
    let mut read = Vec::new();
    loop {
        let reply = redis.cmd(&[
            "XREADGROUP",
            "GROUP",
            "readers",
            "w1",
            "COUNT",
            "50",
            "STREAMS",
            STREAM,
            ">",
        ]);
        let Value::Array(streams) = reply else { break };
        let Value::Array(stream) = &streams[0] else { break };
        let page = entries_of(&stream[1]);
        if page.is_empty() {
            break;
        }
        for (id, _) in &page {
            redis.cmd(&["XACK", STREAM, "readers", id]);
        }
        read.extend(page);
    }
    assert_eq!(replay(&read, &root), zk.tree(&root));
    let Value::Array(pending) = redis.cmd(&["XPENDING", STREAM, "readers"]) else {
        panic!("XPENDING")
    };
    assert_eq!(pending[0], Value::Int(0), "every entry acknowledged");
}

#[test]
fn changes_made_while_the_session_expired_and_repairs_are_entries() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("stream-expiry");
    for name in ["keep", "change", "gone"] {
        zk.create_all(&format!("{root}/{name}"), b"1");
    }
    let proxy = Proxy::start(&shared_zk().connect_string());
    let redis = server(&proxy.addr(), &root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let before = redis.status();
    let timeout = Duration::from_millis(before["session_timeout"].parse().unwrap());
    // A key changed by hand is repaired by the next resync, with an entry.
    redis.cmd(&["SET", &format!("zk:{root}/keep"), "by hand"]);
    // Silence past the session timeout: ZooKeeper expires the session while
    // znodes are created, changed and deleted.
    proxy.blackhole();
    zk.set(&format!("{root}/change"), b"2");
    zk.delete_all(&format!("{root}/gone"));
    zk.create_all(&format!("{root}/new/deep"), b"3");
    std::thread::sleep(timeout * 2 + Duration::from_millis(200));
    proxy.restore();
    wait_until(SETTLE, "a new session", || {
        let status = redis.status();
        status["state"] == "connected" && status["session_id"] != before["session_id"]
    });
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    wait_replay_equals(&redis, &zk, &root);
    let all = entries(&redis);
    let repaired = all
        .iter()
        .filter(|(_, f)| field(f, "path") == format!("{root}/keep") && field(f, "op") == "set")
        .count();
    assert_eq!(repaired, 2, "the sync and the repair");
    let gone: Vec<_> = all.iter().filter(|(_, f)| field(f, "op") == "del").collect();
    assert_eq!(gone.len(), 1);
    let deleted_at: i64 = field(&gone[0].1, "mzxid").parse().unwrap();
    let created = all
        .iter()
        .find(|(_, f)| field(f, "path") == format!("{root}/gone"))
        .unwrap();
    assert!(deleted_at >= field(&created.1, "mzxid").parse().unwrap());
}

#[test]
fn a_resync_after_a_cut_writes_only_what_changed() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("stream-resync");
    for i in 0..50 {
        zk.create_all(&format!("{root}/n{i}"), b"same");
    }
    zk.create_all(&format!("{root}/dir/leaf"), b"1");
    let proxy = Proxy::start(&shared_zk().connect_string());
    let redis = server(&proxy.addr(), &root);
    redis.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let synced = entries(&redis).len();
    let mut subscriber = redis.conn();
    let mut notifications = subscriber.as_pubsub();
    notifications.psubscribe(format!("__keyspace@0__:zk:{root}*")).unwrap();
    let resyncs = |redis: &Redis| redis.status()["resyncs"].parse::<u64>().unwrap();
    let before = resyncs(&redis);

    // Changes while the connection is silent reach the module only by the
    // resync after the reconnect.
    proxy.blackhole();
    zk.set(&format!("{root}/n3"), b"changed");
    zk.create_all(&format!("{root}/new"), b"new");
    zk.delete_all(&format!("{root}/dir"));
    proxy.cut();
    proxy.restore();
    wait_until(SETTLE, "a resync after the reconnect", || resyncs(&redis) > before);
    redis.wait_state("connected", SETTLE);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    wait_replay_equals(&redis, &zk, &root);

    let fresh: Vec<String> = entries(&redis)[synced..]
        .iter()
        .map(|(_, f)| format!("{} {}", field(f, "op"), field(f, "path")))
        .collect();
    let mut sets = fresh[..fresh.len().min(2)].to_vec();
    sets.sort();
    assert_eq!(sets, [format!("set {root}/n3"), format!("set {root}/new")], "{fresh:?}");
    assert_eq!(
        fresh[2..],
        [format!("del {root}/dir/leaf"), format!("del {root}/dir")],
        "the vanished, deepest first"
    );
    // No other key was written: one notification per entry.
    notifications
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut written = Vec::new();
    while let Ok(message) = notifications.get_message() {
        let key = message
            .get_channel_name()
            .trim_start_matches("__keyspace@0__:zk:")
            .to_string();
        written.push(format!("{} {key}", message.get_payload::<String>().unwrap()));
    }
    written.sort();
    let mut expected = fresh.clone();
    expected.sort();
    assert_eq!(written, expected, "keyspace notifications");
    assert_eq!(redis.status()["znodes"], zk.tree(&root).len().to_string());
}

#[test]
fn a_replica_holds_the_same_entries() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("stream-replica");
    zk.create_all(&format!("{root}/a"), b"1");
    let master = server(&shared_zk().connect_string(), &root);
    let replica = server(&shared_zk().connect_string(), &root);
    replica.cmd(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]);
    wait_mirror_equals(&master, &zk, &root, "zk:", SETTLE);
    for i in 0..20 {
        zk.create_all(&format!("{root}/r{i}"), b"x");
    }
    wait_mirror_equals(&master, &zk, &root, "zk:", SETTLE);
    wait_until(SETTLE, "the replica's stream to equal the master's", || {
        entries(&replica) == entries(&master) && !entries(&master).is_empty()
    });
}

#[test]
fn trimming_and_configs_at_run_time() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("stream-config");
    zk.create_all(&root, b"");
    let redis = Redis::start(&shared_zk().connect_string(), &[("zksync.mirrors", &root)]);
    redis.wait_state("connected", SETTLE);
    let count = |key: &str| match redis.cmd(&["XLEN", key]) {
        Value::Int(n) => n,
        other => panic!("{other:?}"),
    };
    // Off by default; on, renamed and off at run time.
    zk.create_all(&format!("{root}/before"), b"x");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!(count(STREAM), 0);
    redis.cmd(&["CONFIG", "SET", "zksync.stream", STREAM]);
    zk.create_all(&format!("{root}/on"), b"x");
    wait_until(SETTLE, "an entry", || count(STREAM) == 1);
    redis.cmd(&["CONFIG", "SET", "zksync.stream", "renamed"]);
    zk.create_all(&format!("{root}/renamed"), b"x");
    wait_until(SETTLE, "an entry in the renamed stream", || count("renamed") == 1);
    redis.cmd(&["CONFIG", "SET", "zksync.stream", ""]);
    zk.create_all(&format!("{root}/off"), b"x");
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    assert_eq!((count(STREAM), count("renamed")), (1, 1));

    // Approximate trimming.
    redis.cmd(&["CONFIG", "SET", "zksync.stream-maxlen", "10"]);
    redis.cmd(&["CONFIG", "SET", "zksync.stream", STREAM]);
    for i in 0..400 {
        zk.create_all(&format!("{root}/t{i}"), b"x");
    }
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let len = count(STREAM);
    assert!(
        (10..=200).contains(&len),
        "trimmed to about 10 (whole nodes of 100): {len}"
    );

    // Refused, the old value kept: a stream inside the mirror's keys, a
    // mirror or an allowed root that would take the stream in, a negative length.
    let refused: [(&str, String); 4] = [
        ("zksync.stream", format!("zk:{root}/s")),
        ("zksync.mirrors", "/=zk:".to_string()),
        ("zksync.stream-maxlen", "-1".to_string()),
        ("zksync.stream", "bad\u{1}key".to_string()),
    ];
    redis.cmd(&["CONFIG", "SET", "zksync.stream", "zk:/elsewhere"]);
    for (name, value) in &refused {
        let before = redis.cmd(&["CONFIG", "GET", name]);
        assert!(
            redis.try_cmd(&["CONFIG", "SET", name, value]).is_err(),
            "{name} {value}"
        );
        assert_eq!(redis.cmd(&["CONFIG", "GET", name]), before, "{name} kept");
    }
    assert!(redis.try_cmd(&["CONFIG", "SET", "zksync.allow", "/elsewhere"]).is_err());
}

#[test]
fn a_blocked_reader_wakes_with_the_change() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("stream-block");
    zk.create_all(&root, b"");
    let redis = server(&shared_zk().connect_string(), &root);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let mut reader = redis.conn();
    let blocked = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let reply: Value = redis::cmd("XREAD")
            .arg(&["BLOCK", "5000", "STREAMS", STREAM, "$"])
            .query(&mut reader)
            .unwrap();
        (started.elapsed(), reply)
    });
    std::thread::sleep(Duration::from_millis(200));
    zk.create_all(&format!("{root}/woken"), b"now");
    let (waited, reply) = blocked.join().unwrap();
    assert!(format!("{reply:?}").contains("woken"), "{reply:?}");
    assert!(waited < Duration::from_secs(2), "XREAD BLOCK woke after {waited:?}");
}

/// The entries, and the stream's IDs and counters by name.
type StreamState = (Vec<(String, Fields)>, Vec<(String, String)>);

/// What a replica or a reload needs to hold the same stream: the entries
/// and the stream's IDs and counters (not its internal layout).
fn stream_state(redis: &Redis) -> StreamState {
    let Value::Array(info) = redis.cmd(&["XINFO", "STREAM", STREAM]) else {
        panic!("XINFO STREAM")
    };
    let wanted = [
        "length",
        "last-generated-id",
        "entries-added",
        "recorded-first-entry-id",
    ];
    let counters = info
        .chunks(2)
        .map(|p| (text(&p[0]), text(&p[1])))
        .filter(|(name, _)| wanted.contains(&name.as_str()))
        .collect();
    (entries(redis), counters)
}

#[test]
fn a_replica_and_the_aof_hold_the_same_trimmed_stream() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("stream-trimmed");
    zk.create_all(&root, b"");
    let master = Redis::start(
        &shared_zk().connect_string(),
        &[
            ("zksync.mirrors", &root),
            ("zksync.stream", STREAM),
            ("zksync.stream-maxlen", "10"),
            ("appendonly", "yes"),
            ("appendfsync", "always"),
        ],
    );
    master.wait_state("connected", SETTLE);
    // Nodes of another size than the master's: a trim by whole nodes there
    // would keep other entries.
    let replica = Redis::start(
        &shared_zk().connect_string(),
        &[
            ("zksync.mirrors", &root),
            ("zksync.stream", STREAM),
            ("stream-node-max-entries", "7"),
        ],
    );
    replica.cmd(&["REPLICAOF", "127.0.0.1", &master.port().to_string()]);
    for i in 0..250 {
        zk.create_all(&format!("{root}/t{i}"), b"x");
    }
    wait_mirror_equals(&master, &zk, &root, "zk:", SETTLE);
    let state = stream_state(&master);
    assert!(state.0.len() < 200, "trimmed: {} entries", state.0.len());
    wait_until(SETTLE, "the replica's stream to equal the master's", || {
        stream_state(&replica) == state
    });
    // The AOF replays to the same stream.
    master.shutdown_save();
    master.restart();
    assert_eq!(stream_state(&master), state);
}

#[test]
fn a_stream_key_of_another_type_is_logged_once_and_the_keys_still_written() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("stream-wrongtype");
    zk.create_all(&root, b"");
    let redis = server(&shared_zk().connect_string(), &root);
    redis.cmd(&["SET", STREAM, "not a stream"]);
    for i in 0..3 {
        zk.create_all(&format!("{root}/k{i}"), b"x");
        wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    }
    let warned = redis.log().matches("cannot append to the change stream").count();
    assert_eq!(warned, 1, "{}", redis.log_tail());
    assert_eq!(text(&redis.cmd(&["GET", STREAM])), "not a stream");
    // Appends resume once the key is free.
    redis.cmd(&["DEL", STREAM]);
    zk.create_all(&format!("{root}/after"), b"y");
    wait_until(SETTLE, "an entry", || entries(&redis).len() == 1);
}

#[test]
fn keyspace_notifications_name_the_append_and_the_trim() {
    let zk = ZkClient::connect(&shared_zk().connect_string());
    let root = unique_root("stream-notify");
    zk.create_all(&root, b"");
    let redis = server(&shared_zk().connect_string(), &root);
    redis.cmd(&["CONFIG", "SET", "zksync.stream-maxlen", "1"]);
    redis.cmd(&["CONFIG", "SET", "notify-keyspace-events", "Kt"]);
    wait_mirror_equals(&redis, &zk, &root, "zk:", SETTLE);
    let mut subscriber = redis.conn();
    let mut sub = subscriber.as_pubsub();
    sub.set_read_timeout(Some(SETTLE)).unwrap();
    sub.subscribe(format!("__keyspace@0__:{STREAM}")).unwrap();
    // XADD's events: `xadd`, then `xtrim` when the append trimmed (whole
    // nodes of the stream, at most 100 entries or 4 KB each).
    for i in 0..101 {
        zk.create_all(&format!("{root}/k{i}"), b"x");
    }
    let mut events = Vec::new();
    while events.iter().filter(|e| *e == "xadd").count() < 101 {
        let message = sub.get_message().expect("a keyspace notification");
        events.push(message.get_payload::<String>().unwrap());
    }
    assert!(events.iter().all(|e| e == "xadd" || e == "xtrim"), "{events:?}");
    assert!(events.contains(&"xtrim".to_string()), "{events:?}");
    assert!(
        events.windows(2).all(|w| w[1] != "xtrim" || w[0] == "xadd"),
        "each xtrim follows its xadd: {events:?}"
    );
}
