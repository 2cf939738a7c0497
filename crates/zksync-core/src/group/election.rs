//! Who leads the group, as this member sees it, and what it does about it:
//! a state machine without I/O. The session thread feeds it what it read
//! from ZooKeeper and what Redis reported, with the clock (`Facts`), and
//! carries out the `Effect`s it returns, reporting their outcomes back.
//!
//! - The owner of the leader znode is master, every other member its replica
//!   (`reconcile`, which also reverts an operator's REPLICAOF).
//! - When the znode is gone, the best eligible member takes it (`elect`).
//! - The master keeps a lease on it (`renew`, see `lease`).
//! - A switchover moves through the stages of its znode (`switchover`).

use super::failsafe::{Ask, List};
use super::leader::{Change, LeaderNode, Reason};
use super::load::{Role, Sample};
use super::rank::rank;
use super::switchover::{Stage, Switchover, Versioned};
use super::view::Member;
use crate::error::Error;
use crate::lease;
use std::time::{Duration, Instant};

/// After the leader vanished, every member publishes its offset afresh; the
/// best one takes over once all have (or at the latest after this).
pub const SETTLE: Duration = Duration::from_millis(250);
/// The same role action is not asked again sooner than this.
pub(super) const REPEAT: Duration = Duration::from_secs(1);
/// A member that answered the ZKSYNC.FAILOVER it was asked lets the reply
/// leave before it re-points (which unblocks and disconnects clients).
pub(super) const REPLY_GRACE: Duration = Duration::from_millis(100);

/// What the election asks of Redis (carried out by the role thread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `REPLICAOF NO ONE` (if a replica).
    Promote,
    /// `REPLICAOF host port` (unless already following it), ending a
    /// switchover's pause. `demote`: this server led the group, so its
    /// normal clients are disconnected and rediscover the master.
    Follow { addr: String, demote: bool },
    /// `CLIENT PAUSE ms WRITE`: a switchover away from this master.
    Pause(u64),
    /// `CLIENT UNPAUSE`: the switchover was rolled back.
    Unpause,
    /// `PUBLISH +switch-master <message>` to this server's subscribers only.
    Announce(String),
    /// `CLIENT KILL TYPE normal`: a master shutting down handed its
    /// leadership over; its paused clients go and rediscover.
    Disconnect,
    /// Nothing: only a fresh sample.
    Sample,
}

/// The leader znode as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    pub node: LeaderNode,
    /// The session that owns the ephemeral znode.
    pub owner: i64,
    pub version: i32,
}

/// What the session thread knows at a step: the clock, this member, the group.
pub struct Facts<'a> {
    pub now: Instant,
    pub group: &'a str,
    /// This member's id, once the main thread told its port.
    pub me: Option<&'a str>,
    pub session: i64,
    pub session_timeout: Duration,
    /// The main thread's last sample.
    pub sample: Option<&'a Sample>,
    /// The group's members, sorted by id.
    pub members: &'a [Member],
    pub policy: Policy,
}

/// `zksync.failover`, `zksync.failover-max-lag` and `zksync.failsafe`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// No election after the first: only ZKSYNC.FAILOVER FORCE.
    pub manual: bool,
    pub max_lag: i64,
    /// The master writes through a ZooKeeper outage on its members' grants
    /// (`failsafe`); off, everything is as before failsafe.
    pub failsafe: bool,
}

/// What the lease becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseChange {
    /// ZooKeeper confirmed the leadership with a check sent then.
    Renew(Instant),
    /// Ends at this instant at the latest.
    Cap(Instant),
    Revoke,
}

/// The outcome of a lease check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseCheck {
    Owned,
    Lost,
    Unanswered,
}

