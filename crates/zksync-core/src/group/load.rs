//! Load figures of this server: sampled on the main thread every
//! `zksync.load-interval`, published by the session thread only when worth a
//! ZooKeeper write.

use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// A published figure is rewritten when it moves by this fraction...
const MOVE: f64 = 0.10;
/// ...or at the latest after this long, so readers can tell a live member.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Master,
    Replica,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Replica => "replica",
        }
    }
}

/// The `zksync` object of a member znode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub role: Role,
    pub epoch: u64,
    pub repl_offset: i64,
    pub ops_per_sec: i64,
    pub connected_clients: i64,
    pub used_memory: i64,
    pub maxmemory: i64,
    pub score: i64,
    /// The main thread's CPU use over the last load interval. A member of an
    /// older version publishes none, and one that just started has none yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// `replica-priority`: lower is preferred for promotion, 0 never.
    #[serde(default = "default_priority")]
    pub priority: i64,
}

fn default_priority() -> i64 {
    100
}

impl Figures {
    /// Builds figures from raw samples, with their score.
    pub fn new(
        role: Role,
        repl_offset: i64,
        ops_per_sec: i64,
        connected_clients: i64,
        used_memory: i64,
        maxmemory: i64,
    ) -> Figures {
        let mut figures = Figures {
            role,
            epoch: 0,
            repl_offset,
            ops_per_sec,
            connected_clients,
            used_memory,
            maxmemory,
            score: 0,
            cpu: None,
            priority: default_priority(),
        };
        figures.score = figures.compute_score();
        figures
    }

    /// The same figures with the main thread's CPU use, and the score it makes.
    pub fn with_cpu(mut self, cpu: Option<Cpu>) -> Figures {
        self.cpu = cpu;
        self.score = self.compute_score();
        self
    }

    /// Lower is better: `100 × cpu + 100 × connected_clients + 10000 ×
    /// used_memory / maxmemory` (cpu in percent of one core, 0 while
    /// unknown; the memory term only under a maxmemory): a busy main thread
    /// weighs 10,000 like a full memory, a connection like 1% of CPU.
    /// Operations per second do not count: a replica's include every write
    /// it replays, which would make it look as busy as its master.
    fn compute_score(&self) -> i64 {
        let memory = if self.maxmemory > 0 {
            (10_000.0 * self.used_memory as f64 / self.maxmemory as f64) as i64
        } else {
            0
        };
        let cpu = self.cpu.map_or(0, Cpu::percent);
        100 * cpu + 100 * self.connected_clients + memory
    }

    /// Whether `self` differs from the published `old` enough to be written:
    /// role or epoch changed, or a figure moved by 10% — of at least a floor,
    /// so that an idle server's noise (1 op/s, one client, a few KB) is not.
    pub fn moved_from(&self, old: &Figures) -> bool {
        let moved = |old: i64, new: i64, floor: i64| (new - old).abs() as f64 >= MOVE * old.abs().max(floor) as f64;
        self.role != old.role
            || self.epoch != old.epoch
            || self.priority != old.priority
            || self.maxmemory != old.maxmemory
            || moved(old.ops_per_sec, self.ops_per_sec, 100)
            || moved(old.connected_clients, self.connected_clients, 20)
            || moved(old.used_memory, self.used_memory, 1 << 20)
            || moved(old.repl_offset, self.repl_offset, 1 << 20)
            || match (old.cpu, self.cpu) {
                (Some(old), Some(new)) => moved(old.percent(), new.percent(), 50),
                (old, new) => old != new,
            }
    }
}

/// The main thread's CPU use over a load interval, in percent of one core
/// (0–100: one thread uses at most one core).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "u32", into = "u32")]
pub struct Cpu(u8);

impl Cpu {
    /// `used` CPU time over `elapsed` wall time, rounded to the nearest percent.
    pub fn over(used: Duration, elapsed: Duration) -> Cpu {
        let elapsed = elapsed.as_micros().max(1);
        let percent = (used.as_micros() * 100 + elapsed / 2) / elapsed;
        Cpu(percent.min(100) as u8)
    }

    pub fn percent(self) -> i64 {
        i64::from(self.0)
    }
}

impl From<u32> for Cpu {
    /// As published; anything above one core is one core.
    fn from(percent: u32) -> Cpu {
        Cpu(percent.min(100) as u8)
    }
}

