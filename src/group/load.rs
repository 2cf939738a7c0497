//! Load figures of this server: sampled on the main thread every
//! `zksync.load-interval`, published by the session thread only when worth a
//! ZooKeeper write.

use serde::{Deserialize, Serialize};
use std::time::Duration;

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
            priority: default_priority(),
        };
        figures.score = figures.compute_score();
        figures
    }

    /// Lower is better: `ops_per_sec + 100 × connected_clients + 10000 ×
    /// used_memory / maxmemory` (the memory term only under a maxmemory):
    /// a connection weighs like 100 ops/s, a full memory like 10,000 ops/s.
    fn compute_score(&self) -> i64 {
        let memory = if self.maxmemory > 0 {
            (10_000.0 * self.used_memory as f64 / self.maxmemory as f64) as i64
        } else {
            0
        };
        self.ops_per_sec + 100 * self.connected_clients + memory
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

    #[test]
    fn score_weighs_load() {
        assert_eq!(figures(50, 2, 1 << 20).score, 250);
        let full = Figures::new(Role::Master, 0, 0, 0, 50, 100);
        assert_eq!(full.score, 5000);
        assert!(figures(40_000, 50, 0).score > figures(3, 2, 0).score);
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
}
