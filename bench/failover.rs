//! zksync failover against Redis Sentinel, side by side in one run.
//!
//! Each run builds a fresh group of three redis-servers: with zksync (a
//! 3-node ZooKeeper ensemble, session timeout T), or plain with three
//! Sentinels (quorum 2, `down-after-milliseconds` = T). A client INCRs a
//! counter on the master it discovers (ZKSYNC.LEADER on any member; SENTINEL
//! get-master-addr-by-name on any Sentinel) and records every acknowledged
//! value. Then: the master is SIGKILLed (at T = 2 s and 10 s), or shut down
//! cleanly, or switched over (ZKSYNC.FAILOVER; SENTINEL FAILOVER), or its
//! main thread stalls (`DEBUG SLEEP` for 3T; zksync's `stall-timeout` = T,
//! Sentinel's `down-after-milliseconds` = T). Reported: the write outage the
//! client saw (the longest gap between two acknowledged writes from the
//! event on) and the acknowledged writes that the new master does not hold.
//! Each system is measured with this bench's own client and with redis-py's
//! Sentinel client (given the zksync members, or the Sentinels).
//!
//! Run by `bench/failover [--quick]`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::sentinel_client::SentinelClient;
use testkit::writer::{connect, counter_writer, longest_gap, lost_writes, Acked, Background};
use testkit::*;

const TICK_MS: u64 = 200;

#[derive(Clone, Copy, PartialEq)]
enum System {
    Zksync,
    Sentinel,
}

#[derive(Clone, Copy)]
enum Event {
    Kill,
    Shutdown,
    Switchover,
    Stall,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Kill => "master SIGKILL",
            Event::Shutdown => "master clean shutdown",
            Event::Switchover => "switchover",
            Event::Stall => "master stall",
        }
    }
}

struct Cluster {
    system: System,
    /// The name a Sentinel client asks for: the group, or Sentinel's `m`.
    service: String,
    redis: Vec<Redis>,
    sentinels: Vec<Sentinel>,
}

/// One Sentinel process, which the outage event kills and starts again
/// from the config it rewrote.
struct Sentinel {
    port: u16,
    dir: std::path::PathBuf,
    process: Mutex<Option<Guarded>>,
}

impl Sentinel {
    fn start(&self) {
        let args = vec![
            self.dir.join("sentinel.conf").to_string_lossy().into_owned(),
            "--sentinel".to_string(),
        ];
        let process = Guarded::spawn("redis-server", &args, &self.dir.join("sentinel.log"), Some(&self.dir));
        *self.process.lock().unwrap() = Some(process);
    }