impl From<Cpu> for u32 {
    fn from(cpu: Cpu) -> u32 {
        u32::from(cpu.0)
    }
}

/// The CPU time the main thread has used since the server started, user
/// plus system (`used_cpu_user_main_thread` + `used_cpu_sys_main_thread`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuTime(Duration);

impl CpuTime {
    /// The sum of INFO's `seconds.microseconds` figures; `None` if one is
    /// missing (a server before Redis 7.0) or malformed.
    pub fn parse(user: Option<&str>, sys: Option<&str>) -> Option<CpuTime> {
        Some(CpuTime(seconds(user?)? + seconds(sys?)?))
    }
}

/// `"12.034567"` → 12.034567 s, exactly (INFO prints microseconds).
fn seconds(text: &str) -> Option<Duration> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos = match fraction {
        "" => 0,
        digits => digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32),
    };
    Some(Duration::new(whole.parse().ok()?, nanos))
}

/// Turns the main thread's cumulative CPU time into its use per load
/// interval. Samples taken between two periodic ones (on a role change)
/// would measure a sliver of time: a window shorter than half an interval
/// keeps the last figure and its baseline.
#[derive(Debug, Default)]
pub struct CpuMeter {
    baseline: Option<(CpuTime, Instant)>,
    current: Option<Cpu>,
}

impl CpuMeter {
    pub const fn new() -> CpuMeter {
        CpuMeter {
            baseline: None,
            current: None,
        }
    }

    /// The main thread had used `used` at `at`; returns its use over the
    /// last window (none before a window of half `interval` has passed).
    pub fn observe(&mut self, used: CpuTime, at: Instant, interval: Duration) -> Option<Cpu> {
        match self.baseline {
            Some((before, since)) => {
                let elapsed = at.saturating_duration_since(since);
                if elapsed >= interval / 2 && !elapsed.is_zero() {
                    self.current = Some(Cpu::over(used.0.saturating_sub(before.0), elapsed));
                    self.baseline = Some((used, at));
                }
            }
            None => self.baseline = Some((used, at)),
        }
        self.current
    }

    /// The last figure, for a sample taken off the main thread.
    pub fn current(&self) -> Option<Cpu> {
        self.current
    }
}

