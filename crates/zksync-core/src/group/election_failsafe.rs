//! The election's part in failsafe (the rules are `group::failsafe`): the
//! list the master keeps in ZooKeeper, its rounds of asks and its failsafe
//! lease, the grants this member gives, and whether it may stand.

use super::{Effect, Effects, Election, Facts, FailsafeLease, Leader, Owner, Part, Seen, Takeover};
use crate::group::failsafe::{self, Ask, Bar, Claim, Grants, List, Refusal};
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub(super) struct Failsafe {
    /// The list as read on this session (`None` inside: no list yet), and
    /// its version, which a takeover checks.
    read: Option<(Option<List>, i32)>,
    /// The list last read on any session, for STATUS.
    shown: Option<List>,
    /// The last leader this member saw, kept through a vacancy: the master
    /// it grants to may be about to take its leadership back.
    followed: Option<(String, u64)>,
    grants: Grants,
    /// As master (or a master whose session went while it wrote on grants).
    claim: Option<Claim>,
    /// The list this master last had confirmed written.
    written: Option<List>,
    /// When the last lease check that ZooKeeper confirmed was sent.
    confirmed: Option<Instant>,
    /// A takeover of this member's is under way: it grants nothing meanwhile.
    taking: bool,
    /// This member released the list of this epoch: it grants no more at it.
    sealed: Option<u64>,
}

/// What the failsafe rules say of standing for election.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Standing {
    Free,
    Barred(Bar),
    /// This member wrote on grants through the vacancy: it takes its
    /// leadership back before anyone else may stand.
    Reclaim,
    /// Release the list in force, at its version (see `failsafe::to_release`).
    Release(List, i32),
}

fn grant_time(f: &Facts) -> Duration {
    failsafe::grant_time(f.session_timeout)
}

impl Failsafe {
    pub(super) fn confirmed(&mut self, sent: Instant) {
        self.confirmed = Some(self.confirmed.map_or(sent, |c| c.max(sent)));
    }

    /// A new session has read nothing yet.
    pub(super) fn new_session(&mut self) {
        self.read = None;
    }

    /// No failsafe lease any more (if there was a claim to one).
    pub(super) fn give_up(&mut self) -> Option<Effect> {
        self.written = None;
        self.claim.take().map(|_| Effect::FailsafeLease(FailsafeLease::Revoke))
    }

    /// A takeover is sent (`true`), or its outcome known.
    pub(super) fn taking(&mut self, taking: bool) {
        self.taking = taking;
    }

    /// `dead`: the master found dead, and its epoch (`detection::dead`).
    pub(super) fn standing(&mut self, me: &str, epoch: u64, dead: Option<&(String, u64)>, f: &Facts) -> Standing {
        self.grants.started(f.now, grant_time(f));
        if self.claim.as_ref().is_some_and(|c| c.live(f.now)) {
            return Standing::Reclaim;
        }
        let Some((list, version)) = &self.read else {
            return Standing::Barred(Bar::Unread);
        };
        let (list, grants) = self.unless_dead(list.as_ref(), dead);
        if let Some(l) = list.filter(|l| failsafe::to_release(me, &grants, Some(l), epoch, f.now)) {
            self.sealed = Some(self.sealed.map_or(l.epoch, |s| s.max(l.epoch)));
            return Standing::Release(l.released(), *version);
        }
        match failsafe::bar(me, &grants, list, epoch, f.now) {
            Some(bar) => Standing::Barred(bar),
            None => Standing::Free,
        }
    }

    /// The list and the grants that still bar: a master found dead (its
    /// port refused a majority: its process is gone) writes nothing, so its
    /// list is not in force and a grant to it holds no one back. Without
    /// this, a member that started less than a grant time ago could not
    /// replace a dead master at once.
    fn unless_dead<'a>(&self, list: Option<&'a List>, dead: Option<&(String, u64)>) -> (Option<&'a List>, Grants) {
        let is_dead = |master: &str, epoch: u64| dead.is_some_and(|(id, e)| id == master && *e == epoch);
        let list = list.filter(|l| !is_dead(&l.master, l.epoch));
        let granted_to_dead = self.followed.as_ref().is_some_and(|(id, e)| is_dead(id, *e));
        let grants = match granted_to_dead {
            true => self.grants.without_the_last(),
            false => self.grants.clone(),
        };
        (list, grants)
    }
}

