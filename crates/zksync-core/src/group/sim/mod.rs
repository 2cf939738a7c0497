//! A deterministic simulation of a group: the real election, publisher and
//! members' table (`group::election`, `group::membership`), run by session
//! threads that take the real shell's steps (`shell.rs`), against a
//! simulated ZooKeeper (`zk.rs`) over a simulated network (`world.rs`),
//! all driven by one seeded scheduler. Faults come from the seed: ZooKeeper
//! frozen or crashed, a member cut from ZooKeeper (one way or both), a
//! process killed and restarted empty or stopped and continued, a main
//! thread stalled while the session thread runs on, slow links, a member
//! joining late, ZKSYNC.FAILOVER. Detection is modelled: a killed
//! process's port refuses, a stopped or stalled one's does not.
//!
//! After every event it checks the group's invariant: at no instant of the
//! simulated clock do two members accept writes (a live Redis master, not
//! paused, its main thread running, holding an unexpired lease: a stalled
//! master whose lease was revoked is fenced when it runs again). Once every fault has healed, a master must exist
//! within a bound. A failing seed prints itself and its trace, and replays
//! exactly: `ZKSYNC_SIM_SEED=<seed> cargo test --release -p zksync-core sim`.
//! `ZKSYNC_SIM_SEEDS=<n>` runs more seeds.
//!
//! As in raft-rs's test harness (a network of nodes, isolate and recover)
//! and FoundationDB's simulation or TigerBeetle's VOPR (seeded faults,
//! invariants after every step, replay by seed).

/// Also drives the other randomized tests (the index's trie).
pub(crate) mod rng;
mod shell;
mod world;
mod zk;

use rng::Rng;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;
use world::{Fault, Way, World};

/// A rule broken on purpose, to show that the simulation catches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flaw {
    /// The lease runs 3/2 of the session timeout from the check, not 2/3:
    /// longer than ZooKeeper keeps the session.
    LeaseOutlivesSession,
    /// The takeover replaces whatever leader znode exists, and sets the
    /// epoch without its version check.
    UncheckedTakeover,
    /// One member's refusal is taken for the majority's.
    OneRefusalSuffices,
    /// A port that does not refuse but does not answer (a stopped process)
    /// is taken for a dead one.
    SilenceIsDeath,
    /// A member grants whichever master asks, at whatever epoch.
    GrantAnyEpoch,
    /// A master counts one member's grant without hearing from it: its
    /// failsafe lease rests on all members but one.
    LeaseFromAllButOne,
    /// A process that starts stands at once, as if it had granted nothing.
    RestartStandsAtOnce,
}

/// Which rules a run exercises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// A rule broken on purpose.
    pub flaw: Option<Flaw>,
    /// ZKSYNC.FAILOVER asked among the faults (the tests' default).
    pub switchovers: bool,
    /// Detection (the tests' default): replicas ask a master's port when
    /// their link drops, refusals remove a dead master's leadership, a
    /// stalled main thread gives it up; stalls among the faults.
    pub detection: bool,
    /// `zksync.failsafe yes` (the tests' default): the master writes through
    /// a ZooKeeper outage on its members' grants; partitions between
    /// members and long ZooKeeper outages among the faults.
    pub failsafe: bool,
}

/// One run's settings, drawn from the seed.
#[derive(Clone, Debug)]
pub struct Config {
    pub members: usize,
    pub session_timeout: Duration,
    pub load_interval: Duration,
    /// Each message takes up to this long (more on a slow link).
    pub max_delay: Duration,
    /// `zksync.stall-timeout` (zero: never, as without detection).
    pub stall_timeout: Duration,
    pub rules: Rules,
}

impl Config {
    fn draw(rng: &mut Rng, rules: Rules) -> Config {
        let ms = Duration::from_millis;
        let session_timeout = ms(*rng.pick(&[1000, 2000, 2000, 4000]));
        let mut cfg = Config {
            members: *rng.pick(&[2, 3, 3, 4]),
            session_timeout,
            load_interval: ms(*rng.pick(&[200, 500, 1000])),
            max_delay: ms(rng.between(1, 20)),
            stall_timeout: Duration::ZERO,
            rules,
        };
        if rules.detection {
            cfg.stall_timeout = ms(*rng.pick(&[300, 1000, 2000, 5000]));
        }
        cfg
    }
}

