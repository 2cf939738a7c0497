use super::*;
use std::time::Instant;
use world::Way;

/// Seeds run by default: thousands in a release build, fewer in a debug one.
fn seeds() -> u64 {
    let default = if cfg!(debug_assertions) { 300 } else { 2000 };
    std::env::var("ZKSYNC_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn replay_seed() -> Option<u64> {
    std::env::var("ZKSYNC_SIM_SEED").ok().and_then(|v| v.parse().ok())
}

/// `ZKSYNC_SIM_SWITCHOVERS=1` adds ZKSYNC.FAILOVER to the faults: off by
/// default while today's switchover fails the invariant (see below).
fn rules() -> Rules {
    Rules {
        flaw: None,
        switchovers: std::env::var("ZKSYNC_SIM_SWITCHOVERS").is_ok_and(|v| v == "1"),
    }
}

#[test]
fn sim_one_writer_at_every_instant_and_a_master_after_every_heal() {
    if let Some(seed) = replay_seed() {
        match run(seed, rules(), true) {
            Ok(report) => return println!("seed {seed}: {report:?}"),
            Err(failure) => panic!("{failure}"),
        }
    }
    let started = Instant::now();
    let (mut events, mut worst, mut faults, mut takeovers) = (0, Duration::ZERO, 0, 0);
    let (mut lost, mut parked, mut behind) = (Vec::new(), 0, 0);
    let n = seeds();
    for seed in 0..n {
        let report = run(seed, rules(), false).unwrap_or_else(|failure| panic!("{failure}"));
        events += report.events;
        faults += report.faults;
        takeovers += report.takeovers;
        worst = worst.max(report.recovery.unwrap_or_default());
        parked += usize::from(report.recovery.is_none());
        lost.extend(report.lost.map(|l| (seed, l)));
        behind += report.behind;
    }
    let took = started.elapsed();
    println!(
        "sim: {n} seeds, {faults} faults, {takeovers} leaderships taken, {events} events in {took:?} ({:.0} seeds/s); \
         slowest recovery after a heal {worst:?}; {parked} left without an eligible member",
        n as f64 / took.as_secs_f64()
    );
    println!("sim: {behind} members followed a master further behind than the max lag, within what it wrote unseen");
    let first: Vec<_> = lost.iter().take(10).collect();
    assert!(
        lost.is_empty(),
        "{} seeds had a member follow a master further behind than the max lag and what a master \
         writes unseen (its data wiped): first (seed, (at, member, bytes)) {first:?}",
        lost.len()
    );
}

#[test]
fn sim_replays_a_seed_exactly() {
    let a = run(7, Rules::default(), false).map_err(|f| f.to_string());
    let b = run(7, Rules::default(), false).map_err(|f| f.to_string());
    assert_eq!(a, b);
}

const CATCH_WITHIN: u64 = 5000;

/// The first seed a flawed rule fails, and why.
fn caught(flaw: Flaw) -> Box<Failure> {
    let rules = Rules {
        flaw: Some(flaw),
        switchovers: false,
    };
    for seed in 0..CATCH_WITHIN {
        if let Err(failure) = run(seed, rules, false) {
            println!("{flaw:?} caught:\n{failure}");
            return failure;
        }
    }
    panic!("{flaw:?} was not caught in {CATCH_WITHIN} seeds");
}

#[test]
fn sim_catches_a_lease_that_outlives_the_session() {
    let failure = caught(Flaw::LeaseOutlivesSession);
    assert!(failure.what.contains("two members accept writes"), "{failure}");
}

#[test]
fn sim_catches_a_takeover_without_version_checks() {
    let failure = caught(Flaw::UncheckedTakeover);
    assert!(failure.what.contains("two members accept writes"), "{failure}");
}

fn config(members: usize, session_ms: u64, load_ms: u64) -> Config {
    Config {
        members,
        session_timeout: Duration::from_millis(session_ms),
        load_interval: Duration::from_millis(load_ms),
        max_delay: Duration::from_millis(5),
        rules: Rules::default(),
    }
}

/// Found by the simulation, now a regression test: the master (m0) is cut
/// from ZooKeeper while its replica (m1) is killed; both sessions expire.
/// m1 restarts empty and registers first, and finds no leader and no other
/// member. It used to take over, and m0, back 100 ms later, followed it and
/// was wiped by the full sync. Now the offset the master recorded in
/// ZooKeeper keeps m1 from standing (it is further behind than the max
/// lag), and m0 leads again when it returns.
#[test]
fn a_member_restarted_empty_does_not_win_and_wipe_the_data() {
    let s = Duration::from_millis;
    let healed = s(25_000);
    let mut faults = vec![
        (s(20), Fault::Start(0)),
        (s(200), Fault::Start(1)),
        (s(8000), Fault::Kill(1)),
        (s(8400), Fault::Cut(0, Way::Both)),
        (s(17_600), Fault::Start(1)),
        (s(17_700), Fault::Uncut(0)),
    ];
    faults.extend((0..2).map(|m| (healed, Fault::Uncut(m))));
    let scenario = Scenario {
        cfg: config(2, 4000, 500),
        faults,
        healed,
    };
    let report = simulate(0, Rng::new(0), scenario, false).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(report.lost, None, "m0's data is kept");
    assert_eq!(report.last_master, Some(0), "m0 leads again, m1 follows it");
}

/// A finding of the simulation, kept replayable: a switchover outlives the
/// leadership it was planned against. `ZKSYNC.FAILOVER TO m2` is asked of
/// m1; the master m0 pauses and records its offset, then stops (SIGSTOP,
/// as a master cut from ZooKeeper would) before m2 has caught up. Its
/// session expires and m1 is elected and promoted. m2, still the target of
/// the switchover znode (stage `paused`, from m0), catches up from m1 and
/// takes the leadership in the switchover's transaction, deleting m1's
/// leader znode: m1 never paused, and accepts writes as m2 does until it
/// learns it was deposed (its lease runs up to 2/3 of the session timeout).
/// The rule is left as it is (the lead decides); when the switchover stops
/// doing this, this test fails: then run every seed with switchovers.
#[test]
fn sim_finding_a_stale_switchover_deposes_a_master_that_never_paused() {
    let s = Duration::from_millis;
    let healed = s(15_000);
    let failover = Fault::Failover {
        at: 1,
        to: Some(2),
        timeout: s(5000),
        force: false,
    };
    let mut faults = vec![
        (s(0), Fault::Start(0)),
        (s(300), Fault::Start(1)),
        (s(400), Fault::Start(2)),
        (s(5000), failover),
        (s(5100), Fault::Stop(0)),
    ];
    faults.extend((0..3).map(|m| (healed, Fault::Cont(m))));
    let scenario = Scenario {
        cfg: config(3, 2000, 1000),
        faults,
        healed,
    };
    let failure =
        simulate(1, Rng::new(1), scenario, false).expect_err("the switchover is safe: run every seed with it");
    println!("{failure}");
    assert_eq!(failure.what, "two members accept writes at once: [1, 2]");
}