    /// SIGKILL; returns once it is gone.
    fn kill(&self) {
        if let Some(mut process) = self.process.lock().unwrap().take() {
            process.kill();
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn query(port: u16, args: &[&str]) -> Option<redis::Value> {
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut connect(port)?).ok()
}

impl Cluster {
    fn zksync(zk: &str, timeout_ms: u64) -> Cluster {
        let group = unique_root("bench").trim_start_matches("/t/").replace('/', "-");
        let timeout = timeout_ms.to_string();
        let redis = (0..3)
            .map(|_| {
                Redis::start(
                    zk,
                    &[
                        ("zksync.group", group.as_str()),
                        ("zksync.session-timeout", timeout.as_str()),
                        ("zksync.stall-timeout", timeout.as_str()),
                    ],
                )
            })
            .collect();
        Cluster {
            system: System::Zksync,
            service: group,
            redis,
            sentinels: Vec::new(),
        }
    }

    fn sentinel(timeout_ms: u64) -> Cluster {
        let redis: Vec<Redis> = (0..3).map(|_| Redis::start_plain(&[])).collect();
        let master = redis[0].port().to_string();
        for r in &redis[1..] {
            r.cmd(&["REPLICAOF", "127.0.0.1", &master]);
        }
        let sentinels = (0..3)
            .map(|_| {
                let port = free_port();
                let dir = temp_dir("sentinel");
                std::fs::write(
                    dir.join("sentinel.conf"),
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor m 127.0.0.1 {master} 2\n\
                         sentinel down-after-milliseconds m {timeout_ms}\nsentinel failover-timeout m 10000\n",
                        dir.display()
                    ),
                )
                .expect("write sentinel.conf");
                let sentinel = Sentinel {
                    port,
                    dir,
                    process: Mutex::new(None),
                };
                sentinel.start();
                sentinel
            })
            .collect();
        Cluster {
            system: System::Sentinel,
            service: "m".to_string(),
            redis,
            sentinels,
        }
    }

    /// The master's port as a client discovers it, asking `via`-th source.
    fn discover(&self, via: usize) -> Option<u16> {
        match self.system {
            System::Zksync => {
                let port = self.redis[via % self.redis.len()].port();
                match query(port, &["ZKSYNC.LEADER"])? {
                    redis::Value::Array(items) if items.len() == 3 => text(&items[1]).rsplit(':').next()?.parse().ok(),
                    _ => None,
                }
            }
            System::Sentinel => {
                let port = self.sentinels[via % self.sentinels.len()].port;
                match query(port, &["SENTINEL", "get-master-addr-by-name", "m"])? {
                    redis::Value::Array(items) if items.len() == 2 => text(&items[1]).parse().ok(),
                    _ => None,
                }
            }
        }
    }

    /// Where a Sentinel client looks: the Sentinels, or every zksync member.
    fn sentinel_ports(&self) -> Vec<u16> {
        match self.system {
            System::Zksync => self.redis.iter().map(Redis::port).collect(),
            System::Sentinel => self.sentinels.iter().map(|s| s.port).collect(),
        }
    }

    fn index_of(&self, port: u16) -> usize {
        self.redis.iter().position(|r| r.port() == port).expect("a member")
    }

    fn replicas_hold_a_write(&self, master: u16) -> bool {
        if query(master, &["SET", "warm-up", "1"]).is_none() {
            return false;
        }
        let offset = |port: u16| {
            query(port, &["INFO", "replication"]).and_then(|v| {
                text(&v)
                    .lines()
                    .find_map(|l| l.strip_prefix("master_repl_offset:").map(|o| o.trim().to_string()))
            })
        };
        let want = offset(master);
        std::thread::sleep(Duration::from_millis(20));
        want.is_some() && self.redis.iter().all(|r| offset(r.port()) == want)
    }

    fn replicas_linked(&self, master: u16) -> bool {
        query(master, &["INFO", "replication"]).is_some_and(|v| {
            let info = text(&v);
            info.contains("role:master") && info.matches("state=online").count() == 2
        })
    }

    /// The group is serving with two linked replicas that hold a first write
    /// (a just-synced replica may not stream yet), and (Sentinel) every
    /// Sentinel knows the replicas and the other Sentinels.
    fn wait_ready(&self) -> u16 {
        let mut master = 0;
        let deadline = Instant::now() + Duration::from_secs(29);
        let describe = || {
            let status: Vec<String> = self
                .redis
                .iter()
                .map(|r| format!("{}: {:?}", r.port(), query(r.port(), &["ZKSYNC.STATUS"])))
                .collect();
            status.join("\n")
        };
        wait_until(Duration::from_secs(30), "the group to be ready", || {
            assert!(Instant::now() < deadline, "the group is not ready:\n{}", describe());
            let Some(port) = self.discover(0) else { return false };
            master = port;
            if !self.replicas_linked(port) || !self.replicas_hold_a_write(port) {
                return false;
            }
            self.sentinels.iter().all(|s| {
                let replicas = query(s.port, &["SENTINEL", "replicas", "m"]);
                let others = query(s.port, &["SENTINEL", "sentinels", "m"]);
                matches!((replicas, others), (Some(redis::Value::Array(r)), Some(redis::Value::Array(s)))
                    if r.len() == 2 && s.len() == 2)
            })
        });
        master
    }

    fn switchover(&self, master: u16) {
        let (port, args) = match self.system {
            System::Zksync => (master, vec!["ZKSYNC.FAILOVER"]),
            System::Sentinel => (self.sentinels[0].port, vec!["SENTINEL", "FAILOVER", "m"]),
        };
        let mut conn = connect(port).expect("connect");
        conn.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        if let Err(e) = cmd.query::<redis::Value>(&mut conn) {
            panic!("{args:?}: {e}");
        }
    }
}

struct Outcome {
    outage: Duration,
    lost: i64,
}

/// Who writes: this bench's own client, asking ZKSYNC.LEADER or SENTINEL
/// GET-MASTER-ADDR-BY-NAME, or redis-py's Sentinel client (what an
/// application uses), given zksync's members or the Sentinels.
#[derive(Clone, Copy, PartialEq)]
enum Client {
    Own,
    RedisPy,
}

enum Writer {
    Own(Background<Acked>),
    RedisPy(SentinelClient),
}

impl Writer {
    fn start(cluster: &Arc<Cluster>, client: Client) -> Writer {
        match client {
            Client::Own => {
                let discovering = cluster.clone();
                Writer::Own(counter_writer(move |n| discovering.discover(n), "counter"))
            }
            Client::RedisPy => Writer::RedisPy(SentinelClient::start(
                &cluster.service,
                &cluster.sentinel_ports(),
                "counter",
            )),
        }
    }