/// Take the leadership in one transaction: the epoch bumped (version
/// checked), the leader znode created, the history entry written; for a
/// switchover also the old leader znode deleted and the switchover znode
/// moved on (version checked, so a rollback cannot cross it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Takeover {
    pub reason: Reason,
    /// The leader znode to replace (a switchover), with its version.
    pub previous: Option<Leader>,
    pub switchover: Option<Versioned<Switchover>>,
    /// A forced takeover from a live master promotes Redis only once that
    /// master's lease, renewed at the latest as the transaction commits,
    /// has run out.
    pub outwait_lease: bool,
}

impl Takeover {
    /// The failsafe master takes its leadership back once ZooKeeper answers.
    pub(super) fn reclaim() -> Takeover {
        Takeover {
            reason: Reason::Failsafe,
            previous: None,
            switchover: None,
            outwait_lease: false,
        }
    }

    /// The switchover as the transaction leaves it: moved on, at the version read.
    pub fn moved(&self) -> Option<Versioned<Switchover>> {
        self.switchover.as_ref().map(|sw| Versioned {
            value: Switchover {
                stage: Stage::Moved,
                ..sw.value.clone()
            },
            version: sw.version,
        })
    }

    /// The epoch to hand out, the counter read at `counter`; none if this
    /// is a switchover whose leadership changed since it was planned (the
    /// counter's version check then keeps it unchanged until the commit).
    pub fn next_epoch(&self, counter: u64) -> Option<u64> {
        match &self.switchover {
            Some(sw) if sw.value.epoch != Some(counter) => None,
            _ => Some(counter + 1),
        }
    }

    /// The leader znode and the history entry that `me` writes for `epoch`.
    pub fn records(&self, me: &str, epoch: u64) -> (LeaderNode, Change) {
        let previous = self.previous.as_ref().map(|l| l.node.addr.clone());
        let node = LeaderNode {
            id: me.to_string(),
            addr: me.to_string(),
            epoch,
            previous: previous.clone(),
        };
        let change = Change {
            epoch,
            from: previous,
            to: me.to_string(),
            reason: self.reason,
        };
        (node, change)
    }
}

/// What the session thread is to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Role(Action),
    Lease(LeaseChange),
    /// Check that the leader znode is still this session's, then report.
    CheckLease {
        sent: Instant,
    },
    Take(Takeover),
    /// Write the switchover znode at its version (failure only logged).
    WriteSwitchover(Versioned<Switchover>),
    /// Delete the switchover znode at this version, then report.
    RollBack(Option<i32>),
    /// Delete the finished switchover znode.
    DeleteSwitchover,
    /// Create the switchover znode of a master shutting down, then report.
    HandOver(Switchover),
    /// Delete the leader znode (leaving the group).
    DeleteLeader,
    /// Delete the leader znode of `epoch` if no later epoch was handed out
    /// (a dead master's, or this stalled master's own).
    RemoveLeader {
        epoch: u64,
    },
    ReadLeader,
    ReadSwitchover,
    /// Answer the ZKSYNC.FAILOVER this member was asked.
    Answer(Result<(), Error>),
    /// Write the failsafe list, in one transaction with a check that the
    /// leader znode is still at this version (this master's), then report.
    WriteFailsafeList {
        list: List,
        leader_version: i32,
    },
    /// Write the released list at this version, then read it again.
    ReleaseFailsafeList {
        list: List,
        version: i32,
    },
    /// Ask these members for a failsafe grant, each answer reported with `sent`.
    AskGrants {
        ask: Ask,
        sent: Instant,
        to: Vec<String>,
    },
    /// The failsafe lease (a second deadline the fence honours).
    FailsafeLease(FailsafeLease),
    Notice(String),
    Warning(String),
}

pub type Effects = Vec<Effect>;

/// What the failsafe lease becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailsafeLease {
    /// Runs until then at least (a round granted by every listed member).
    Extend(Instant),
    Revoke,
}

/// What this member knows of the leadership.
#[derive(Debug)]
enum Seen {
    Nothing,
    Vacant(Vacancy),
    Held(Leader),
}

