//! A failover group for the tests: members of one group, the writer that
//! INCRs a counter on whoever the members name as master, and the prober
//! that catches two members accepting writes at once. Used by
//! `tests/failover.rs` and `tests/failsafe.rs`.

use crate::writer::{connect, counter_writer, lost_writes, set_stopped, Acked, Background};
use crate::{text, unique_root, wait_until, Redis, ZkClient};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub fn group_name(name: &str) -> String {
    unique_root(name).trim_start_matches("/t/").replace('/', "-")
}

pub struct Group {
    pub name: String,
    pub members: Vec<Redis>,
}

impl Group {
    pub fn start(name: &str, zk: &str, n: usize, extra: &[(&str, &str)]) -> Group {
        let name = group_name(name);
        let members = (0..n).map(|_| Group::member(zk, &name, extra)).collect();
        Group { name, members }
    }

    pub fn member(zk: &str, name: &str, extra: &[(&str, &str)]) -> Redis {
        let mut args = vec![("zksync.group", name), ("zksync.load-interval", "200")];
        args.extend_from_slice(extra);
        Redis::start(zk, &args)
    }

    pub fn id(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.members[i].port())
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        (0..self.members.len()).find(|&i| self.id(i) == id)
    }

    /// The member's replication info, if it answers.
    pub fn replication(&self, i: usize) -> Option<HashMap<String, String>> {
        let info = text(&self.members[i].try_cmd(&["INFO", "replication"]).ok()?);
        Some(
            info.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    pub fn leader_seen_by(&self, i: usize) -> Option<(String, i64)> {
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
    /// leader, every other one its replica with the link up; returns the
    /// master's index and the epoch.
    pub fn wait_converged(&self, alive: &[usize], timeout: Duration) -> (usize, i64) {
        let mut found = None;
        let deadline = Instant::now() + timeout;
        while found.is_none() && Instant::now() < deadline {
            found = self.converged(alive);
            std::thread::sleep(Duration::from_millis(20));
        }
        found.unwrap_or_else(|| panic!("the group did not converge on one master: {}", self.describe(alive)))
    }

    /// Each member's view, for a failure message.
    pub fn describe(&self, alive: &[usize]) -> String {
        let mut out = String::new();
        for &i in alive {
            let status = self.members[i].try_cmd(&["ZKSYNC.STATUS"]).map(|v| format!("{v:?}"));
            let role = self.replication(i).map(|r| {
                let field = |k: &str| r.get(k).cloned().unwrap_or_default();
                format!(
                    "{} {} {}",
                    field("role"),
                    field("master_port"),
                    field("master_link_status")
                )
            });
            out += &format!(
                "\n  member {i} ({}): leader {:?}; {role:?}; {status:?}",
                self.id(i),
                self.leader_seen_by(i)
            );
        }
        out
    }

    pub fn converged(&self, alive: &[usize]) -> Option<(usize, i64)> {
        let (leader, epoch) = self.leader_seen_by(alive[0])?;
        let master = self.index_of(&leader)?;
        if !alive.contains(&master) {
            return None;
        }
        let master_info = self.replication(master)?;
        if master_info.get("role")? != "master" {
            return None;
        }
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
                && info.get("master_link_status")? == "up";
            if !follows {
                return None;
            }
        }
        Some((master, epoch))
    }

    /// Every member in `alive` holds all the master had at one moment: its
    /// offset reaches the master's as sampled just before. Reaching, not
    /// equal: a writer faster than replication (the Go client) may keep the
    /// offsets from ever being equal while it runs.
    pub fn wait_in_sync(&self, master: usize, alive: &[usize]) {
        let offset = |i: usize| -> Option<u64> { self.replication(i)?.get("master_repl_offset")?.parse().ok() };
        wait_until(
            Duration::from_secs(10),
            "the replicas to reach the master's offset",
            || {
                let Some(target) = offset(master) else {
                    return false;
                };
                alive.iter().all(|&i| offset(i).is_some_and(|o| o >= target))
            },
        );
    }

    pub fn ports(&self) -> Vec<u16> {
        self.members.iter().map(Redis::port).collect()
    }
}

/// The master's port as ZKSYNC.LEADER on the `n`-th member names it.
pub fn leader_port(ports: &[u16], n: usize) -> Option<u16> {
    let mut conn = connect(ports[n % ports.len()])?;
    match redis::cmd("ZKSYNC.LEADER").query::<redis::Value>(&mut conn).ok()? {
        redis::Value::Array(items) if items.len() == 3 => text(&items[1]).rsplit(':').next()?.parse().ok(),
        _ => None,
    }
}

/// INCRs `key` on whoever ZKSYNC.LEADER names, recording every acknowledged value.
pub fn writer(g: &Group, key: &str) -> Background<Acked> {
    let ports = g.ports();
    counter_writer(move |n| leader_port(&ports, n), key)
}

pub fn count(writer: &Background<Acked>) -> usize {
    writer.with(Vec::len)
}

/// Writes through every member in rounds; two members accepting in two
/// rounds back to back are two masters at once.
pub fn prober(g: &Group) -> Background<Vec<String>> {
    prober_on(g.ports())
}

/// As `prober`, through the servers on `ports` (members that are not in a
/// `Group`, e.g. one started later, too).
pub fn prober_on(ports: Vec<u16>) -> Background<Vec<String>> {
    let mut conns: Vec<Option<redis::Connection>> = ports.iter().map(|_| None).collect();
    let mut last: Vec<usize> = Vec::new();
    Background::start(move |violations: &Mutex<Vec<String>>| {
        let mut accepted = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            if conns[i].is_none() {
                conns[i] = connect(*port);
            }
            let Some(c) = conns[i].as_mut() else { continue };
            match redis::cmd("SET").arg("probe").arg(i).query::<redis::Value>(c) {
                Ok(_) => accepted.push(i),
                Err(e) if e.code() == Some("READONLY") => {}
                Err(_) => conns[i] = None,
            }
        }
        if accepted.len() > 1 && last.len() > 1 {
            violations
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(format!("members {accepted:?} all accepted writes twice in a row"));
        }
        last = accepted;
        std::thread::sleep(Duration::from_millis(10));
    })
}

