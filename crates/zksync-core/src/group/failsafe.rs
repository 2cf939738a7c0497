//! Failsafe: a ZooKeeper outage is not a write outage. Pure rules, no I/O.
//!
//! While ZooKeeper answers, the master keeps the group's member list in
//! `/zksync/<group>/failsafe` (`List`, written at its epoch). When its lease
//! can no longer be confirmed by ZooKeeper, it asks every other listed
//! member directly for a grant (`Ask`). A member grants only if it follows
//! that master at that epoch and has seen no newer one (`answer`); a grant
//! lasts `grant_time` on the granting member's clock, and while it runs the
//! member does not stand for election (`bar`). The master keeps writing only
//! while a round of asks *sent* at `s` was granted by every other listed
//! member: until `s + 2/3 grant` on its clock (`Claim`). A grant is given no
//! sooner than the ask was sent and outlives that by a third, which covers
//! clock rates apart by up to ~20% and the delays, as `crate::lease` does
//! for ZooKeeper. So while the master writes, every listed member holds a
//! grant, and none stands.
//!
//! A member not on the list is not asked, so it must not stand while the
//! list may still be in force: it is of the newest epoch this member knows,
//! names members besides its master, and was not released. Once a newer
//! epoch exists, the list's master cannot gather grants (its successor,
//! listed, refuses them), and its last ones ran out before the successor
//! could stand. A listed member whose grants ran out releases the list of
//! a vacancy and grants no more at that epoch (`to_release`): the master
//! can no longer hold every grant. A takeover also checks the list's
//! version, so a list read before it changed is never acted on.
//!
//! A process that starts cannot know whether it granted before it died: it
//! does not stand for one grant time (`Grants::started`) while a list is in
//! force (without one, no master writes on grants: a new group elects at once).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long a grant lasts, on the granting member's clock: a session
/// timeout, so that failsafe renews on the same scale as the lease.
pub fn grant_time(session_timeout: Duration) -> Duration {
    session_timeout
}

/// The master's failsafe lease, proven by a round of grants asked at `sent`.
pub fn lease_end(sent: Instant, grant: Duration) -> Instant {
    sent + grant * 2 / 3
}

/// A master asks a round of grants once ZooKeeper has not confirmed its
/// lease for this long (a third of the timeout, so that the grants arrive
/// while the ZooKeeper lease, 2/3 of it, still runs), and again every sixth.
pub fn asking_due(confirmed: Option<Instant>, last_round: Option<Instant>, now: Instant, timeout: Duration) -> bool {
    let unconfirmed = confirmed.is_none_or(|at| now.saturating_duration_since(at) >= timeout / 3);
    unconfirmed && last_round.is_none_or(|at| now.saturating_duration_since(at) >= timeout / 6)
}

/// The group's members as its master listed them, for its epoch. An id is
/// the member's `host:port`, so it is its address too.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct List {
    pub epoch: u64,
    pub master: String,
    pub members: BTreeSet<String>,
    /// A listed member that holds no grant sealed this epoch (it grants no
    /// more at it), so its master can no longer write on grants and the
    /// list bars no one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
}

impl List {
    /// The list that master `me` of `epoch` keeps: itself and every member it knows.
    pub fn of<'a>(epoch: u64, me: &str, members: impl IntoIterator<Item = &'a str>) -> List {
        let mut ids: BTreeSet<String> = members.into_iter().map(str::to_string).collect();
        ids.insert(me.to_string());
        List {
            epoch,
            master: me.to_string(),
            members: ids,
            released: false,
        }
    }

    /// Whether this is the list that master `me` of `epoch` keeps for
    /// `members` (without building that one).
    pub fn is_of<'a>(&self, epoch: u64, me: &str, members: impl Iterator<Item = &'a str> + Clone) -> bool {
        let others = members.clone().filter(|id| *id != me).count();
        let listed = |id: &str| self.members.contains(id);
        self.epoch == epoch
            && self.master == me
            && !self.released
            && self.members.len() == others + 1
            && listed(me)
            && members.into_iter().all(listed)
    }

    pub fn released(&self) -> List {
        List {
            released: true,
            ..self.clone()
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `None` for an empty znode (no list yet) or one not understood.
    pub fn decode(data: &[u8]) -> Option<List> {
        serde_json::from_slice(data).ok()
    }

    /// Whether this list may still let its master write on grants, for a
    /// member whose newest epoch seen is `seen`: of that epoch or newer, not
    /// released, and naming someone besides its master.
    pub fn in_force(&self, seen: u64) -> bool {
        self.epoch >= seen && !self.released && self.others().next().is_some()
    }

    /// The members the master must hear from.
    pub fn others(&self) -> impl Iterator<Item = &String> {
        self.members.iter().filter(move |id| **id != self.master)
    }
}

/// A master's request for a grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub master: String,
    pub epoch: u64,
}

