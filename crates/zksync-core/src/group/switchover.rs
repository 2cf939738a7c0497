//! A coordinated switchover (ZKSYNC.FAILOVER, or a master shutting down):
//! one znode that the master, the target and the member that started it
//! move through its stages, each step written by the member that made it.
//!
//! ```text
//! Requested ──master paused──▶ Paused ──target caught up, took over──▶ Moved ──target is master──▶ Done
//!     │ FORCE: the target takes over at once ─────────────────────────▶ Moved
//!     └── deadline passed before Moved: the starter deletes it (rolled back),
//!         or the paused master does once its pause is over
//! ```
//!
//! Each stage is acted on only while the epoch it was planned against is
//! the current one: a switchover never outlives its leadership.

use super::election::{Action, Effect, Effects, Election, Facts, Lead, LeaseChange, Owner, Part, Takeover, REPEAT};
use super::leader::Reason;
use super::load::Role;
use super::rank::{best_target, can_lead};
use crate::error::Error;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How long a master shutting down waits for its replica to take over.
const SHUTDOWN_TIMEOUT_MS: u64 = 10_000;

/// Where a switchover stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Asked for; the master is to pause writes.
    Requested,
    /// The master paused writes at `master_offset`; the target is catching up.
    Paused,
    /// The target took the leadership (in the same transaction as this stage).
    Moved,
    /// The target is master and accepts writes.
    Done,
}

/// `/zksync/<group>/switchover`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switchover {
    /// The master being replaced, if any (FORCE may run without one).
    pub from: Option<String>,
    pub to: String,
    pub force: bool,
    pub timeout_ms: u64,
    pub stage: Stage,
    #[serde(default)]
    pub master_offset: i64,
    /// Started by the master itself as it shuts down.
    #[serde(default)]
    pub shutdown: bool,
    /// The epoch of the leadership it was planned against (with no master,
    /// the last one handed out). Absent from an older version's znode: such
    /// a switchover is not acted on, and its starter rolls it back.
    #[serde(default)]
    pub epoch: Option<u64>,
}

impl Switchover {
    fn at(&self, stage: Stage) -> Switchover {
        Switchover { stage, ..self.clone() }
    }
}

/// A znode's contents with the version they were read at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: i32,
}

/// How deleting the switchover znode at its deadline went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rollback {
    /// Deleted (or already gone): nothing changed.
    Done,
    /// Its version moved: the target may have taken over just now.
    Raced,
    Failed(String),
}

/// A ZKSYNC.FAILOVER as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub to: Option<String>,
    pub timeout: Duration,
    pub force: bool,
}

impl Election {
    /// The switchover znode as read (`None`: there is none); plays this
    /// member's part in it.
    pub fn switchover_read(&mut self, read: Option<Versioned<Switchover>>, f: &Facts) -> Effects {
        self.switchover = read.clone();
        let Some(me) = f.me else { return Vec::new() };
        let Some(Versioned { value: sw, .. }) = read else {
            // Rolled back (or finished): a master still leading resumes writes.
            let mut out = self.resume_writes(f);
            out.extend(self.answer(Err(abandoned()), f.now));
            return out;
        };
        if sw.stage == Stage::Done && self.owner.is_some() {
            let mut out = self.answer(Ok(()), f.now);
            self.owner = None;
            out.push(Effect::DeleteSwitchover);
            return out;
        }
        let mut out = Vec::new();
        let to_pause =
            sw.from.as_deref() == Some(me) && !sw.force && sw.stage == Stage::Requested && self.planned_now(&sw);
        if let (true, Part::Leading(lead)) = (to_pause, &mut self.part) {
            if lead.paused.is_none() {
                // The lease ends with the pause: once it is over, this master
                // writes again only after ZooKeeper confirms it still leads.
                let end = f.now + Duration::from_millis(sw.timeout_ms);
                lead.paused = Some(end);
                out.push(Effect::Lease(LeaseChange::Cap(end)));
                out.extend(self.give_up_failsafe());
                out.push(Effect::Role(Action::Pause(sw.timeout_ms)));
            }
        }
        if sw.to == me {
            out.push(Effect::Role(Action::Sample));
        }
        out
    }

    /// The role thread carried `action` out (`f.sample` is fresh).
    pub fn acted(&mut self, action: &Action, f: &Facts) -> Effects {
        match action {
            Action::Pause(_) => self.record_pause(f),
            Action::Promote | Action::Sample => self.progress(f),
            _ => Vec::new(),
        }
    }

    /// The master paused its writes: the switchover records the offset to reach.
    fn record_pause(&self, f: &Facts) -> Effects {
        match (&self.switchover, f.sample) {
            (Some(sw), Some(sample)) if sw.value.stage == Stage::Requested => {
                let mut paused = sw.value.at(Stage::Paused);
                paused.master_offset = sample.figures.repl_offset;
                vec![Effect::WriteSwitchover(Versioned {
                    value: paused,
                    version: sw.version,
                })]
            }
            _ => Vec::new(),
        }
    }

