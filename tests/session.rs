//! Session state under a silent link (packets dropped, the socket left
//! open), repeated so that the race between the cut, the reconnect and the
//! server's expiry cannot decide the answer: STATUS leaves `connected`
//! within 2/3 of the session timeout every time, never claims the old
//! session once it is gone, and UNLOCK never answers 1 for a lock that
//! another server's client may hold.

use redis::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use testkit::netns::{self, NetNs};
use testkit::proxy::Proxy;
use testkit::*;

const SETTLE: Duration = Duration::from_secs(10);
/// What the scheduler may add to a deadline on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(250);
const REPETITIONS: usize = 20;

fn query(conn: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut cmd = redis::cmd(args[0]);
    for arg in &args[1..] {
        cmd.arg(*arg);
    }
    cmd.query(conn)
}

fn token(value: Value) -> i64 {
    match value {
        Value::Int(t) => t,
        other => panic!("expected a token, got {other:?}"),
    }
}

fn contenders(zk: &ZkClient, lock: &str) -> Vec<String> {
    zk.block_on(zk.client().list_children(lock)).unwrap_or_default()
}

/// One STATUS reading.
#[derive(Clone, Debug)]
struct Sample {
    at: Instant,
    state: String,
    session: String,
}

/// Reads STATUS every few milliseconds on a connection of its own.
struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sampler {
    fn start(redis: &Redis) -> Sampler {
        let mut conn = redis.conn();
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (into, stopped) = (samples.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let fields = status_of(&mut conn);
                let sample = Sample {
                    at: Instant::now(),
                    state: fields.get("state").cloned().unwrap_or_default(),
                    session: fields.get("session_id").cloned().unwrap_or_default(),
                };
                into.lock().unwrap().push(sample);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Sampler {
            samples,
            stop,
            thread: Some(thread),
        }
    }

    fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// The first sample at or after `since` that is not `connected`.
    fn left_connected(&self, since: Instant) -> Option<Sample> {
        self.samples()
            .into_iter()
            .find(|s| s.at >= since && s.state != "connected")
    }

    fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.samples()
    }
}

fn status_of(conn: &mut redis::Connection) -> std::collections::HashMap<String, String> {
    match query(conn, &["ZKSYNC.STATUS"]) {
        Ok(Value::Array(items)) => items.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect(),
        Ok(Value::Map(items)) => items.iter().map(|(k, v)| (text(k), text(v))).collect(),
        other => panic!("unexpected ZKSYNC.STATUS reply {other:?}"),
    }
}

/// ZKSYNC.LOCKS as one map of fields a lock.
fn locks(reply: Value) -> Vec<std::collections::HashMap<String, String>> {
    let Value::Array(rows) = reply else {
        panic!("LOCKS answered {reply:?}");
    };
    let field = |v: &Value| match v {
        Value::Int(n) => n.to_string(),
        other => text(other),
    };
    rows.iter()
        .map(|row| match row {
            Value::Array(items) => items.chunks(2).map(|kv| (field(&kv[0]), field(&kv[1]))).collect(),
            Value::Map(items) => items.iter().map(|(k, v)| (field(k), field(v))).collect(),
            other => panic!("a LOCKS row {other:?}"),
        })
        .collect()
}

/// A LOCK sent on a thread of its own: its token, when it came, and the
/// connection that holds it.
fn lock_in_background(redis: &Redis, lock: &str) -> JoinHandle<(i64, Instant, redis::Connection)> {
    let mut conn = redis.conn();
    let lock = lock.to_string();
    std::thread::spawn(move || {
        let t = token(query(&mut conn, &["ZKSYNC.LOCK", &lock, "TIMEOUT", "20000"]).unwrap());
        (t, Instant::now(), conn)
    })
}

/// How one repetition ended.
#[derive(Debug)]
struct Outcome {
    heal_after: Duration,
    left_after: Duration,
    unlocked: i64,
    unlock_took: Duration,
    survived: bool,
}

