//! Redis Cluster: zksync on every node of a real cluster, created with
//! `redis-cli --cluster create` (3 masters, 3 replicas) with the module
//! loaded. Each master holds exactly the mirrored keys of its slots, the
//! replicas their master's; a node that serves no slot holds none (so
//! `create` and `add-node` accept it); `zksync.group` is refused. PUSH and
//! DELETE through redis-py's RedisCluster read their own writes; the change
//! stream is written by its slot's master; locks work through any node; a
//! `CLUSTER FAILOVER` is followed. A reshard of thousands of slots while
//! znodes change ends with `--cluster check` clean and every key right.

use redis::Value;
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use testkit::*;

const SETTLE: Duration = Duration::from_secs(20);
const STREAM: &str = "changes";

/// A cluster node with the module, on a free port, its bus on another.
fn node(zk: &str, root: &str, locks: &str) -> Redis {
    let bus = free_port().to_string();
    Redis::start(
        zk,
        &[
            ("cluster-enabled", "yes"),
            ("cluster-port", &bus),
            ("cluster-node-timeout", "2000"),
            ("zksync.mirrors", root),
            ("zksync.allow", locks),
            ("zksync.stream", STREAM),
        ],
    )
}

fn addr(redis: &Redis) -> String {
    format!("127.0.0.1:{}", redis.port())
}

/// `redis-cli ARGS...`; panics unless it succeeds. Its output.
fn redis_cli(args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(args).output().expect("run redis-cli");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-cli {args:?} failed:\n{text}");
    text
}

/// `redis-cli --cluster check` finds nothing wrong.
fn check_clean(redis: &Redis) {
    let report = redis_cli(&["--cluster", "check", &addr(redis)]);
    assert!(
        report.contains("[OK] All 16384 slots covered.") && !report.contains("[WARNING]") && !report.contains("[ERR]"),
        "cluster check:\n{report}"
    );
}

fn cluster_ok(redis: &Redis) -> bool {
    matches!(redis.try_cmd(&["CLUSTER", "INFO"]), Ok(v) if text(&v).contains("cluster_state:ok"))
}

/// Creates the cluster from `nodes`, one replica per master.
fn create(nodes: &[Redis]) {
    let addrs: Vec<String> = nodes.iter().map(addr).collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(addrs.iter().map(String::as_str));
    args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
    redis_cli(&args);
    wait_until(SETTLE, "the cluster to be ok", || nodes.iter().all(cluster_ok));
}

fn myid(redis: &Redis) -> String {
    text(&redis.cmd(&["CLUSTER", "MYID"]))
}

fn is_master(redis: &Redis) -> bool {
    matches!(redis.cmd(&["ROLE"]), Value::Array(ref parts) if text(&parts[0]) == "master")
}

/// Every string in a reply, depth first.
fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().flat_map(strings).collect(),
        other => vec![text(other)],
    }
}

/// The mirrored keys of every master, merged; panics on a key held twice
/// (a GET of a key whose slot the node does not serve is a failure too).
fn keys_on_masters(nodes: &[&Redis], root: &str) -> BTreeMap<String, Vec<u8>> {
    let mut all = BTreeMap::new();
    for redis in nodes.iter().filter(|r| is_master(r)) {
        for (path, value) in mirror_keys(redis, "zk:", root) {
            if all.insert(path.clone(), value).is_some() {
                panic!("{path} is held by two masters ({} and another)", redis.port());
            }
        }
    }
    all
}

fn wait_masters_mirror(nodes: &[&Redis], zk: &ZkClient, root: &str) {
    wait_tree_equals(
        zk,
        root,
        SETTLE,
        || keys_on_masters(nodes, root),
        || "the masters' keys".to_string(),
    );
}

/// Every replica's dataset equals its master's.
fn wait_replicas_equal(nodes: &[Redis]) {
    let digest = |r: &Redis| text(&r.cmd(&["DEBUG", "DIGEST"]));
    wait_until(SETTLE, "replicas equal to their masters", || {
        nodes.iter().filter(|r| !is_master(r)).all(|replica| {
            let role = replica.cmd(&["ROLE"]);
            let Value::Array(parts) = role else { return false };
            let port = match &parts[2] {
                Value::Int(p) => *p as u16,
                other => text(other).parse().unwrap_or(0),
            };
            let master = nodes.iter().find(|n| n.port() == port).expect("its master");
            digest(replica) == digest(master)
        })
    });
}

fn populate(zk: &ZkClient, root: &str, count: usize) {
    zk.create_all(root, b"root");
    for i in 0..count {
        zk.create_all(&format!("{root}/n{i}"), format!("v{i}").as_bytes());
    }
}

