//! Where a mirrored change spends its time, hop by hop, from the watch event
//! to the main thread's wake-up: cumulative histograms for INFO zksync, so a
//! tail can be pinned on one hop (the ZooKeeper read, a thread hand-off, the
//! Redis lock) without a profiler.

use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The hops of a live change, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// The session thread: first watch event of a burst → its read's reply.
    Read,
    /// The read's reply → the apply thread takes the change.
    Handoff,
    /// The apply thread asks for the Redis lock → holds it.
    LockWait,
    /// The lock held: the keys written, the notifications queued.
    Hold,
    /// The lock released → the main thread woken (then replies and
    /// notifications leave).
    Wake,
    /// The first watch event → the main thread woken: the sum, per change.
    Total,
}

impl Hop {
    pub const ALL: [Hop; 6] = [Hop::Read, Hop::Handoff, Hop::LockWait, Hop::Hold, Hop::Wake, Hop::Total];

    pub fn name(self) -> &'static str {
        match self {
            Hop::Read => "read",
            Hop::Handoff => "handoff",
            Hop::LockWait => "lock_wait",
            Hop::Hold => "hold",
            Hop::Wake => "wake",
            Hop::Total => "total",
        }
    }
}

/// Sub-buckets per power of two: a percentile is within 1/16 of the truth.
const SUB_BITS: u32 = 3;
const SUB: usize = 1 << SUB_BITS;
/// 41 octaves past the first 8 ns: up to 2^43 ns (2.4 hours); longer lands
/// in the last bucket.
const BUCKETS: usize = 41 * SUB;

/// A log-linear histogram of durations, recorded lock-free from any thread.
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

fn bucket(ns: u64) -> usize {
    if ns < SUB as u64 {
        return ns as usize;
    }
    let octave = 63 - ns.leading_zeros();
    let sub = (ns >> (octave - SUB_BITS)) as usize & (SUB - 1);
    (((octave - SUB_BITS + 1) as usize) * SUB + sub).min(BUCKETS - 1)
}

/// The middle of bucket `i`, in ns.
fn middle(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let octave = (i / SUB) as u32 + SUB_BITS - 1;
    let width = 1u64 << (octave - SUB_BITS);
    (1u64 << octave) + (i % SUB) as u64 * width + width / 2
}

impl Histogram {
    pub fn record(&self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket(ns)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// The `q`-quantile (0 < q ≤ 1); `None` before the first record.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        let i = counts.iter().position(|c| {
            seen += c;
            seen >= rank
        })?;
        Some(Duration::from_nanos(middle(i)))
    }
}

/// One histogram per hop, for the life of the process.
pub struct Hops([Histogram; 6]);

/// A static: INFO, which Redis calls without a pointer of ours, reads it.
pub static HOPS: Lazy<Hops> = Lazy::new(|| Hops(std::array::from_fn(|_| Histogram::default())));

impl Hops {
    pub fn of(&self, hop: Hop) -> &Histogram {
        &self.0[hop as usize]
    }

    pub fn record(&self, hop: Hop, from: Instant, to: Instant) {
        self.of(hop).record(to.saturating_duration_since(from));
    }
}

/// When a live change was seen and read, carried with it to the apply thread.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub event: Instant,
    pub read: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_middles_fall_inside() {
        let mut last = 0;
        for ns in (0..100_000u64).chain([1 << 20, 123_456_789, 1 << 39, u64::MAX]) {
            let b = bucket(ns);
            assert!(b >= last, "{ns}");
            last = b;
        }
        for ns in [1u64, 7, 8, 9, 100, 1_000, 65_432, 1_000_000, 5_000_000_000] {
            let mid = middle(bucket(ns));
            let error = (mid as f64 - ns as f64).abs() / ns as f64;
            assert!(error <= 1.0 / 16.0, "{ns} → {mid}");
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for us in 1..=100u64 {
            h.record(Duration::from_micros(us));
        }
        let within = |q: f64, us: f64| {
            let got = h.quantile(q).map(|d| d.as_secs_f64() * 1e6).unwrap_or_default();
            assert!((got - us).abs() / us <= 1.0 / 16.0, "q{q}: {got} µs, not {us}");
        };
        within(0.5, 50.0);
        within(0.99, 99.0);
        within(1.0, 100.0);
        assert_eq!(h.count(), 100);
    }
}