#[test]
fn a_silent_cut_is_seen_every_time_and_unlock_never_claims_a_lock_given_away() {
    let connect = shared_zk().connect_string();
    let zk = ZkClient::connect(&connect);
    let proxy = Proxy::start(&connect);
    let a = Redis::start(&proxy.addr(), &[("zksync.allow", "/t")]);
    let b = Redis::start(&connect, &[("zksync.allow", "/t")]);
    a.wait_state("connected", SETTLE);
    b.wait_state("connected", SETTLE);
    let timeout = Duration::from_millis(a.status()["session_timeout"].parse().unwrap());
    // Heals before the expiry, about at it, and after it.
    let heals = [300, 700, 1100, 1500, 1900, 2300, 2700, 3200, 3600, 900];
    let mut outcomes = Vec::new();
    for repetition in 0..REPETITIONS {
        let heal_after = Duration::from_millis(heals[repetition % heals.len()]);
        let outcome = one_cut(&zk, &proxy, &a, &b, timeout, heal_after, repetition);
        println!("{outcome:?}");
        outcomes.push(outcome);
    }
    let worst = outcomes.iter().map(|o| o.left_after).max().unwrap();
    let survived = outcomes.iter().filter(|o| o.survived).count();
    let released = outcomes.iter().filter(|o| o.unlocked == 1).count();
    let longest_unlock = outcomes.iter().map(|o| o.unlock_took).max().unwrap();
    let last_survivor = outcomes.iter().filter(|o| o.survived).map(|o| o.heal_after).max();
    println!(
        "timeout {timeout:?}: worst time to leave `connected` {worst:?} over {REPETITIONS} cuts; \
         {survived} sessions survived (the latest heal {last_survivor:?}), {} expired; \
         UNLOCK answered 1 {released} times, waited at most {longest_unlock:?}",
        REPETITIONS - survived
    );
    assert!(survived > 0 && survived < REPETITIONS, "both fates were tried");
}

/// A holds a lock, B waits for it; A's link goes silent, A is asked to
/// UNLOCK, the link heals after `heal_after`.
fn one_cut(
    zk: &ZkClient,
    proxy: &Proxy,
    a: &Redis,
    b: &Redis,
    timeout: Duration,
    heal_after: Duration,
    repetition: usize,
) -> Outcome {
    let lock = unique_root(&format!("silent-{repetition}"));
    let mut on_a = a.conn();
    let held = token(query(&mut on_a, &["ZKSYNC.LOCK", &lock]).unwrap());
    let waiter = lock_in_background(b, &lock);
    wait_until(SETTLE, "B to wait", || contenders(zk, &lock).len() == 2);
    let old_session = a.status()["session_id"].clone();
    let sampler = Sampler::start(a);
    std::thread::sleep(Duration::from_millis(50));

    proxy.blackhole();
    let cut = Instant::now();
    let suspended_by = timeout * 2 / 3 + MARGIN;
    wait_until(suspended_by + MARGIN, "A to leave `connected`", || {
        sampler.left_connected(cut).is_some()
    });
    let left = sampler.left_connected(cut).unwrap();
    let left_after = left.at - cut;
    assert!(
        left_after <= suspended_by,
        "left `connected` {left_after:?} after the cut"
    );
    let t = held.to_string();
    assert!(
        query(&mut on_a, &["ZKSYNC.CHECK", &lock, &t]).is_err(),
        "CHECK vouches no more"
    );
    let listed = locks(query(&mut on_a, &["ZKSYNC.LOCKS"]).unwrap());
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["vouched"], "0", "LOCKS shows the lock unvouched");

    // UNLOCK waits for the session's fate, on a thread of its own.
    let unlocking = {
        let mut conn = a.conn();
        let (lock, t) = (lock.clone(), t.clone());
        std::thread::spawn(move || {
            let sent = Instant::now();
            let reply = query(&mut conn, &["ZKSYNC.UNLOCK", &lock, &t]).unwrap();
            (sent, reply, Instant::now())
        })
    };
    while cut.elapsed() < heal_after {
        std::thread::sleep(Duration::from_millis(5));
    }
    proxy.restore();
    let healed = Instant::now();
    let (unlock_sent, unlocked, unlock_done) = unlocking.join().unwrap();
    let unlocked = match unlocked {
        Value::Int(n) => n,
        other => panic!("UNLOCK answered {other:?}"),
    };
    let (b_token, b_granted, mut on_b) = waiter.join().unwrap();
    a.wait_state("connected", SETTLE);
    let samples = sampler.stop();
    let survived = a.status()["session_id"] == old_session;
    check_samples(&samples, cut, suspended_by, healed, survived, &old_session);

    let unlock_took = unlock_done - unlock_sent;
    assert!(unlock_took <= timeout + MARGIN * 2, "UNLOCK waited {unlock_took:?}");
    assert!(b_token > held, "B's token {b_token} follows A's {held}");
    if unlocked == 1 {
        assert!(survived, "UNLOCK said 1 but the session had expired");
        assert!(b_granted > unlock_sent, "B held the lock before A's UNLOCK was sent");
    } else {
        assert_eq!(unlocked, 0);
    }
    if !survived {
        assert_eq!(unlocked, 0, "the session expired: the lock was given away");
    }
    assert_eq!(
        query(&mut on_b, &["ZKSYNC.UNLOCK", &lock, &b_token.to_string()]).unwrap(),
        Value::Int(1)
    );
    Outcome {
        heal_after,
        left_after,
        unlocked,
        unlock_took,
        survived,
    }
}

