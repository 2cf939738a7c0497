//! Failsafe: a ZooKeeper outage is not a write outage. Three redis-servers
//! (or valkey-servers) in one group, session timeout T = 2 s, on a real
//! standalone ZooKeeper that the tests stop (SIGSTOP: a stalled JVM, every
//! connection open and silent) or cut from one member (a blackholing proxy).
//! Every scenario runs a writer that INCRs a counter on whoever the members
//! name as master and records each acknowledged value, and a prober that
//! writes through every member to catch two accepting at once; the timing
//! tests also watch one server's writes directly (accepted or refused).
//!
//! The tests run one at a time: they stop the ZooKeeper they share.

use redis::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use testkit::group::*;
use testkit::proxy::Proxy;
use testkit::writer::{connect, longest_gap, lost_writes, Acked, Background};
use testkit::*;

const SESSION_TIMEOUT: Duration = Duration::from_millis(2000);
/// What the scheduler may add to a deadline on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(300);

fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The standalone ZooKeeper SIGSTOPped (every thread of its JVM) until
/// dropped, so that a failing test does not leave it stopped for the next.
struct Frozen<'a> {
    zk: &'a Zk,
    at: Instant,
}

impl<'a> Frozen<'a> {
    fn new(zk: &'a Zk) -> Frozen<'a> {
        signal(zk, libc::SIGSTOP);
        Frozen { zk, at: Instant::now() }
    }

    /// SIGCONT; returns when.
    fn thaw(self) -> Instant {
        drop(self);
        Instant::now()
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        signal(self.zk, libc::SIGCONT);
    }
}

fn signal(zk: &Zk, sig: i32) {
    let pid = zk.pid().expect("ZooKeeper running") as i32;
    // SAFETY: kill(2) on the JVM this test binary started.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// One STATUS field ("" if absent).
fn field(redis: &Redis, name: &str) -> String {
    redis.status().get(name).cloned().unwrap_or_default()
}

/// The member ids a `failsafe_list` (`<epoch>:<id>,<id>,...`) names.
fn listed(list: &str) -> Vec<String> {
    let Some((epoch, ids)) = list.split_once(':') else {
        return Vec::new();
    };
    assert!(epoch.parse::<u64>().is_ok(), "failsafe_list {list:?}");
    let mut ids: Vec<String> = ids.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
    ids.sort();
    ids
}

fn all_ids(g: &Group) -> Vec<String> {
    let mut ids: Vec<String> = (0..g.members.len()).map(|i| g.id(i)).collect();
    ids.sort();
    ids
}

/// Writes through one server every few milliseconds: when, and whether it
/// was accepted (a READONLY refusal, a timeout or a lost connection is not).
fn watch(port: u16) -> Background<Vec<(Instant, bool)>> {
    let mut conn: Option<redis::Connection> = None;
    Background::start(move |out: &Mutex<Vec<(Instant, bool)>>| {
        if conn.is_none() {
            conn = connect(port);
        }
        let accepted = match conn.as_mut() {
            None => false,
            Some(c) => match redis::cmd("SET").arg("watch").arg(port).query::<Value>(c) {
                Ok(_) => true,
                Err(e) => {
                    if e.code() != Some("READONLY") {
                        conn = None;
                    }
                    false
                }
            },
        };
        out.lock().unwrap().push((Instant::now(), accepted));
        std::thread::sleep(Duration::from_millis(5));
    })
}

/// The longest time within `since..until` without an accepted write.
fn longest_refused(samples: &[(Instant, bool)], since: Instant, until: Instant) -> Duration {
    let mut longest = Duration::ZERO;
    let mut previous = since;
    for (at, _) in samples
        .iter()
        .filter(|(at, accepted)| *accepted && *at >= since && *at <= until)
    {
        longest = longest.max(at.duration_since(previous));
        previous = *at;
    }
    longest.max(until.saturating_duration_since(previous))
}

/// Waits until the master's failsafe list names every member of `g`.
fn wait_listed(g: &Group, master: usize) {
    let want = all_ids(g);
    wait_until(
        Duration::from_secs(10),
        "the failsafe list to name every member",
        || listed(&field(&g.members[master], "failsafe_list")) == want,
    );
}

/// Waits until the master writes on its members' grants, and checks what
/// STATUS and INFO show of it.
fn wait_failsafe_active(g: &Group, master: usize, since: Instant) -> Duration {
    wait_until(SESSION_TIMEOUT * 2, "the master to write on grants", || {
        field(&g.members[master], "failsafe") == "active"
    });
    let after = since.elapsed();
    let mut others: Vec<String> = (0..g.members.len()).filter(|&i| i != master).map(|i| g.id(i)).collect();
    others.sort();
    let mut grants: Vec<String> = field(&g.members[master], "failsafe_grants")
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    grants.sort();
    assert_eq!(grants, others, "failsafe_grants on the master");
    let info = text(&g.members[master].cmd(&["INFO", "zksync"]));
    assert!(info.contains("zksync_failsafe:active"), "{info}");
    for i in (0..g.members.len()).filter(|&i| i != master) {
        let granted: u64 = field(&g.members[i], "failsafe_granted_ms").parse().unwrap_or(0);
        assert!(
            granted > 0 && granted <= SESSION_TIMEOUT.as_millis() as u64,
            "member {i} failsafe_granted_ms {granted}"
        );
        assert_eq!(field(&g.members[i], "failsafe"), "standby", "member {i}");
    }
    after
}

/// Every member names `master` as ZKSYNC.LEADER and as a Sentinel does.
fn assert_discovery_names(g: &Group, master: usize) {
    let port = g.members[master].port();
    for i in 0..g.members.len() {
        assert_eq!(
            g.leader_seen_by(i).map(|(id, _)| id),
            Some(g.id(master)),
            "ZKSYNC.LEADER on member {i}"
        );
        let by_sentinel = match g.members[i].cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &g.name]) {
            Value::Array(items) if items.len() == 2 => text(&items[1]).parse::<u16>().ok(),
            _ => None,
        };
        assert_eq!(
            by_sentinel,
            Some(port),
            "SENTINEL GET-MASTER-ADDR-BY-NAME on member {i}"
        );
    }
}

