//! The master's lease on the leader znode, as arithmetic.
//!
//! ZooKeeper expires a session no sooner than its timeout after the last
//! time it heard from the client. A check of the leader znode *sent* at `t`
//! and answered "yours" therefore proves that no other member can lead
//! before `t + timeout`. The lease ends at 2/3 of that, leaving a third for
//! clock drift and the filter's own delay; it is checked again every sixth,
//! so three checks may go unanswered before it lapses.

use std::time::{Duration, Instant};

/// When a lease proven by a check sent at `sent` ends.
pub fn expiry(sent: Instant, session_timeout: Duration) -> Instant {
    sent + session_timeout * 2 / 3
}

/// Whether the lease is due a renewal check at `now`, the last one sent at `last`.
pub fn renewal_due(last: Option<Instant>, now: Instant, session_timeout: Duration) -> bool {
    last.is_none_or(|at| now.saturating_duration_since(at) >= session_timeout / 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_two_thirds_of_the_timeout_after_sending() {
        let t = Instant::now();
        let cases = [(6000, 4000), (3000, 2000), (500, 333), (1, 0)];
        for (timeout_ms, lease_ms) in cases {
            let timeout = Duration::from_millis(timeout_ms);
            let lease = expiry(t, timeout) - t;
            assert_eq!(lease.as_millis() as u64, lease_ms, "timeout {timeout_ms} ms");
            assert!(lease < timeout);
        }
    }

    #[test]
    fn renewal_every_sixth_of_the_timeout() {
        let t = Instant::now();
        let timeout = Duration::from_millis(6000);
        let ms = Duration::from_millis;
        let cases = [
            (None, t, true),
            (Some(t), t, false),
            (Some(t), t + ms(999), false),
            (Some(t), t + ms(1000), true),
            (Some(t + ms(5)), t, false),
        ];
        for (last, now, due) in cases {
            assert_eq!(renewal_due(last, now, timeout), due, "{last:?} {now:?}");
        }
    }
}
