//! When a node that gained slots reads its mirrors again. A resync per gain
//! would run back to back during a reshard (slots land one at a time, each a
//! gain) and slow the reshard down with its holds of the Redis lock; the
//! keys of a landed slot are there already (moved by `MIGRATE`), only what
//! changed during its migration is missing. So: once gains have stopped for
//! `QUIET`, and during a long reshard at least every `MAX_DELAY` (a resync
//! of 1,000,000 znodes holds the lock ~8,000 times: spaced out, a reshard
//! with zksync takes about as long as without).

use std::time::{Duration, Instant};

pub const QUIET: Duration = Duration::from_secs(1);
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// Gains not yet covered by a resync.
#[derive(Debug, Default)]
pub struct Catchup {
    /// The first and the last gain since the last resync.
    pending: Option<(Instant, Instant)>,
}

impl Catchup {
    pub fn gained(&mut self, now: Instant) {
        let first = self.pending.map_or(now, |(first, _)| first);
        self.pending = Some((first, now));
    }

    /// Whether the resync is due now; if so, the gains count as covered.
    pub fn due(&mut self, now: Instant) -> bool {
        let Some((first, last)) = self.pending else {
            return false;
        };
        let due = now.duration_since(last) >= QUIET || now.duration_since(first) >= MAX_DELAY;
        if due {
            self.pending = None;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resync_once_gains_stop_or_after_the_longest_delay() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        /// What, gains at ms, checks at ms with the answer.
        type Case<'a> = (&'a str, &'a [u64], &'a [(u64, bool)]);
        // A reshard lands a slot every 0.9 s for 30 s.
        let reshard: Vec<u64> = (0..34).map(|i| i * 900).collect();
        #[rustfmt::skip]
        let cases: [Case; 4] = [
            ("nothing gained", &[], &[(0, false), (20_000, false)]),
            ("one gain, after a quiet second", &[0], &[(500, false), (1_000, true), (1_100, false)]),
            ("a reshard: at most every 30 s", &reshard,
                &[(29_950, false), (30_000, true)]),
            ("gains during the wait are covered", &[0, 600], &[(1_200, false), (1_600, true), (5_000, false)]),
        ];
        for (what, gains, checks) in cases {
            let mut catchup = Catchup::default();
            for &g in gains {
                catchup.gained(at(g));
            }
            for &(t, want) in checks {
                assert_eq!(catchup.due(at(t)), want, "{what} at {t} ms");
            }
        }
    }
}