impl Election {
    /// No failsafe lease any more: a pause, a hand-over.
    pub(in crate::group) fn give_up_failsafe(&mut self) -> Option<Effect> {
        self.failsafe.give_up()
    }

    /// The leader znode as read: the master this member follows; a claim
    /// ends once another master or a newer epoch leads.
    pub(super) fn failsafe_observed(&mut self, leader: Option<&Leader>, f: &Facts) -> Effects {
        self.failsafe.grants.started(f.now, grant_time(f));
        self.failsafe.taking = false;
        let Some(leader) = leader else {
            return Vec::new();
        };
        let node = &leader.node;
        self.failsafe.followed = Some((node.id.clone(), node.epoch));
        let superseded = self
            .failsafe
            .claim
            .as_ref()
            .is_some_and(|c| node.epoch > c.epoch || Some(node.id.as_str()) != f.me);
        match superseded {
            true => self.failsafe.give_up().into_iter().collect(),
            false => Vec::new(),
        }
    }

    /// A takeover by hand (ZKSYNC.FAILOVER FORCE) obeys the same bars as an
    /// election: a member that the master in failsafe does not ask, or that
    /// granted it, taking over while it writes would make two writers.
    pub(in crate::group) fn failsafe_bars(&mut self, me: &str, f: &Facts) -> Option<Bar> {
        if !f.policy.failsafe {
            return None;
        }
        self.failsafe.grants.started(f.now, grant_time(f));
        let Some((list, _)) = &self.failsafe.read else {
            return Some(Bar::Unread);
        };
        let (list, grants) = self.failsafe.unless_dead(list.as_ref(), self.dead.as_ref());
        failsafe::bar(me, &grants, list, self.epoch, f.now)
    }

    /// What failsafe makes of this member's standing in a vacancy: nothing
    /// (`None`: the election goes on), or what to do instead.
    pub(super) fn failsafe_gate(&mut self, me: &str, f: &Facts) -> Option<Effects> {
        if !f.policy.failsafe {
            return None;
        }
        match self.failsafe.standing(me, self.epoch, self.dead.as_ref(), f) {
            Standing::Free => None,
            Standing::Barred(_) => Some(Vec::new()),
            Standing::Reclaim => {
                self.failsafe.taking(true);
                Some(vec![Effect::Take(Takeover::reclaim())])
            }
            Standing::Release(list, version) => Some(vec![Effect::ReleaseFailsafeList { list, version }]),
        }
    }

    /// The master's list, rewritten when the members it knows change.
    pub(super) fn keep_list(&mut self, f: &Facts) -> Effects {
        if !f.policy.failsafe {
            return Vec::new();
        }
        let (true, Seen::Held(leader), Some(me), true) = (self.leads_freely(), &self.seen, f.me, self.current) else {
            return Vec::new();
        };
        let ids = f.members.iter().map(|m| m.id.as_str());
        if self
            .failsafe
            .written
            .as_ref()
            .is_some_and(|w| w.is_of(leader.node.epoch, me, ids.clone()))
        {
            return Vec::new();
        }
        let list = List::of(leader.node.epoch, me, ids);
        if let Some(claim) = self.failsafe.claim.as_mut().filter(|c| c.epoch == list.epoch) {
            // Until the write is confirmed, either list may be the one read.
            claim.widen(&list);
        }
        vec![Effect::WriteFailsafeList {
            list,
            leader_version: leader.version,
        }]
    }

    /// Leading, and neither paused for a switchover nor handing over: a
    /// master whose writes end with a pause gets no failsafe lease.
    fn leads_freely(&self) -> bool {
        let handing_over = matches!(self.owner, Some(Owner::HandingOver));
        matches!(&self.part, Part::Leading(lead) if lead.paused.is_none()) && !handing_over && !self.stalled
    }

    fn ask_grants(&mut self, f: &Facts) -> Effects {
        let leading = self.leads_freely();
        let (Some(claim), Some(me)) = (self.failsafe.claim.as_mut(), f.me) else {
            return Vec::new();
        };
        let due = failsafe::asking_due(self.failsafe.confirmed, claim.last_round(), f.now, f.session_timeout);
        if !due || !(leading || claim.live(f.now)) {
            return Vec::new();
        }
        let to = claim.ask(f.now, grant_time(f));
        if to.is_empty() {
            return Vec::new();
        }
        let ask = Ask {
            master: me.to_string(),
            epoch: claim.epoch,
        };
        vec![Effect::AskGrants { ask, sent: f.now, to }]
    }
}

