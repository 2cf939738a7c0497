//! The session side of failover: who leads the group, as ZooKeeper says.
//!
//! Every member reads the leader znode (and watches it with the rest of the
//! group directory) and makes its Redis match it: the owner of the znode is
//! master, everyone else a replica of it (`reconcile`, also reverting an
//! operator's REPLICAOF). When the znode is gone, the best eligible member
//! takes it (`elect`); the master keeps a lease on it (`renew_lease`, see
//! `group::fence`). A switchover (ZKSYNC.FAILOVER) is a znode that the
//! master, the target and the asking member move through its stages.

use super::Session;
use crate::config::FailoverMode;
use crate::error::Error;
use crate::ffi::blocked::Pending;
use crate::ffi::log;
use crate::group::fence;
use crate::group::leader::{self, Change, LeaderNode, Stage, Switchover};
use crate::group::load::{Role, Sample};
use crate::group::role::{self, Action};
use crate::group::split_addr;
use crate::reply::Reply;
use crate::status::STATUS;
use std::time::{Duration, Instant};
use zookeeper_client::{Client, CreateMode, Error as ZkError};

/// After the leader vanished, every member publishes its offset afresh; the
/// best one takes over once all have (or at the latest after this).
const SETTLE: Duration = Duration::from_millis(250);
/// The same role action is not asked again sooner than this.
const REPEAT: Duration = Duration::from_secs(1);
/// A member that answered the ZKSYNC.FAILOVER it was asked lets the reply
/// leave before it re-points (which unblocks and disconnects clients).
const REPLY_GRACE: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
struct Leader {
    node: LeaderNode,
    /// The session that owns the ephemeral znode.
    owner: i64,
    version: i32,
}

/// A ZKSYNC.FAILOVER this member asked for.
struct Asked {
    pending: Pending,
    deadline: Instant,
    /// Extended once when the leadership moved just as the deadline passed.
    extended: bool,
}

#[derive(Default)]
pub(super) struct Election {
    /// The leader znode as last read; `known` once read on this session.
    leader: Option<Leader>,
    known: bool,
    /// The highest epoch seen (0: the group never had a master).
    epoch: u64,
    /// Since when the group has had no leader, as seen here.
    vacant_since: Option<Instant>,
    /// This vacancy's fresh sample was asked for.
    fresh_asked: bool,
    /// Each member's znode zxid when the vacancy began: a member has
    /// published afresh once its znode moved past it (or went away).
    vacancy_marks: Vec<(String, i64)>,
    /// This vacancy was logged as one no member may fill.
    warned_vacant: bool,
    /// The last leader's last published replication offset.
    master_offset: i64,
    /// This session owns the leader znode.
    leading: bool,
    /// This process led the group since it last followed: following now is
    /// a demotion (its clients are disconnected).
    led: bool,
    last_renew: Option<Instant>,
    /// The last role action asked for, and when.
    requested: Option<(Action, Instant)>,
    /// The epoch for which this server's role was last seen right.
    in_place_at: Option<u64>,
    /// The switchover znode as last read, with its version.
    switchover: Option<(Switchover, i32)>,
    /// This master paused its writes for a switchover.
    paused: bool,
    asked: Option<Asked>,
    /// The epoch last announced on `+switch-master`.
    announced: u64,
    /// Do not follow the new master before this (see `REPLY_GRACE`).
    hold_follow_until: Option<Instant>,
    /// A forced switchover from a live master promotes only once that
    /// master's lease has run out.
    promote_after: Option<Instant>,
    /// redis-server is shutting down; a leader hands its leadership over
    /// (`handing_over`: the switchover znode is its own to remove).
    shutting_down: bool,
    handing_over: bool,
}

impl Session {
    fn group_name(&self) -> Option<String> {
        self.settings.group.as_ref().map(|g| g.name.clone())
    }

    pub(super) fn election_epoch(&self) -> u64 {
        self.election.epoch
    }

    /// This member's id, once the main thread told us our port.
    fn own_id(&self) -> Option<String> {
        self.own_path().map(|(_, id)| id)
    }

