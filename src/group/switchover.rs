//! A coordinated switchover (ZKSYNC.FAILOVER, or a master shutting down):
//! one znode that the master, the target and the member that started it
//! move through its stages, each step written by the member that made it.
//!
//! ```text
//! Requested ──master paused──▶ Paused ──target caught up, took over──▶ Moved ──target is master──▶ Done
//!     │ FORCE: the target takes over at once ─────────────────────────▶ Moved
//!     └── deadline passed before Moved: the starter deletes it (rolled back)
//! ```

use super::election::{Action, Effect, Effects, Election, Facts, LeaseChange, Owner, Part, Takeover};
use super::leader::Reason;
use super::load::Role;
use super::rank::{best_target, can_lead};
use crate::error::Error;
use crate::lease;
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
        let to_pause = sw.from.as_deref() == Some(me) && !sw.force && sw.stage == Stage::Requested;
        if let (true, Part::Leading(lead)) = (to_pause, &mut self.part) {
            if !lead.paused {
                // The lease ends with the pause: once it is over, this master
                // writes again only after ZooKeeper confirms it still leads.
                lead.paused = true;
                out.push(Effect::Lease(LeaseChange::Cap(
                    f.now + Duration::from_millis(sw.timeout_ms),
                )));
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
        let (Some(me), Some(sample), Some(sw)) = (f.me, f.sample, &self.switchover) else {
            return Vec::new();
        };
        if sw.value.to != me {
            return Vec::new();
        }
        let leading = self.leading();
        let takeover = |reason, promote_after| {
            Effect::Take(Takeover {
                reason,
                previous: self.leader().cloned(),
                switchover: Some(sw.clone()),
                promote_after,
            })
        };
        match sw.value.stage {
            Stage::Moved if leading && sample.figures.role == Role::Master => {
                vec![Effect::WriteSwitchover(Versioned {
                    value: sw.value.at(Stage::Done),
                    version: sw.version,
                })]
            }
            Stage::Requested if sw.value.force => {
                // A live old master may write until its lease runs out.
                let live = sw.value.from.is_some() && self.leader().is_some();
                let promote_after = live.then(|| lease::expiry(f.now, f.session_timeout));
                vec![takeover(Reason::Forced, promote_after)]
            }
            Stage::Paused if !leading && sample.figures.repl_offset >= sw.value.master_offset => {
                let reason = if sw.value.shutdown {
                    Reason::Shutdown
                } else {
                    Reason::Switchover
                };
                vec![takeover(reason, None)]
            }
            _ => Vec::new(),
        }
    }

    /// The switchover's share of the 20 ms tick: the target polls its
    /// offset; the member that asked rolls back at the deadline.
    pub(super) fn switchover_tick(&mut self, f: &Facts) -> Effects {
        let Some(me) = f.me else { return Vec::new() };
        let mut out = Vec::new();
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
            Part::Leading(lead) if lead.paused => {
                lead.paused = false;
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
        vec![
            Effect::Lease(LeaseChange::Revoke),
            Effect::HandOver(Switchover {
                from: f.me.map(str::to_string),
                to,
                force: false,
                timeout_ms: SHUTDOWN_TIMEOUT_MS,
                stage: Stage::Paused,
                master_offset: sample.figures.repl_offset,
                shutdown: true,
            }),
        ]
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
