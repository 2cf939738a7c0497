//! The session's side of the election (`group::election`): it reads the
//! leadership znodes, hands what it read to the election with the clock,
//! and carries out the effects the election returns, reporting their
//! outcomes back, until none is left.

use super::failsafe::Basis;
use super::Session;
use crate::ffi::blocked::Pending;
use crate::ffi::log;
use crate::redis::fence;
use crate::redis::role;
use crate::session::zk_error;
use crate::status::STATUS;
use serde::de::DeserializeOwned;
use std::collections::VecDeque;
use std::time::Instant;
use zksync_core::error::Error;
use zksync_core::group::election::{
    left_by_previous_run, Effect, Effects, Election, Facts, Leader, LeaseCheck, Takeover,
};
use zksync_core::group::failsafe::List;
use zksync_core::group::layout::{Layout, HISTORY};
use zksync_core::group::leader::{self, decode_epoch, decode_offset, LeaderNode};
use zksync_core::group::switchover::{Request, Rollback, Switchover, Versioned};
use zksync_core::reply::Reply;
use zookeeper_client::{Client, CreateMode, Error as ZkError, Stat};

impl Session {
    /// Runs one decision of the election with the facts of now.
    pub(super) fn decide<R>(&mut self, client: &Client, decision: impl FnOnce(&mut Election, &Facts) -> R) -> R {
        let me = self.own_id();
        let group = self
            .settings
            .group
            .as_ref()
            .map(|g| g.name.as_str())
            .unwrap_or_default();
        let facts = Facts {
            now: Instant::now(),
            group,
            me: me.as_deref(),
            session: client.session_id().0,
            session_timeout: client.session_timeout(),
            sample: self.publisher.sample(),
            members: &self.members,
            policy: self.settings.policy,
        };
        self.shared.keep_basis(Basis {
            me: me.clone(),
            group: group.to_string(),
            session: facts.session,
            session_timeout: facts.session_timeout,
            policy: facts.policy,
        });
        let out = decision(&mut self.shared.election(), &facts);
        self.shared.report();
        out
    }

    /// Runs a decision, then its effects.
    pub(super) async fn step(&mut self, client: &Client, decision: impl FnOnce(&mut Election, &Facts) -> Effects) {
        let effects = self.decide(client, decision);
        self.execute(client, effects).await;
    }

    /// After every step: Redis in place, and an election if one is due.
    pub(super) async fn settle(&mut self, client: &Client) {
        self.step(client, |e, f| {
            let mut effects = e.reconcile(f);
            effects.extend(e.elect(f));
            effects
        })
        .await;
    }