    /// A new session owns no leadership; what it knew must be read again.
    pub(super) fn election_new_session(&mut self) {
        let election = &mut self.election;
        election.leading = false;
        election.known = false;
        election.switchover = None;
        election.requested = None;
        election.handing_over = false;
        fence::revoke();
        if let Some(asked) = election.asked.take() {
            asked.pending.resolve(Reply::Error(Error::Failover(
                "the ZooKeeper session was lost before the switchover finished; see ZKSYNC.LEADER".into(),
            )));
        }
        if std::mem::take(&mut election.paused) {
            role::request(Action::Unpause);
        }
    }

    /// Creates the group's persistent znodes (epoch counter, history).
    pub(super) async fn prepare_group(&self, client: &Client, group: &str) {
        let options = CreateMode::Persistent.with_acls(self.acls());
        if let Err(e) = client.mkdir(&leader::history_dir(group), &options).await {
            log::warning(&format!("cannot create {}: {e}", leader::history_dir(group)));
        }
        match client.create(&leader::epoch_path(group), b"0", &options).await {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(e) => log::warning(&format!("cannot create {}: {e}", leader::epoch_path(group))),
        }
    }

    /// Reads the leader znode and acts on what changed.
    pub(super) async fn read_leader(&mut self, client: &Client) {
        let Some(group) = self.group_name() else { return };
        let leader = match client.get_data(&leader::leader_path(&group)).await {
            Ok((data, stat)) => match leader::decode::<LeaderNode>(&data) {
                Ok(node) => Some(Leader {
                    node,
                    owner: stat.ephemeral_owner,
                    version: stat.version,
                }),
                Err(e) => {
                    log::warning(&format!("malformed leader znode of group {group}: {e}"));
                    None
                }
            },
            Err(ZkError::NoNode) => None,
            Err(e) => return log::warning(&format!("cannot read the leader of group {group}: {e}")),
        };
        let leader = match leader {
            // Left by this server's previous run (killed and restarted
            // before its session expired): that process is gone, so is its
            // lease. Give the leadership up now rather than a session timeout later.
            Some(l) if Some(&l.node.id) == self.own_id().as_ref() && l.owner != client.session_id().0 => {
                log::notice(&format!(
                    "removing the leadership of group {group} left by this server's previous run (epoch {})",
                    l.node.epoch
                ));
                match client.delete(&leader::leader_path(&group), Some(l.version)).await {
                    Ok(()) | Err(ZkError::NoNode) => None,
                    Err(e) => {
                        log::warning(&format!("cannot remove the stale leadership: {e}"));
                        Some(l)
                    }
                }
            }
            other => other,
        };
        if let Ok((data, _)) = client.get_data(&leader::epoch_path(&group)).await {
            let epoch = String::from_utf8_lossy(&data).trim().parse().unwrap_or(0);
            self.election.epoch = self.election.epoch.max(epoch);
        }
        self.take_leader(client, leader);
    }

    fn take_leader(&mut self, client: &Client, leader: Option<Leader>) {
        let session = client.session_id().0;
        let election = &mut self.election;
        election.known = true;
        match &leader {
            Some(l) => {
                election.epoch = election.epoch.max(l.node.epoch);
                election.vacant_since = None;
                let was_leading = election.leading;
                election.leading = l.owner == session;
                election.led |= election.leading;
                if was_leading && !election.leading && election.shutting_down {
                    role::request(Action::Disconnect);
                }
                if l.node.epoch > election.announced {
                    if election.announced > 0 {
                        if let Some(message) = switch_message(&self.settings, &l.node) {
                            role::request(Action::Announce(message));
                        }
                    }
                    election.announced = l.node.epoch;
                    log::notice(&format!("group master is {} (epoch {})", l.node.id, l.node.epoch));
                }
            }
            None => {
                if election.vacant_since.is_none() {
                    election.vacant_since = Some(Instant::now());
                    election.vacancy_marks = self
                        .membership
                        .members()
                        .iter()
                        .map(|m| (m.id.clone(), m.mzxid))
                        .collect();
                    election.fresh_asked = false;
                    election.warned_vacant = false;
                    if election.leader.is_some() {
                        log::warning("the group's master is gone");
                    }
                }
                election.leading = false;
            }
        }
        if !election.leading {
            fence::revoke();
        }
        election.leader = leader;
        STATUS.set_leader(
            self.election
                .leader
                .as_ref()
                .map(|l| (l.node.id.clone(), l.node.addr.clone(), l.node.epoch)),
            self.election.epoch,
        );
        self.reconcile();
    }

