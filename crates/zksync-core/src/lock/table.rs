//! The locks taken through this server and the LOCKs still waiting, as the
//! main thread answers from them (CHECK, UNLOCK, LOCKS) and the session
//! thread keeps them (grants, leases, losses). No I/O: what must happen in
//! ZooKeeper comes back as the contender znodes to delete.

use super::Token;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A Redis client (`CLIENT ID`).
pub type ClientId = u64;

/// A LOCK waiting for its grant.
pub type WaiterId = u64;

/// A lock held through this server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub token: Token,
    pub client: ClientId,
    /// The contender znode that holds it.
    pub znode: String,
    pub since: Instant,
    pub lease_until: Option<Instant>,
}

impl Holder {
    fn lapsed(&self, now: Instant) -> bool {
        self.lease_until.is_some_and(|until| now >= until)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Waiter {
    path: String,
    client: ClientId,
    lease: Option<Duration>,
}

/// Why CHECK refuses a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fenced {
    /// No lock at the path is held with that token through this server.
    NotHeld,
    /// The holder's LEASE ran out.
    LeaseOver,
    /// This server's ZooKeeper session is not confirmed recently enough to
    /// vouch that the lock is still its own.
    Unvouched,
}

impl std::fmt::Display for Fenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fenced::NotHeld => "the token does not hold the lock through this server (released, expired or lost)",
            Fenced::LeaseOver => "the lock's LEASE ran out",
            Fenced::Unvouched => "this server cannot vouch for its ZooKeeper session right now",
        })
    }
}

/// Why a LOCK cannot wait.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    AlreadyHeld,
}

/// What a grant became.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// The waiter holds the lock now, until its lease if any.
    Held(Option<Duration>),
    /// The waiter was cancelled meanwhile: its znode is to go.
    Abandoned,
}

/// What an UNLOCK found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unlock {
    /// The token held the lock, vouched for: released, its znode to delete.
    Released(String),
    /// The token held the lock as far as this server knows, but the session
    /// is not confirmed: ZooKeeper may have given the lock away. Only the
    /// deletion of its znode in this session can tell.
    Unvouched(String),
    /// The token does not hold the lock (released, lapsed or lost).
    NotHeld,
}

/// A lock as ZKSYNC.LOCKS shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub token: Token,
    pub client: ClientId,
    pub held: Duration,
    /// What is left of the lease.
    pub lease_left: Option<Duration>,
}

/// Counters for STATUS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub acquisitions: u64,
    /// Held locks lost: the session expired or the znode was deleted from outside.
    pub losses: u64,
}

#[derive(Default)]
pub struct Table {
    /// By lock path: one holder per path through this server.
    holders: HashMap<String, Holder>,
    waiters: HashMap<WaiterId, Waiter>,
    next_waiter: WaiterId,
    counts: Counts,
}

impl Table {
    /// A LOCK of `path` by `client` is to wait.
    pub fn wait(&mut self, path: &str, client: ClientId, lease: Option<Duration>) -> Result<WaiterId, Refused> {
        if self.holders.get(path).is_some_and(|h| h.client == client) {
            return Err(Refused::AlreadyHeld);
        }
        self.next_waiter += 1;
        let waiter = Waiter {
            path: path.to_string(),
            client,
            lease,
        };
        self.waiters.insert(self.next_waiter, waiter);
        Ok(self.next_waiter)
    }

    /// The waiter's znode became the lowest: it holds the lock, unless it was cancelled.
    pub fn grant(&mut self, id: WaiterId, znode: &str, token: Token, now: Instant) -> Grant {
        let Some(waiter) = self.waiters.remove(&id) else {
            return Grant::Abandoned;
        };
        let holder = Holder {
            token,
            client: waiter.client,
            znode: znode.to_string(),
            since: now,
            lease_until: waiter.lease.map(|lease| now + lease),
        };
        self.holders.insert(waiter.path, holder);
        self.counts.acquisitions += 1;
        Grant::Held(waiter.lease)
    }

