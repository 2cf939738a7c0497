//! Failover: three redis-servers with the module in one group, a real
//! 3-node ZooKeeper ensemble. Every scenario runs a writer that INCRs a
//! counter on whoever is master and records each acknowledged value, and a
//! prober that writes through every member to catch two accepting at once.

mod common;

use common::proxy::Proxy;
use common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SESSION_TIMEOUT: Duration = Duration::from_millis(2000);

fn group_name(name: &str) -> String {
    unique_root(name).trim_start_matches("/t/").replace('/', "-")
}

struct Group {
    name: String,
    members: Vec<Redis>,
}

impl Group {
    fn start(name: &str, zk: &str, n: usize, extra: &[(&str, &str)]) -> Group {
        let name = group_name(name);
        let members = (0..n).map(|_| Group::member(zk, &name, extra)).collect();
        Group { name, members }
    }

    fn member(zk: &str, name: &str, extra: &[(&str, &str)]) -> Redis {
        let mut args = vec![("zksync.group", name), ("zksync.load-interval", "200")];
        args.extend_from_slice(extra);
        Redis::start(zk, &args)
    }

    fn id(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].port())
    }

    fn index_of(&self, id: &str) -> Option<usize> {
        (0..self.members.len()).find(|&i| self.id(i) == id)
    }

    /// The member's replication info, if it answers.
    fn replication(&self, i: usize) -> Option<HashMap<String, String>> {
        let info = text(&self.members[i].try_cmd(&["INFO", "replication"]).ok()?);
        Some(
            info.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    fn leader_seen_by(&self, i: usize) -> Option<(String, i64)> {
        match self.members[i].try_cmd(&["ZKSYNC.LEADER"]).ok()? {
            redis::Value::Array(items) if items.len() == 3 => {
                let epoch = match &items[2] {
                    redis::Value::Int(e) => *e,
                    _ => return None,
                };
                Some((text(&items[0]), epoch))
            }
            _ => None,
        }
    }

    /// Waits until the members in `alive` agree on one master that is the
    /// leader, every other one its replica with the link up and the same
    /// offset; returns the master's index and the epoch.
    fn wait_converged(&self, alive: &[usize], timeout: Duration) -> (usize, i64) {
        let mut found = None;
        wait_until(timeout, "the group to converge on one master", || {
            found = self.converged(alive);
            found.is_some()
        });
        found.unwrap()
    }

    fn converged(&self, alive: &[usize]) -> Option<(usize, i64)> {
        let (leader, epoch) = self.leader_seen_by(alive[0])?;
        let master = self.index_of(&leader)?;
        if !alive.contains(&master) {
            return None;
        }
        let master_info = self.replication(master)?;
        if master_info.get("role")? != "master" {
            return None;
        }
        let offset = master_info.get("master_repl_offset")?.clone();
        for &i in alive {
            if self.leader_seen_by(i)? != (leader.clone(), epoch) {
                return None;
            }
            if i == master {
                continue;
            }
            let info = self.replication(i)?;
            let follows = info.get("role")? == "slave"
                && info.get("master_port")? == &self.members[master].port().to_string()
                && info.get("master_link_status")? == "up"
                && info.get("master_repl_offset")? == &offset;
            if !follows {
                return None;
            }
        }
        Some((master, epoch))
    }

    fn ports(&self) -> Vec<u16> {
        self.members.iter().map(Redis::port).collect()
    }
}

fn connect(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let conn = client.get_connection_with_timeout(Duration::from_millis(300)).ok()?;
    conn.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    conn.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
    Some(conn)
}

/// INCRs a counter on whoever ZKSYNC.LEADER names, recording every acknowledged value.
struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<i64>>>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(ports: Vec<u16>, key: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let (s, a, key) = (stop.clone(), acked.clone(), key.to_string());
        let thread = std::thread::spawn(move || {
            let mut conn: Option<(u16, redis::Connection)> = None;
            let mut next = 0;
            while !s.load(Ordering::Relaxed) {
                if conn.is_none() {
                    next = (next + 1) % ports.len();
                    let leader = connect(ports[next]).and_then(|mut c| {
                        match redis::cmd("ZKSYNC.LEADER").query::<redis::Value>(&mut c).ok()? {
                            redis::Value::Array(items) if !items.is_empty() => text(&items[1]).rsplit(':').next()?.parse::<u16>().ok(),
                            _ => None,
                        }
                    });
                    conn = leader.and_then(|port| connect(port).map(|c| (port, c)));
                    if conn.is_none() {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                }
                let Some((_, c)) = conn.as_mut() else { continue };
                match redis::cmd("INCR").arg(&key).query::<i64>(c) {
                    Ok(v) => a.lock().unwrap().push(v),
                    Err(_) => {
                        conn = None;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
        });
        Writer {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops; the acknowledged values in order, and the longest gap between two acks.
    fn stop(mut self) -> Vec<i64> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.acked.lock().unwrap())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Writes through every member in rounds; a member pair accepting in two
/// rounds back to back is two masters at once.
struct Prober {
    stop: Arc<AtomicBool>,
    violations: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Prober {
    fn start(ports: Vec<u16>, key: &str) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let violations = Arc::new(Mutex::new(Vec::new()));
        let (s, v, key) = (stop.clone(), violations.clone(), key.to_string());
        let thread = std::thread::spawn(move || {
            let mut conns: Vec<Option<redis::Connection>> = ports.iter().map(|_| None).collect();
            let mut last: Vec<usize> = Vec::new();
            while !s.load(Ordering::Relaxed) {
                let mut accepted = Vec::new();
                for (i, port) in ports.iter().enumerate() {
                    if conns[i].is_none() {
                        conns[i] = connect(*port);
                    }
                    let Some(c) = conns[i].as_mut() else { continue };
                    match redis::cmd("SET").arg(&key).arg(i).query::<redis::Value>(c) {
                        Ok(_) => accepted.push(i),
                        Err(e) if e.code() == Some("READONLY") => {}
                        Err(_) => conns[i] = None,
                    }
                }
                if accepted.len() > 1 && last.len() > 1 {
                    v.lock().unwrap().push(format!("members {accepted:?} all accepted writes twice in a row"));
                }
                last = accepted;
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Prober {
            stop,
            violations,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.violations.lock().unwrap())
    }
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn counter(redis: &Redis, key: &str) -> i64 {
    match redis.cmd(&["GET", key]) {
        redis::Value::Nil => 0,
        v => text(&v).parse().unwrap(),
    }
}

/// Acked values rise one by one; after a zero-loss change the counter holds them all.
fn assert_no_acked_write_lost(acked: &[i64], final_value: i64) {
    assert!(!acked.is_empty(), "the writer got no write through");
    let max = *acked.iter().max().unwrap();
    assert!(final_value >= max, "acknowledged {max} but the master holds {final_value}");
    assert!(
        acked.windows(2).all(|w| w[1] > w[0]),
        "the counter went back for acknowledged writes"
    );
}

fn sigstop(redis: &Redis, stop: bool) {
    let pid = redis.pid().expect("running") as i32;
    let sig = if stop { libc::SIGSTOP } else { libc::SIGCONT };
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

fn history(zk: &ZkClient, group: &str) -> Vec<serde_json::Value> {
    zk.tree(&format!("/zksync/{group}/history"))
        .into_iter()
        .filter(|(p, _)| p.matches('/').count() == 4)
        .map(|(_, d)| serde_json::from_slice(&d).expect("history entry is JSON"))
        .collect()
}

#[test]
fn bootstrap_elects_exactly_one_master_and_the_rest_follow() {
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
    let ensemble = shared_ensemble();
    let g = Group::start("kill", &ensemble.connect_string(), 3, &[]);
    let (master, epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    let writer = Writer::start(g.ports(), "counter");
    let prober = Prober::start(g.ports(), "probe");
    wait_until(Duration::from_secs(5), "writes to flow", || writer.count() > 200);

    let killed_at = Instant::now();
    g.members[master].kill();
    let alive: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let before = writer.count();
    wait_until(Duration::from_secs(10), "writes to resume", || writer.count() > before + 50);
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
    let final_value = counter(&g.members[new_master], "counter");
    let max = *acked.iter().max().unwrap();
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
    let ensemble = shared_ensemble();
    let g = Group::start("shutdown", &ensemble.connect_string(), 3, &[]);
    let (master, _) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    let writer = Writer::start(g.ports(), "counter");
    let prober = Prober::start(g.ports(), "probe");
    wait_until(Duration::from_secs(5), "writes to flow", || writer.count() > 200);
    let before = writer.count();
    let started = Instant::now();
    let _ = g.members[master].try_cmd(&["SHUTDOWN", "NOSAVE"]);
    g.members[master].wait_exit();
    wait_until(Duration::from_secs(10), "writes to resume", || writer.count() > before + 50);
    println!("clean shutdown: writes resumed after {:?}", started.elapsed());
    let alive: Vec<usize> = (0..3).filter(|&i| i != master).collect();
    let (new_master, _) = g.wait_converged(&alive, Duration::from_secs(10));
    let acked = writer.stop();
    assert!(prober.stop().is_empty());
    // Redis waits for its replicas before it shuts down: nothing acknowledged is lost.
    assert_no_acked_write_lost(&acked, counter(&g.members[new_master], "counter"));
}
