//! Failover: three redis-servers with the module in one group, a real
//! 3-node ZooKeeper ensemble. Every scenario runs a writer that INCRs a
//! counter on whoever is master and records each acknowledged value, and a
//! prober that writes through every member to catch two accepting at once.

use redis::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use testkit::group::*;
use testkit::proxy::Proxy;
use testkit::sentinel_client::{Library, SentinelClient};
use testkit::writer::{connect, longest_gap, lost_writes, Acked, Background};
use testkit::*;

const SESSION_TIMEOUT: Duration = Duration::from_millis(2000);

/// The scenarios run one at a time: each loads both cores, and one kills a
/// server of the shared ensemble.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn loaded(name: &str) -> Loaded {
    loaded_with(name, &[])
}

/// A converged group of three on the shared ensemble, with the writer and
/// the prober running.
fn loaded_with(name: &str, extra: &[(&str, &str)]) -> Loaded {
    loaded_on(name, &shared_ensemble().connect_string(), extra)
}

#[test]
fn bootstrap_elects_exactly_one_master_and_the_rest_follow() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let g = Group::start("boot", &ensemble.connect_string(), 3, &[]);
    let (master, epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    assert_eq!(epoch, 1);

    // The leader znode names the master, owned by a session; epoch counter and history agree.
    let zk = ZkClient::connect(&ensemble.connect_string());
    let leader: serde_json::Value =
        serde_json::from_slice(&zk.get(&format!("/zksync/{}/leader", g.name)).expect("leader znode")).unwrap();
    assert_eq!(leader["id"], g.id(master));
    assert_eq!(leader["addr"], g.id(master));
    assert_eq!(leader["epoch"], 1);
    assert!(zk.ephemeral_owner(&format!("/zksync/{}/leader", g.name)).unwrap() != 0);
    assert_eq!(zk.get(&format!("/zksync/{}/epoch", g.name)).unwrap(), b"1");
    let entries = history(&zk, &g.name);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["reason"], "bootstrap");
    // The master records the offset it publishes, for candidates' lag.
    wait_until(Duration::from_secs(5), "the group's offset recorded", || {
        zk.get(&format!("/zksync/{}/offset", g.name))
            .is_some_and(|d| String::from_utf8_lossy(&d).parse::<i64>().is_ok())
    });

    // STATUS of every member.
    for (i, m) in g.members.iter().enumerate() {
        let status = m.status();
        assert_eq!(status["leader"], g.id(master));
        assert_eq!(status["epoch"], "1");
        assert_eq!(status["fenced"], "0");
        assert_eq!(status["role"], if i == master { "master" } else { "replica" });
    }

    // Only the master takes writes, and they reach the replicas.
    let m = &g.members[master];
    m.cmd(&["SET", "k", "v"]);
    for (i, r) in g.members.iter().enumerate() {
        if i != master {
            let e = r.try_cmd(&["SET", "k", "x"]).unwrap_err();
            assert_eq!(e.code(), Some("READONLY"), "{e}");
            wait_until(Duration::from_secs(3), "the write to replicate", || {
                text(&r.cmd(&["GET", "k"])) == "v"
            });
        }
    }

    // A fourth member joining later follows the master and claims nothing.
    let late = Group::member(&ensemble.connect_string(), &g.name, &[]);
    wait_until(Duration::from_secs(5), "the late member to follow", || {
        late.try_cmd(&["INFO", "replication"])
            .map(|v| text(&v).contains(&format!("master_port:{}", m.port())))
            .unwrap_or(false)
    });
    assert_eq!(g.leader_seen_by(master).unwrap().1, 1);
}

#[test]
fn master_sigkill_promotes_the_best_replica_and_the_old_master_rejoins_as_replica() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = loaded("kill");

    let killed_at = Instant::now();
    g.members[master].kill();
    let alive: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let before = count(&writer);
    wait_until(Duration::from_secs(10), "writes to resume", || {
        count(&writer) > before + 50
    });
    let outage = killed_at.elapsed();
    let (new_master, new_epoch) = g.wait_converged(&alive, Duration::from_secs(10));
    println!("SIGKILL: writes resumed after {outage:?}");
    assert_eq!(new_epoch, epoch + 1);
    assert!(outage < SESSION_TIMEOUT + Duration::from_secs(2), "outage {outage:?}");

    // The old master comes back as a replica of the new one.
    g.members[master].restart();
    let (again, _) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    assert_eq!(again, new_master);
    let acked = writer.stop();
    assert!(prober.stop().is_empty());
    g.wait_in_sync(new_master, &[0, 1, 2]);
    let final_value = counter(&g.members[new_master], "counter");
    let max = acked.iter().map(|(_, v)| *v).max().unwrap();
    println!("SIGKILL: {} acked, max {max}, master holds {final_value}", acked.len());
    for i in 0..3 {
        wait_until(Duration::from_secs(5), "replicas to hold the counter", || {
            counter(&g.members[i], "counter") == counter(&g.members[new_master], "counter")
        });
    }
    let zk = ZkClient::connect(&ensemble.connect_string());
    assert_eq!(history(&zk, &g.name).last().unwrap()["reason"], "election");
}