/// What the main thread hands the session thread every load interval.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Redis's port, for the default member id.
    pub port: u16,
    pub figures: Figures,
    /// `host:port` of the master a replica follows.
    pub master: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(ops: i64, clients: i64, used: i64) -> Figures {
        Figures::new(Role::Master, 0, ops, clients, used, 0)
    }

    fn cpu(percent: u32) -> Option<Cpu> {
        Some(Cpu::from(percent))
    }

    #[test]
    fn score_weighs_cpu_clients_and_memory_not_ops() {
        // (ops, clients, used, maxmemory, cpu, score)
        let cases = [
            (50, 2, 1 << 20, 0, None, 200),
            (0, 0, 50, 100, None, 5000),
            (0, 1, 0, 0, cpu(7), 800),
            (0, 0, 0, 0, cpu(100), 10_000),
            // A master serving 20 writers, and its replica replaying the same ops.
            (40_000, 21, 0, 0, cpu(60), 8100),
            (40_000, 1, 0, 0, cpu(20), 2100),
        ];
        for (ops, clients, used, max, cpu, score) in cases {
            let f = Figures::new(Role::Master, 0, ops, clients, used, max).with_cpu(cpu);
            assert_eq!(f.score, score, "{ops} {clients} {used} {max} {cpu:?}");
        }
    }

    #[test]
    fn cpu_is_percent_of_one_core_rounded() {
        let ms = Duration::from_millis;
        // (used, elapsed, percent)
        let cases = [
            (ms(0), ms(1000), 0),
            (ms(4), ms(1000), 0),
            (ms(5), ms(1000), 1),
            (ms(333), ms(1000), 33),
            (ms(100), ms(200), 50),
            (ms(1000), ms(1000), 100),
            // Clock granularity: never more than a core.
            (ms(1010), ms(1000), 100),
            (ms(10), ms(0), 100),
        ];
        for (used, elapsed, percent) in cases {
            assert_eq!(Cpu::over(used, elapsed).percent(), percent, "{used:?} / {elapsed:?}");
        }
    }

    #[test]
    fn cpu_time_parses_info_seconds() {
        let us = Duration::from_micros;
        // (user, sys, sum)
        let cases = [
            (Some("0.000000"), Some("0.000000"), Some(us(0))),
            (Some("1.250000"), Some("0.004000"), Some(us(1_254_000))),
            (Some("12.5"), Some("3"), Some(us(15_500_000))),
            (Some(" 0.000001\r"), Some("0.000002"), Some(us(3))),
            (None, Some("0.1"), None),
            (Some("0.1"), None, None),
            (Some("x.1"), Some("0.1"), None),
            (Some("1.-2"), Some("0.1"), None),
            (Some("1.0000000001"), Some("0.1"), None),
        ];
        for (user, sys, want) in cases {
            assert_eq!(CpuTime::parse(user, sys), want.map(CpuTime), "{user:?} {sys:?}");
        }
    }

    #[test]
    fn meter_measures_each_window_of_half_an_interval_or_more() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let used = |ms: u64| CpuTime(Duration::from_millis(ms));
        let interval = ms(1000);
        // (cpu used so far, at, figure after)
        let steps = [
            (used(100), t, None),
            (used(400), t + ms(1000), cpu(30)),
            // A role change's sample right after: too short a window.
            (used(401), t + ms(1010), cpu(30)),
            (used(500), t + ms(2000), cpu(10)),
            (used(800), t + ms(2500), cpu(60)),
            (used(800), t + ms(3500), cpu(0)),
            // Never backwards, never above a core.
            (used(700), t + ms(4500), cpu(0)),
            (used(5000), t + ms(5500), cpu(100)),
        ];
        let mut meter = CpuMeter::default();
        for (i, (used, at, want)) in steps.into_iter().enumerate() {
            assert_eq!(meter.observe(used, at, interval), want, "step {i}");
            assert_eq!(meter.current(), want, "step {i}");
        }
    }

    #[test]
    fn cpu_is_optional_in_the_znode() {
        let with = figures(1, 1, 1).with_cpu(cpu(42));
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["cpu"], 42);
        assert_eq!(serde_json::from_value::<Figures>(json.clone()).unwrap(), with);
        // A member of an older version publishes none: read as unknown.
        let mut old = json.clone();
        old.as_object_mut().unwrap().remove("cpu");
        assert_eq!(serde_json::from_value::<Figures>(old).unwrap().cpu, None);
        assert!(serde_json::to_value(figures(1, 1, 1)).unwrap().get("cpu").is_none());
        let mut above = json;
        above["cpu"] = 250.into();
        assert_eq!(serde_json::from_value::<Figures>(above).unwrap().cpu, cpu(100));
    }

    #[test]
    fn idle_noise_is_not_published() {
        let idle = figures(0, 1, 2 << 20);
        assert!(!figures(2, 1, (2 << 20) + 40_000).moved_from(&idle));
        assert!(!figures(0, 2, 2 << 20).moved_from(&idle));
        assert!(figures(500, 1, 2 << 20).moved_from(&idle));
        assert!(figures(0, 3, 2 << 20).moved_from(&idle));
        let replica = Figures {
            role: Role::Replica,
            ..idle.clone()
        };
        assert!(replica.moved_from(&idle));
        let busy = figures(10_000, 50, 2 << 20);
        assert!(!figures(10_500, 52, 2 << 20).moved_from(&busy));
        assert!(figures(12_000, 50, 2 << 20).moved_from(&busy));
    }

    #[test]
    fn cpu_moves_by_five_points_or_ten_percent() {
        // (published, now, moved)
        let cases = [
            (None, None, false),
            (None, cpu(0), true),
            (cpu(3), None, true),
            (cpu(1), cpu(4), false),
            (cpu(1), cpu(6), true),
            (cpu(50), cpu(54), false),
            (cpu(50), cpu(45), true),
            (cpu(80), cpu(87), false),
            (cpu(80), cpu(88), true),
        ];
        for (old, new, moved) in cases {
            let old = figures(0, 1, 0).with_cpu(old);
            let new = figures(0, 1, 0).with_cpu(new);
            assert_eq!(new.moved_from(&old), moved, "{:?} -> {:?}", old.cpu, new.cpu);
        }
    }
}
