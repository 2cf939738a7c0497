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

#[test]
fn sim_one_writer_at_every_instant_and_a_master_after_every_heal() {
    if let Some(seed) = replay_seed() {
        match run(seed, None, true) {
            Ok(report) => return println!("seed {seed}: {report:?}"),
            Err(failure) => panic!("{failure}"),
        }
    }
    let started = Instant::now();
    let (mut events, mut worst, mut faults) = (0, Duration::ZERO, 0);
    let (mut lost, mut parked) = (Vec::new(), 0);
    let n = seeds();
    for seed in 0..n {
        match run(seed, None, false) {
            Ok(report) => {
                events += report.events;
                faults += report.faults;
                worst = worst.max(report.recovery.unwrap_or_default());
                parked += usize::from(report.recovery.is_none());
                lost.extend(report.lost.map(|l| (seed, l)));
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    let took = started.elapsed();
    println!(
        "sim: {n} seeds, {faults} faults, {events} events in {took:?} ({:.0} seeds/s); slowest recovery after a heal {worst:?}; {parked} left without an eligible member",
        n as f64 / took.as_secs_f64()
    );
    println!(
        "sim: {} seeds wiped a live member's data: {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
}

#[test]
fn sim_replays_a_seed_exactly() {
    let a = run(7, None, false).map_err(|f| f.to_string());
    let b = run(7, None, false).map_err(|f| f.to_string());
    assert_eq!(a, b);
}

const CATCH_WITHIN: u64 = 5000;

/// The first seed a flawed rule fails, and why.
fn caught(flaw: Flaw) -> Box<Failure> {
    for seed in 0..CATCH_WITHIN {
        if let Err(failure) = run(seed, Some(flaw), false) {
            println!("{flaw:?} caught:\n{failure}");
            return failure;
        }
    }
    panic!("{flaw:?} was not caught in {CATCH_WITHIN} seeds");
}

#[test]
fn sim_catches_a_lease_that_outlives_the_session() {
    let failure = caught(Flaw::LeaseOutlivesSession);
    assert!(failure.what.contains("two members hold a lease"), "{failure}");
}

#[test]
fn sim_catches_a_takeover_without_version_checks() {
    let failure = caught(Flaw::UncheckedTakeover);
    assert!(failure.what.contains("two members hold a lease"), "{failure}");
}

/// A finding of the simulation, kept replayable: today's election waits
/// only for the members it saw when the master went, and a process
/// restarted empty does not know how much data the group had. The master
/// (m0) is cut from ZooKeeper while its replica (m1) is killed; both
/// sessions expire. m1 restarts empty and registers first, finds no leader
/// and no other member, and takes over; m0 comes back 100 ms later,
/// follows it, and its full sync wipes every acknowledged write. The rule
/// is left as it is (the lead decides); when the election stops doing
/// this, this test fails: turn it into an invariant of every run.
#[test]
fn sim_finding_a_member_restarted_empty_can_win_and_wipe_the_data() {
    let s = Duration::from_millis;
    let cfg = Config {
        members: 2,
        session_timeout: s(4000),
        load_interval: s(500),
        max_delay: s(5),
        flaw: None,
    };
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
    let scenario = Scenario { cfg, faults, healed };
    let report = simulate(0, Rng::new(0), scenario, false).unwrap_or_else(|f| panic!("{f}"));
    let (at, member, bytes) = report.lost.expect("the replica's data is kept: make it an invariant");
    println!("m{member} lost {bytes} bytes at {at:?}");
    assert_eq!(member, 0);
    assert_eq!(report.last_master, Some(1));
}