#[test]
fn clean_shutdown_hands_over_at_once_without_losing_a_write() {
    let _serial = serial();
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = loaded("shutdown");
    // SIGTERM, as systemd stops it: Redis waits for its replicas, writes
    // paused, and the group hands over meanwhile.
    let started = Instant::now();
    let pid = g.members[master].pid().expect("running") as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    g.members[master].wait_exit();
    let alive: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let (new_master, new_epoch) = g.wait_converged(&alive, Duration::from_secs(10));
    assert_eq!(new_epoch, epoch + 1);
    let before = count(&writer);
    wait_until(Duration::from_secs(5), "writes on the new master", || {
        count(&writer) > before + 50
    });
    let acked = writer.stop();
    let outage = longest_gap(&acked, started);
    println!("clean shutdown: longest write gap {outage:?}");
    assert!(outage < Duration::from_secs(1), "outage {outage:?}");
    assert!(prober.stop().is_empty());
    g.wait_in_sync(new_master, &alive);
    assert_no_acked_write_lost(&acked, counter(&g.members[new_master], "counter"));
    let zk = ZkClient::connect(&shared_ensemble().connect_string());
    assert_eq!(history(&zk, &g.name).last().unwrap()["reason"], "shutdown");
    assert!(g.members[master].log().contains("handing the leadership"));
}

/// Waits until `member` refuses writes (fenced, or a replica).
fn wait_refuses_writes(redis: &Redis, timeout: Duration) {
    wait_until(
        timeout,
        "the member to refuse writes",
        || matches!(redis.try_cmd(&["SET", "fence-probe", "1"]), Err(e) if e.code() == Some("READONLY")),
    );
}

#[test]
fn a_stopped_master_comes_back_fenced_and_rejoins_as_replica() {
    let _serial = serial();
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = loaded("stop");
    // A client of the master, idle meanwhile: the demotion disconnects it.
    let mut idle_client = g.members[master].conn();

    sigstop(&g.members[master], true);
    let alive: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let (new_master, new_epoch) = g.wait_converged(&alive, Duration::from_secs(10));
    assert_eq!(new_epoch, epoch + 1);
    let before = count(&writer);
    wait_until(Duration::from_secs(5), "writes on the new master", || {
        count(&writer) > before + 50
    });
    // Resumed long after its session expired: it must not take a single write.
    sigstop(&g.members[master], false);
    let e = g.members[master].try_cmd(&["INCR", "counter"]).unwrap_err();
    assert_eq!(e.code(), Some("READONLY"), "{e}");
    let (again, _) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    assert_eq!(again, new_master);
    assert!(g.members[master].log().contains("following the group's master"));
    assert!(
        redis::cmd("PING").query::<String>(&mut idle_client).is_err(),
        "the demoted master's clients are disconnected"
    );
    let acked = writer.stop();
    let violations = prober.stop();
    assert!(violations.is_empty(), "{violations:?}");
    // Writes acknowledged just before the stop but not yet replicated are
    // lost, as with any asynchronous replication; none after the resume.
    let lost = lost_writes(&acked);
    println!("SIGSTOP: {} acked, {lost} lost in flight", acked.len());
    g.wait_in_sync(new_master, &[0, 1, 2]);
    assert_eq!(
        counter(&g.members[master], "counter"),
        counter(&g.members[new_master], "counter")
    );
}