    fn count(&self) -> usize {
        match self {
            Writer::Own(w) => w.with(Vec::len),
            Writer::RedisPy(c) => c.count(),
        }
    }

    fn stop(self) -> Acked {
        match self {
            Writer::Own(w) => w.stop(),
            Writer::RedisPy(c) => c.acked(),
        }
    }
}

fn run(system: System, client: Client, event: Event, timeout_ms: u64, zk: &str) -> Outcome {
    let cluster = Arc::new(match system {
        System::Zksync => Cluster::zksync(zk, timeout_ms),
        System::Sentinel => Cluster::sentinel(timeout_ms),
    });
    let master = cluster.wait_ready();
    let writer = Writer::start(&cluster, client);
    let count = |w: &Writer| w.count();
    wait_until(Duration::from_secs(10), "writes to flow", || count(&writer) > 2000);
    let at = Instant::now();
    let old = cluster.index_of(master);
    match event {
        Event::Kill => cluster.redis[old].kill(),
        // Redis first waits for its replicas to acknowledge everything,
        // writes paused; zksync hands the leadership over meanwhile.
        Event::Shutdown => {
            let _ = cluster.redis[old].try_cmd(&["SHUTDOWN", "NOSAVE"]);
        }
        Event::Switchover => cluster.switchover(master),
        Event::Stall => stall(master, timeout_ms * 3),
    }
    // Writes flow again on another master, for a while.
    let mut new_master = master;
    wait_until(Duration::from_secs(60), "a new master taking writes", || {
        new_master = (0..3)
            .filter_map(|n| cluster.discover(n))
            .find(|p| *p != master)
            .unwrap_or(master);
        new_master != master && cluster.replicas_linked_or_alone(new_master, event)
    });
    let resumed = count(&writer);
    wait_until(Duration::from_secs(20), "writes on the new master", || {
        count(&writer) > resumed + 2000
    });
    let acked = writer.stop();
    let outage = longest_gap(&acked, at);
    eprintln!(
        "  {}{} {} (T {timeout_ms} ms): outage {outage:?}, lost {}",
        if system == System::Zksync { "zksync" } else { "Sentinel" },
        if client == Client::RedisPy { " (redis-py)" } else { "" },
        event.name(),
        lost_writes(&acked)
    );
    Outcome {
        outage,
        lost: lost_writes(&acked),
    }
}

/// How long the coordination service is down in the outage row.
const OUTAGE: Duration = Duration::from_secs(10);

struct OutageOutcome {
    /// The share of the outage's 100 ms slots in which a write was
    /// acknowledged (robust to the machine's throughput noise, unlike
    /// the rate of writes, printed too).
    share: f64,
    /// The longest gap between acknowledged writes from the outage on.
    gap: Duration,
    lost: i64,
}

/// Stops the coordination service for `OUTAGE`: every ZooKeeper server
/// SIGSTOPped (a stalled ensemble: connections open and silent), or every
/// Sentinel SIGKILLed (and started again from the config it rewrote). The
/// master itself is untouched.
fn run_outage(system: System, client: Client, ensemble: &Ensemble, timeout_ms: u64) -> OutageOutcome {
    let cluster = Arc::new(match system {
        System::Zksync => Cluster::zksync(&ensemble.connect_string(), timeout_ms),
        System::Sentinel => Cluster::sentinel(timeout_ms),
    });
    cluster.wait_ready();
    let writer = Writer::start(&cluster, client);
    wait_until(Duration::from_secs(10), "writes to flow", || writer.count() > 2000);
    let (before, base) = (Instant::now(), writer.count());
    std::thread::sleep(Duration::from_secs(2));
    let rate = (writer.count() - base) as f64 / before.elapsed().as_secs_f64();
    let at = Instant::now();
    let signal = |sig: i32| {
        for i in 0..3 {
            let pid = ensemble.pid(i).expect("ensemble member running") as i32;
            // SAFETY: kill(2) on a JVM this bench started.
            unsafe { libc::kill(pid, sig) };
        }
    };
    match system {
        System::Zksync => signal(libc::SIGSTOP),
        System::Sentinel => cluster.sentinels.iter().for_each(Sentinel::kill),
    }
    std::thread::sleep(OUTAGE);
    let end = Instant::now();
    match system {
        System::Zksync => signal(libc::SIGCONT),
        System::Sentinel => cluster.sentinels.iter().for_each(Sentinel::start),
    }
    // Back to normal (zksync: its leadership taken back in ZooKeeper), and
    // writes for a while after, for any late failover and its losses.
    let thawed = Instant::now();
    wait_until(Duration::from_secs(60), "every source to name a master again", || {
        let named: Vec<Option<u16>> = (0..3).map(|n| cluster.discover(n)).collect();
        named[0].is_some_and(|port| named.iter().all(|n| *n == Some(port)) && cluster.replicas_linked(port))
    });
    let ready_after = thawed.elapsed();
    let resumed = writer.count();
    std::thread::sleep(Duration::from_millis(timeout_ms * 2));
    wait_until(Duration::from_secs(20), "writes after the outage", || {
        writer.count() > resumed + 2000
    });
    let acked = writer.stop();
    let during = acked.iter().filter(|(w, _)| *w >= at && *w < end).count();
    let slots = (end.duration_since(at).as_millis() / 100) as usize;
    let mut written = vec![false; slots];
    for (w, _) in acked.iter().filter(|(w, _)| *w >= at) {
        if let Some(slot) = written.get_mut((w.duration_since(at).as_millis() / 100) as usize) {
            *slot = true;
        }
    }
    let outcome = OutageOutcome {
        share: written.iter().filter(|w| **w).count() as f64 / slots as f64,
        gap: longest_gap(&acked, at),
        lost: lost_writes(&acked),
    };
    eprintln!(
        "  {}{} outage of {OUTAGE:?}: writes acknowledged in {:.1}% of its 100 ms slots, {during} in all \
         ({:.0}% of the rate before), longest gap {:?}, lost {}; the group whole again {ready_after:?} after it",
        if system == System::Zksync { "zksync" } else { "Sentinel" },
        if client == Client::RedisPy { " (redis-py)" } else { "" },
        outcome.share * 100.0,
        during as f64 * 100.0 / (rate * end.duration_since(at).as_secs_f64()),
        outcome.gap,
        outcome.lost
    );
    outcome
}

/// `DEBUG SLEEP` on the master for `ms`, from a thread of its own.
fn stall(master: u16, ms: u64) {
    let mut conn = connect(master).expect("connect");
    std::thread::spawn(move || {
        let _ = conn.set_read_timeout(Some(Duration::from_millis(ms + 5000)));
        let secs = format!("{:.3}", ms as f64 / 1000.0);
        let _ = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(secs)
            .query::<redis::Value>(&mut conn);
    });
}

impl Cluster {
    /// After a SIGKILL or shutdown only two members are left.
    fn replicas_linked_or_alone(&self, master: u16, event: Event) -> bool {
        let want = match event {
            Event::Switchover => 2,
            _ => 1,
        };
        query(master, &["INFO", "replication"]).is_some_and(|v| {
            let info = text(&v);
            info.contains("role:master") && info.matches("state=online").count() >= want
        })
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only outage` (a substring of the rows' names): those rows alone.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_default();
    let runs = if quick { 1 } else { 3 };
    // ZooKeeper expires sessions on tick boundaries (timeout .. timeout +
    // tickTime): a short tick, as a deployment tuned for failover would use.
    let ensemble = Ensemble::start_with(TICK_MS, ["*", "*", "*"]);
    let zk = ensemble.connect_string();
    println!("failover: zksync (3-node ZooKeeper, tickTime {TICK_MS} ms, session timeout T) vs Redis Sentinel");
    println!("(3 Sentinels, quorum 2, down-after-milliseconds T; stall-timeout T); medians of {runs} runs\n");
    println!(
        "{:<28} {:>14} {:>6} {:>16} {:>6} {:>17} {:>6} {:>16} {:>6}",
        "event", "zksync", "lost", "zksync redis-py", "lost", "Sentinel redis-py", "lost", "Sentinel", "lost"
    );
    let configs = [
        (System::Zksync, Client::Own),
        (System::Zksync, Client::RedisPy),
        (System::Sentinel, Client::RedisPy),
        (System::Sentinel, Client::Own),
    ];
    let events = [
        (Event::Kill, 2000),
        (Event::Kill, 10_000),
        (Event::Shutdown, 2000),
        (Event::Switchover, 2000),
        (Event::Stall, 2000),
    ];
    for (event, timeout_ms) in events {
        let name = format!("{} T={}s", event.name(), timeout_ms / 1000);
        if !name.contains(&only) {
            continue;
        }
        let mut row = format!("{name:<28}");
        for (system, client) in configs {
            let outcomes: Vec<Outcome> = (0..runs).map(|_| run(system, client, event, timeout_ms, &zk)).collect();
            let outage = median(outcomes.iter().map(|o| o.outage.as_secs_f64() * 1000.0).collect());
            let lost = median(outcomes.iter().map(|o| o.lost as f64).collect());
            row += &format!(" {:>14.0} {:>6.0}", outage, lost);
        }
        println!("{row}   (outage ms, acknowledged writes lost)");
    }
    // zksync with failsafe (the default) against Sentinel with no Sentinel.
    let name = format!("ZooKeeper outage {} s T=2s", OUTAGE.as_secs());
    if name.contains(&only) {
        let mut row = format!("{name:<28}");
        let mut gaps = Vec::new();
        for (system, client) in configs {
            let outcomes: Vec<OutageOutcome> = (0..runs).map(|_| run_outage(system, client, &ensemble, 2000)).collect();
            let share = median(outcomes.iter().map(|o| o.share * 100.0).collect());
            let lost = median(outcomes.iter().map(|o| o.lost as f64).collect());
            gaps.push(median(outcomes.iter().map(|o| o.gap.as_secs_f64() * 1000.0).collect()));
            row += &format!(" {:>13.1}% {:>6.0}", share, lost);
        }
        println!("{row}   (% of the outage's 100 ms slots with a write acknowledged; acknowledged writes lost)");
        let gaps: Vec<String> = gaps.iter().map(|g| format!("{g:.0}")).collect();
        println!(
            "{:<28} longest write gap from the outage on, ms: {}",
            "",
            gaps.join(" / ")
        );
    }
}