/// Since when the group has had no leader, as seen here.
#[derive(Debug)]
struct Vacancy {
    since: Instant,
    /// This vacancy's fresh sample was asked for.
    fresh_asked: bool,
    /// Each member's znode zxid when the vacancy began: a member has
    /// published afresh once its znode moved past it (or went away).
    marks: Vec<(String, i64)>,
    /// Logged as one no member may (or is to) fill.
    warned: bool,
}

/// This member's part in the leadership.
#[derive(Debug)]
pub(super) enum Part {
    /// `demoted`: this process led since it last followed in place, so
    /// following now disconnects its clients.
    Following {
        demoted: bool,
    },
    Leading(Lead),
}

#[derive(Debug, Default)]
pub(super) struct Lead {
    /// When the last lease check was sent.
    pub(super) renewed: Option<Instant>,
    /// Writes paused for a switchover until then: the lease ends with the pause.
    pub(super) paused: Option<Instant>,
    /// A forced takeover promotes Redis only once the old master's lease ran out.
    promote_after: Option<Instant>,
}

/// A switchover znode this member created, and so must finish.
#[derive(Debug)]
pub(super) enum Owner {
    /// ZKSYNC.FAILOVER on this member; extended once when the leadership
    /// moved just as the deadline passed.
    Asked { deadline: Instant, extended: bool },
    /// This master shutting down.
    HandingOver,
}

#[derive(Debug)]
pub struct Election {
    seen: Seen,
    /// `seen` was read on this session.
    current: bool,
    /// The highest epoch seen (0: the group never had a master).
    epoch: u64,
    /// The last leader's last published replication offset.
    master_offset: i64,
    pub(super) part: Part,
    /// The switchover znode as last read.
    pub(super) switchover: Option<Versioned<Switchover>>,
    pub(super) owner: Option<Owner>,
    /// redis-server is shutting down.
    shutting_down: bool,
    /// The epoch last announced on `+switch-master`.
    announced: u64,
    /// The last role action asked for, and when.
    requested: Option<(Action, Instant)>,
    /// The epoch for which this server's role was last seen right.
    in_place_at: Option<u64>,
    /// Do not follow the new master before this (see `REPLY_GRACE`).
    hold_follow_until: Option<Instant>,
    /// A master found dead (its port refused a majority of the others):
    /// its id and epoch. Not elected while its session lingers.
    dead: Option<(String, u64)>,
    /// This server's main thread is stalled: it neither leads nor stands.
    stalled: bool,
    failsafe: Failsafe,
}

impl Default for Election {
    fn default() -> Self {
        Election {
            seen: Seen::Nothing,
            current: false,
            epoch: 0,
            master_offset: 0,
            part: Part::Following { demoted: false },
            switchover: None,
            owner: None,
            shutting_down: false,
            announced: 0,
            requested: None,
            in_place_at: None,
            hold_follow_until: None,
            dead: None,
            stalled: false,
            failsafe: Failsafe::default(),
        }
    }
}

