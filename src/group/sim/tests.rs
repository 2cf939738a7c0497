use super::*;
use std::time::Instant;

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
    let n = seeds();
    for seed in 0..n {
        match run(seed, None, false) {
            Ok(report) => {
                events += report.events;
                faults += report.faults;
                worst = worst.max(report.recovery);
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    let took = started.elapsed();
    println!(
        "sim: {n} seeds, {faults} faults, {events} events in {took:?} ({:.0} seeds/s); slowest recovery after a heal {worst:?}",
        n as f64 / took.as_secs_f64()
    );
}

#[test]
fn sim_replays_a_seed_exactly() {
    let a = run(7, None, false).map_err(|f| f.to_string());
    let b = run(7, None, false).map_err(|f| f.to_string());
    assert_eq!(a, b);
}

/// The first seed a flawed rule fails, and why.
fn caught(flaw: Flaw) -> Box<Failure> {
    for seed in 0..500 {
        if let Err(failure) = run(seed, Some(flaw), false) {
            println!("{flaw:?} caught:\n{failure}");
            return failure;
        }
    }
    panic!("{flaw:?} was not caught in 500 seeds");
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