#[test]
fn a_master_cut_from_zookeeper_fences_itself_before_anyone_else_leads() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let zk = ensemble.connect_string();
    let name = group_name("cut");
    // Without failsafe: with it (the default) the replicas, which reach the
    // master, keep it writing on their grants (tests/failsafe.rs).
    let off = [("zksync.failsafe", "no")];
    // The first member reaches ZooKeeper through a proxy that the test can cut.
    let proxy = Proxy::start(&ensemble.member_addr(0));
    let first = Group::member(&proxy.addr(), &name, &off);
    wait_until(Duration::from_secs(10), "the first member to lead", || {
        first
            .status()
            .get("leader")
            .is_some_and(|l| *l == format!("127.0.0.1:{}", first.port()))
    });
    let g = Group {
        name: name.clone(),
        members: vec![first, Group::member(&zk, &name, &off), Group::member(&zk, &name, &off)],
    };
    let (master, epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    assert_eq!(master, 0);
    let prober = prober(&g);

    let cut_at = Instant::now();
    proxy.blackhole();
    // Clients still reach it; within 2/3 of the session timeout it refuses writes.
    wait_refuses_writes(&g.members[0], SESSION_TIMEOUT);
    let fenced_after = cut_at.elapsed();
    assert_eq!(g.members[0].status()["fenced"], "1");
    let (new_master, new_epoch) = g.wait_converged(&[1, 2], Duration::from_secs(10));
    let elected_after = cut_at.elapsed();
    println!("cut: fenced after {fenced_after:?}, new master after {elected_after:?}");
    assert!(fenced_after < elected_after);
    assert_eq!(new_epoch, epoch + 1);
    assert!(matches!(g.members[0].try_cmd(&["INCR", "x"]), Err(e) if e.code() == Some("READONLY")));
    // Writes inside a script or a transaction are fenced too; reads are served.
    let script = g.members[0].try_cmd(&["EVAL", "return redis.call('SET', KEYS[1], 'v')", "1", "y"]);
    assert!(format!("{script:?}").contains("zksync fencing"), "{script:?}");
    let mut conn = g.members[0].conn();
    let tx: redis::RedisResult<redis::Value> = redis::pipe().atomic().cmd("SET").arg("z").arg("1").query(&mut conn);
    assert!(tx.is_err(), "{tx:?}");
    assert_eq!(g.members[0].cmd(&["EXISTS", "z"]), redis::Value::Int(0));
    g.members[0].cmd(&["GET", "x"]);
    // A replica it is asked to feed is told to retry later (NOMASTERLINK):
    // any other error would send it to the old SYNC, after which Redis 7.0
    // may never stream to it.
    let outsider = Redis::start_plain(&[]);
    outsider.cmd(&["REPLICAOF", "127.0.0.1", &g.members[0].port().to_string()]);
    // Redis logs "Master is currently ...", Valkey "Primary is currently ...".
    wait_until(Duration::from_secs(5), "the fenced master to refuse PSYNC", || {
        outsider
            .log()
            .contains("is currently unable to PSYNC but should be in the future")
    });
    assert!(
        !outsider.log().contains("Retrying with SYNC"),
        "{}",
        outsider.log_tail()
    );
    drop(outsider);

    proxy.restore();
    let (again, _) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    assert_eq!(again, new_master);
    let violations = prober.stop();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn losing_a_zookeeper_server_does_not_move_the_master() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let g = Group::start("zkdown", &ensemble.connect_string(), 3, &[]);
    let (master, epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    let writer = writer(&g, "counter");
    wait_until(Duration::from_secs(5), "writes to flow", || count(&writer) > 100);
    // The ensemble's leader: every session moves, none may expire.
    let zk_index = (0..3)
        .find(|&i| four_letter(&ensemble.member_addr(i), "srvr").is_some_and(|s| s.contains("Mode: leader")))
        .expect("an ensemble leader");
    ensemble.kill(zk_index);
    std::thread::sleep(SESSION_TIMEOUT * 2);
    ensemble.start_member(zk_index);
    let (after, after_epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    let acked = writer.stop();
    assert_eq!((after, after_epoch), (master, epoch), "the master moved");
    g.wait_in_sync(master, &[0, 1, 2]);
    assert_no_acked_write_lost(&acked, counter(&g.members[master], "counter"));
}

#[test]
fn switchover_under_load_loses_no_acknowledged_write() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = loaded("switch");

    // TO a named replica, asked on the other replica.
    let target = (0..3).find(|&i| i != master).unwrap();
    let asker = (0..3).find(|&i| i != master && i != target).unwrap();
    let mut subscriber = g.members[asker].conn();
    let announced = std::thread::spawn(move || {
        let mut pubsub = subscriber.as_pubsub();
        pubsub.subscribe("+switch-master").unwrap();
        pubsub.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        pubsub.get_message().ok().and_then(|m| m.get_payload::<String>().ok())
    });
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    g.members[asker].cmd(&["ZKSYNC.FAILOVER", "TO", &g.id(target)]);
    let took = started.elapsed();
    // OK means the new master already takes writes.
    g.members[target].cmd(&["SET", "after-switch", "1"]);
    let (now, e) = g.wait_converged(&[0, 1, 2], Duration::from_secs(10));
    assert_eq!((now, e), (target, epoch + 1));
    println!("switchover TO: {took:?}");
    let message = announced.join().unwrap().expect("+switch-master published");
    assert_eq!(
        message,
        format!(
            "{} 127.0.0.1 {} 127.0.0.1 {}",
            g.name,
            g.members[master].port(),
            g.members[target].port()
        )
    );

    // Without TO, asked on the master itself: the best replica takes over.
    let before = count(&writer);
    wait_until(Duration::from_secs(5), "writes to flow", || {
        count(&writer) > before + 100
    });
    let started = Instant::now();
    g.members[target].cmd(&["ZKSYNC.FAILOVER"]);
    println!("switchover asked on the master: {:?}", started.elapsed());
    let (third, e) = g.wait_converged(&[0, 1, 2], Duration::from_secs(10));
    assert_ne!(third, target);
    assert_eq!(e, epoch + 2);
    let before = count(&writer);
    wait_until(Duration::from_secs(5), "writes to flow", || {
        count(&writer) > before + 100
    });

    let acked = writer.stop();
    let gap = longest_gap(&acked, started);
    println!("switchover asked on the master: longest write gap {gap:?}");
    let violations = prober.stop();
    assert!(violations.is_empty(), "{violations:?}");
    g.wait_in_sync(third, &[0, 1, 2]);
    assert_no_acked_write_lost(&acked, counter(&g.members[third], "counter"));
    let zk = ZkClient::connect(&ensemble.connect_string());
    let entries = history(&zk, &g.name);
    assert_eq!(entries.last().unwrap()["reason"], "switchover");
    assert!(!zk.exists(&format!("/zksync/{}/switchover", g.name)));
}

#[test]
fn switchover_that_times_out_changes_nothing() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let g = Group::start("rollback", &ensemble.connect_string(), 3, &[]);
    let (master, epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    let target = (0..3).find(|&i| i != master).unwrap();
    // The target's main thread sleeps: it cannot report catching up.
    let sleeper = {
        let port = g.members[target].port();
        std::thread::spawn(move || {
            let mut c = connect(port).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg("1.5")
                .query::<redis::Value>(&mut c);
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    let e = g.members[master]
        .try_cmd(&["ZKSYNC.FAILOVER", "TO", &g.id(target), "TIMEOUT", "500"])
        .unwrap_err();
    assert!(e.to_string().contains("nothing changed"), "{e}");
    // The master takes writes again at once.
    g.members[master].cmd(&["SET", "after-rollback", "1"]);
    sleeper.join().unwrap();
    let (now, e) = g.wait_converged(&[0, 1, 2], Duration::from_secs(10));
    assert_eq!((now, e), (master, epoch));
    let zk = ZkClient::connect(&ensemble.connect_string());
    assert!(!zk.exists(&format!("/zksync/{}/switchover", g.name)));
}

#[test]
fn manual_mode_waits_for_force_and_operators_cannot_repoint_members() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let g = Group::start(
        "manual",
        &ensemble.connect_string(),
        3,
        &[("zksync.failover", "manual")],
    );
    let (master, epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    let replica = (0..3).find(|&i| i != master).unwrap();
    let other = (0..3).find(|&i| i != master && i != replica).unwrap();

    // An operator's REPLICAOF on a member is reverted.
    g.members[replica].cmd(&["REPLICAOF", "NO", "ONE"]);
    wait_until(Duration::from_secs(5), "the REPLICAOF to be reverted", || {
        g.members[replica].log().contains("changed outside the group")
    });
    g.wait_converged(&[0, 1, 2], Duration::from_secs(10));
    // And on the master.
    g.members[master].cmd(&["REPLICAOF", "127.0.0.1", &g.members[other].port().to_string()]);
    wait_until(Duration::from_secs(5), "the master's REPLICAOF to be reverted", || {
        g.members[master].log().contains("changed outside the group")
    });
    g.wait_converged(&[0, 1, 2], Duration::from_secs(10));
    assert_eq!(g.leader_seen_by(replica).unwrap().1, epoch);

    g.members[master].kill();
    std::thread::sleep(SESSION_TIMEOUT * 2);
    assert_eq!(g.leader_seen_by(replica), None, "manual mode must not elect");
    assert!(g.members[replica].log().contains("zksync.failover is manual"));
    let e = g.members[replica].try_cmd(&["ZKSYNC.FAILOVER"]).unwrap_err();
    assert!(e.to_string().contains("FORCE"), "{e}");
    g.members[replica].cmd(&["ZKSYNC.FAILOVER", "TO", &g.id(other), "FORCE"]);
    let (now, e) = g.wait_converged(&[replica, other], Duration::from_secs(10));
    assert_eq!((now, e), (other, epoch + 1));
}

/// Waits until `replica` published `priority` and `master` has read that
/// publication (its ZKSYNC.LOAD row shows the same figures as the znode).
fn wait_priority_seen(client: &ZkClient, g: &Group, master: usize, replica: usize, priority: i64) {
    let znode = format!("/zksync/{}/members/{}", g.name, g.id(replica));
    wait_until(Duration::from_secs(5), "the priority to be published and seen", || {
        let Some(json) = client
            .get(&znode)
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        else {
            return false;
        };
        let figures = &json["zksync"];
        let redis::Value::Array(rows) = g.members[master].cmd(&["ZKSYNC.LOAD"]) else {
            return false;
        };
        figures["priority"] == priority
            && rows.iter().any(|row| {
                let redis::Value::Array(fields) = row else { return false };
                let row: HashMap<String, String> = fields.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect();
                row.get("id") == Some(&g.id(replica))
                    && row.get("used_memory").map(String::as_str) == Some(&figures["used_memory"].to_string())
                    && row.get("repl_offset").map(String::as_str) == Some(&figures["repl_offset"].to_string())
            })
    });
}

#[test]
fn bad_input_is_refused() {
    let _serial = serial();
    let zk = shared_ensemble().connect_string();
    let plain = Redis::start(&zk, &[]);
    for cmd in [vec!["ZKSYNC.LEADER"], vec!["ZKSYNC.FAILOVER"]] {
        let e = plain.try_cmd(&cmd).unwrap_err();
        assert_eq!(e.code(), Some("NOGROUP"), "{e}");
    }
    let g = Group::start("bad", &zk, 2, &[]);
    let (master, _) = g.wait_converged(&[0, 1], Duration::from_secs(15));
    let m = &g.members[master];
    for (args, want) in [
        (vec!["ZKSYNC.FAILOVER", "TO"], "TO needs"),
        (vec!["ZKSYNC.FAILOVER", "TIMEOUT", "x"], "TIMEOUT"),
        (vec!["ZKSYNC.FAILOVER", "TIMEOUT", "0"], "TIMEOUT"),
        (vec!["ZKSYNC.FAILOVER", "NOW"], "syntax"),
        (vec!["ZKSYNC.FAILOVER", "TO", "10.9.9.9:1"], "not a member"),
        (
            vec!["ZKSYNC.LEADER", "x"],
            "wrong number of arguments for 'zksync.leader' command",
        ),
    ] {
        let e = m.try_cmd(&args).unwrap_err();
        assert!(e.to_string().contains(want), "{args:?}: {e}");
    }
    let e = m.try_cmd(&["ZKSYNC.FAILOVER", "TO", &g.id(master)]).unwrap_err();
    assert!(e.to_string().contains("already the master"), "{e}");
    // A replica with replica-priority 0 is never promoted.
    let replica = 1 - master;
    g.members[replica].cmd(&["CONFIG", "SET", "replica-priority", "0"]);
    let client = ZkClient::connect(&zk);
    wait_priority_seen(&client, &g, master, replica, 0);
    let e = m.try_cmd(&["ZKSYNC.FAILOVER", "TO", &g.id(replica)]).unwrap_err();
    assert!(e.to_string().contains("cannot be promoted"), "{e}");
    // A second switchover while one is in progress.
    g.members[replica].cmd(&["CONFIG", "SET", "replica-priority", "100"]);
    wait_priority_seen(&client, &g, master, replica, 100);
    client.create_ephemeral(
        &format!("/zksync/{}/switchover", g.name),
        b"{\"from\":null,\"to\":\"x\",\"force\":false,\"timeout_ms\":1,\"stage\":\"requested\"}",
    );
    let e = m.try_cmd(&["ZKSYNC.FAILOVER"]).unwrap_err();
    assert!(e.to_string().contains("in progress"), "{e}");
    client.close();
    // MULTI cannot wait for a switchover.
    let mut conn = m.conn();
    let reply: redis::RedisResult<redis::Value> = redis::pipe().atomic().cmd("ZKSYNC.FAILOVER").query(&mut conn);
    assert!(reply.is_err() || format!("{reply:?}").contains("MULTI"), "{reply:?}");
}

#[test]
fn forced_switchover_from_a_live_master_waits_out_its_lease() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let g = Group::start("force", &ensemble.connect_string(), 3, &[]);
    let (master, epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    let target = (0..3).find(|&i| i != master).unwrap();
    let prober = prober(&g);
    let started = Instant::now();
    g.members[master].cmd(&["ZKSYNC.FAILOVER", "TO", &g.id(target), "FORCE"]);
    let took = started.elapsed();
    assert!(
        took >= SESSION_TIMEOUT * 2 / 3,
        "promoted after {took:?}, inside the old lease"
    );
    let (now, e) = g.wait_converged(&[0, 1, 2], Duration::from_secs(10));
    assert_eq!((now, e), (target, epoch + 1));
    let violations = prober.stop();
    assert!(violations.is_empty(), "{violations:?}");
    let zk = ZkClient::connect(&ensemble.connect_string());
    assert_eq!(history(&zk, &g.name).last().unwrap()["reason"], "forced");
}

#[test]
fn a_master_restarted_empty_before_its_session_expired_wipes_nothing() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let g = Group::start("restart", &ensemble.connect_string(), 3, &[]);
    let (master, epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    // A group in service: with failsafe (the default) a process does not
    // stand for one grant time (the session timeout) from its first step.
    std::thread::sleep(SESSION_TIMEOUT);
    g.members[master].cmd(&["SET", "precious", "data"]);
    g.wait_in_sync(master, &[0, 1, 2]);
    // No persistence: it comes back empty, at the address its replicas
    // follow, while its old session (and leader znode) still live.
    g.members[master].kill();
    let restarted_at = Instant::now();
    g.members[master].restart();
    let alive: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let (new_master, new_epoch) = g.wait_converged(&alive, Duration::from_secs(10));
    let took = restarted_at.elapsed();
    println!("restarted master replaced after {took:?}");
    assert!(took < SESSION_TIMEOUT, "waited for the old session to expire: {took:?}");
    assert_eq!(new_epoch, epoch + 1);
    // Removed by the restarted process itself, or by the replicas that its
    // port refused while it was down (whichever came first).
    let removed_by_itself = g.members[master].log().contains("left by this server's previous run");
    let removed_as_dead = alive
        .iter()
        .any(|&i| g.members[i].log().contains("refuses connections"));
    assert!(removed_by_itself || removed_as_dead);
    let (again, _) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    assert_eq!(again, new_master);
    g.wait_in_sync(new_master, &[0, 1, 2]);
    for m in &g.members {
        assert_eq!(
            text(&m.cmd(&["GET", "precious"])),
            "data",
            "a replica synced from the empty master"
        );
        // The fenced master's refusal (NOMASTERLINK) makes a replica retry
        // PSYNC later; any other error sends it to the old SYNC, after which
        // Redis 7.0 may never stream to it.
        assert!(!m.log().contains("Retrying with SYNC"), "{}", m.log_tail());
    }
}

#[test]
fn joining_and_leaving_a_group_at_run_time() {
    let _serial = serial();
    let zk = shared_ensemble().connect_string();
    let name = group_name("runtime");
    let a = Redis::start(&zk, &[("zksync.load-interval", "200")]);
    let b = Redis::start(&zk, &[("zksync.load-interval", "200")]);
    a.cmd(&["SET", "k", "a"]);
    a.cmd(&["CONFIG", "SET", "zksync.group", &name]);
    let id_a = format!("127.0.0.1:{}", a.port());
    wait_until(Duration::from_secs(10), "a to lead the new group", || {
        a.status().get("leader") == Some(&id_a)
    });
    a.cmd(&["SET", "k", "a2"]);
    b.cmd(&["CONFIG", "SET", "zksync.group", &name]);
    wait_until(Duration::from_secs(10), "b to follow a", || {
        text(&b.cmd(&["INFO", "replication"])).contains(&format!("master_port:{}", a.port()))
    });
    wait_until(Duration::from_secs(5), "b to hold a's data", || {
        text(&b.cmd(&["GET", "k"])) == "a2"
    });
    // The leader leaves: b takes over; a, out of any group, writes as any Redis.
    a.cmd(&["CONFIG", "SET", "zksync.group", ""]);
    let id_b = format!("127.0.0.1:{}", b.port());
    wait_until(Duration::from_secs(10), "b to lead", || {
        b.status().get("leader") == Some(&id_b)
    });
    wait_until(Duration::from_secs(5), "b to take writes", || {
        b.try_cmd(&["SET", "k", "b"]).is_ok()
    });
    a.cmd(&["SET", "other", "1"]);
    assert!(!a.status().contains_key("fenced"));
}

/// The master as SENTINEL GET-MASTER-ADDR-BY-NAME on member `i` names it.
fn sentinel_master(g: &Group, i: usize) -> Option<u16> {
    match g.members[i]
        .try_cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &g.name])
        .ok()?
    {
        redis::Value::Array(items) if items.len() == 2 => text(&items[1]).parse().ok(),
        _ => None,
    }
}

#[test]
fn members_answer_as_sentinels_and_a_cut_member_names_no_one() {
    let _serial = serial();
    let ensemble = shared_ensemble();
    let proxy = Proxy::start(&ensemble.connect_string());
    let mut g = Group::start("sentinel", &ensemble.connect_string(), 2, &[]);
    g.wait_converged(&[0, 1], Duration::from_secs(15));
    // The third member, behind the proxy, joins as a replica.
    g.members.push(Group::member(
        &proxy.addr(),
        &g.name,
        &[("zksync.session-timeout", "2000")],
    ));
    let (master, epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    assert!(master < 2);
    let port = g.members[master].port();
    for i in 0..3 {
        assert_eq!(sentinel_master(&g, i), Some(port), "member {i}");
        let masters = g.members[i].cmd(&["SENTINEL", "MASTERS"]);
        let fields = format!("{masters:?}");
        for expected in [g.name.as_str(), "master", "num-other-sentinels", &epoch.to_string()] {
            assert!(fields.contains(expected), "{expected} in {fields}");
        }
        // The members' table follows their published roles.
        wait_until(
            Duration::from_secs(5),
            "two replicas listed",
            || matches!(g.members[i].cmd(&["SENTINEL", "REPLICAS", &g.name]), Value::Array(r) if r.len() == 2),
        );
        let Value::Array(sentinels) = g.members[i].cmd(&["SENTINEL", "SENTINELS", &g.name]) else {
            panic!("SENTINELS")
        };
        assert_eq!(sentinels.len(), 2, "the other members");
    }
    // Unknown names answer as Sentinel does.
    let unknown = g.members[0].cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nope"]);
    assert!(matches!(unknown, Value::Nil), "{unknown:?}");
    let error = g.members[0].try_cmd(&["SENTINEL", "MASTER", "nope"]).unwrap_err();
    assert!(error.to_string().contains("No such master"), "{error}");
    // The member behind the proxy, cut from ZooKeeper, names no one.
    proxy.blackhole();
    wait_until(Duration::from_secs(5), "the cut member to stop naming a master", || {
        sentinel_master(&g, 2).is_none() && matches!(g.members[2].cmd(&["ZKSYNC.LEADER"]), Value::Nil)
    });
    assert!(!format!("{:?}", g.members[2].cmd(&["SENTINEL", "MASTERS"])).contains(&g.name));
    for i in 0..2 {
        assert_eq!(sentinel_master(&g, i), Some(port), "member {i} still vouches");
    }
    proxy.restore();
    wait_until(Duration::from_secs(10), "the member to name the master again", || {
        sentinel_master(&g, 2).is_some()
    });
}

#[test]
fn a_sentinel_client_follows_a_switchover_a_shutdown_and_a_sigkill() {
    sentinel_client_follows_failovers(Library::RedisPy, "sentinel-client");
}

#[test]
fn a_go_sentinel_client_follows_a_switchover_a_shutdown_and_a_sigkill() {
    sentinel_client_follows_failovers(Library::GoRedis, "go-sentinel-client");
}

/// One client object of `library` through a switchover, a clean shutdown
/// and a SIGKILL of the master, finding each new master by asking the
/// members as Sentinels.
fn sentinel_client_follows_failovers(library: Library, group: &str) {
    let _serial = serial();
    let g = Group::start(group, &shared_ensemble().connect_string(), 3, &[]);
    let (master, _) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    g.members[master].cmd(&["SET", "warm-up", "1"]);
    g.wait_in_sync(master, &[0, 1, 2]);
    let client = SentinelClient::start_with(library, &g.name, &g.ports(), "counter");
    client.wait_more(
        100,
        &format!("{} to write through the Sentinel emulation", library.name()),
    );

    // Switchover: no acknowledged write lost.
    let started = Instant::now();
    g.members[(master + 1) % 3].cmd(&["ZKSYNC.FAILOVER"]);
    let (master, _) = g.wait_converged(&[0, 1, 2], Duration::from_secs(10));
    client.wait_more(100, "writes on the new master after the switchover");
    let switchover = longest_gap(&client.acked(), started);

    // Clean shutdown: no acknowledged write lost.
    let started = Instant::now();
    let pid = g.members[master].pid().expect("running") as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    g.members[master].wait_exit();
    let alive: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let (master, _) = g.wait_converged(&alive, Duration::from_secs(10));
    client.wait_more(100, "writes on the new master after the shutdown");
    let shutdown = longest_gap(&client.acked(), started);
    g.wait_in_sync(master, &alive);
    let before_kill = client.acked();
    assert_no_acked_write_lost(&before_kill, counter(&g.members[master], "counter"));

    // SIGKILL: the last member takes over once the session expires.
    let started = Instant::now();
    g.members[master].kill();
    let last: Vec<usize> = alive.into_iter().filter(|&i| i != master).collect();
    let (master, _) = g.wait_converged(&last, Duration::from_secs(15));
    client.wait_more(100, "writes on the last member after the SIGKILL");
    let acked = client.acked();
    let kill = longest_gap(&acked, started);
    let lost = lost_writes(&acked);
    let held = counter(&g.members[master], "counter");
    println!(
        "{} Sentinel client: outage switchover {switchover:?}, shutdown {shutdown:?}, SIGKILL {kill:?}; \
         lost after the SIGKILL {lost} (counter {held})",
        library.name()
    );
    assert!(switchover < Duration::from_secs(2), "{switchover:?}");
    assert!(shutdown < Duration::from_secs(2), "{shutdown:?}");
}

// ---------------------------------------------------------------------------
// Detection: failures found in well under the session timeout.

/// Writes resumed after a fault at `at`: the longest gap between acknowledged
/// writes from then on, once writes flow again.
fn outage_after(writer: &Background<Acked>, at: Instant) -> Duration {
    let before = count(writer);
    wait_until(Duration::from_secs(20), "writes to resume", || {
        count(writer) > before + 50
    });
    writer.with(|acked| longest_gap(acked, at))
}

#[test]
fn a_dead_master_is_replaced_in_well_under_a_long_session_timeout() {
    let _serial = serial();
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = loaded_with("dead", &[("zksync.session-timeout", "10000")]);
    // Killed as the group forms: a process started less than a grant time
    // ago stands at once against a master found dead (docs/failover.md,
    // "Failsafe").
    let killed_at = Instant::now();
    g.members[master].kill();
    let outage = outage_after(&writer, killed_at);
    let alive: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let (new_master, new_epoch) = g.wait_converged(&alive, Duration::from_secs(10));
    println!("SIGKILL at a 10 s session timeout: writes resumed after {outage:?}");
    assert_eq!(new_epoch, epoch + 1);
    assert!(
        outage < Duration::from_secs(3),
        "outage {outage:?}: the session timeout was waited for"
    );
    assert!(g.members[new_master].log().contains("refuses connections"));

    // The old master comes back as a replica of the new one.
    g.members[master].restart();
    let (again, _) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    assert_eq!(again, new_master);
    writer.stop();
    let violations = prober.stop();
    assert!(violations.is_empty(), "{violations:?}");
}

#[test]
fn a_frozen_master_takes_no_shortcut() {
    let _serial = serial();
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = loaded("frozen");
    sigstop(&g.members[master], true);
    let stopped_at = Instant::now();
    let alive: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let (_, new_epoch) = g.wait_converged(&alive, Duration::from_secs(10));
    let failover = stopped_at.elapsed();
    sigstop(&g.members[master], false);
    println!("SIGSTOP: a new master after {failover:?}");
    assert_eq!(new_epoch, epoch + 1);
    // A frozen port accepts connections: the session had to expire.
    assert!(failover >= SESSION_TIMEOUT * 2 / 3, "failover after {failover:?}");
    for &i in &alive {
        assert!(!g.members[i].log().contains("refuses connections"));
    }
    g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    writer.stop();
    let violations = prober.stop();
    assert!(violations.is_empty(), "{violations:?}");
}

/// `DEBUG SLEEP secs` on `redis`, on a thread of its own (it blocks).
fn debug_sleep(redis: &Redis, secs: &str) -> std::thread::JoinHandle<()> {
    let mut conn = redis.conn();
    let secs = secs.to_string();
    std::thread::spawn(move || {
        let _ = redis::cmd("DEBUG").arg("SLEEP").arg(&secs).query::<Value>(&mut conn);
    })
}

#[test]
fn a_stalled_master_hands_over_and_comes_back_fenced() {
    let _serial = serial();
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = loaded_with("stall", &[("zksync.stall-timeout", "1000")]);
    let asleep = Instant::now();
    let sleeping = debug_sleep(&g.members[master], "4");
    let alive: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let (new_master, new_epoch) = g.wait_converged(&alive, Duration::from_secs(10));
    let handed_over = asleep.elapsed();
    println!("DEBUG SLEEP 4 on the master: a new master after {handed_over:?}");
    assert_eq!(new_epoch, epoch + 1);
    assert!(handed_over < Duration::from_secs(4), "the stall was waited out");
    sleeping.join().unwrap();
    // Its first command after the stall is refused (or its connection cut,
    // as the demotion disconnects clients).
    let after = g.members[master].try_cmd(&["INCR", "counter"]);
    assert!(after.is_err(), "a write accepted after the stall: {after:?}");
    let (again, _) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    assert_eq!(again, new_master);
    assert_eq!(g.members[master].status()["stalls"], "1");
    let acked = writer.stop();
    let violations = prober.stop();
    assert!(violations.is_empty(), "{violations:?}");
    println!("stall: {} acked, {} lost in flight", acked.len(), lost_writes(&acked));
}

#[test]
fn a_stalled_replica_says_so_and_the_master_is_untouched() {
    let _serial = serial();
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = loaded_with("stall-replica", &[("zksync.stall-timeout", "1000")]);
    let replica = (master + 1) % 3;
    let zk = ZkClient::connect(&shared_ensemble().connect_string());
    let znode = format!("/zksync/{}/members/{}", g.name, g.id(replica));
    let sleeping = debug_sleep(&g.members[replica], "3");
    wait_until(Duration::from_secs(3), "the stalled replica to say WARNING", || {
        zk.get(&znode)
            .is_some_and(|d| String::from_utf8_lossy(&d).contains("WARNING"))
    });
    sleeping.join().unwrap();
    wait_until(Duration::from_secs(3), "the replica to say ALIVE again", || {
        zk.get(&znode)
            .is_some_and(|d| String::from_utf8_lossy(&d).contains("ALIVE"))
    });
    assert_eq!(g.converged(&[0, 1, 2]), Some((master, epoch)));
    assert_eq!(g.members[replica].status()["stalls"], "1");
    let acked = writer.stop();
    assert!(prober.stop().is_empty());
    let started = acked.first().map(|(at, _)| *at).unwrap();
    assert!(longest_gap(&acked, started) < Duration::from_secs(1));
}