/// What STATUS shows of failsafe on this member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The list as last read.
    pub list: Option<List>,
    /// The grant this member gave that still runs: to whom, at which
    /// epoch, until when.
    pub granted: Option<(String, u64, Instant)>,
    /// As a master writing on grants: the members that granted them.
    pub grantors: Vec<String>,
}

/// What the shell reports: the list written and read, grants asked of this
/// member and answers to its asks.
impl Election {
    pub fn failsafe_report(&self, now: Instant) -> Report {
        let f = &self.failsafe;
        let granted = match (f.grants.running(now), &f.followed) {
            (Some(until), Some((master, epoch))) => Some((master.clone(), *epoch, until)),
            _ => None,
        };
        let grantors = match &f.claim {
            Some(claim) if claim.live(now) => claim.others().cloned().collect(),
            _ => Vec::new(),
        };
        Report {
            list: f.shown.clone(),
            granted,
            grantors,
        }
    }

    /// This member asks for grants, or may: its clock needs to run.
    pub fn failsafe_claimed(&self) -> bool {
        self.failsafe.claim.is_some()
    }

    /// The failsafe's clock, which runs whether or not ZooKeeper answers:
    /// a master asks for grants once ZooKeeper stops confirming its lease;
    /// a claim out of grants and leadership ends.
    pub fn failsafe_tick(&mut self, f: &Facts) -> Effects {
        if !f.policy.failsafe {
            return Vec::new();
        }
        self.failsafe.grants.started(f.now, grant_time(f));
        let lapsed = self.failsafe.claim.as_ref().is_some_and(|c| !c.live(f.now));
        if lapsed && !self.leading() {
            return self.failsafe.give_up().into_iter().collect();
        }
        self.ask_grants(f)
    }

    /// The list was written (`true`) or not: a written list of this
    /// master's epoch is the one it asks by.
    pub fn failsafe_list_written(&mut self, list: List, written: bool) {
        let current = self.leads_freely() && self.leader().is_some_and(|l| l.node.epoch == list.epoch);
        if !written || !current {
            return;
        }
        match self.failsafe.claim.as_mut().filter(|c| c.epoch == list.epoch) {
            Some(claim) => claim.confine(&list),
            None => self.failsafe.claim = Some(Claim::new(&list)),
        }
        self.failsafe.written = Some(list);
    }

    /// The list as read (`None`: there is none yet) at `version`.
    pub fn failsafe_list_read(&mut self, list: Option<List>, version: i32) {
        self.failsafe.shown.clone_from(&list);
        self.failsafe.read = Some((list, version));
    }

    /// The version of the list the rules judged by: a takeover checks it.
    pub fn failsafe_list_version(&self) -> Option<i32> {
        self.failsafe.read.as_ref().map(|(_, version)| *version)
    }

    /// A master asks for a grant: until when it is given, or why not.
    pub fn grant_asked(&mut self, ask: &Ask, f: &Facts) -> Result<Instant, Refusal> {
        if !f.policy.failsafe {
            return Err(Refusal::Off);
        }
        if self.failsafe.taking {
            return Err(Refusal::Standing);
        }
        let followed = self.failsafe.followed.as_ref().map(|(id, e)| (id.as_str(), *e));
        failsafe::answer(ask, followed, self.epoch, self.failsafe.sealed)?;
        Ok(self.failsafe.grants.give(f.now, grant_time(f)))
    }

    /// `from` answered the round of asks sent at `sent`.
    pub fn grant_answered(&mut self, from: &str, sent: Instant, granted: bool, f: &Facts) -> Effects {
        let Some(claim) = self.failsafe.claim.as_mut() else {
            return Vec::new();
        };
        match claim.answered(from, sent, granted, grant_time(f)) {
            Some(until) => vec![Effect::FailsafeLease(FailsafeLease::Extend(until))],
            None => Vec::new(),
        }
    }
}

/// Rules broken on purpose, for the simulation to catch.
#[cfg(test)]
impl Election {
    /// Grants whoever asks, whatever this member follows.
    pub fn grant_unchecked(&mut self, f: &Facts) -> bool {
        self.failsafe.grants.give(f.now, grant_time(f));
        true
    }

    /// Takes this process to have started at `at`.
    pub fn failsafe_started(&mut self, at: Instant) {
        self.failsafe.grants.started(at, Duration::ZERO);
    }
}