    /// Makes this Redis match the leader znode: its owner is master, every
    /// other member its replica. Called on every change and every sample.
    pub(super) fn reconcile(&mut self) {
        let (Some(id), Some((sample, _))) = (self.own_id(), self.membership.sample()) else {
            return;
        };
        let Some(leader) = &self.election.leader else { return };
        let following = sample.figures.role == Role::Replica && sample.master.as_deref() == Some(&leader.node.addr);
        let in_place = if self.election.leading {
            sample.figures.role == Role::Master
        } else {
            leader.node.id == id || following
        };
        if in_place {
            self.election.in_place_at = Some(leader.node.epoch);
            if following {
                self.election.led = false;
            }
        } else if self.election.in_place_at == Some(leader.node.epoch) {
            // Right for this epoch before, wrong now: not the group's doing.
            log::warning("replication was changed outside the group (an operator's REPLICAOF?); the group decides: setting it back");
            self.election.in_place_at = None;
        }
        let want = if self.election.leading {
            let wait = self.election.promote_after.is_some_and(|t| Instant::now() < t);
            (sample.figures.role != Role::Master && !wait).then_some(Action::Promote)
        } else if leader.node.id == id {
            // Our own previous run's znode: `read_leader` removes it.
            None
        } else {
            // Re-pointing force-unblocks clients: a member waiting to answer
            // the ZKSYNC.FAILOVER it was asked re-points after the reply.
            let held = self.election.asked.is_some()
                || self.election.shutting_down
                || self.election.hold_follow_until.is_some_and(|t| Instant::now() < t);
            (!following && !held).then(|| Action::Follow {
                addr: leader.node.addr.clone(),
                demote: self.election.led,
            })
        };
        if let Some(action) = want {
            let repeated = self
                .election
                .requested
                .as_ref()
                .is_some_and(|(a, at)| *a == action && at.elapsed() < REPEAT);
            if !repeated {
                self.election.requested = Some((action.clone(), Instant::now()));
                role::request(action);
            }
        }
    }

    /// Keeps the master's lease: a check of the leader znode every sixth of
    /// the session timeout.
    pub(super) async fn renew_lease(&mut self, client: &Client) {
        if !self.election.leading || self.election.paused || self.election.handing_over {
            return;
        }
        let timeout = client.session_timeout();
        if self.election.last_renew.is_some_and(|at| at.elapsed() < timeout / 6) {
            return;
        }
        let Some(group) = self.group_name() else { return };
        let sent = Instant::now();
        self.election.last_renew = Some(sent);
        match client.check_stat(&leader::leader_path(&group)).await {
            Ok(Some(stat)) if stat.ephemeral_owner == client.session_id().0 => fence::renew(sent, timeout),
            Ok(_) => {
                log::warning("this server no longer holds the group's leadership");
                self.read_leader(client).await;
            }
            // No answer: the lease lapses on its own.
            Err(_) => {}
        }
    }

    /// One step of an election while the group has no leader.
    pub(super) async fn elect(&mut self, client: &Client) {
        if !self.election.known || self.election.leader.is_some() {
            return;
        }
        let Some(vacant_since) = self.election.vacant_since else {
            return;
        };
        let Some(id) = self.own_id() else { return };
        let manual = *crate::config::FAILOVER.lock().unwrap_or_else(|e| e.into_inner()) == FailoverMode::manual;
        if self.election.epoch > 0 && manual {
            if !self.election.warned_vacant {
                log::warning(
                    "the group has no master and zksync.failover is manual: ZKSYNC.FAILOVER FORCE promotes one",
                );
                self.election.warned_vacant = true;
            }
            return;
        }
        let election = &self.election;
        if !election.fresh_asked {
            // Everyone publishes the offset it has now, then the best one leads.
            self.election.fresh_asked = true;
            role::request(Action::Sample);
            return;
        }
        let waited = vacant_since.elapsed();
        let members = self.membership.members();
        let all_fresh = self
            .election
            .vacancy_marks
            .iter()
            .all(|(id, mark)| members.iter().find(|m| m.id == *id).is_none_or(|m| m.mzxid > *mark));
        if !all_fresh && waited < SETTLE {
            return;
        }
        let max_lag = crate::config::FAILOVER_MAX_LAG.load(std::sync::atomic::Ordering::Relaxed);
        let ranked = leader::rank(members, self.election.master_offset, max_lag);
        let me = ranked.iter().position(|m| m.id == id);
        // The best one leads; should it not within two session timeouts, anyone eligible may.
        let patience = SETTLE + client.session_timeout() * 2;
        match me {
            Some(0) => {}
            Some(_) if waited > patience => {}
            _ => {
                if ranked.is_empty() && !self.election.warned_vacant && waited > patience {
                    log::warning("the group has no master and no member is eligible to become one");
                    self.election.warned_vacant = true;
                }
                return;
            }
        }
        let reason = if self.election.epoch == 0 {
            "bootstrap"
        } else {
            "election"
        };
        self.take_leadership(client, reason, None).await;
    }