/// Waits until no member of `alive` writes on grants any more (so
/// ZooKeeper has the group's leader again: during failsafe the members keep
/// naming the master, and `wait_converged` would see the old epoch), then
/// until they converge.
fn wait_settled(g: &Group, alive: &[usize]) -> (usize, i64) {
    wait_until(Duration::from_secs(20), "every member off failsafe", || {
        alive.iter().all(|&i| field(&g.members[i], "failsafe") != "active")
    });
    g.wait_converged(alive, Duration::from_secs(20))
}

/// The last history entry's reason.
fn last_reason(zk: &Zk, group: &str) -> String {
    let client = ZkClient::connect(&zk.connect_string());
    history(&client, group)
        .last()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Waits for `more` acknowledged writes than now.
fn wait_writes(writer: &Background<Acked>, more: usize, what: &str) {
    let before = count(writer);
    wait_until(Duration::from_secs(15), what, || count(writer) > before + more);
}

#[test]
fn a_zookeeper_outage_does_not_stop_writes_nor_move_the_master() {
    let _serial = serial();
    let zk = shared_zk();
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = loaded_on("outage", &zk.connect_string(), &[]);
    wait_listed(&g, master);
    for (i, m) in g.members.iter().enumerate() {
        assert_eq!(field(m, "failsafe"), "standby", "member {i}");
    }
    // The internal command grants only the master a member follows, in its group.
    let replica = &g.members[(master + 1) % 3];
    let e = epoch.to_string();
    for args in [
        ["ZKSYNC.FAILSAFE", g.name.as_str(), "127.0.0.1:1", e.as_str()],
        ["ZKSYNC.FAILSAFE", "another-group", g.id(master).as_str(), e.as_str()],
    ] {
        let refused = replica.try_cmd(&args);
        assert!(refused.is_err(), "{args:?}: {refused:?}");
    }
    assert_eq!(field(replica, "failsafe_granted_ms"), "0");
    let on_master = watch(g.members[master].port());
    std::thread::sleep(Duration::from_millis(200));

    let frozen = Frozen::new(zk);
    let stopped = frozen.at;
    let active_after = wait_failsafe_active(&g, master, stopped);
    // Until the end of the outage, it stays active; discovery still names it.
    while stopped.elapsed() < Duration::from_secs(10) {
        assert_eq!(
            field(&g.members[master], "failsafe"),
            "active",
            "{:?} into the outage",
            stopped.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_discovery_names(&g, master);
    let thawed = frozen.thaw();

    let (after, after_epoch) = wait_settled(&g, &[0, 1, 2]);
    let converged = thawed.elapsed();
    assert_eq!(after, master, "the master moved: {}", g.describe(&[0, 1, 2]));
    wait_writes(&writer, 500, "writes after the outage");
    let until = Instant::now();
    let acked = writer.stop();
    let samples = on_master.stop();
    let refused = longest_refused(&samples, stopped, until);
    let gap = longest_gap(&acked, stopped);
    let violations = prober.stop();
    println!(
        "ZooKeeper stopped 10 s: failsafe active after {active_after:?}; longest refused window on the \
         master {refused:?}, longest writer gap {gap:?}; converged {converged:?} after the thaw at epoch \
         {after_epoch} (was {epoch}); {} acked",
        acked.len()
    );
    assert!(violations.is_empty(), "{violations:?}");
    assert!(refused <= Duration::from_secs(1), "refused for {refused:?}");
    assert!(gap <= Duration::from_secs(1), "the writer waited {gap:?}");
    g.wait_in_sync(master, &[0, 1, 2]);
    assert_no_acked_write_lost(&acked, counter(&g.members[master], "counter"));
    if after_epoch != epoch {
        // Its znode went with its session: it took the leadership back.
        assert_eq!(after_epoch, epoch + 1);
        assert_eq!(last_reason(zk, &g.name), "failsafe");
    }
}

#[test]
fn a_master_cut_from_zookeeper_alone_never_makes_two_writers() {
    let _serial = serial();
    let zk = shared_zk();
    let name = group_name("master-cut");
    // The first member reaches ZooKeeper through a proxy that the test can cut.
    let proxy = Proxy::start(&zk.connect_string());
    let first = Group::member(&proxy.addr(), &name, &[]);
    wait_until(Duration::from_secs(10), "the first member to lead", || {
        field(&first, "leader") == format!("127.0.0.1:{}", first.port())
    });
    let g = Group {
        name: name.clone(),
        members: vec![
            first,
            Group::member(&zk.connect_string(), &name, &[]),
            Group::member(&zk.connect_string(), &name, &[]),
        ],
    };
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = load(g);
    assert_eq!(master, 0);
    wait_listed(&g, master);

    let cut = Instant::now();
    proxy.blackhole();
    // Four session timeouts: its session expires, its znode goes.
    let mut active = false;
    while cut.elapsed() < SESSION_TIMEOUT * 4 {
        active |= field(&g.members[0], "failsafe") == "active";
        std::thread::sleep(Duration::from_millis(100));
    }
    let during: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "member {i}: names {:?}, failsafe {}, granted_ms {}",
                g.leader_seen_by(i),
                field(&g.members[i], "failsafe"),
                field(&g.members[i], "failsafe_granted_ms")
            )
        })
        .collect();
    proxy.restore();
    let healed = Instant::now();
    let (end, end_epoch) = wait_settled(&g, &[0, 1, 2]);
    let converged = healed.elapsed();
    wait_writes(&writer, 500, "writes after the heal");
    // A while longer, for a late second writer.
    std::thread::sleep(SESSION_TIMEOUT);
    assert_eq!(g.converged(&[0, 1, 2]), Some((end, end_epoch)), "one master at the end");
    let acked = writer.stop();
    let violations = prober.stop();
    let gap = longest_gap(&acked, cut);
    println!(
        "master cut from ZooKeeper for {:?}: failsafe active {active}; master {master} -> {end}, epoch \
         {epoch} -> {end_epoch} ({}), converged {converged:?} after the heal; longest writer gap {gap:?}; \
         {} acked; at the end of the cut: {during:?}",
        SESSION_TIMEOUT * 4,
        last_reason(zk, &g.name),
        acked.len()
    );
    assert!(violations.is_empty(), "{violations:?}");
    // Its replicas kept granting: it kept writing, and took its leadership
    // back when ZooKeeper answered it again.
    assert!(active, "the master never wrote on grants");
    assert_eq!(end, master, "a needless failover");
    assert!(gap <= Duration::from_secs(1), "the writer waited {gap:?}");
    g.wait_in_sync(end, &[0, 1, 2]);
    assert_no_acked_write_lost(&acked, counter(&g.members[end], "counter"));
}