    /// The waiter ended without the lock (timeout, error): forget it.
    pub fn give_up(&mut self, id: WaiterId) {
        self.waiters.remove(&id);
    }

    /// UNLOCK of `path` by `token` (`vouched`: the session is confirmed
    /// now). A held lock leaves the table either way: CHECK refuses it from
    /// now on.
    pub fn unlock(&mut self, path: &str, token: Token, now: Instant, vouched: bool) -> Unlock {
        let Some(holder) = self.holders.get(path).filter(|h| h.token == token && !h.lapsed(now)) else {
            return Unlock::NotHeld;
        };
        let znode = holder.znode.clone();
        self.holders.remove(path);
        match vouched {
            true => Unlock::Released(znode),
            false => Unlock::Unvouched(znode),
        }
    }

    /// `client` disconnected: its locks' znodes to delete, its waiters to cancel.
    pub fn client_gone(&mut self, client: ClientId) -> (Vec<String>, Vec<WaiterId>) {
        let mut znodes = Vec::new();
        self.holders.retain(|_, h| {
            let theirs = h.client == client;
            if theirs {
                znodes.push(h.znode.clone());
            }
            !theirs
        });
        let waiters: Vec<WaiterId> = self
            .waiters
            .iter()
            .filter(|(_, w)| w.client == client)
            .map(|(id, _)| *id)
            .collect();
        for id in &waiters {
            self.waiters.remove(id);
        }
        (znodes, waiters)
    }

    /// The znodes of the holders whose lease ran out by `now` (they hold no more).
    pub fn lapse(&mut self, now: Instant) -> Vec<String> {
        let mut znodes = Vec::new();
        self.holders.retain(|_, h| {
            if h.lapsed(now) {
                znodes.push(h.znode.clone());
            }
            !h.lapsed(now)
        });
        znodes
    }

    /// A holder's znode was deleted from outside: the lock is lost.
    pub fn deleted(&mut self, znode: &str) {
        let before = self.holders.len();
        self.holders.retain(|_, h| h.znode != znode);
        self.counts.losses += (before - self.holders.len()) as u64;
    }

    /// The session expired: every lock is lost (its znodes went with it).
    pub fn session_lost(&mut self) {
        self.counts.losses += self.holders.len() as u64;
        self.holders.clear();
    }

    /// CHECK: whether `token` holds `path`, as far as this server can vouch
    /// (`vouched`: its session was confirmed recently enough).
    pub fn check(&self, path: &str, token: Token, now: Instant, vouched: bool) -> Result<(), Fenced> {
        let holder = self
            .holders
            .get(path)
            .filter(|h| h.token == token)
            .ok_or(Fenced::NotHeld)?;
        if holder.lapsed(now) {
            return Err(Fenced::LeaseOver);
        }
        if !vouched {
            return Err(Fenced::Unvouched);
        }
        Ok(())
    }

    /// The holders' znodes (to verify after a reconnect).
    pub fn znodes(&self) -> Vec<String> {
        self.holders.values().map(|h| h.znode.clone()).collect()
    }

    pub fn holding(&self) -> bool {
        !self.holders.is_empty()
    }

    pub fn list(&self, now: Instant) -> Vec<Listed> {
        let mut listed: Vec<Listed> = self
            .holders
            .iter()
            .filter(|(_, h)| !h.lapsed(now))
            .map(|(path, h)| Listed {
                path: path.clone(),
                token: h.token,
                client: h.client,
                held: now.saturating_duration_since(h.since),
                lease_left: h.lease_until.map(|until| until.saturating_duration_since(now)),
            })
            .collect();
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        listed
    }

    pub fn held(&self) -> usize {
        self.holders.len()
    }