    /// Takes the leadership in one transaction: the epoch bumped (version
    /// checked), the leader znode created, the history entry written; for a
    /// switchover also the old leader znode deleted and the switchover
    /// znode moved on (version checked, so a rollback cannot cross it).
    async fn take_leadership(&mut self, client: &Client, reason: &str, switchover: Option<(Switchover, i32)>) -> bool {
        let (Some(group), Some(id)) = (self.group_name(), self.own_id()) else {
            return false;
        };
        let sent = Instant::now();
        let (data, stat) = match client.get_data(&leader::epoch_path(&group)).await {
            Ok(read) => read,
            Err(e) => {
                log::warning(&format!("cannot read the epoch of group {group}: {e}"));
                return false;
            }
        };
        let epoch = String::from_utf8_lossy(&data).trim().parse::<u64>().unwrap_or(0) + 1;
        let old = self.election.leader.clone();
        let previous = old.as_ref().map(|l| l.node.addr.clone());
        let node = LeaderNode {
            id: id.clone(),
            addr: id.clone(),
            epoch,
            previous: previous.clone(),
        };
        let change = Change {
            epoch,
            from: previous,
            to: id.clone(),
            reason: reason.to_string(),
        };
        let ephemeral = CreateMode::Ephemeral.with_acls(self.acls());
        let persistent = CreateMode::Persistent.with_acls(self.acls());
        let mut multi = client.new_multi_writer();
        let mut built = Ok(());
        // The switchover as this transaction leaves it.
        let moved = switchover.map(|(mut sw, version)| {
            sw.stage = Stage::Moved;
            (sw, version)
        });
        if let Some((sw, version)) = &moved {
            built =
                built.and(multi.add_set_data(&leader::switchover_path(&group), &leader::encode(sw), Some(*version)));
            if let Some(old) = &old {
                built = built.and(multi.add_delete(&leader::leader_path(&group), Some(old.version)));
            }
        }
        let built = built
            .and(multi.add_set_data(
                &leader::epoch_path(&group),
                epoch.to_string().as_bytes(),
                Some(stat.version),
            ))
            .and(multi.add_create(&leader::leader_path(&group), &leader::encode(&node), &ephemeral))
            .and(multi.add_create(
                &leader::history_path(&group, epoch),
                &leader::encode(&change),
                &persistent,
            ));
        if let Err(e) = built {
            log::warning(&format!("cannot build the leadership transaction: {e}"));
            return false;
        }
        match multi.commit().await {
            Ok(_) => {
                if let Some((sw, version)) = moved {
                    self.election.switchover = Some((sw, version + 1));
                }
                fence::renew(sent, client.session_timeout());
                self.election.last_renew = Some(sent);
                log::notice(&format!(
                    "took the leadership of group {group} (epoch {epoch}, {reason})"
                ));
                let leader = Leader {
                    node,
                    owner: client.session_id().0,
                    version: 0,
                };
                self.take_leader(client, Some(leader));
                if epoch > leader::HISTORY {
                    let _ = client
                        .delete(&leader::history_path(&group, epoch - leader::HISTORY), None)
                        .await;
                }
                true
            }
            Err(e) => {
                log::notice(&format!("did not take the leadership of group {group}: {e}"));
                self.read_leader(client).await;
                false
            }
        }
    }