#[test]
fn a_replica_cut_from_zookeeper_leaves_the_master_alone() {
    let _serial = serial();
    let zk = shared_zk();
    let proxy = Proxy::start(&zk.connect_string());
    let mut g = Group::start("replica-cut", &zk.connect_string(), 2, &[]);
    g.wait_converged(&[0, 1], Duration::from_secs(15));
    // The third member, behind the proxy, joins as a replica.
    g.members.push(Group::member(&proxy.addr(), &g.name, &[]));
    let Loaded {
        g,
        master,
        epoch,
        writer,
        prober,
    } = load(g);
    assert!(master < 2);
    wait_listed(&g, master);
    let on_master = watch(g.members[master].port());
    std::thread::sleep(Duration::from_millis(200));

    let cut = Instant::now();
    proxy.blackhole();
    let mut states = std::collections::BTreeSet::new();
    while cut.elapsed() < SESSION_TIMEOUT * 4 {
        states.insert(field(&g.members[master], "failsafe"));
        std::thread::sleep(Duration::from_millis(100));
    }
    proxy.restore();
    let healed = Instant::now();
    let (end, end_epoch) = g.wait_converged(&[0, 1, 2], Duration::from_secs(20));
    wait_writes(&writer, 500, "writes after the heal");
    let until = Instant::now();
    let acked = writer.stop();
    let samples = on_master.stop();
    let violations = prober.stop();
    let refused_during = samples
        .iter()
        .filter(|(at, accepted)| !accepted && *at >= cut && *at <= until)
        .count();
    let longest = longest_refused(&samples, cut, until);
    let gap = longest_gap(&acked, cut);
    println!(
        "replica cut from ZooKeeper for {:?}: master's failsafe states {states:?}; {refused_during} writes \
         not accepted by the master, longest window without one {longest:?}; longest writer gap {gap:?}; \
         converged {:?} after the heal",
        SESSION_TIMEOUT * 4,
        until.duration_since(healed)
    );
    assert_eq!((end, end_epoch), (master, epoch), "the master moved");
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(refused_during, 0, "the master refused writes");
    assert!(
        states.iter().all(|s| s == "standby"),
        "the master went to failsafe: {states:?}"
    );
    assert!(longest <= Duration::from_millis(200), "no write for {longest:?}");
    assert!(gap <= Duration::from_millis(500), "the writer waited {gap:?}");
    g.wait_in_sync(master, &[0, 1, 2]);
    assert_no_acked_write_lost(&acked, counter(&g.members[master], "counter"));
}