pub fn counter(redis: &Redis, key: &str) -> i64 {
    match redis.cmd(&["GET", key]) {
        redis::Value::Nil => 0,
        v => text(&v)
            .parse()
            .unwrap_or_else(|e| panic!("{key} holds {:?}, not a counter: {e}", text(&v))),
    }
}

/// Acked values rise one by one; after a zero-loss change the counter holds them all.
pub fn assert_no_acked_write_lost(acked: &Acked, final_value: i64) {
    let Some(max) = acked.iter().map(|(_, v)| *v).max() else {
        panic!("the writer got no write through");
    };
    assert!(
        final_value >= max,
        "acknowledged {max} but the master holds {final_value}"
    );
    assert_eq!(lost_writes(acked), 0, "the counter went back for acknowledged writes");
}

pub fn sigstop(redis: &Redis, stop: bool) {
    let Some(pid) = redis.pid() else {
        panic!("the server on port {} is not running", redis.port());
    };
    let pid = pid as i32;
    set_stopped(redis.port(), stop);
    let sig = if stop { libc::SIGSTOP } else { libc::SIGCONT };
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

pub fn history(zk: &ZkClient, group: &str) -> Vec<serde_json::Value> {
    zk.tree(&format!("/zksync/{group}/history"))
        .into_iter()
        .filter(|(p, _)| p.matches('/').count() == 4)
        .map(|(p, d)| serde_json::from_slice(&d).unwrap_or_else(|e| panic!("history entry {p} is not JSON: {e}")))
        .collect()
}

/// A converged group of three, with the writer and the prober running.
pub struct Loaded {
    pub g: Group,
    pub master: usize,
    pub epoch: i64,
    pub writer: Background<Acked>,
    pub prober: Background<Vec<String>>,
}

/// A group of three named `name` on the ZooKeeper at `zk`, converged, its
/// replicas in sync, the writer and the prober running.
pub fn loaded_on(name: &str, zk: &str, extra: &[(&str, &str)]) -> Loaded {
    load(Group::start(name, zk, 3, extra))
}

/// `g`, a group of three, converged, its replicas in sync, with the writer
/// and the prober running.
pub fn load(g: Group) -> Loaded {
    let (master, epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(15));
    // A replica whose link is up may still wait for its master to start
    // streaming (after its first acknowledgement): one write through first.
    g.members[master].cmd(&["SET", "warm-up", "1"]);
    g.wait_in_sync(master, &[0, 1, 2]);
    let writer = writer(&g, "counter");
    let prober = prober(&g);
    wait_until(Duration::from_secs(5), "writes to flow", || count(&writer) > 200);
    Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    }
}