    /// The target's part: once caught up (or forced), take the leadership;
    /// once master, say so.
    fn progress(&mut self, f: &Facts) -> Effects {
        let barred = f.me.is_some_and(|me| self.failsafe_bars(me, f).is_some());
        let (Some(me), Some(sample), Some(sw)) = (f.me, f.sample, &self.switchover) else {
            return Vec::new();
        };
        if sw.value.to != me {
            return Vec::new();
        }
        let leading = self.leading();
        // Only against the leadership it was planned for: another member
        // elected since never paused, and a FORCE must wait out its lease.
        let current = self.planned_now(&sw.value);
        let takeover = |reason, outwait_lease| {
            Effect::Take(Takeover {
                reason,
                previous: self.leader().cloned(),
                switchover: Some(sw.clone()),
                outwait_lease,
            })
        };
        match sw.value.stage {
            Stage::Moved if leading && sample.figures.role == Role::Master => {
                vec![Effect::WriteSwitchover(Versioned {
                    value: sw.value.at(Stage::Done),
                    version: sw.version,
                })]
            }
            Stage::Requested if sw.value.force && current && !barred => {
                // The master leading now, whoever was planned, may write
                // until its lease runs out.
                vec![takeover(Reason::Forced, self.leader().is_some())]
            }
            Stage::Paused if current && !leading && sample.figures.repl_offset >= sw.value.master_offset => {
                let reason = if sw.value.shutdown {
                    Reason::Shutdown
                } else {
                    Reason::Switchover
                };
                vec![takeover(reason, false)]
            }
            _ => Vec::new(),
        }
    }

    /// Whether `sw` was planned against the leadership seen now: its epoch
    /// is the current leader's, or with none the last one handed out.
    pub(super) fn planned_now(&self, sw: &Switchover) -> bool {
        let leader = self.leader().map(|l| l.node.epoch);
        sw.epoch
            .is_some_and(|planned| planned == self.epoch() && leader.is_none_or(|epoch| epoch == planned))
    }

    /// The switchover's share of the 20 ms tick: the target polls its
    /// offset; the member that asked rolls back at the deadline.
    pub(super) fn switchover_tick(&mut self, f: &Facts) -> Effects {
        let Some(me) = f.me else { return Vec::new() };
        let mut out = self.pause_over(f);
        if let Some(sw) = self.switchover.as_ref().map(|sw| &sw.value) {
            let waiting =
                matches!(sw.stage, Stage::Paused | Stage::Moved) || (sw.force && sw.stage == Stage::Requested);
            if sw.to == me && waiting {
                out.push(Effect::Role(Action::Sample));
            }
        }
        let Some(Owner::Asked { deadline, .. }) = self.owner else {
            return out;
        };
        if f.now < deadline {
            return out;
        }
        let moved = self
            .switchover
            .as_ref()
            .is_some_and(|sw| matches!(sw.value.stage, Stage::Moved | Stage::Done));
        if moved {
            out.extend(self.extend_or_give_up(f));
        } else {
            out.push(Effect::RollBack(self.switchover.as_ref().map(|sw| sw.version)));
        }
        out
    }

    /// A paused master whose pause is over while the leadership has not
    /// moved rolls the switchover back itself (again every second while
    /// that fails): its starter may not know it created it (the create's
    /// answer was lost with the connection), and it would stay fenced.
    fn pause_over(&mut self, f: &Facts) -> Effects {
        let (Part::Leading(Lead { paused: Some(end), .. }), Some(sw), None) =
            (&mut self.part, &self.switchover, &self.owner)
        else {
            return Vec::new();
        };
        if f.now < *end || !matches!(sw.value.stage, Stage::Requested | Stage::Paused) {
            return Vec::new();
        }
        *end = f.now + REPEAT;
        vec![Effect::RollBack(Some(sw.version))]
    }

    /// The deadline's rollback went as `rollback` says.
    pub fn rolled_back(&mut self, rollback: Rollback, f: &Facts) -> Effects {
        match rollback {
            Rollback::Done => {
                self.switchover = None;
                let mut out = self.resume_writes(f);
                out.extend(self.answer(
                    Err(Error::Failover(
                        "the target did not catch up in time; nothing changed".into(),
                    )),
                    f.now,
                ));
                out
            }
            Rollback::Raced => {
                // It moved just now: give the new master time to say so.
                let mut out = self.extend_or_give_up(f);
                out.push(Effect::ReadSwitchover);
                out
            }
            Rollback::Failed(why) => {
                let mut out = vec![Effect::Warning(format!("cannot roll the switchover back: {why}"))];
                out.extend(self.extend_or_give_up(f));
                out
            }
        }
    }