/// Why a member does not grant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It follows another master, or another epoch, or none (it restarted).
    NotFollowing,
    /// It has seen a newer epoch: the asking master has been replaced.
    Newer(u64),
    /// It is taking the leadership itself.
    Standing,
    /// It released the list of this epoch: it grants no more at it.
    Sealed,
    /// `zksync.failsafe no` here.
    Off,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NotFollowing => write!(f, "this member does not follow that master at that epoch"),
            Refusal::Newer(epoch) => write!(f, "this member has seen a newer epoch, {epoch}"),
            Refusal::Standing => write!(f, "this member is taking the leadership"),
            Refusal::Sealed => write!(f, "this member released the failsafe list of that epoch"),
            Refusal::Off => write!(f, "zksync.failsafe is no on this member"),
        }
    }
}

/// Whether to grant `ask`: this member follows that master at that epoch
/// (`followed`, kept through a vacancy: the master it granted to may be
/// about to take its leadership back), has seen no newer epoch and has not
/// sealed this one.
pub fn answer(ask: &Ask, followed: Option<(&str, u64)>, seen: u64, sealed: Option<u64>) -> Result<(), Refusal> {
    if seen > ask.epoch {
        return Err(Refusal::Newer(seen));
    }
    if sealed.is_some_and(|e| e >= ask.epoch) {
        return Err(Refusal::Sealed);
    }
    match followed {
        Some((id, epoch)) if id == ask.master && epoch == ask.epoch => Ok(()),
        _ => Err(Refusal::NotFollowing),
    }
}

/// Why a member does not stand for election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// It granted a master that may still be writing.
    Granted,
    /// It started less than a grant time ago and may have granted before.
    Starting,
    /// The list in force does not name it, so the master does not ask it.
    NotListed,
    /// It has not read the list on this session.
    Unread,
}

/// The grants this member gave (one at a time: it follows one master).
#[derive(Clone, Debug, Default)]
pub struct Grants {
    /// The last grant given runs until then.
    until: Option<Instant>,
    /// Not standing before then: the process started then plus a grant time.
    quiet_until: Option<Instant>,
}

impl Grants {
    /// The first instant this process knows of, on its first step.
    pub fn started(&mut self, now: Instant, grant: Duration) {
        self.quiet_until.get_or_insert(now + grant);
    }

    pub fn give(&mut self, now: Instant, grant: Duration) -> Instant {
        let until = now + grant;
        self.until = Some(self.until.map_or(until, |u| u.max(until)));
        until
    }

    /// These grants but the last one given (its master is found dead).
    pub fn without_the_last(&self) -> Grants {
        Grants {
            until: None,
            ..self.clone()
        }
    }

    /// Until when the last grant given runs, if it still does.
    pub fn running(&self, now: Instant) -> Option<Instant> {
        self.until.filter(|u| now < *u)
    }

    fn holds(&self, now: Instant) -> Option<Bar> {
        if self.until.is_some_and(|u| now < u) {
            Some(Bar::Granted)
        } else if self.quiet_until.is_none_or(|u| now < u) {
            Some(Bar::Starting)
        } else {
            None
        }
    }
}