    pub fn waiting(&self) -> usize {
        self.waiters.len()
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ClientId = 7;
    const B: ClientId = 8;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `A` holds `/l` with token 100 since `t`, with a lease of 1 s.
    fn held(t: Instant) -> Table {
        let mut table = Table::default();
        let id = table.wait("/l", A, Some(ms(1000))).unwrap();
        assert_eq!(
            table.grant(id, "/l/_c_x-lock-1", Token(100), t),
            Grant::Held(Some(ms(1000)))
        );
        table
    }

    #[test]
    fn check_vouches_only_for_a_live_token_on_a_confirmed_session() {
        let t = Instant::now();
        let table = held(t);
        let cases = [
            ("/l", 100, t, true, Ok(())),
            ("/l", 99, t, true, Err(Fenced::NotHeld)),
            ("/m", 100, t, true, Err(Fenced::NotHeld)),
            ("/l", 100, t + ms(999), true, Ok(())),
            ("/l", 100, t + ms(1000), true, Err(Fenced::LeaseOver)),
            ("/l", 100, t, false, Err(Fenced::Unvouched)),
        ];
        for (path, token, now, vouched, want) in cases {
            assert_eq!(table.check(path, Token(token), now, vouched), want, "{path} {token}");
        }
    }

    #[test]
    fn unlock_releases_only_a_live_token_and_vouches_only_on_a_confirmed_session() {
        let t = Instant::now();
        let znode = || "/l/_c_x-lock-1".to_string();
        let cases = [
            ("/l", 100, t, true, Unlock::Released(znode())),
            ("/l", 100, t, false, Unlock::Unvouched(znode())),
            ("/l", 101, t, true, Unlock::NotHeld),
            ("/x", 100, t, true, Unlock::NotHeld),
            ("/l", 100, t + ms(1000), true, Unlock::NotHeld),
            ("/l", 100, t + ms(1000), false, Unlock::NotHeld),
        ];
        for (path, token, now, vouched, want) in cases {
            let mut table = held(t);
            let got = table.unlock(path, Token(token), now, vouched);
            assert_eq!(table.holding(), got == Unlock::NotHeld, "{path} {token}");
            assert_eq!(got, want, "{path} {token} vouched {vouched}");
        }
    }

    #[test]
    fn a_connection_cannot_take_a_lock_it_holds() {
        let t = Instant::now();
        let mut table = held(t);
        assert_eq!(table.wait("/l", A, None), Err(Refused::AlreadyHeld));
        assert!(table.wait("/l", B, None).is_ok());
        assert!(table.wait("/m", A, None).is_ok());
    }

    #[test]
    fn a_disconnect_releases_holdings_and_cancels_waiters() {
        let t = Instant::now();
        let mut table = held(t);
        let waiting = table.wait("/m", A, None).unwrap();
        let other = table.wait("/m", B, None).unwrap();
        let (znodes, waiters) = table.client_gone(A);
        assert_eq!(znodes, ["/l/_c_x-lock-1"]);
        assert_eq!(waiters, [waiting]);
        assert_eq!((table.held(), table.waiting()), (0, 1));
        // A grant that arrives after the cancel is abandoned.
        assert_eq!(table.grant(waiting, "/m/_c_y-lock-2", Token(5), t), Grant::Abandoned);
        assert!(matches!(
            table.grant(other, "/m/_c_z-lock-3", Token(6), t),
            Grant::Held(None)
        ));
    }

    #[test]
    fn leases_lapse_and_losses_are_counted() {
        let t = Instant::now();
        let mut table = held(t);
        assert!(table.lapse(t + ms(999)).is_empty());
        assert_eq!(table.list(t + ms(400))[0].lease_left, Some(ms(600)));
        assert_eq!(table.lapse(t + ms(1000)), ["/l/_c_x-lock-1"]);
        assert!(table.list(t).is_empty());
        let mut table = held(t);
        table.deleted("/l/_c_other");
        assert_eq!(table.counts().losses, 0);
        table.deleted("/l/_c_x-lock-1");
        assert_eq!(
            table.counts(),
            Counts {
                acquisitions: 1,
                losses: 1
            }
        );
        let mut table = held(t);
        table.session_lost();
        assert_eq!((table.held(), table.counts().losses), (0, 1));
    }
}