impl Election {
    pub fn leader(&self) -> Option<&Leader> {
        match &self.seen {
            Seen::Held(leader) => Some(leader),
            _ => None,
        }
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    pub fn leading(&self) -> bool {
        matches!(self.part, Part::Leading(_))
    }

    /// The group has no leader, as last read.
    pub fn vacant(&self) -> bool {
        matches!(self.seen, Seen::Vacant(_))
    }

    /// A new session owns no leadership; what it knew must be read again.
    pub fn new_session(&mut self) -> Effects {
        let mut out = vec![Effect::Lease(LeaseChange::Revoke)];
        if let Part::Leading(lead) = &self.part {
            if lead.paused.is_some() {
                out.push(Effect::Role(Action::Unpause));
            }
            self.part = Part::Following { demoted: true };
        }
        self.current = false;
        self.switchover = None;
        self.requested = None;
        self.failsafe.new_session();
        if let Some(Owner::Asked { .. }) = self.owner.take() {
            out.push(Effect::Answer(Err(Error::Failover(
                "the ZooKeeper session was lost before the switchover finished; see ZKSYNC.LEADER".into(),
            ))));
        }
        out
    }

    /// The leader znode as read (`None`: there is none), and the epoch
    /// counter if it could be read.
    pub fn observe_leader(&mut self, leader: Option<Leader>, counter: Option<u64>, f: &Facts) -> Effects {
        let mut out = Vec::new();
        self.epoch = self.epoch.max(counter.unwrap_or(0));
        self.current = true;
        let was_leading = self.leading();
        out.extend(self.failsafe_observed(leader.as_ref(), f));
        match leader {
            Some(leader) => {
                self.epoch = self.epoch.max(leader.node.epoch);
                if self.dead.as_ref().is_some_and(|(_, epoch)| leader.node.epoch > *epoch) {
                    self.dead = None;
                }
                if leader.owner != f.session {
                    self.follow();
                } else if !was_leading {
                    self.part = Part::Leading(Lead::default());
                }
                if was_leading && !self.leading() && self.shutting_down {
                    out.push(Effect::Role(Action::Disconnect));
                }
                out.extend(self.announce(&leader.node, f.group));
                self.seen = Seen::Held(leader);
            }
            None => {
                out.extend(self.vacate(f));
                self.follow();
            }
        }
        if !self.leading() {
            out.push(Effect::Lease(LeaseChange::Revoke));
        }
        out.extend(self.reconcile(f));
        out
    }

    fn follow(&mut self) {
        if self.leading() {
            self.part = Part::Following { demoted: true };
        }
    }

    /// Logs a new master; on a change, `+switch-master` to this server's subscribers.
    fn announce(&mut self, node: &LeaderNode, group: &str) -> Effects {
        if node.epoch <= self.announced {
            return Vec::new();
        }
        let mut out = Vec::new();
        if self.announced > 0 {
            if let Some(message) = switch_message(group, node) {
                out.push(Effect::Role(Action::Announce(message)));
            }
        }
        self.announced = node.epoch;
        out.push(Effect::Notice(format!(
            "group master is {} (epoch {})",
            node.id, node.epoch
        )));
        out
    }

    /// The leader znode is gone: a vacancy begins, unless one is on.
    fn vacate(&mut self, f: &Facts) -> Effects {
        if matches!(self.seen, Seen::Vacant(_)) {
            return Vec::new();
        }
        let gone = matches!(self.seen, Seen::Held(_));
        self.seen = Seen::Vacant(Vacancy {
            since: f.now,
            fresh_asked: false,
            marks: self.candidates(f.members).map(|m| (m.id.clone(), m.mzxid)).collect(),
            warned: false,
        });
        match gone {
            true => vec![Effect::Warning("the group's master is gone".into())],
            false => Vec::new(),
        }
    }

    /// The offset the group's master last recorded in ZooKeeper: the lag of
    /// candidates counts from it too. A process restarted without data,
    /// after every session expired, sees no master publish; without it, it
    /// would be elected and its empty dataset would wipe the member that
    /// holds the data when that one comes back.
    pub fn observe_group_offset(&mut self, offset: i64) {
        self.master_offset = self.master_offset.max(offset);
    }

    /// The members' table changed: remember the master's published offset,
    /// for the lag of candidates.
    pub fn members_changed(&mut self, members: &[Member]) {
        let Seen::Held(leader) = &self.seen else { return };
        if let Some(m) = members.iter().find(|m| m.id == leader.node.id) {
            self.master_offset = m.node.zksync.repl_offset;
        }
    }

    /// Makes this Redis match the leader znode: its owner is master, every
    /// other member its replica. Run after every step.
    pub fn reconcile(&mut self, f: &Facts) -> Effects {
        let mut out = Vec::new();
        let (Some(me), Some(sample), Seen::Held(leader)) = (f.me, f.sample, &self.seen) else {
            return out;
        };
        let epoch = leader.node.epoch;
        let following = sample.figures.role == Role::Replica && sample.master.as_deref() == Some(&leader.node.addr);
        let in_place = match self.part {
            Part::Leading(_) => sample.figures.role == Role::Master,
            Part::Following { .. } => leader.node.id == me || following,
        };
        if in_place {
            self.in_place_at = Some(epoch);
            if following {
                self.part = Part::Following { demoted: false };
            }
        } else if self.in_place_at == Some(epoch) {
            // Right for this epoch before, wrong now: not the group's doing.
            out.push(Effect::Warning(
                "replication was changed outside the group (an operator's REPLICAOF?); the group decides: setting it back"
                    .into(),
            ));
            self.in_place_at = None;
        }
        let Some(action) = self.wanted(me, sample, following, f.now) else {
            return out;
        };
        let repeated = self
            .requested
            .as_ref()
            .is_some_and(|(a, at)| *a == action && f.now.saturating_duration_since(*at) < REPEAT);
        if !repeated {
            self.requested = Some((action.clone(), f.now));
            out.push(Effect::Role(action));
        }
        out
    }

    /// The role action that would put this Redis in place, if any.
    fn wanted(&self, me: &str, sample: &Sample, following: bool, now: Instant) -> Option<Action> {
        let Seen::Held(leader) = &self.seen else { return None };
        match &self.part {
            Part::Leading(lead) => {
                let wait = lead.promote_after.is_some_and(|t| now < t);
                (sample.figures.role != Role::Master && !wait).then_some(Action::Promote)
            }
            // Our own previous run's znode: the session thread removes it.
            Part::Following { .. } if leader.node.id == me => None,
            Part::Following { demoted } => {
                // Re-pointing force-unblocks clients: a member waiting to
                // answer the ZKSYNC.FAILOVER it was asked re-points after the reply.
                let held = matches!(self.owner, Some(Owner::Asked { .. }))
                    || self.shutting_down
                    || self.hold_follow_until.is_some_and(|t| now < t);
                (!following && !held).then(|| Action::Follow {
                    addr: leader.node.addr.clone(),
                    demote: *demoted,
                })
            }
        }
    }

    /// The 20 ms tick: the lease, then the switchover's.
    pub fn tick(&mut self, f: &Facts) -> Effects {
        let mut out = self.renew(f);
        out.extend(self.switchover_tick(f));
        out.extend(self.keep_list(f));
        out
    }

    /// Keeps the master's lease: a check of the leader znode every sixth of
    /// the session timeout.
    pub(super) fn renew(&mut self, f: &Facts) -> Effects {
        let handing_over = matches!(self.owner, Some(Owner::HandingOver));
        match &mut self.part {
            Part::Leading(lead)
                if lead.paused.is_none()
                    && !handing_over
                    && lease::renewal_due(lead.renewed, f.now, f.session_timeout) =>
            {
                lead.renewed = Some(f.now);
                vec![Effect::CheckLease { sent: f.now }]
            }
            _ => Vec::new(),
        }
    }

    /// The lease check sent at `sent` was answered (or not).
    pub fn lease_checked(&mut self, sent: Instant, check: LeaseCheck) -> Effects {
        match check {
            LeaseCheck::Owned => {
                self.failsafe.confirmed(sent);
                vec![Effect::Lease(LeaseChange::Renew(sent))]
            }
            LeaseCheck::Lost => {
                let mut out = vec![Effect::Warning(
                    "this server no longer holds the group's leadership".into(),
                )];
                out.extend(self.failsafe.give_up());
                out.push(Effect::ReadLeader);
                out
            }
            // No answer: the lease lapses on its own.
            LeaseCheck::Unanswered => Vec::new(),
        }
    }

    /// One step of an election while the group has no leader.
    pub fn elect(&mut self, f: &Facts) -> Effects {
        let members: Vec<Member> = self.candidates(f.members).cloned().collect();
        let (true, false, Some(me), Seen::Vacant(_)) = (self.current, self.stalled, f.me, &self.seen) else {
            return Vec::new();
        };
        if let Some(out) = self.failsafe_gate(me, f) {
            return out;
        }
        let Seen::Vacant(vacancy) = &mut self.seen else {
            return Vec::new();
        };
        if self.epoch > 0 && f.policy.manual {
            return warn_once(
                vacancy,
                "the group has no master and zksync.failover is manual: ZKSYNC.FAILOVER FORCE promotes one",
            );
        }
        if !vacancy.fresh_asked {
            // Everyone publishes the offset it has now, then the best one leads.
            vacancy.fresh_asked = true;
            return vec![Effect::Role(Action::Sample)];
        }
        let waited = f.now.saturating_duration_since(vacancy.since);
        let all_fresh = vacancy
            .marks
            .iter()
            .all(|(id, mark)| members.iter().find(|m| m.id == *id).is_none_or(|m| m.mzxid > *mark));
        if !all_fresh && waited < SETTLE {
            return Vec::new();
        }
        let ranked = rank(&members, self.master_offset, f.policy.max_lag);
        // The best one leads; should it not within two session timeouts, anyone eligible may.
        let patience = SETTLE + f.session_timeout * 2;
        match ranked.iter().position(|m| m.id == me) {
            Some(0) => {}
            Some(_) if waited > patience => {}
            _ if ranked.is_empty() && waited > patience => {
                return warn_once(
                    vacancy,
                    "the group has no master and no member is eligible to become one",
                )
            }
            _ => return Vec::new(),
        }
        let reason = if self.epoch == 0 {
            Reason::Bootstrap
        } else {
            Reason::Election
        };
        self.failsafe.taking(true);
        vec![Effect::Take(Takeover {
            reason,
            previous: None,
            switchover: None,
            outwait_lease: false,
        })]
    }

    /// The takeover's transaction committed: this member leads `node`'s epoch.
    pub fn took(&mut self, takeover: Takeover, node: LeaderNode, sent: Instant, f: &Facts) -> Effects {
        if let Some(moved) = takeover.moved() {
            // The transaction wrote it once more.
            self.switchover = Some(Versioned {
                version: moved.version + 1,
                value: moved.value,
            });
        }
        self.failsafe.taking(false);
        self.failsafe.confirmed(sent);
        let mut out: Effects = self.failsafe.give_up().into_iter().collect();
        self.part = Part::Leading(Lead {
            renewed: Some(sent),
            paused: None,
            promote_after: takeover.outwait_lease.then(|| lease::expiry(f.now, f.session_timeout)),
        });
        out.extend([
            Effect::Lease(LeaseChange::Renew(sent)),
            Effect::Notice(format!(
                "took the leadership of group {} (epoch {}, {})",
                f.group,
                node.epoch,
                takeover.reason.name()
            )),
        ]);
        let leader = Leader {
            node,
            owner: f.session,
            version: 0,
        };
        out.extend(self.observe_leader(Some(leader), None, f));
        out
    }

    /// The members that may stand: all but a master found dead.
    fn candidates<'m>(&self, members: &'m [Member]) -> impl Iterator<Item = &'m Member> + 'm {
        let dead = self.dead.as_ref().map(|(id, _)| id.clone());
        members.iter().filter(move |m| Some(&m.id) != dead.as_ref())
    }