/// What a passing run saw.
#[derive(Debug, PartialEq, Eq)]
pub struct Report {
    pub events: u64,
    pub faults: usize,
    /// From the last heal to the first instant a master accepted writes;
    /// none where no live member was eligible (all too far behind).
    pub recovery: Option<Duration>,
    pub last_master: Option<usize>,
    pub takeovers: u64,
    /// Leaderships removed: a dead master's, or a stalled master's own.
    pub removals: u64,
    /// A live member's data wiped by a master further behind than the
    /// rules allow (see `World::unpublished`).
    pub lost: Option<(Duration, usize, i64)>,
    /// Members that followed a master further behind than the max lag alone.
    pub behind: u64,
    /// The longest time without a member accepting writes, once one had.
    pub unwritable: Duration,
    /// The members that accepted writes, in turn (one entry per change).
    pub writers: Vec<usize>,
    /// Failsafe leases extended.
    pub failsafe_leases: u64,
    /// A member's data wiped by a master further behind than `lost` allows,
    /// within what masters wrote on failsafe leases, which ZooKeeper's
    /// record of the offset never saw (a finding: see the tests).
    pub failsafe_lost: Option<(Duration, usize, i64)>,
}

/// Why a run failed, with the tail of its trace.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub rules: Rules,
    /// Not drawn from the seed: written by a test.
    pub scripted: bool,
    pub at: Duration,
    pub what: String,
    pub trace: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self.at.as_secs_f64();
        writeln!(f, "sim seed {} failed at {at:.3}s: {}", self.seed, self.what)?;
        match (self.rules, self.scripted) {
            (_, true) => writeln!(f, "a scripted scenario: its test replays it")?,
            (Rules { flaw: Some(flaw), .. }, _) => writeln!(f, "a rule broken on purpose: {flaw:?}")?,
            (
                Rules {
                    switchovers,
                    detection,
                    failsafe,
                    ..
                },
                _,
            ) => {
                let mut with = String::new();
                if !switchovers {
                    with += "ZKSYNC_SIM_SWITCHOVERS=0 ";
                }
                if !detection {
                    with += "ZKSYNC_SIM_DETECTION=0 ";
                }
                if !failsafe {
                    with += "ZKSYNC_SIM_FAILSAFE=0 ";
                }
                writeln!(
                    f,
                    "replay: {with}ZKSYNC_SIM_SEED={} cargo test --release -p zksync-core sim",
                    self.seed
                )?;
            }
        }
        for line in self.trace.iter().rev().take(60).rev() {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// The faults of a run (some last until the heal, so that the recovery
/// after it is measured), when everything heals, and how many there are.
fn plan(rng: &mut Rng, cfg: &Config) -> (Vec<(Duration, Fault)>, Duration, usize) {
    let ms = |v: u64| Duration::from_millis(v);
    let settle = ms(3000);
    let window = rng.between(5_000, 20_000);
    let longest = 3 * cfg.session_timeout.as_millis() as u64;
    let healed = settle + ms(window + longest + 1);
    let mut faults = Vec::new();
    let count = rng.between(0, 6) as usize;
    for _ in 0..count {
        let start = settle + ms(rng.between(0, window));
        let end = match rng.chance(25) {
            true => healed,
            false => start + ms(rng.between(50, longest)),
        };
        let m = rng.between(0, cfg.members as u64 - 1) as usize;
        let way = *rng.pick(&[Way::Both, Way::Both, Way::ToZk, Way::ToMember]);
        let kinds = kinds(cfg);
        let kind = kinds[rng.between(0, kinds.len() as u64 - 1) as usize];
        let (begin, heal, end) = fault(rng, cfg, (kind, m, way), start, end);
        faults.push((start, begin));
        faults.push((end, heal));
    }
    // A member may join late, during the faults.
    for m in 0..cfg.members {
        let late = m + 1 == cfg.members && rng.chance(20);
        let first = if late {
            settle + ms(rng.between(0, window))
        } else {
            ms(rng.between(0, 300))
        };
        faults.push((first, Fault::Start(m)));
    }
    faults.push((healed, Fault::ZkUp));
    for m in 0..cfg.members {
        faults.extend([Fault::Uncut(m), Fault::Fast(m), Fault::Cont(m), Fault::Start(m)].map(|f| (healed, f)));
        faults.extend((0..m).map(|o| (healed, Fault::Unpart(o, m))));
        if cfg.rules.detection {
            faults.push((healed, Fault::Unstall(m)));
        }
    }
    (faults, healed, count)
}

/// A fault of `kind` on member `m` (`way`: for a cut) from `start`, its
/// heal, and when that is due (`end`, unless the kind has a length of its
/// own).
fn fault(
    rng: &mut Rng,
    cfg: &Config,
    (kind, m, way): (Kind, usize, Way),
    start: Duration,
    end: Duration,
) -> (Fault, Fault, Duration) {
    let ms = |v: u64| Duration::from_millis(v);
    let longest = 3 * cfg.session_timeout.as_millis() as u64;
    let end = match kind {
        // Several session timeouts, the members connected to each other.
        Kind::ZkOutage => start + cfg.session_timeout * rng.between(2, 6) as u32,
        _ => end,
    };
    let (begin, heal) = match kind {
        Kind::ZkDown | Kind::ZkOutage => (Fault::ZkDown { freeze: rng.chance(50) }, Fault::ZkUp),
        Kind::Part => {
            let other = (m + rng.between(1, cfg.members as u64 - 1) as usize) % cfg.members;
            (Fault::Part(m, other, rng.chance(50)), Fault::Unpart(m, other))
        }
        Kind::Cut => (Fault::Cut(m, way), Fault::Uncut(m)),
        Kind::Kill => (Fault::Kill(m), Fault::Start(m)),
        Kind::Stop => (Fault::Stop(m), Fault::Cont(m)),
        Kind::Slow => (
            Fault::Slow(m, ms(rng.between(longest / 30, longest / 3))),
            Fault::Fast(m),
        ),
        Kind::Failover => (failover(rng, cfg, m), Fault::Fast(m)),
        Kind::Stall => (Fault::Stall(m), Fault::Unstall(m)),
    };
    (begin, heal, end)
}

#[derive(Clone, Copy)]
enum Kind {
    ZkDown,
    /// ZooKeeper down for several session timeouts.
    ZkOutage,
    /// Messages between two members dropped, one way or both.
    Part,
    Cut,
    Kill,
    Stop,
    Slow,
    Failover,
    Stall,
}

/// The kinds of fault a run draws from. Not a firewall rejecting a
/// member's connections (`Fault::Reject`): the detection rule trusts a
/// refusal, unless outvoted, so that one is scripted only.
fn kinds(cfg: &Config) -> Vec<Kind> {
    let mut kinds = vec![Kind::ZkDown, Kind::Cut, Kind::Kill, Kind::Stop, Kind::Slow];
    if cfg.rules.switchovers {
        kinds.push(Kind::Failover);
    }
    if cfg.rules.detection {
        kinds.push(Kind::Stall);
    }
    if cfg.rules.failsafe {
        kinds.extend([Kind::ZkOutage, Kind::Part, Kind::Part]);
    }
    kinds
}

/// ZKSYNC.FAILOVER asked of member `m`: to the best replica or another
/// member, with a timeout of 0.2–5 s, forced one time in four.
fn failover(rng: &mut Rng, cfg: &Config, m: usize) -> Fault {
    let to = rng.chance(50).then(|| rng.between(0, cfg.members as u64 - 1) as usize);
    Fault::Failover {
        at: m,
        to,
        timeout: Duration::from_millis(*rng.pick(&[200, 1000, 5000])),
        force: rng.chance(25),
    }
}

/// What a run does: its settings and faults, and when everything heals.
pub struct Scenario {
    pub cfg: Config,
    pub faults: Vec<(Duration, Fault)>,
    pub healed: Duration,
}

struct NoWake;

impl Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Runs `seed`; `verbose` prints the trace as it goes.
pub fn run(seed: u64, rules: Rules, verbose: bool) -> Result<Report, Box<Failure>> {
    let mut rng = Rng::new(seed);
    let cfg = Config::draw(&mut rng, rules);
    let (faults, healed, count) = plan(&mut rng, &cfg);
    let scenario = Scenario { cfg, faults, healed };
    let mut report = simulate(seed, rng, scenario, verbose).map_err(|mut failure| {
        failure.scripted = false;
        failure
    })?;
    report.faults = count;
    Ok(report)
}

/// The world, and each member's session thread while its process lives.
struct Sim {
    world: Rc<RefCell<World>>,
    tasks: Vec<Option<Task>>,
}

impl Sim {
    /// Runs the next event, then every session thread that can move.
    fn step(&mut self, cx: &mut Context<'_>) {
        let fault = self.world.borrow_mut().step();
        match fault {
            Some(Fault::Start(m)) if self.tasks[m].is_none() => {
                self.tasks[m] = Some(Box::pin(shell::run(self.world.clone(), m)));
            }
            Some(Fault::Kill(m)) => self.tasks[m] = None,
            _ => {}
        }
        for (m, task) in self.tasks.iter_mut().enumerate() {
            if let Some(task) = task.as_mut().filter(|_| !self.world.borrow().procs[m].stopped) {
                let _ = task.as_mut().poll(cx);
            }
        }
    }
}

/// Runs `scenario`, the network's delays drawn from `rng`.
pub fn simulate(seed: u64, rng: Rng, scenario: Scenario, verbose: bool) -> Result<Report, Box<Failure>> {
    let Scenario { cfg, faults, healed } = scenario;
    let bound = cfg.session_timeout * 4 + Duration::from_secs(8);
    let end = healed + bound;
    let world = Rc::new(RefCell::new(World::new(cfg.clone(), rng, verbose)));
    let header = format!("seed {seed}: {cfg:?}, healed at {healed:?}");
    world.borrow_mut().log(None, header);
    for (at, fault) in faults {
        world.borrow_mut().schedule_fault(at, fault);
    }
    let mut sim = Sim {
        world: world.clone(),
        tasks: (0..cfg.members).map(|_| None).collect(),
    };
    let waker = Waker::from(Arc::new(NoWake));
    let mut cx = Context::from_waker(&waker);
    let (mut events, mut recovered, mut writes) = (0, None, Writes::default());
    while world.borrow().next_at().is_some_and(|t| t <= end) {
        sim.step(&mut cx);
        events += 1;
        let w = world.borrow();
        check(&w).map_err(|what| failure(seed, &w, what))?;
        let writer = master(&w);
        writes.saw(writer, w.now);
        if recovered.is_none() && w.now >= healed && writer.is_some() {
            recovered = Some(w.now - healed);
        }
    }
    let w = world.borrow();
    // Without a live member within the max lag of the data written, the
    // rules leave the group without a master (an operator's FORCE).
    let parked = w.procs.iter().all(|p| p.offset < w.written - world::MAX_LAG);
    if recovered.is_none() && !parked {
        return Err(failure(seed, &w, format!("no master within {bound:?} of the heal")));
    }
    Ok(Report {
        events,
        faults: 0,
        recovery: recovered,
        last_master: master(&w),
        takeovers: w.takeovers,
        removals: w.removals,
        lost: w.lost,
        behind: w.behind,
        unwritable: writes.longest,
        writers: writes.writers,
        failsafe_leases: w.failsafe_leases,
        failsafe_lost: w.failsafe_lost,
    })
}

/// Who accepted writes over a run, and the longest time no one did.
#[derive(Default)]
struct Writes {
    writers: Vec<usize>,
    /// When a member last accepted writes (as of an event).
    last: Option<Duration>,
    longest: Duration,
}

impl Writes {
    fn saw(&mut self, writer: Option<usize>, now: Duration) {
        match (writer, self.last) {
            (Some(m), _) => {
                if self.writers.last() != Some(&m) {
                    self.writers.push(m);
                }
                self.last = Some(now);
            }
            (None, Some(last)) => self.longest = self.longest.max(now - last),
            (None, None) => {}
        }
    }
}

fn failure(seed: u64, w: &World, what: String) -> Box<Failure> {
    Box::new(Failure {
        seed,
        rules: w.cfg.rules,
        scripted: true,
        at: w.now,
        what,
        trace: w.trace.iter().cloned().collect(),
    })
}

/// The live member that accepts writes now: a Redis master holding its lease.
fn master(w: &World) -> Option<usize> {
    let now = w.instant();
    (0..w.procs.len()).find(|&m| w.accepts_writes(m, now))
}

/// The invariant, after every event: at most one member accepts writes (a
/// live Redis master, not paused, holding its lease).
fn check(w: &World) -> Result<(), String> {
    let now = w.instant();
    let writers: Vec<usize> = (0..w.procs.len()).filter(|&m| w.accepts_writes(m, now)).collect();
    match (&w.unmodelled, writers.len()) {
        (Some(effect), _) => Err(format!("an effect the simulation does not model: {effect}")),
        (None, 0 | 1) => Ok(()),
        (None, _) => Err(format!("two members accept writes at once: {writers:?}")),
    }
}

#[cfg(test)]
mod tests;