    /// What was decided on the Redis side came back with a fresh sample.
    pub(super) async fn acted(&mut self, client: &Client, action: Action, sample: Sample) {
        self.membership.take_sample(sample.clone());
        if self.election.vacant_since.is_some() && action == Action::Sample {
            self.membership.force_publish();
        }
        self.publish(client).await;
        match action {
            Action::Pause(_) => self.paused(client, &sample).await,
            Action::Promote | Action::Sample => self.switchover_progress(client, &sample).await,
            _ => {}
        }
        self.reconcile();
        self.elect(client).await;
    }

    /// Reads the switchover znode and plays this member's part in it.
    pub(super) async fn read_switchover(&mut self, client: &Client) {
        let Some(group) = self.group_name() else { return };
        let read = match client.get_data(&leader::switchover_path(&group)).await {
            Ok((data, stat)) => match leader::decode::<Switchover>(&data) {
                Ok(sw) => Some((sw, stat.version)),
                Err(e) => {
                    log::warning(&format!("malformed switchover znode of group {group}: {e}"));
                    None
                }
            },
            Err(ZkError::NoNode) => None,
            Err(e) => return log::warning(&format!("cannot read the switchover of group {group}: {e}")),
        };
        self.election.switchover = read.clone();
        let Some(id) = self.own_id() else { return };
        let Some((sw, _)) = read else {
            // Rolled back (or finished): a master still leading resumes writes.
            self.resume_writes(client).await;
            return self.answer_asked(Reply::Error(Error::Failover(
                "the switchover was abandoned; nothing changed".into(),
            )));
        };
        if sw.stage == Stage::Done && (self.election.asked.is_some() || self.election.handing_over) {
            self.election.handing_over = false;
            self.answer_asked(Reply::text("OK"));
            let _ = client.delete(&leader::switchover_path(&group), None).await;
            return;
        }
        let master_to_pause = sw.from.as_deref() == Some(id.as_str()) && !sw.force && sw.stage == Stage::Requested;
        if master_to_pause && self.election.leading && !self.election.paused {
            // The lease ends with the pause: once the pause is over, this
            // master writes again only after ZooKeeper confirms it still leads.
            self.election.paused = true;
            fence::cap(Instant::now() + Duration::from_millis(sw.timeout_ms));
            role::request(Action::Pause(sw.timeout_ms));
        }
        if sw.to == id {
            role::request(Action::Sample);
        }
    }

    /// The master paused its writes: the switchover records the offset to reach.
    async fn paused(&mut self, client: &Client, sample: &Sample) {
        let (Some(group), Some((mut sw, version))) = (self.group_name(), self.election.switchover.clone()) else {
            return;
        };
        if sw.stage != Stage::Requested {
            return;
        }
        sw.stage = Stage::Paused;
        sw.master_offset = sample.figures.repl_offset;
        if let Err(e) = client
            .set_data(&leader::switchover_path(&group), &leader::encode(&sw), Some(version))
            .await
        {
            log::warning(&format!("cannot record the paused offset: {e}"));
        }
    }

    /// The target's part: once caught up (or forced), take the leadership;
    /// once master, say so.
    async fn switchover_progress(&mut self, client: &Client, sample: &Sample) {
        let (Some(group), Some(id), Some((sw, version))) =
            (self.group_name(), self.own_id(), self.election.switchover.clone())
        else {
            return;
        };
        if sw.to != id {
            return;
        }
        match sw.stage {
            Stage::Moved if self.election.leading && sample.figures.role == Role::Master => {
                let mut done = sw.clone();
                done.stage = Stage::Done;
                if let Err(e) = client
                    .set_data(&leader::switchover_path(&group), &leader::encode(&done), Some(version))
                    .await
                {
                    log::warning(&format!("cannot record the finished switchover: {e}"));
                }
            }
            Stage::Requested if sw.force => {
                // A live old master may write until its lease runs out: 2/3 of
                // the session timeout after it last heard from ZooKeeper.
                if sw.from.is_some() && self.election.leader.is_some() {
                    self.election.promote_after = Some(Instant::now() + client.session_timeout() * 2 / 3);
                }
                if !self.take_leadership(client, "forced", Some((sw, version))).await {
                    self.election.promote_after = None;
                }
            }
            Stage::Paused if !self.election.leading && sample.figures.repl_offset >= sw.master_offset => {
                let reason = if sw.shutdown { "shutdown" } else { "switchover" };
                self.take_leadership(client, reason, Some((sw, version))).await;
            }
            _ => {}
        }
    }