    /// Carries `effects` out in order; what an outcome leads to runs before the rest.
    pub(super) async fn execute(&mut self, client: &Client, effects: Effects) {
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            let then = self.carry_out(client, effect).await;
            for effect in then.into_iter().rev() {
                queue.push_front(effect);
            }
        }
        let election = self.shared.election();
        STATUS.set_leader(election.leader().map(|l| &l.node), election.epoch());
    }

    async fn carry_out(&mut self, client: &Client, effect: Effect) -> Effects {
        match effect {
            Effect::Role(action) => role::request(action),
            Effect::Lease(change) => fence::change(change, client.session_timeout()),
            Effect::Answer(result) => {
                if let Some(pending) = self.asked.take() {
                    pending.resolve(result.map_or_else(Reply::Error, |()| Reply::text("OK")));
                }
            }
            Effect::Notice(message) => log::notice(&message),
            Effect::Warning(message) => log::warning(&message),
            Effect::ReadLeader => return self.read_leader(client).await,
            Effect::ReadSwitchover => return self.read_switchover(client).await,
            effect @ (Effect::AskGrants { .. } | Effect::FailsafeLease(_)) => self.shared.carry_out(effect),
            zk => {
                if let Some(layout) = self.layout() {
                    return self.write(client, &layout, zk).await;
                }
            }
        }
        Vec::new()
    }

    /// The effects that write the group's znodes.
    async fn write(&mut self, client: &Client, layout: &Layout, effect: Effect) -> Effects {
        match effect {
            Effect::CheckLease { sent } => {
                let check = match client.check_stat(&layout.leader()).await {
                    Ok(Some(stat)) if stat.ephemeral_owner == client.session_id().0 => LeaseCheck::Owned,
                    Ok(_) => LeaseCheck::Lost,
                    Err(_) => LeaseCheck::Unanswered,
                };
                return self.shared.election().lease_checked(sent, check);
            }
            Effect::Take(takeover) => return self.take_leadership(client, layout, takeover).await,
            Effect::WriteSwitchover(sw) => {
                let data = leader::encode(&sw.value);
                if let Err(e) = client.set_data(&layout.switchover(), &data, Some(sw.version)).await {
                    log::warning(&format!("cannot record the switchover at {:?}: {e}", sw.value.stage));
                }
            }
            Effect::RollBack(version) => {
                let rollback = match client.delete(&layout.switchover(), version).await {
                    Ok(()) | Err(ZkError::NoNode) => Rollback::Done,
                    Err(ZkError::BadVersion) => Rollback::Raced,
                    Err(e) => Rollback::Failed(e.to_string()),
                };
                return self.decide(client, |e, f| e.rolled_back(rollback, f));
            }
            Effect::HandOver(sw) => {
                let created = self.create_switchover(client, layout, &sw).await;
                let created = created.map_err(|e| e.to_string());
                return self.decide(client, |e, f| e.handed_over(&sw, created, f));
            }
            Effect::DeleteSwitchover => {
                let _ = client.delete(&layout.switchover(), None).await;
            }
            Effect::DeleteLeader => {
                let _ = client.delete(&layout.leader(), None).await;
            }
            Effect::RemoveLeader { epoch } => self.remove_leader(client, layout, epoch).await,
            Effect::WriteFailsafeList { list, leader_version } => {
                self.write_failsafe_list(client, layout, list, leader_version).await
            }
            Effect::ReleaseFailsafeList { list, version } => {
                self.release_failsafe_list(client, layout, list, version).await
            }
            _ => {}
        }
        Vec::new()
    }

    /// Reads the leadership whole (after joining or a reconnect).
    pub(super) async fn read_leadership(&mut self, client: &Client) {
        let effects = self.read_leader(client).await;
        self.execute(client, effects).await;
        let effects = self.read_switchover(client).await;
        self.execute(client, effects).await;
    }

    /// Reads the leader znode and the epoch counter. A leader znode left by
    /// this server's previous run is removed first.
    pub(super) async fn read_leader(&mut self, client: &Client) -> Effects {
        let Some(layout) = self.layout() else {
            return Vec::new();
        };
        let Ok(read) = read_json::<LeaderNode>(client, &layout.leader()).await else {
            return Vec::new();
        };
        let leader = read.map(|(node, stat)| Leader {
            node,
            owner: stat.ephemeral_owner,
            version: stat.version,
        });
        let leader = match leader {
            Some(l) if left_by_previous_run(&l, self.own_id().as_deref(), client.session_id().0) => {
                self.remove_stale(client, &layout, l).await
            }
            other => other,
        };
        let counter = client
            .get_data(&layout.epoch())
            .await
            .ok()
            .map(|(data, _)| decode_epoch(&data));
        if let Ok((data, _)) = client.get_data(&layout.offset()).await {
            self.shared.election().observe_group_offset(decode_offset(&data));
        }
        self.decide(client, |e, f| e.observe_leader(leader, counter, f))
    }

    /// Removes the leader znode of this server's previous run; `Some` if it stays.
    async fn remove_stale(&self, client: &Client, layout: &Layout, stale: Leader) -> Option<Leader> {
        log::notice(&format!(
            "removing the leadership of {} left by this server's previous run (epoch {})",
            layout.dir(),
            stale.node.epoch
        ));
        match client.delete(&layout.leader(), Some(stale.version)).await {
            Ok(()) | Err(ZkError::NoNode) => None,
            Err(e) => {
                log::warning(&format!("cannot remove the stale leadership: {e}"));
                Some(stale)
            }
        }
    }

    /// Reads the switchover znode; the election plays this member's part.
    pub(super) async fn read_switchover(&mut self, client: &Client) -> Effects {
        let Some(layout) = self.layout() else {
            return Vec::new();
        };
        let Ok(read) = read_json::<Switchover>(client, &layout.switchover()).await else {
            return Vec::new();
        };
        let read = read.map(|(value, stat)| Versioned {
            value,
            version: stat.version,
        });
        self.decide(client, |e, f| e.switchover_read(read, f))
    }

    /// Runs a takeover's transaction; the election learns how it went.
    async fn take_leadership(&mut self, client: &Client, layout: &Layout, takeover: Takeover) -> Effects {
        let Some(me) = self.own_id() else {
            return Vec::new();
        };
        let sent = Instant::now();
        let (data, stat) = match client.get_data(&layout.epoch()).await {
            Ok(read) => read,
            Err(e) => {
                log::warning(&format!("cannot read the epoch counter {}: {e}", layout.epoch()));
                return Vec::new();
            }
        };
        let Some(epoch) = takeover.next_epoch(decode_epoch(&data)) else {
            return vec![
                Effect::Notice("did not take the leadership: the switchover's leadership has changed".into()),
                Effect::ReadLeader,
            ];
        };
        let (node, change) = takeover.records(&me, epoch);
        let ephemeral = CreateMode::Ephemeral.with_acls(self.acls());
        let persistent = CreateMode::Persistent.with_acls(self.acls());
        let mut multi = client.new_multi_writer();
        let mut built = Ok(());
        if let Some(moved) = takeover.moved() {
            built =
                built.and(multi.add_set_data(&layout.switchover(), &leader::encode(&moved.value), Some(moved.version)));
            if let Some(old) = &takeover.previous {
                built = built.and(multi.add_delete(&layout.leader(), Some(old.version)));
            }
        }
        let list_version = self.shared.election().failsafe_list_version();
        if let (true, Some(version)) = (self.settings.policy.failsafe, list_version) {
            // The failsafe list the election judged by is still the one in force.
            built = built.and(multi.add_check_version(&layout.failsafe(), version));
        }
        let built = built
            .and(multi.add_set_data(&layout.epoch(), epoch.to_string().as_bytes(), Some(stat.version)))
            .and(multi.add_create(&layout.leader(), &leader::encode(&node), &ephemeral))
            .and(multi.add_create(&layout.history_entry(epoch), &leader::encode(&change), &persistent));
        if let Err(e) = built {
            log::warning(&format!("cannot build the leadership transaction: {e}"));
            return Vec::new();
        }
        match multi.commit().await {
            Ok(_) => {
                if epoch > HISTORY {
                    let _ = client.delete(&layout.history_entry(epoch - HISTORY), None).await;
                }
                self.decide(client, |e, f| e.took(takeover, node, sent, f))
            }
            Err(e) => vec![
                Effect::Notice(format!("did not take the leadership of {}: {e}", layout.dir())),
                Effect::ReadLeader,
            ],
        }
    }

    /// In one transaction with a check that this master's leader znode is
    /// still at `leader_version`: a list is only ever written by the master
    /// of its epoch.
    async fn write_failsafe_list(&mut self, client: &Client, layout: &Layout, list: List, leader_version: i32) {
        let mut multi = client.new_multi_writer();
        let built = multi
            .add_check_version(&layout.leader(), leader_version)
            .and(multi.add_set_data(&layout.failsafe(), &list.encode(), None));
        let written = match built {
            Ok(()) => multi.commit().await.map(drop).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match &written {
            Ok(()) => log::notice(&format!(
                "failsafe list of epoch {}: {}",
                list.epoch,
                list.members.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
            Err(e) => log::warning(&format!("cannot write the failsafe list {}: {e}", layout.failsafe())),
        }
        self.shared.election().failsafe_list_written(list, written.is_ok());
    }

    /// At the version read (no one changed it since), then read again.
    async fn release_failsafe_list(&mut self, client: &Client, layout: &Layout, list: List, version: i32) {
        match client.set_data(&layout.failsafe(), &list.encode(), Some(version)).await {
            Ok(_) => log::notice(&format!(
                "released the failsafe list of epoch {}: its master holds no grant of this member's",
                list.epoch
            )),
            Err(e) => log::notice(&format!("did not release the failsafe list: {e}")),
        }
        self.read_failsafe_list(client).await;
    }

    /// Reads the failsafe list: the election judges standing by it, and a
    /// takeover checks its version.
    pub(super) async fn read_failsafe_list(&mut self, client: &Client) {
        let Some(layout) = self.layout() else { return };
        match client.get_data(&layout.failsafe()).await {
            Ok((data, stat)) => self
                .shared
                .election()
                .failsafe_list_read(List::decode(&data), stat.version),
            Err(e) => log::warning(&format!("cannot read the failsafe list {}: {e}", layout.failsafe())),
        }
    }

    async fn create_switchover(&self, client: &Client, layout: &Layout, sw: &Switchover) -> Result<(), ZkError> {
        let options = CreateMode::Ephemeral.with_acls(self.acls());
        client
            .create(&layout.switchover(), &leader::encode(sw), &options)
            .await
            .map(|_| ())
    }

    /// ZKSYNC.FAILOVER on this member: the leader read afresh, the plan
    /// checked, the switchover znode created; the reply comes when it ends.
    pub(super) async fn failover(&mut self, client: &Client, request: Request, pending: Pending) {
        let Some(layout) = self.layout() else {
            return pending.resolve(Reply::Error(Error::NoGroup));
        };
        let effects = self.read_leader(client).await;
        self.execute(client, effects).await;
        let planned = self.decide(client, |e, f| e.plan(&request, f));
        let created = match planned {
            Ok(sw) => match self.create_switchover(client, &layout, &sw).await {
                Ok(()) => Ok(()),
                Err(ZkError::NodeExists) => Err(Error::Failover("a failover is already in progress".into())),
                Err(e) => Err(zk_error(e, &layout.switchover())),
            },
            Err(e) => Err(e),
        };
        match created {
            Ok(()) => {
                self.shared.election().asked(Instant::now() + request.timeout);
                self.asked = Some(pending);
            }
            Err(e) => pending.resolve(Reply::Error(e)),
        }
    }
}

/// A group znode's JSON with its stat: `None` if there is none (or it is
/// malformed, logged); `Err` if it could not be read (logged).
async fn read_json<T: DeserializeOwned>(client: &Client, path: &str) -> Result<Option<(T, Stat)>, ()> {
    match client.get_data(path).await {
        Ok((data, stat)) => match leader::decode::<T>(&data) {
            Ok(value) => Ok(Some((value, stat))),
            Err(e) => {
                log::warning(&format!("malformed znode {path}: {e}"));
                Ok(None)
            }
        },
        Err(ZkError::NoNode) => Ok(None),
        Err(e) => {
            log::warning(&format!("cannot read {path}: {e}"));
            Err(())
        }
    }
}