#[test]
fn keys_live_on_their_owners_and_clients_read_their_writes() {
    let zk_server = shared_zk();
    let zk = ZkClient::connect(&zk_server.connect_string());
    let root = unique_root("cluster");
    let locks = unique_root("cluster-locks");
    populate(&zk, &root, 300);
    let nodes: Vec<Redis> = (0..6)
        .map(|_| node(&zk_server.connect_string(), &root, &locks))
        .collect();
    for n in &nodes {
        n.wait_state("connected", SETTLE);
    }
    // No slot, no key: create accepts the nodes. A group is refused.
    std::thread::sleep(Duration::from_millis(500));
    for n in &nodes {
        assert_eq!(
            n.cmd(&["DBSIZE"]),
            Value::Int(0),
            "node {} holds keys before it serves a slot",
            n.port()
        );
    }
    let refused = nodes[0].try_cmd(&["CONFIG", "SET", "zksync.group", "g"]).unwrap_err();
    assert!(refused.to_string().contains("Redis Cluster"), "{refused}");
    create(&nodes);
    let all: Vec<&Redis> = nodes.iter().collect();
    wait_masters_mirror(&all, &zk, &root);
    wait_replicas_equal(&nodes);
    let served: i64 = nodes
        .iter()
        .filter(|n| is_master(n))
        .map(|n| n.status()["cluster_slots"].parse::<i64>().unwrap())
        .sum();
    assert_eq!(served, 16384);

    // A live change lands on its owner only.
    zk.set(&format!("{root}/n7"), b"changed");
    wait_masters_mirror(&all, &zk, &root);

    // Read-your-writes through redis-py's cluster client.
    let out = Command::new("python3")
        .arg(workspace_root().join("tests/py/cluster_ryw.py"))
        .args([&nodes[0].port().to_string(), &root, "30"])
        .env("PYTHONPATH", workspace_root().join("target/python"))
        .output()
        .expect("run python3");
    let report = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && report.starts_with("ok 30"), "{report}");
    assert!(!report.contains("redirected 0"), "no command was redirected: {report}");

    redirections(&nodes, &root);
    stream_is_written_by_its_owner(&nodes, &zk, &root);
    locks_work_through_any_node(&nodes, &locks);
    failover_is_followed(&nodes, &zk, &root);
    check_clean(&nodes[0]);
}

/// A command for a key served elsewhere answers `ASK slot host:port` of its
/// master on another master (a replica refuses it as any write: READONLY);
/// on the key's master it runs.
fn redirections(nodes: &[Redis], root: &str) {
    let path = format!("{root}/n1");
    let key = format!("zk:{path}");
    let slot = text(&nodes[0].cmd(&["CLUSTER", "KEYSLOT", &key]));
    let owner = nodes
        .iter()
        .find(|n| is_master(n) && n.try_cmd(&["GET", &key]).is_ok())
        .expect("the key's master");
    for n in nodes.iter().filter(|n| n.port() != owner.port()) {
        for command in [
            &["ZKSYNC.PULL", path.as_str()][..],
            &["ZKSYNC.PUSH", &path, "v1"],
            &["ZKSYNC.DELETE", &path],
        ] {
            let err = n.try_cmd(command).unwrap_err().to_string();
            let want = if is_master(n) {
                format!("{slot} 127.0.0.1:{}", owner.port())
            } else {
                "read only replica".to_string()
            };
            assert!(err.contains(&want), "{command:?} on {}: {err}", n.port());
        }
    }
    assert_eq!(owner.cmd(&["ZKSYNC.PULL", &path]), Value::Int(1));
}

/// The node serving the stream key's slot records changes of keys that live
/// on other nodes too.
fn stream_is_written_by_its_owner(nodes: &[Redis], zk: &ZkClient, root: &str) {
    let owner = nodes
        .iter()
        .filter(|n| is_master(n))
        .find(|n| n.try_cmd(&["XLEN", STREAM]).is_ok())
        .expect("the stream's master");
    for i in 0..20 {
        zk.set(&format!("{root}/n{i}"), format!("stream-{i}").as_bytes());
    }
    wait_until(SETTLE, "stream entries for every change", || {
        let Ok(entries) = owner.try_cmd(&["XREVRANGE", STREAM, "+", "-", "COUNT", "40"]) else {
            return false;
        };
        let values = strings(&entries);
        (0..20).all(|i| values.contains(&format!("stream-{i}")))
    });
    for n in nodes.iter().filter(|n| is_master(n) && n.port() != owner.port()) {
        assert_eq!(
            n.cmd(&["DBSIZE"]),
            Value::Int(mirror_keys(n, "zk:", root).len() as i64),
            "no stream on {}",
            n.port()
        );
    }
}

