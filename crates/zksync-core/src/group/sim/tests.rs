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

/// Every run asks ZKSYNC.FAILOVER among its faults;
/// `ZKSYNC_SIM_SWITCHOVERS=0` leaves it out (other seeds are drawn).
fn rules() -> Rules {
    Rules {
        flaw: None,
        switchovers: std::env::var("ZKSYNC_SIM_SWITCHOVERS").map_or(true, |v| v != "0"),
        detection: std::env::var("ZKSYNC_SIM_DETECTION").map_or(true, |v| v != "0"),
        failsafe: std::env::var("ZKSYNC_SIM_FAILSAFE").map_or(true, |v| v != "0"),
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
    let (mut events, mut worst, mut faults, mut takeovers, mut removals) = (0, Duration::ZERO, 0, 0, 0);
    let (mut lost, mut parked, mut behind) = (Vec::new(), 0, 0);
    let (mut failsafe_lost, mut failsafe_leases, mut worst_gap) = (Vec::new(), 0, Duration::ZERO);
    let n = seeds();
    for seed in 0..n {
        let report = run(seed, rules(), false).unwrap_or_else(|failure| panic!("{failure}"));
        events += report.events;
        faults += report.faults;
        takeovers += report.takeovers;
        removals += report.removals;
        worst = worst.max(report.recovery.unwrap_or_default());
        parked += usize::from(report.recovery.is_none());
        lost.extend(report.lost.map(|l| (seed, l)));
        failsafe_lost.extend(report.failsafe_lost.map(|l| (seed, l.1)));
        failsafe_leases += report.failsafe_leases;
        worst_gap = worst_gap.max(report.unwritable);
        behind += report.behind;
    }
    let took = started.elapsed();
    println!(
        "sim: {n} seeds, {faults} faults, {takeovers} leaderships taken, {removals} removed by detection, \
         {events} events in {took:?} ({:.0} seeds/s); \
         slowest recovery after a heal {worst:?}; {parked} left without an eligible member",
        n as f64 / took.as_secs_f64()
    );
    println!("sim: {behind} members followed a master further behind than the max lag, within what it wrote unseen");
    println!(
        "sim: {failsafe_leases} failsafe leases extended; longest time without a writer {worst_gap:?}; \
         finding: {} seeds wiped a member of what a failsafe master wrote unrecorded (seed, member): {:?}",
        failsafe_lost.len(),
        failsafe_lost.iter().take(10).collect::<Vec<_>>()
    );
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
    let a = run(7, rules(), false).map_err(|f| f.to_string());
    let b = run(7, rules(), false).map_err(|f| f.to_string());
    assert_eq!(a, b);
}

const CATCH_WITHIN: u64 = 5000;

/// The first seed a flawed rule fails, and why: the seeds without
/// switchovers, and with detection only for a detection rule.
fn caught(flaw: Flaw) -> Box<Failure> {
    let detection = flaw == Flaw::SilenceIsDeath;
    let failsafe = matches!(
        flaw,
        Flaw::GrantAnyEpoch | Flaw::LeaseFromAllButOne | Flaw::RestartStandsAtOnce
    );
    let rules = Rules {
        flaw: Some(flaw),
        switchovers: false,
        detection,
        failsafe,
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

#[test]
fn sim_catches_one_refusal_taken_for_a_majority() {
    let failure = simulate_detection(outvoted(), Some(Flaw::OneRefusalSuffices)).expect_err("caught");
    println!("{failure}");
    assert!(failure.what.contains("two members accept writes"), "{failure}");
}

#[test]
fn sim_catches_a_silent_port_taken_for_a_dead_process() {
    let failure = caught(Flaw::SilenceIsDeath);
    assert!(failure.what.contains("two members accept writes"), "{failure}");
}

fn config(members: usize, session_ms: u64, load_ms: u64) -> Config {
    Config {
        members,
        session_timeout: Duration::from_millis(session_ms),
        load_interval: Duration::from_millis(load_ms),
        max_delay: Duration::from_millis(5),
        stall_timeout: Duration::ZERO,
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

/// Once a finding of the simulation, now a rule: a switchover acts only
/// against the leadership it was planned for. `ZKSYNC.FAILOVER TO m2` is
/// asked of m1; the master m0 pauses and records its offset, then stops
/// (SIGSTOP, as a master cut from ZooKeeper would) before m2 has caught up.
/// Its session expires and m1 is elected. m2, still the target of the
/// switchover znode (stage `paused`, planned against m0's epoch), used to
/// catch up from m1 and take the leadership in the switchover's
/// transaction, deleting the leader znode of m1, which never paused: two
/// writers until m1's lease ran out. Now m2 leaves it alone, m1 rolls it
/// back at its deadline, and m1 stays master.
#[test]
fn sim_a_stale_switchover_never_deposes_a_master_that_never_paused() {
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
    let report = simulate(1, Rng::new(1), scenario, false).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!((report.last_master, report.takeovers), (Some(1), 2), "{report:?}");
}

/// The drawn seeds that found it, drawn before detection was modelled (93,
/// 3182; 2258 with FORCE planned while
/// the group had no master, then a master elected before the target acted).
#[test]
fn sim_the_seeds_that_found_stale_switchovers_pass() {
    let rules = Rules {
        flaw: None,
        switchovers: true,
        detection: false,
        failsafe: false,
    };
    for seed in [93, 2258, 3182] {
        if let Err(failure) = run(seed, rules, false) {
            panic!("{failure}");
        }
    }
}

/// A scripted run with detection: `faults` at their times (ms), the
/// recovery measured from the first one; 3 members, a session timeout of
/// 4 s, a stall timeout of 2 s (longer than the stops below: continued, a
/// process's session thread may see the beat before the main thread
/// renews it, and take the stop for a stall).
fn simulate_detection(faults: Vec<(u64, Fault)>, flaw: Option<Flaw>) -> Result<Report, Box<Failure>> {
    let s = Duration::from_millis;
    let mut cfg = config(3, 4000, 500);
    cfg.stall_timeout = s(2000);
    cfg.rules = Rules {
        flaw,
        switchovers: false,
        detection: true,
        failsafe: false,
    };
    let healed = s(faults.first().map_or(0, |(at, _)| *at));
    let mut timed = vec![
        (s(0), Fault::Start(0)),
        (s(300), Fault::Start(1)),
        (s(400), Fault::Start(2)),
    ];
    timed.extend(faults.into_iter().map(|(at, f)| (s(at), f)));
    let scenario = Scenario {
        cfg,
        faults: timed,
        healed,
    };
    // ZKSYNC_SIM_VERBOSE=1 prints the trace.
    let verbose = std::env::var("ZKSYNC_SIM_VERBOSE").is_ok_and(|v| v == "1");
    simulate(1, Rng::new(1), scenario, verbose)
}

/// The master m0 stopped for 1.5 s (past the replicas' repl-timeout, less
/// than the session timeout), and m2's connections rejected by a firewall
/// meanwhile: m2 is refused, m1 is not.
fn outvoted() -> Vec<(u64, Fault)> {
    vec![
        (9000, Fault::Stop(0)),
        (9100, Fault::Reject(2)),
        (10_500, Fault::Cont(0)),
        (12_000, Fault::Unreject(2)),
    ]
}

#[test]
fn sim_a_killed_master_is_replaced_well_before_its_session_expires() {
    let report = simulate_detection(vec![(5000, Fault::Kill(0))], None).unwrap_or_else(|f| panic!("{f}"));
    let recovery = report.recovery.unwrap_or(Duration::MAX);
    assert!(recovery < Duration::from_secs(1), "{report:?}");
    assert_ne!(report.last_master, Some(0));
}

#[test]
fn sim_a_stalled_master_gives_up_and_is_fenced_when_it_runs_again() {
    let faults = vec![(5000, Fault::Stall(0)), (9000, Fault::Unstall(0))];
    let report = simulate_detection(faults, None).unwrap_or_else(|f| panic!("{f}"));
    let recovery = report.recovery.unwrap_or(Duration::MAX);
    assert!(recovery < Duration::from_secs(3), "{report:?}");
    assert_ne!(report.last_master, Some(0));
}

#[test]
fn sim_a_stopped_master_is_not_taken_for_dead() {
    let faults = vec![(5000, Fault::Stop(0)), (6500, Fault::Cont(0))];
    let report = simulate_detection(faults, None).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!((report.last_master, report.takeovers), (Some(0), 1), "{report:?}");
}

#[test]
fn sim_one_member_rejected_by_a_firewall_is_outvoted() {
    let report = simulate_detection(outvoted(), None).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!((report.last_master, report.takeovers), (Some(0), 1), "{report:?}");
}

/// A finding of the simulation, kept replayable (drawn first as seed 312
/// while rejecting firewalls were among the drawn faults): a refusal is
/// taken from a majority of the members in the table, so once one of three
/// is gone, the word of one member whose connections a firewall rejects
/// is enough. m1 is killed and its session expires; the master m0 is
/// stopped (its lease still runs); m2 is refused by the firewall and
/// removes m0's leadership, then takes it: two writers. The rule is left
/// as it is (a rejecting firewall is a stated limit); when it stops doing
/// this, this test fails.
#[test]
fn sim_finding_one_rejected_member_is_a_majority_once_another_is_gone() {
    let mut faults = vec![(3000, Fault::Kill(1))];
    faults.extend(outvoted());
    let failure = simulate_detection(faults, None).expect_err("outvoted: make rejecting firewalls a drawn fault");
    println!("{failure}");
    assert!(failure.what.contains("two members accept writes"), "{failure}");
}

#[test]
fn sim_catches_a_grant_to_another_epoch() {
    let failure = caught(Flaw::GrantAnyEpoch);
    assert!(failure.what.contains("two members accept writes"), "{failure}");
}

#[test]
fn sim_catches_a_failsafe_lease_from_all_members_but_one() {
    let failure = caught(Flaw::LeaseFromAllButOne);
    assert!(failure.what.contains("two members accept writes"), "{failure}");
}

/// A scripted run with failsafe: `faults` at their times (ms) after m0
/// starts at 0 and the others 100 ms apart (but the `late` ones); the heal
/// at `healed` ms.
fn simulate_failsafe(
    cfg: Config,
    late: &[usize],
    faults: Vec<(u64, Fault)>,
    healed: u64,
    seed: u64,
) -> Result<Report, Box<Failure>> {
    let s = Duration::from_millis;
    let early = (0..cfg.members).filter(|m| !late.contains(m));
    let mut timed: Vec<_> = early.map(|m| (s(100 * m as u64), Fault::Start(m))).collect();
    timed.extend(faults.into_iter().map(|(at, f)| (s(at), f)));
    for m in 0..cfg.members {
        timed.extend([Fault::Uncut(m), Fault::Start(m), Fault::ZkUp].map(|f| (s(healed), f)));
    }
    let scenario = Scenario {
        cfg,
        faults: timed,
        healed: s(healed),
    };
    let verbose = std::env::var("ZKSYNC_SIM_VERBOSE").is_ok_and(|v| v == "1");
    simulate(seed, Rng::new(seed), scenario, verbose)
}

fn failsafe_config(members: usize, session_ms: u64, flaw: Option<Flaw>) -> Config {
    let mut cfg = config(members, session_ms, 1000);
    cfg.rules = Rules {
        flaw,
        switchovers: false,
        detection: false,
        failsafe: true,
    };
    cfg
}

/// Two members; the master m0 is cut from ZooKeeper and writes on m1's
/// grants; once its session has expired, m1 is killed and restarted at
/// once, little data written so far (an empty m1 is within the max lag).
fn restart_during_failsafe(flaw: Option<Flaw>) -> Result<Report, Box<Failure>> {
    let faults = vec![
        (1500, Fault::Cut(0, Way::Both)),
        (2700, Fault::Kill(1)),
        (2720, Fault::Start(1)),
    ];
    simulate_failsafe(failsafe_config(2, 1000, flaw), &[], faults, 8000, 1)
}

#[test]
fn sim_catches_a_restarted_member_that_stands_at_once() {
    let failure = restart_during_failsafe(Some(Flaw::RestartStandsAtOnce)).expect_err("caught");
    println!("{failure}");
    assert!(failure.what.contains("two members accept writes"), "{failure}");
}

#[test]
fn sim_a_restarted_member_waits_out_the_grant_it_may_have_given() {
    let report = restart_during_failsafe(None).unwrap_or_else(|f| panic!("{f}"));
    println!("{report:?}");
}

/// The first question: ZooKeeper down (frozen or crashed) for 2–5
/// session timeouts, every member reachable from every other. The master
/// keeps accepting writes throughout, except at most one round of grants
/// (the ZooKeeper lease is confirmed to 2/3 of the timeout, grants are
/// asked from 1/3), and it is still the master after: no change of master.
/// A fourth member joins during the outage and never leads.
#[test]
fn sim_a_zookeeper_outage_with_every_member_reachable_changes_nothing() {
    let mut worst = Duration::ZERO;
    for seed in 0..60 {
        let mut rng = Rng::new(seed);
        let session_ms = *rng.pick(&[1000, 2000, 4000]);
        let mut cfg = failsafe_config(4, session_ms, None);
        cfg.max_delay = Duration::from_millis(rng.between(1, 20));
        let down = 6000 + rng.between(0, 1000);
        let up = down + session_ms * rng.between(2, 5);
        let faults = vec![
            (down, Fault::ZkDown { freeze: rng.chance(50) }),
            (rng.between(down, up), Fault::Start(3)),
            (up, Fault::ZkUp),
        ];
        let report = simulate_failsafe(cfg, &[3], faults, up + 6000, seed).unwrap_or_else(|f| panic!("{f}"));
        let one = report.writers.len() == 1 && report.last_master == report.writers.first().copied();
        assert!(one, "seed {seed}: one master throughout: {report:?}");
        assert_ne!(
            report.last_master,
            Some(3),
            "seed {seed}: the member that joined in the outage"
        );
        assert!(report.failsafe_leases > 0, "seed {seed}: {report:?}");
        let bound = Duration::from_millis(2 * 20 + 30);
        assert!(
            report.unwritable <= bound,
            "seed {seed}: writes refused too long: {report:?}"
        );
        worst = worst.max(report.unwritable);
    }
    println!("60 outages: no change of master, at most {worst:?} without a writer");
}

/// `zksync.failsafe no`: the same outage fences the master from 2/3 of the
/// session timeout on, as before failsafe.
#[test]
fn sim_without_failsafe_a_zookeeper_outage_stops_writes() {
    let mut cfg = failsafe_config(3, 2000, None);
    cfg.rules.failsafe = false;
    let faults = vec![(6000, Fault::ZkDown { freeze: true }), (14_000, Fault::ZkUp)];
    let report = simulate_failsafe(cfg, &[], faults, 20_000, 0).unwrap_or_else(|f| panic!("{f}"));
    assert!(report.unwritable >= Duration::from_secs(6), "{report:?}");
    assert_eq!(report.failsafe_leases, 0);
}

/// A finding of the simulation, kept replayable: what a master writes on
/// grants alone never reaches ZooKeeper's record of the offset, so the lag
/// rule, which counts from that record, cannot see it. The story (found as
/// seed 1243, drawn as 6032, 3819 and 7583 of 20,000 since): a master cut
/// from ZooKeeper writes on grants; a member is killed (so the master
/// fences), restarts empty and, ZooKeeper's record stale and the others
/// slow to publish, is elected within the max lag of the record; the others
/// follow it and lose what the master wrote on grants. Patroni's failsafe
/// has the same gap (its lag check counts from the leader's last position
/// in the DCS). Left as it is for now (see docs/failover.md); when a rule
/// closes it, this test fails.
#[test]
fn sim_finding_writes_on_grants_are_not_in_the_recorded_offset() {
    let rules = Rules {
        flaw: None,
        switchovers: true,
        detection: true,
        failsafe: true,
    };
    let report = run(6032, rules, false).unwrap_or_else(|f| panic!("{f}"));
    assert!(report.failsafe_lost.is_some(), "closed? {report:?}");
}

/// Once a finding, now a rule: ZKSYNC.FAILOVER FORCE obeys the failsafe
/// bars. The master m0, cut from ZooKeeper, wrote on grants; its session
/// expired; FORCE was asked with no leader znode to outwait, and the best
/// replica, which held m0's grant, promoted at once: two writers.
#[test]
fn sim_the_seed_that_found_a_forced_takeover_during_failsafe_passes() {
    let rules = Rules {
        flaw: None,
        switchovers: true,
        detection: true,
        failsafe: true,
    };
    if let Err(failure) = run(2591, rules, false) {
        panic!("{failure}");
    }
}

/// A finding outside failsafe, kept replayable (drawn first as seed 17578
/// of 20,000 with failsafe; here without): m1 is killed and restarted
/// empty, the master m0 is killed, and ZKSYNC.FAILOVER FORCE TO m1 is asked
/// of m2. m1 takes over with no data and m2, which holds it, follows and is
/// wiped. FORCE's contract says it can lose writes, but the data check
/// counts it. When a rule (or the check) changes, this test fails.
#[test]
fn sim_finding_force_to_a_member_restarted_empty_wipes_the_others() {
    let s = Duration::from_millis;
    let force = Fault::Failover {
        at: 2,
        to: Some(1),
        timeout: s(5000),
        force: true,
    };
    let faults = vec![
        (3500, Fault::Kill(1)),
        (7800, Fault::Start(1)),
        (7900, Fault::Kill(0)),
        (8000, force),
    ];
    let mut cfg = config(3, 2000, 200);
    cfg.rules.switchovers = true;
    let report = simulate_failsafe(cfg, &[], faults, 12_000, 0).unwrap_or_else(|f| panic!("{f}"));
    assert!(report.lost.is_some(), "{report:?}");
}