/// Whether member `me` may stand for election now: no unexpired grant, not
/// starting, and named by the list unless that list is of an older epoch
/// than the newest it has seen (or there is none).
pub fn bar(me: &str, grants: &Grants, list: Option<&List>, seen: u64, now: Instant) -> Option<Bar> {
    // A list naming no member but its master gives it no failsafe (no one
    // confirms it), so it bars no one.
    let in_force = list.filter(|l| l.in_force(seen));
    match (grants.holds(now), in_force) {
        (Some(Bar::Starting), None) => None,
        (Some(bar), _) => Some(bar),
        (None, Some(l)) if !l.members.contains(me) => Some(Bar::NotListed),
        (None, _) => None,
    }
}

/// Whether listed member `me` is to release the list in force: it holds no
/// grant (any it gave has run out, so the master's lease from it too) and
/// the group has no leader. Once it has, it grants no more at that epoch,
/// so the master can never again hold grants from every listed member, and
/// members the list leaves out may stand (or the group could wait forever
/// on a list whose eligible members are gone).
pub fn to_release(me: &str, grants: &Grants, list: Option<&List>, seen: u64, now: Instant) -> bool {
    let Some(l) = list else { return false };
    l.in_force(seen) && l.master != me && l.members.contains(me) && grants.holds(now).is_none()
}

/// One round of asks, sent at `sent`, and who has not granted it yet.
#[derive(Clone, Debug)]
struct Round {
    sent: Instant,
    missing: BTreeSet<String>,
}

/// A master's failsafe: the members it must hear from (its list, or while
/// a rewrite of it is unconfirmed the union of both), its rounds, its lease.
#[derive(Clone, Debug)]
pub struct Claim {
    pub epoch: u64,
    others: BTreeSet<String>,
    rounds: Vec<Round>,
    until: Option<Instant>,
}

impl Claim {
    pub fn new(list: &List) -> Claim {
        Claim {
            epoch: list.epoch,
            others: list.others().cloned().collect(),
            rounds: Vec::new(),
            until: None,
        }
    }

    /// A rewrite of the list is under way: until it is confirmed, either
    /// list may be the one read, so grants are needed from both.
    pub fn widen(&mut self, list: &List) {
        self.others.extend(list.others().cloned());
    }

    /// The list as confirmed written.
    pub fn confine(&mut self, list: &List) {
        self.others = list.others().cloned().collect();
        for round in &mut self.rounds {
            round.missing.retain(|id| self.others.contains(id));
        }
    }

    pub fn last_round(&self) -> Option<Instant> {
        self.rounds.last().map(|r| r.sent)
    }

    /// A new round at `now`: whom to ask (no one for a master alone on its
    /// list: no one confirms it). Rounds that could no longer extend the
    /// lease are dropped.
    pub fn ask(&mut self, now: Instant, grant: Duration) -> Vec<String> {
        self.rounds.retain(|r| lease_end(r.sent, grant) > now);
        if self.others.is_empty() {
            return Vec::new();
        }
        let missing = self.others.clone();
        self.rounds.push(Round { sent: now, missing });
        self.others.iter().cloned().collect()
    }

    /// `from` answered the round sent at `sent`; the new end of the lease
    /// if that round is now granted by every other listed member.
    pub fn answered(&mut self, from: &str, sent: Instant, granted: bool, grant: Duration) -> Option<Instant> {
        let index = self.rounds.iter().position(|r| r.sent == sent)?;
        if !granted {
            // A refusal sinks the round: that member may stand once its last grant runs out.
            self.rounds.remove(index);
            return None;
        }
        self.rounds[index].missing.remove(from);
        self.complete(grant)
    }

    /// Rounds no one is missing from extend the lease.
    fn complete(&mut self, grant: Duration) -> Option<Instant> {
        let done: Vec<Instant> = self
            .rounds
            .iter()
            .filter(|r| r.missing.is_empty())
            .map(|r| r.sent)
            .collect();
        self.rounds.retain(|r| !r.missing.is_empty());
        let end = lease_end(done.into_iter().max()?, grant);
        self.until = Some(self.until.map_or(end, |u| u.max(end)));
        Some(end)
    }

    /// The members it must hear from.
    pub fn others(&self) -> impl Iterator<Item = &String> {
        self.others.iter()
    }

    /// The failsafe lease runs at `now`.
    pub fn live(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }
}

#[cfg(test)]
#[path = "failsafe_tests.rs"]
mod tests;