#[test]
fn a_member_started_during_an_outage_never_becomes_master() {
    let _serial = serial();
    let zk = shared_zk();
    let Loaded {
        mut g,
        master,
        epoch,
        writer,
        prober,
    } = loaded_on("late", &zk.connect_string(), &[]);
    wait_listed(&g, master);

    let frozen = Frozen::new(zk);
    let stopped = frozen.at;
    wait_failsafe_active(&g, master, stopped);
    let late = Group::member(&zk.connect_string(), &g.name, &[]);
    let started_after = stopped.elapsed();
    let late_id = format!("127.0.0.1:{}", late.port());
    let on_late = watch(late.port());
    g.members.push(late);
    let all = [0, 1, 2, 3];
    let every_writer = prober_on(g.ports());
    // Nobody names it, and it names no one but the master.
    let named = {
        let ports = g.ports();
        let late_id = late_id.clone();
        Background::start(move |seen: &Mutex<Vec<String>>| {
            for port in &ports {
                let Some(mut c) = connect(*port) else { continue };
                if let Ok(Value::Array(items)) = redis::cmd("ZKSYNC.LEADER").query::<Value>(&mut c) {
                    if items.first().map(text).as_deref() == Some(late_id.as_str()) {
                        seen.lock().unwrap().push(format!("{port} names the late member"));
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        })
    };
    while stopped.elapsed() < SESSION_TIMEOUT * 3 {
        assert_eq!(field(&g.members[master], "failsafe"), "active");
        std::thread::sleep(Duration::from_millis(100));
    }
    let thawed = frozen.thaw();

    let (after, after_epoch) = wait_settled(&g, &all);
    let converged = thawed.elapsed();
    assert_eq!(after, master, "the master moved: {}", g.describe(&all));
    // The new list names the late member too.
    wait_listed(&g, master);
    wait_writes(&writer, 500, "writes after the outage");
    std::thread::sleep(SESSION_TIMEOUT);
    assert_eq!(g.converged(&all), Some((master, after_epoch)));
    let acked = writer.stop();
    let accepted_by_late = on_late.stop().iter().filter(|(_, accepted)| *accepted).count();
    let names = named.stop();
    let violations = prober.stop();
    let violations_with_late = every_writer.stop();
    println!(
        "a member started {started_after:?} into a {:?} outage: converged {converged:?} after the thaw, \
         epoch {epoch} -> {after_epoch}; {} acked, {} lost",
        thawed.duration_since(stopped),
        acked.len(),
        lost_writes(&acked)
    );
    assert_eq!(accepted_by_late, 0, "the late member accepted writes");
    assert!(names.is_empty(), "{names:?}");
    assert!(violations.is_empty(), "{violations:?}");
    assert!(violations_with_late.is_empty(), "{violations_with_late:?}");
    g.wait_in_sync(master, &all);
    assert_no_acked_write_lost(&acked, counter(&g.members[master], "counter"));
}

#[test]
fn without_failsafe_a_zookeeper_outage_fences_the_master_within_two_thirds_of_the_timeout() {
    let _serial = serial();
    let zk = shared_zk();
    let Loaded {
        g,
        master,
        writer,
        prober,
        ..
    } = loaded_on("off", &zk.connect_string(), &[("zksync.failsafe", "no")]);
    for (i, m) in g.members.iter().enumerate() {
        assert_eq!(field(m, "failsafe"), "off", "member {i}");
    }
    // Settable at run time.
    let m = &g.members[master];
    let config = format!("{:?}", m.cmd(&["CONFIG", "GET", "zksync.failsafe"]));
    assert!(config.contains("no"), "{config}");
    m.cmd(&["CONFIG", "SET", "zksync.failsafe", "yes"]);
    wait_until(Duration::from_secs(2), "failsafe standby", || {
        field(m, "failsafe") == "standby"
    });
    m.cmd(&["CONFIG", "SET", "zksync.failsafe", "no"]);
    wait_until(Duration::from_secs(2), "failsafe off", || field(m, "failsafe") == "off");
    let on_master = watch(m.port());
    std::thread::sleep(Duration::from_millis(200));

    let frozen = Frozen::new(zk);
    let stopped = frozen.at;
    wait_until(SESSION_TIMEOUT * 2, "the master to refuse writes", || {
        on_master.with(|s| s.iter().any(|(at, accepted)| *at > stopped && !accepted))
    });
    let samples = on_master.with(Vec::clone);
    let last_accepted = samples
        .iter()
        .filter(|(at, accepted)| *accepted && *at > stopped)
        .map(|(at, _)| at.duration_since(stopped))
        .max()
        .unwrap_or_default();
    let fenced = m.status();
    std::thread::sleep(SESSION_TIMEOUT);
    let accepted_after = on_master.with(|s| {
        s.iter()
            .filter(|(at, accepted)| *accepted && *at > stopped + last_accepted)
            .count()
    });
    let thawed = frozen.thaw();
    let (end, _) = g.wait_converged(&[0, 1, 2], Duration::from_secs(20));
    on_master.stop();
    let acked = writer.stop();
    let violations = prober.stop();
    println!(
        "failsafe no, ZooKeeper stopped: last write accepted {last_accepted:?} after the stop; master \
         {master} -> {end} converged {:?} after the thaw; {} lost",
        thawed.elapsed(),
        lost_writes(&acked)
    );
    assert_eq!(fenced["fenced"], "1", "{fenced:?}");
    assert_eq!(fenced["failsafe"], "off");
    assert!(
        last_accepted <= SESSION_TIMEOUT * 2 / 3 + MARGIN,
        "accepted writes {last_accepted:?} after the stop"
    );
    assert_eq!(accepted_after, 0, "a write accepted once fenced");
    assert!(violations.is_empty(), "{violations:?}");
}