/// Between the 2/3 point and the heal nothing says `connected`; once the
/// old session is gone nothing says `connected` with its id.
fn check_samples(
    samples: &[Sample],
    cut: Instant,
    suspended_by: Duration,
    healed: Instant,
    survived: bool,
    old_session: &str,
) {
    for s in samples.iter().filter(|s| s.at >= cut + suspended_by) {
        assert!(
            !(s.at < healed && s.state == "connected"),
            "`connected` {:?} after the cut, before the heal",
            s.at - cut
        );
        assert!(
            survived || !(s.state == "connected" && s.session == old_session),
            "`connected` with the expired session {old_session}, {:?} after the cut",
            s.at - cut
        );
    }
}

/// With an ensemble, a silent link to the server holding the session moves
/// the session to another server within the timeout: the same session, its
/// lock, its leadership and the mirror all survive. A real partition: the
/// redis-server runs in a network namespace that drops its packets to and
/// from one ZooKeeper server's address only.
#[test]
fn a_silent_link_to_one_ensemble_server_keeps_the_session() {
    // SAFETY: geteuid(2) only reads this process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: network namespaces need root");
        return;
    }
    assert!(netns::available(), "root, but no network namespaces or tc here");
    let ensemble = Ensemble::start_on_every_interface();
    let ns = NetNs::create(3);
    let root = unique_root("ensemble-silent");
    let group = unique_root("g").replace('/', "");
    let zk = ZkClient::connect(&ensemble.connect_string());
    zk.create_all(&format!("{root}/k"), b"start");
    let redis = Redis::start_in(
        &ns,
        &ensemble.connect_string_via(&ns.host_addrs),
        &[
            ("zksync.mirrors", &root),
            ("zksync.allow", "/t"),
            ("zksync.group", &group),
        ],
    );
    redis.wait_state("connected", SETTLE);
    wait_until(SETTLE, "this member to lead", || {
        let status = redis.status();
        status.get("role").map(String::as_str) == Some("master") && status["leader"] == status["member_id"]
    });
    let lock = unique_root("ensemble-lock");
    let mut conn = redis.conn();
    let t = token(query(&mut conn, &["ZKSYNC.LOCK", &lock]).unwrap()).to_string();
    let before = redis.status();
    let mut moves = Vec::new();
    for repetition in 0..REPETITIONS {
        let held_by = redis.status()["server"].clone();
        let addr = held_by.split(':').next().unwrap().to_string();
        ns.silence(&addr);
        let cut = Instant::now();
        let value = format!("during cut {repetition}");
        zk.set(&format!("{root}/k"), value.as_bytes());
        wait_until(SETTLE, "the session on another server", || {
            let status = redis.status();
            status["state"] == "connected" && status["server"] != held_by
        });
        moves.push(cut.elapsed());
        let status = redis.status();
        assert_eq!(status["session_id"], before["session_id"], "the same session");
        assert_eq!(
            (
                status["role"].as_str(),
                status["leader"].as_str(),
                status["epoch"].as_str()
            ),
            ("master", before["member_id"].as_str(), before["epoch"].as_str()),
            "the same leadership"
        );
        wait_until(SETTLE, "CHECK to vouch on the new server", || {
            query(&mut conn, &["ZKSYNC.CHECK", &lock, &t]).is_ok()
        });
        wait_until(SETTLE, "the change made during the cut mirrored", || {
            text(&redis.cmd(&["GET", &format!("zk:{root}/k")])) == value
        });
        wait_until(SETTLE, "writes accepted", || {
            query(&mut conn, &["SET", "written", &value]).is_ok()
        });
        ns.heal(&addr);
    }
    moves.sort();
    println!(
        "session moved to another server after a silent cut in {:?} (median) / {:?} (worst) over {} cuts",
        moves[moves.len() / 2],
        moves[moves.len() - 1],
        moves.len()
    );
    assert_eq!(query(&mut conn, &["ZKSYNC.UNLOCK", &lock, &t]).unwrap(), Value::Int(1));
    let timeout = Duration::from_millis(before["session_timeout"].parse().unwrap());
    assert!(
        moves[moves.len() - 1] < timeout,
        "every move within the session timeout"
    );
}