    /// The leadership moved as the deadline passed: wait a session timeout
    /// more for the new master to confirm, once.
    fn extend_or_give_up(&mut self, f: &Facts) -> Effects {
        match &mut self.owner {
            Some(Owner::Asked { extended: true, .. }) => self.answer(
                Err(Error::Failover(
                    "the leadership moved but the new master did not confirm in time".into(),
                )),
                f.now,
            ),
            Some(Owner::Asked { deadline, extended }) => {
                *extended = true;
                *deadline = f.now + f.session_timeout;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// A rolled-back switchover: a master still leading renews its lease
    /// (it ended with the pause) and unpauses.
    fn resume_writes(&mut self, f: &Facts) -> Effects {
        match &mut self.part {
            Part::Leading(lead) if lead.paused.is_some() => {
                lead.paused = None;
                lead.renewed = None;
                let mut out = self.renew(f);
                out.push(Effect::Role(Action::Unpause));
                out
            }
            _ => Vec::new(),
        }
    }

    /// ZKSYNC.FAILOVER on this member: the switchover znode to create, or
    /// why not (the leader read just before).
    pub fn plan(&self, request: &Request, f: &Facts) -> Result<Switchover, Error> {
        if self.owner.is_some() || self.switchover.is_some() {
            return Err(Error::Failover("a failover is already in progress".into()));
        }
        let from = self.leader().map(|l| l.node.id.clone());
        if from.is_none() && !request.force {
            return Err(Error::Failover(
                "the group has no master: FORCE promotes a replica".into(),
            ));
        }
        let to = match &request.to {
            Some(to) => {
                let member = f
                    .members
                    .iter()
                    .find(|m| m.id == *to)
                    .ok_or_else(|| Error::Failover(format!("{to} is not a member of group {}", f.group)))?;
                if Some(to) == from.as_ref() {
                    return Err(Error::Failover(format!("{to} is already the master")));
                }
                if !can_lead(member) {
                    return Err(Error::Failover(format!(
                        "{to} cannot be promoted (it must be a fresh replica with replica-priority > 0)"
                    )));
                }
                to.clone()
            }
            None => best_target(f.members).ok_or_else(|| Error::Failover("no replica can be promoted".into()))?,
        };
        Ok(Switchover {
            from,
            to,
            force: request.force,
            timeout_ms: request.timeout.as_millis() as u64,
            stage: Stage::Requested,
            master_offset: 0,
            shutdown: false,
            epoch: Some(self.leader().map_or(self.epoch(), |l| l.node.epoch)),
        })
    }

    /// The switchover znode this member planned was created: it is to be answered by `deadline`.
    pub fn asked(&mut self, deadline: Instant) {
        self.owner = Some(Owner::Asked {
            deadline,
            extended: false,
        });
    }

    /// A master with replicas that shuts down first waits, writes paused,
    /// until they have everything; meanwhile its offset is final, so the
    /// best replica takes over as in a switchover whose pause is Redis's own.
    pub(super) fn hand_over(&mut self, f: &Facts) -> Effects {
        let (true, None, Some(sample)) = (self.leading(), &self.switchover, f.sample) else {
            return Vec::new();
        };
        let Some(to) = best_target(f.members) else {
            return Vec::new();
        };
        let mut out: Effects = self.give_up_failsafe().into_iter().collect();
        out.extend([
            Effect::Lease(LeaseChange::Revoke),
            Effect::HandOver(Switchover {
                from: f.me.map(str::to_string),
                to,
                force: false,
                timeout_ms: SHUTDOWN_TIMEOUT_MS,
                stage: Stage::Paused,
                master_offset: sample.figures.repl_offset,
                shutdown: true,
                epoch: self.leader().map(|l| l.node.epoch),
            }),
        ]);
        out
    }

    /// The hand-over's switchover znode was created (or not).
    pub fn handed_over(&mut self, sw: &Switchover, created: Result<(), String>, f: &Facts) -> Effects {
        match created {
            Ok(()) => {
                self.owner = Some(Owner::HandingOver);
                vec![Effect::Notice(format!(
                    "shutting down: handing the leadership of group {} to {}",
                    f.group, sw.to
                ))]
            }
            Err(e) => vec![Effect::Warning(format!(
                "shutting down: cannot hand the leadership over: {e}"
            ))],
        }
    }
}

fn abandoned() -> Error {
    Error::Failover("the switchover was abandoned; nothing changed".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::leader::{decode, encode};

    #[test]
    fn the_epoch_planned_against_is_recorded_and_absent_from_older_znodes() {
        let old = br#"{"from":"a:1","to":"b:1","force":false,"timeout_ms":5000,"stage":"paused","master_offset":9}"#;
        // (znode, the epoch read)
        let cases: [(&[u8], Option<u64>); 2] = [
            (old, None),
            (
                br#"{"from":null,"to":"b:1","force":true,"timeout_ms":200,"stage":"requested","epoch":4}"#,
                Some(4),
            ),
        ];
        for (data, epoch) in cases {
            let sw = decode::<Switchover>(data).map(|sw| sw.epoch);
            assert_eq!(sw, Ok(epoch), "{}", String::from_utf8_lossy(data));
        }
        let sw = decode::<Switchover>(old).map(|sw| Switchover { epoch: Some(7), ..sw });
        let sw = sw.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decode::<Switchover>(&encode(&sw)), Ok(sw));
    }
}