    /// The 20 ms tick of a switchover: the target polls its offset; the
    /// asking member rolls back at the deadline.
    pub(super) async fn switchover_tick(&mut self, client: &Client) {
        let Some(id) = self.own_id() else { return };
        if let Some((sw, _)) = &self.election.switchover {
            let waiting = sw.to == id && (sw.stage == Stage::Paused || (sw.force && sw.stage == Stage::Requested));
            if waiting || (sw.to == id && sw.stage == Stage::Moved) {
                role::request(Action::Sample);
            }
        }
        let Some(asked) = &self.election.asked else { return };
        if Instant::now() < asked.deadline {
            return;
        }
        let Some(group) = self.group_name() else { return };
        let version = self.election.switchover.as_ref().map(|(_, v)| *v);
        let moved = self
            .election
            .switchover
            .as_ref()
            .is_some_and(|(sw, _)| matches!(sw.stage, Stage::Moved | Stage::Done));
        if !moved {
            match client.delete(&leader::switchover_path(&group), version).await {
                Ok(()) | Err(ZkError::NoNode) => {
                    self.election.switchover = None;
                    self.resume_writes(client).await;
                    return self.answer_asked(Reply::Error(Error::Failover(
                        "the target did not catch up in time; nothing changed".into(),
                    )));
                }
                // It moved just now: give the new master time to say so.
                Err(ZkError::BadVersion) => self.read_switchover(client).await,
                Err(e) => log::warning(&format!("cannot roll the switchover back: {e}")),
            }
        }
        if let Some(asked) = &mut self.election.asked {
            if asked.extended {
                self.answer_asked(Reply::Error(Error::Failover(
                    "the leadership moved but the new master did not confirm in time".into(),
                )));
            } else {
                asked.extended = true;
                asked.deadline = Instant::now() + client.session_timeout();
            }
        }
    }

    /// A rolled-back switchover: a master still leading renews its lease
    /// (it ended with the pause) and unpauses.
    async fn resume_writes(&mut self, client: &Client) {
        if self.election.paused && self.election.leading {
            self.election.paused = false;
            self.election.last_renew = None;
            self.renew_lease(client).await;
            role::request(Action::Unpause);
        }
    }

    fn answer_asked(&mut self, reply: Reply) {
        if let Some(asked) = self.election.asked.take() {
            asked.pending.resolve(reply);
            self.election.hold_follow_until = Some(Instant::now() + REPLY_GRACE);
        }
    }

    /// ZKSYNC.FAILOVER on this member: checks, then the switchover znode.
    pub(super) async fn failover(
        &mut self,
        client: &Client,
        to: Option<String>,
        timeout: Duration,
        force: bool,
        pending: Pending,
    ) {
        match self.start_failover(client, to, timeout, force).await {
            Ok(()) => {
                self.election.asked = Some(Asked {
                    pending,
                    deadline: Instant::now() + timeout,
                    extended: false,
                })
            }
            Err(e) => pending.resolve(Reply::Error(e)),
        }
    }