fn locks_work_through_any_node(nodes: &[Redis], locks: &str) {
    let lock = format!("{locks}/l");
    // A lock belongs to the connection that took it.
    let (mut a, mut b) = (nodes[0].conn(), nodes[4].conn());
    let first: i64 = redis::cmd("ZKSYNC.LOCK")
        .arg(&lock)
        .arg("TIMEOUT")
        .arg(2000)
        .query(&mut a)
        .unwrap();
    assert!(first > 0);
    let busy: Option<i64> = redis::cmd("ZKSYNC.LOCK")
        .arg(&lock)
        .arg("TIMEOUT")
        .arg(0)
        .query(&mut b)
        .unwrap();
    assert_eq!(busy, None);
    let check: redis::RedisResult<Value> = redis::cmd("ZKSYNC.CHECK").arg(&lock).arg(first).query(&mut a);
    assert!(check.is_ok(), "{check:?}");
    let on_other: i64 = redis::cmd("ZKSYNC.UNLOCK").arg(&lock).arg(first).query(&mut b).unwrap();
    assert_eq!(on_other, 0);
    let released: i64 = redis::cmd("ZKSYNC.UNLOCK").arg(&lock).arg(first).query(&mut a).unwrap();
    assert_eq!(released, 1);
    let again: i64 = redis::cmd("ZKSYNC.LOCK")
        .arg(&lock)
        .arg("TIMEOUT")
        .arg(2000)
        .query(&mut b)
        .unwrap();
    assert!(again > first, "{again} after {first}");
}

/// A replica promoted by `CLUSTER FAILOVER` writes its slots' keys.
fn failover_is_followed(nodes: &[Redis], zk: &ZkClient, root: &str) {
    let replica = nodes.iter().find(|n| !is_master(n)).expect("a replica");
    replica.cmd(&["CLUSTER", "FAILOVER"]);
    wait_until(SETTLE, "the replica to be promoted", || is_master(replica));
    wait_until(SETTLE, "the cluster to be ok", || nodes.iter().all(cluster_ok));
    for i in 0..300 {
        zk.set(&format!("{root}/n{i}"), format!("after-failover-{i}").as_bytes());
    }
    let all: Vec<&Redis> = nodes.iter().collect();
    wait_masters_mirror(&all, zk, root);
    assert!(replica.status()["cluster_slots"].parse::<i64>().unwrap() > 0);
    wait_replicas_equal(nodes);
}

#[test]
fn reshard_and_add_node_while_znodes_change() {
    let zk_server = shared_zk();
    let zk = ZkClient::connect(&zk_server.connect_string());
    let root = unique_root("reshard");
    populate(&zk, &root, 1500);
    let connect = zk_server.connect_string();
    let nodes: Vec<Redis> = (0..3).map(|_| node(&connect, &root, "")).collect();
    let addrs: Vec<String> = nodes.iter().map(addr).collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(addrs.iter().map(String::as_str));
    args.push("--cluster-yes");
    redis_cli(&args);
    wait_until(SETTLE, "the cluster to be ok", || nodes.iter().all(cluster_ok));
    let all: Vec<&Redis> = nodes.iter().collect();
    wait_masters_mirror(&all, &zk, &root);

    // A fourth node with the module joins empty.
    let new = node(&connect, &root, "");
    new.wait_state("connected", SETTLE);
    redis_cli(&["--cluster", "add-node", &addr(&new), &addrs[0]]);
    wait_until(SETTLE, "the new node to join", || cluster_ok(&new));
    assert_eq!(new.cmd(&["DBSIZE"]), Value::Int(0));

    // Reshard thousands of slots into it while a writer changes znodes.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, root, connect) = (stop.clone(), root.clone(), connect.clone());
        std::thread::spawn(move || {
            let zk = ZkClient::connect(&connect);
            let mut round = 0usize;
            while !stop.load(Ordering::Relaxed) {
                for i in (round % 7..1500).step_by(7) {
                    zk.set(&format!("{root}/n{i}"), format!("r{round}-{i}").as_bytes());
                }
                let extra = format!("{root}/extra{}", round % 50);
                if zk.exists(&extra) {
                    zk.delete_all(&extra);
                } else {
                    zk.create_all(&extra, b"x");
                }
                round += 1;
            }
            round
        })
    };
    let started = Instant::now();
    let to = myid(&new);
    redis_cli(&[
        "--cluster",
        "reshard",
        &addrs[0],
        "--cluster-from",
        "all",
        "--cluster-to",
        &to,
        "--cluster-slots",
        "2000",
        "--cluster-yes",
    ]);
    let from = myid(&nodes[0]);
    let to = myid(&nodes[1]);
    redis_cli(&[
        "--cluster",
        "reshard",
        &addrs[0],
        "--cluster-from",
        &from,
        "--cluster-to",
        &to,
        "--cluster-slots",
        "1000",
        "--cluster-yes",
    ]);
    let resharded = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().expect("writer");
    assert!(rounds > 0);
    eprintln!("resharded 3000 slots in {resharded:?} while the writer ran {rounds} rounds");

    check_clean(&new);
    let mut all: Vec<&Redis> = nodes.iter().collect();
    all.push(&new);
    wait_masters_mirror(&all, &zk, &root);
    // `--cluster-from all` splits the slots among the sources, rounding.
    let served = new.status()["cluster_slots"].parse::<i64>().unwrap();
    assert!(served >= 1990, "{served} slots");
}
