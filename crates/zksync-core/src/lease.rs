//! Leases on what this server's ZooKeeper session holds: the master's
//! leader znode (fencing), the locks taken through it (CHECK).
//!
//! ZooKeeper expires a session no sooner than its timeout after the last
//! time it heard from the client. A request *sent* at `t` and answered
//! therefore proves that the session, and every ephemeral znode it owns,
//! lives until `t + timeout` at least. A lease ends at 2/3 of that, leaving
//! a third for clock drift and the checker's own delay; it is confirmed
//! again every sixth, so three checks may go unanswered before it lapses.
//! The main thread reads a `Deadline` by the monotonic clock: a stalled
//! session thread or a stopped process cannot extend it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// When a lease proven by a check sent at `sent` ends.
pub fn expiry(sent: Instant, session_timeout: Duration) -> Instant {
    sent + session_timeout * 2 / 3
}

/// What the silence since `sent`, the sending of the last request
/// ZooKeeper answered, says of the session at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Answered within 2/3 of the timeout: the session lives, and will for
    /// a third of the timeout at least.
    Confirmed,
    /// Past 2/3 of the timeout: the session may be expiring; nothing it
    /// holds can be vouched for (the Java client's read timeout).
    Suspended,
    /// The whole timeout passed: ZooKeeper may have expired the session and
    /// handed its ephemeral znodes to others.
    Expired,
}

pub fn standing(sent: Instant, now: Instant, session_timeout: Duration) -> Standing {
    if now < expiry(sent, session_timeout) {
        Standing::Confirmed
    } else if now < sent + session_timeout {
        Standing::Suspended
    } else {
        Standing::Expired
    }
}

/// Whether the lease is due a renewal check at `now`, the last one sent at `last`.
pub fn renewal_due(last: Option<Instant>, now: Instant, session_timeout: Duration) -> bool {
    last.is_none_or(|at| now.saturating_duration_since(at) >= session_timeout / 6)
}

/// An instant kept in an atomic as nanoseconds since `base` (0: none), so
/// that any thread reads it without a lock.
struct AtomicInstant {
    base: Instant,
    nanos: AtomicU64,
}

impl AtomicInstant {
    fn none() -> AtomicInstant {
        AtomicInstant {
            base: Instant::now(),
            nanos: AtomicU64::new(0),
        }
    }

    /// `at` as stored; an instant before `base` is stored as just after it.
    fn encode(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.base).as_nanos() as u64).max(1)
    }
}

/// An instant readable from any thread without a lock (a heartbeat).
pub struct Stamp(AtomicInstant);

impl Default for Stamp {
    fn default() -> Stamp {
        Stamp::never()
    }
}

impl Stamp {
    pub fn never() -> Stamp {
        Stamp(AtomicInstant::none())
    }

    pub fn set(&self, at: Instant) {
        self.0.nanos.store(self.0.encode(at), Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<Instant> {
        match self.0.nanos.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(self.0.base + Duration::from_nanos(nanos)),
        }
    }
}

/// The end of a lease, readable from any thread without a lock.
pub struct Deadline(AtomicInstant);

impl Default for Deadline {
    fn default() -> Deadline {
        Deadline::none()
    }
}

impl Deadline {
    pub fn none() -> Deadline {
        Deadline(AtomicInstant::none())
    }

    /// Ends at `until` (proven by a confirmed request).
    pub fn set(&self, until: Instant) {
        self.0.nanos.store(self.0.encode(until), Ordering::Relaxed);
    }

    /// Runs until `until` at least (proven by a confirmed request).
    pub fn extend(&self, until: Instant) {
        self.0.nanos.fetch_max(self.0.encode(until), Ordering::Relaxed);
    }

    /// Ends at `until` at the latest.
    pub fn cap(&self, until: Instant) {
        self.0.nanos.fetch_min(self.0.encode(until), Ordering::Relaxed);
    }

    pub fn revoke(&self) {
        self.0.nanos.store(0, Ordering::Relaxed);
    }

    /// Whether the lease still runs at `now`.
    pub fn live(&self, now: Instant) -> bool {
        self.0.encode(now) < self.0.nanos.load(Ordering::Relaxed)
    }
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
    fn deadlines_run_until_set_capped_or_revoked() {
        let t = Instant::now();
        let d = Deadline::none();
        assert!(!d.live(t));
        d.set(t + Duration::from_millis(100));
        let cases = [
            (t, true),
            (t + Duration::from_millis(99), true),
            (t + Duration::from_millis(100), false),
        ];
        for (now, live) in cases {
            assert_eq!(d.live(now), live);
        }
        d.cap(t + Duration::from_millis(200));
        assert!(d.live(t + Duration::from_millis(99)), "a cap never extends");
        d.cap(t + Duration::from_millis(50));
        assert!(!d.live(t + Duration::from_millis(50)));
        d.extend(t + Duration::from_millis(100));
        d.extend(t + Duration::from_millis(10));
        assert!(d.live(t + Duration::from_millis(99)), "an extension never shortens");
        d.revoke();
        assert!(!d.live(t));
    }

    #[test]
    fn a_stamp_keeps_its_instant() {
        let stamp = Stamp::never();
        assert_eq!(stamp.get(), None);
        let t = Instant::now() + Duration::from_millis(5);
        stamp.set(t);
        let got = stamp.get().unwrap();
        assert!(got <= t && t - got < Duration::from_micros(1), "{got:?} {t:?}");
    }

    #[test]
    fn standing_by_the_silence_since_the_last_answered_request() {
        let t = Instant::now();
        let timeout = Duration::from_millis(3000);
        let ms = Duration::from_millis;
        let cases = [
            (ms(0), Standing::Confirmed),
            (ms(1999), Standing::Confirmed),
            (ms(2000), Standing::Suspended),
            (ms(2999), Standing::Suspended),
            (ms(3000), Standing::Expired),
            (ms(60_000), Standing::Expired),
        ];
        for (silence, want) in cases {
            assert_eq!(standing(t, t + silence, timeout), want, "after {silence:?}");
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