    async fn start_failover(
        &mut self,
        client: &Client,
        to: Option<String>,
        timeout: Duration,
        force: bool,
    ) -> Result<(), Error> {
        let Some(group) = self.group_name() else {
            return Err(Error::NoGroup);
        };
        if self.election.asked.is_some() || self.election.switchover.is_some() {
            return Err(Error::Failover("a failover is already in progress".into()));
        }
        self.read_leader(client).await;
        let from = self.election.leader.as_ref().map(|l| l.node.id.clone());
        if from.is_none() && !force {
            return Err(Error::Failover(
                "the group has no master: FORCE promotes a replica".into(),
            ));
        }
        let members = self.membership.members();
        let target = match to {
            Some(to) => {
                let member = members
                    .iter()
                    .find(|m| m.id == to)
                    .ok_or_else(|| Error::Failover(format!("{to} is not a member of group {group}")))?;
                if Some(&to) == from.as_ref() {
                    return Err(Error::Failover(format!("{to} is already the master")));
                }
                if !leader::can_lead(member) {
                    return Err(Error::Failover(format!(
                        "{to} cannot be promoted (it must be a fresh replica with replica-priority > 0)"
                    )));
                }
                to
            }
            None => {
                // The best replica, however far behind: the master waits for it.
                let candidates: Vec<_> = members.iter().filter(|m| leader::can_lead(m)).cloned().collect();
                leader::rank(&candidates, 0, i64::MAX)
                    .first()
                    .map(|m| m.id.clone())
                    .ok_or_else(|| Error::Failover("no replica can be promoted".into()))?
            }
        };
        let sw = Switchover {
            from,
            to: target,
            force,
            timeout_ms: timeout.as_millis() as u64,
            stage: Stage::Requested,
            master_offset: 0,
            shutdown: false,
        };
        let options = CreateMode::Ephemeral.with_acls(self.acls());
        match client
            .create(&leader::switchover_path(&group), &leader::encode(&sw), &options)
            .await
        {
            Ok(_) => Ok(()),
            Err(ZkError::NodeExists) => Err(Error::Failover("a failover is already in progress".into())),
            Err(e) => Err(Error::from_zk(e, &leader::switchover_path(&group))),
        }
    }

    /// redis-server began (or aborted) its shutdown. A master with replicas
    /// first waits, writes paused, until they have everything (up to a
    /// second or two: a paused master does not ask them to acknowledge);
    /// meanwhile its offset is final, so the best replica takes over as in a
    /// switchover whose pause is Redis's own.
    pub(super) async fn shutting_down(&mut self, client: &Client, started: bool, sample: Sample) {
        self.membership.take_sample(sample.clone());
        self.election.shutting_down = started;
        if !started {
            self.election.last_renew = None;
            return;
        }
        let Some(group) = self.group_name() else { return };
        if !self.election.leading || self.election.switchover.is_some() {
            return;
        }
        let members = self.membership.members();
        let candidates: Vec<_> = members.iter().filter(|m| leader::can_lead(m)).cloned().collect();
        let Some(target) = leader::rank(&candidates, 0, i64::MAX).first().map(|m| m.id.clone()) else {
            return;
        };
        fence::revoke();
        let sw = Switchover {
            from: self.own_id(),
            to: target.clone(),
            force: false,
            timeout_ms: 10_000,
            stage: Stage::Paused,
            master_offset: sample.figures.repl_offset,
            shutdown: true,
        };
        let options = CreateMode::Ephemeral.with_acls(self.acls());
        match client
            .create(&leader::switchover_path(&group), &leader::encode(&sw), &options)
            .await
        {
            Ok(_) => {
                self.election.handing_over = true;
                log::notice(&format!(
                    "shutting down: handing the leadership of group {group} to {target}"
                ));
            }
            Err(e) => log::warning(&format!("shutting down: cannot hand the leadership over: {e}")),
        }
    }

    /// Leaving the group: a leader gives its znode up at once.
    pub(super) async fn resign(&mut self, client: &Client) {
        if !self.election.leading {
            return;
        }
        if let Some(group) = self.group_name() {
            let _ = client.delete(&leader::leader_path(&group), None).await;
        }
        self.election = Election::default();
        fence::revoke();
        STATUS.set_leader(None, 0);
    }

    /// Remembers the master's published offset, for the lag of candidates.
    pub(super) fn note_master_offset(&mut self) {
        let Some(leader) = &self.election.leader else { return };
        if let Some(m) = self.membership.members().iter().find(|m| m.id == leader.node.id) {
            self.election.master_offset = m.node.zksync.repl_offset;
        }
    }
}

/// `<group> <old-ip> <old-port> <new-ip> <new-port>`, as Sentinel says it.
fn switch_message(settings: &crate::config::Settings, node: &LeaderNode) -> Option<String> {
    let group = &settings.group.as_ref()?.name;
    let (old_host, old_port) = split_addr(node.previous.as_deref()?)?;
    let (new_host, new_port) = split_addr(&node.addr)?;
    Some(format!("{group} {old_host} {old_port} {new_host} {new_port}"))
}