    /// A majority of the other members found the master's port refusing
    /// (`detection::dead`): its process is gone, and so is its lease, so
    /// its znode is removed now rather than when its session expires.
    pub fn leader_dead(&mut self, f: &Facts) -> Effects {
        let Seen::Held(leader) = &self.seen else {
            return Vec::new();
        };
        let node = &leader.node;
        let known = self.dead.as_ref().is_some_and(|(_, epoch)| *epoch == node.epoch);
        if known || self.leading() || leader.owner == f.session {
            return Vec::new();
        }
        self.dead = Some((node.id.clone(), node.epoch));
        vec![
            Effect::Warning(format!(
                "the master {} refuses connections (seen by a majority of the members): its process is gone; \
                 removing its leadership (epoch {})",
                node.id, node.epoch
            )),
            Effect::RemoveLeader { epoch: node.epoch },
        ]
    }

    /// This server's main thread stalled (`true`) or runs again. A stalled
    /// master is fenced at once, so that writes are refused the moment its
    /// main thread runs, and gives its leadership up; a stalled member
    /// does not stand for election.
    pub fn stall(&mut self, stalled: bool, stalled_for: Duration) -> Effects {
        self.stalled = stalled;
        let (true, Part::Leading(_), Seen::Held(leader)) = (stalled, &self.part, &self.seen) else {
            return Vec::new();
        };
        let epoch = leader.node.epoch;
        self.part = Part::Following { demoted: true };
        let mut out = vec![Effect::Lease(LeaseChange::Revoke)];
        out.extend(self.failsafe.give_up());
        out.extend([
            Effect::Warning(format!(
                "the main thread has not run for {} ms (zksync.stall-timeout): writes are fenced and the \
                 leadership is given up (epoch {epoch})",
                stalled_for.as_millis()
            )),
            Effect::RemoveLeader { epoch },
        ]);
        out
    }

    /// Leaving the group: a leader gives its znode up at once.
    pub fn resign(&mut self) -> Effects {
        if !self.leading() {
            return Vec::new();
        }
        let mut out = vec![Effect::DeleteLeader, Effect::Lease(LeaseChange::Revoke)];
        out.extend(self.failsafe.give_up());
        if let Some(Owner::Asked { .. }) = self.owner {
            out.push(Effect::Answer(Err(Error::ZkDown("the request was abandoned".into()))));
        }
        *self = Election::default();
        out
    }

    /// redis-server began (`true`) or aborted a shutdown.
    pub fn shutting_down(&mut self, started: bool, f: &Facts) -> Effects {
        self.shutting_down = started;
        if !started {
            if let Part::Leading(lead) = &mut self.part {
                lead.renewed = None;
            }
            return Vec::new();
        }
        self.hand_over(f)
    }

    pub(super) fn answer(&mut self, result: Result<(), Error>, now: Instant) -> Effects {
        match self.owner {
            Some(Owner::Asked { .. }) => {
                self.owner = None;
                self.hold_follow_until = Some(now + REPLY_GRACE);
                vec![Effect::Answer(result)]
            }
            _ => Vec::new(),
        }
    }
}

fn warn_once(vacancy: &mut Vacancy, message: &str) -> Effects {
    if std::mem::replace(&mut vacancy.warned, true) {
        return Vec::new();
    }
    vec![Effect::Warning(message.into())]
}

/// Whether `leader` is a leader znode left by this member's previous run
/// (killed and restarted before its session expired): that process is gone,
/// so is its lease; the znode is to go now rather than a session timeout later.
pub fn left_by_previous_run(leader: &Leader, me: Option<&str>, session: i64) -> bool {
    Some(leader.node.id.as_str()) == me && leader.owner != session
}

/// `<group> <old-ip> <old-port> <new-ip> <new-port>`, as Sentinel says it.
fn switch_message(group: &str, node: &LeaderNode) -> Option<String> {
    let (old_host, old_port) = super::split_addr(node.previous.as_deref()?)?;
    let (new_host, new_port) = super::split_addr(&node.addr)?;
    Some(format!("{group} {old_host} {old_port} {new_host} {new_port}"))
}

#[path = "election_failsafe.rs"]
mod failsafe_part;
use failsafe_part::Failsafe;
pub use failsafe_part::Report;

#[cfg(test)]
#[path = "election_tests.rs"]
mod tests;
