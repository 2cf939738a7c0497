//! A member's session thread against the simulated ZooKeeper: the same
//! steps, in the same order, as the real one (`session/connected.rs`,
//! `session/group.rs`, `session/leadership.rs`, `session/detection.rs`),
//! with the real election, publisher, table and detection rules. An `await` is where the real thread awaits
//! ZooKeeper: inputs that arrive meanwhile wait, as they do in its loop.

use super::world::{Input, World, ZkState};
use super::zk::{Answer, Op, Stat, ZkErr};
use super::Flaw;
use crate::group::detection::{self, Refusal};
use crate::group::election::{
    left_by_previous_run, Effect, Effects, Election, Facts, Leader, LeaseCheck, Policy, Takeover,
};
use crate::group::failsafe::{Ask, List};
use crate::group::layout::HISTORY;
use crate::group::leader::{self, decode_epoch, decode_offset, LeaderNode};
use crate::group::load::Sample;
use crate::group::membership::{Entry, Own, Publisher, Table};
use crate::group::switchover::{Request, Rollback, Switchover, Versioned};
use crate::group::view::Member;
use serde::de::DeserializeOwned;
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

pub type Shared = Rc<RefCell<World>>;

/// Resolves once `check` finds something in the world.
struct Until<F>(F);

impl<T, F: FnMut() -> Option<T> + Unpin> Future for Until<F> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        match (self.0)() {
            Some(value) => Poll::Ready(value),
            None => Poll::Pending,
        }
    }
}

struct Shell {
    world: Shared,
    m: usize,
    id: String,
    session: i64,
    election: Election,
    publisher: Publisher,
    table: Table,
    members: Vec<Member>,
    /// Each member's word that the master's port refused it, by member id.
    refusals: BTreeMap<String, Refusal>,
    /// The main thread is stalled, as last found.
    stalled: bool,
}

/// The session thread of member `m` (`Session::run`): sessions one after
/// the other, a backoff between failed connects.
pub async fn run(world: Shared, m: usize) {
    let id = world.borrow().procs[m].id.clone();
    let mut shell = Shell {
        world,
        m,
        id,
        session: 0,
        election: Election::default(),
        publisher: Publisher::default(),
        table: Table::default(),
        members: Vec::new(),
        refusals: BTreeMap::new(),
        stalled: false,
    };
    if shell.world.borrow().cfg.rules.flaw == Some(Flaw::RestartStandsAtOnce) {
        // Broken on purpose: a process that starts takes it that it granted nothing.
        let (now, timeout) = (shell.now(), shell.world.borrow().cfg.session_timeout);
        shell
            .election
            .failsafe_started(now.checked_sub(timeout * 2).unwrap_or(now));
    }
    let mut backoff = Duration::from_millis(100);
    loop {
        match shell.connect().await {
            Some(session) => {
                backoff = Duration::from_millis(100);
                shell.session = session;
                shell.serve().await;
            }
            None => {
                shell.offline_for(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl Shell {
    fn log(&self, line: String) {
        self.world.borrow_mut().log(Some(self.m), line);
    }

    fn now(&self) -> std::time::Instant {
        self.world.borrow().instant()
    }

    /// Opens a session, taking the main thread's samples in meanwhile (`offline`).
    async fn connect(&mut self) -> Option<i64> {
        self.world.borrow_mut().open(self.m);
        loop {
            let (world, m) = (self.world.clone(), self.m);
            let next = Until(move || {
                let mut w = world.borrow_mut();
                match w.opened(m) {
                    Some(opened) => Some(Err(opened)),
                    None => w.next_input(m, false).map(Ok),
                }
            });
            match next.await {
                Err(opened) => return opened,
                Ok(input) => self.offline(input),
            }
        }
    }

    async fn offline_for(&mut self, pause: Duration) {
        let until = self.world.borrow().now + pause;
        loop {
            let (world, m) = (self.world.clone(), self.m);
            let next = Until(move || {
                let mut w = world.borrow_mut();
                match w.now >= until {
                    true => Some(None),
                    false => w.next_input(m, false).map(Some),
                }
            });
            match next.await {
                Some(input) => self.offline(input),
                None => return,
            }
        }
    }

    fn offline(&mut self, input: Input) {
        match input {
            Input::Sample(sample) | Input::Acted(_, sample) => self.take_sample(sample),
            Input::Failover(_) => self.log("FAILOVER answered ZKDOWN".into()),
            failsafe @ (Input::GrantAsked { .. } | Input::GrantAnswer { .. } | Input::FailsafeTick) => {
                self.failsafe(failsafe)
            }
            _ => {}
        }
    }

    fn take_sample(&mut self, sample: Sample) {
        let now = self.now();
        self.publisher.take_sample(sample, now);
    }

    /// A ZooKeeper request; the failsafe is served while it waits (a
    /// request may wait for a whole session timeout).
    async fn call(&mut self, op: Op) -> Result<Answer, ZkErr> {
        let req = self.world.borrow_mut().request(self.m, op)?;
        loop {
            let (world, m) = (self.world.clone(), self.m);
            let next = Until(move || {
                let mut w = world.borrow_mut();
                match w.reply_to(m, req) {
                    Some(reply) => Some(Ok(reply)),
                    None => w.next_failsafe(m).map(Err),
                }
            });
            match next.await {
                Ok(reply) => return reply,
                Err(input) => self.failsafe(input),
            }
        }
    }

    /// `serve`: one session until it expires.
    async fn serve(&mut self) {
        self.log(format!("session {:#x}", self.session));
        self.publisher.unpublished();
        let effects = self.election.new_session();
        self.execute(effects).await;
        self.add_watch().await;
        self.join().await;
        loop {
            let (world, m) = (self.world.clone(), self.m);
            let input = Until(move || world.borrow_mut().next_input(m, true)).await;
            match input {
                Input::State(ZkState::Disconnected) => self.log("disconnected".into()),
                Input::State(ZkState::SyncConnected) => {
                    self.log("reconnected".into());
                    self.add_watch().await;
                    self.read_group().await;
                }
                Input::State(ZkState::Expired) => break,
                Input::Watch(paths) => self.group_events(paths).await,
                Input::Tick => {
                    self.watch_stall().await;
                    self.step(|e, f| e.tick(f)).await;
                    self.settle().await;
                }
                Input::LoadTimer => self.publish().await,
                Input::Sample(sample) => self.sampled(sample).await,
                Input::Acted(action, sample) => self.acted(action, sample).await,
                Input::Failover(request) => self.failover(request).await,
                Input::MasterLinkDown => self.master_link_down(),
                Input::Refused(refusal) => self.refused(refusal).await,
                failsafe => self.failsafe(failsafe),
            }
        }
        self.log("session expired".into());
        let effects = self.election.new_session();
        self.execute(effects).await;
    }

    async fn add_watch(&mut self) {
        let dir = self.world.borrow().layout.dir().to_string();
        let req = self.world.borrow_mut().add_watch(self.m, dir);
        if let Ok(req) = req {
            let (world, m) = (self.world.clone(), self.m);
            let _ = Until(move || world.borrow_mut().reply_to(m, req)).await;
        }
    }

    async fn join(&mut self) {
        let epoch = self.world.borrow().layout.epoch();
        let _ = self.call(create(&epoch, b"0", false)).await;
        self.read_group().await;
    }

    async fn read_group(&mut self) {
        self.read_members().await;
        self.publish().await;
        let effects = self.read_leader().await;
        self.execute(effects).await;
        let effects = self.read_switchover().await;
        self.execute(effects).await;
        self.read_refusals().await;
        self.read_failsafe_list().await;
    }

    async fn sampled(&mut self, sample: Sample) {
        let first = self.publisher.sample().is_none();
        self.take_sample(sample);
        self.publish().await;
        if first {
            let effects = self.read_leader().await;
            self.execute(effects).await;
        }
        self.settle().await;
    }

    async fn acted(&mut self, action: crate::group::election::Action, sample: Sample) {
        self.take_sample(sample);
        if self.election.vacant() && action == crate::group::election::Action::Sample {
            self.publisher.force();
        }
        self.publish().await;
        self.step(|e, f| e.acted(&action, f)).await;
        self.settle().await;
    }

    async fn group_events(&mut self, paths: Vec<String>) {
        let layout = self.world.borrow().layout.clone();
        if paths.contains(&layout.leader()) {
            let effects = self.read_leader().await;
            self.execute(effects).await;
        }
        if paths.contains(&layout.switchover()) {
            let effects = self.read_switchover().await;
            self.execute(effects).await;
        }
        if paths.contains(&layout.failsafe()) {
            self.read_failsafe_list().await;
        }
        let refused = paths.iter().any(|p| layout.is_refusal(p));
        let members: Vec<String> = paths.into_iter().filter(|p| layout.member_id(p).is_some()).collect();
        if !members.is_empty() {
            self.member_events(members).await;
        }
        if refused {
            self.read_refusals().await;
        }
        self.settle().await;
    }
}

/// The members directory and this member's znode (`session/group.rs`).
impl Shell {
    async fn publish(&mut self) {
        let layout = self.world.borrow().layout.clone();
        let Some(id) = self.publisher.id(Some(&self.id)) else {
            return;
        };
        let own = Own {
            path: layout.member(&id),
            id,
        };
        let interval = self.world.borrow().cfg.load_interval;
        let due = self.publisher.due(own, self.election.epoch(), interval, self.now());
        let Some(publication) = due else { return };
        let data = publication.node.encode();
        let path = publication.own.path.clone();
        let written = match publication.overwrite {
            true => match self.call(set(&path, &data, None)).await {
                Err(ZkErr::NoNode) => self.register(&path, &data).await,
                other => other.map(|_| ()),
            },
            false => self.register(&path, &data).await,
        };
        if written.is_ok() {
            let now = self.now();
            let offset = publication.node.zksync.repl_offset;
            self.publisher.published(publication, now);
            if self.election.leading() {
                self.record_offset(offset).await;
            }
        }
    }

    /// As `Session::record_offset`: the master records its published offset.
    async fn record_offset(&mut self, offset: i64) {
        let path = self.world.borrow().layout.offset();
        let data = offset.to_string();
        if let Err(ZkErr::NoNode) = self.call(set(&path, data.as_bytes(), None)).await {
            let _ = self.call(create(&path, data.as_bytes(), false)).await;
        }
    }

    async fn register(&mut self, path: &str, data: &[u8]) -> Result<(), ZkErr> {
        for attempt in 1.. {
            match self.call(create(path, data, true)).await {
                Ok(_) => return Ok(()),
                Err(ZkErr::NodeExists) if attempt < 3 => {}
                Err(e) => return Err(e),
            }
            match self.call(Op::CheckStat(path.into())).await? {
                Answer::Stat(Some(stat)) if stat.owner == self.session => {
                    return self.call(set(path, data, None)).await.map(|_| ());
                }
                Answer::Stat(Some(stat)) => match self.call(delete(path, Some(stat.version))).await {
                    Ok(_) | Err(ZkErr::NoNode) | Err(ZkErr::BadVersion) => {}
                    Err(e) => return Err(e),
                },
                _ => {}
            }
        }
        Ok(())
    }

    async fn read_members(&mut self) {
        let dir = self.world.borrow().layout.members();
        if let Ok(Answer::Children(children)) = self.call(Op::Children(dir)).await {
            let entries = children
                .into_iter()
                .map(|(p, data, stat)| (p, entry(data, stat)))
                .collect();
            self.table.replace(entries);
            self.refresh_view();
        }
    }

    async fn member_events(&mut self, paths: Vec<String>) {
        for path in &paths {
            match self.call(Op::GetData(path.clone())).await {
                Ok(Answer::Data(read)) => self.table.update(path, read.map(|(d, s)| entry(d, s))),
                _ => return self.read_members().await,
            }
        }
        self.refresh_view();
        if self.publisher.published_path().is_some_and(|p| !self.table.contains(p)) {
            self.publisher.unpublished();
            self.publish().await;
        }
    }

    fn refresh_view(&mut self) {
        let (members, _) = self.table.decode();
        self.members = members;
        self.election.members_changed(&self.members);
    }
}

/// The election's effects (`session/leadership.rs`).
impl Shell {
    fn decide<R>(&mut self, decision: impl FnOnce(&mut Election, &Facts) -> R) -> R {
        let (now, timeout) = {
            let w = self.world.borrow();
            (w.instant(), w.cfg.session_timeout)
        };
        let facts = Facts {
            now,
            group: "g",
            me: Some(&self.id)
                .filter(|_| self.publisher.sample().is_some())
                .map(String::as_str),
            session: self.session,
            session_timeout: timeout,
            sample: self.publisher.sample(),
            members: &self.members,
            policy: Policy {
                manual: false,
                max_lag: super::world::MAX_LAG,
                failsafe: self.world.borrow().cfg.rules.failsafe,
            },
        };
        decision(&mut self.election, &facts)
    }

    async fn step(&mut self, decision: impl FnOnce(&mut Election, &Facts) -> Effects) {
        let effects = self.decide(decision);
        self.execute(effects).await;
    }

    async fn settle(&mut self) {
        self.step(|e, f| {
            let mut effects = e.reconcile(f);
            effects.extend(e.elect(f));
            effects
        })
        .await;
    }

    async fn execute(&mut self, effects: Effects) {
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            let then = self.carry_out(effect).await;
            for effect in then.into_iter().rev() {
                queue.push_front(effect);
            }
        }
    }

    async fn carry_out(&mut self, effect: Effect) -> Effects {
        let leader_path = self.world.borrow().layout.leader();
        match effect {
            Effect::Role(action) => self.world.borrow_mut().role(self.m, action),
            Effect::Lease(change) => self.world.borrow_mut().lease(self.m, change),
            Effect::Answer(result) => self.log(format!("FAILOVER answered {result:?}")),
            Effect::Notice(line) | Effect::Warning(line) => self.log(line),
            Effect::ReadLeader => return self.read_leader().await,
            Effect::ReadSwitchover => return self.read_switchover().await,
            Effect::CheckLease { sent } => {
                let check = match self.call(Op::CheckStat(leader_path)).await {
                    Ok(Answer::Stat(Some(stat))) if stat.owner == self.session => LeaseCheck::Owned,
                    Ok(_) => LeaseCheck::Lost,
                    Err(_) => LeaseCheck::Unanswered,
                };
                return self.election.lease_checked(sent, check);
            }
            Effect::Take(takeover) => return self.take_leadership(takeover).await,
            Effect::DeleteLeader => {
                let _ = self.call(delete(&leader_path, None)).await;
            }
            Effect::WriteSwitchover(sw) => {
                let path = self.world.borrow().layout.switchover();
                let written = self
                    .call(set(&path, &leader::encode(&sw.value), Some(sw.version)))
                    .await;
                if let Err(e) = written {
                    self.log(format!("cannot record the switchover at {:?}: {e:?}", sw.value.stage));
                }
            }
            Effect::RollBack(version) => {
                let path = self.world.borrow().layout.switchover();
                let rollback = match self.call(delete(&path, version)).await {
                    Ok(_) | Err(ZkErr::NoNode) => Rollback::Done,
                    Err(ZkErr::BadVersion) => Rollback::Raced,
                    Err(e) => Rollback::Failed(format!("{e:?}")),
                };
                return self.decide(|e, f| e.rolled_back(rollback, f));
            }
            Effect::DeleteSwitchover => {
                let path = self.world.borrow().layout.switchover();
                let _ = self.call(delete(&path, None)).await;
            }
            Effect::RemoveLeader { epoch } => self.remove_leader(epoch).await,
            Effect::WriteFailsafeList { list, leader_version } => self.write_failsafe_list(list, leader_version).await,
            Effect::ReleaseFailsafeList { list, version } => self.release_failsafe_list(list, version).await,
            effect @ (Effect::AskGrants { .. } | Effect::FailsafeLease(_)) => return self.failsafe_effect(effect),
            other => {
                // A shutdown's hand-over is not simulated.
                let mut w = self.world.borrow_mut();
                w.unmodelled.get_or_insert(format!("m{}: {other:?}", self.m));
            }
        }
        Vec::new()
    }

    async fn read_leader(&mut self) -> Effects {
        let layout = self.world.borrow().layout.clone();
        let Ok(read) = self.read_json::<LeaderNode>(&layout.leader()).await else {
            return Vec::new();
        };
        let leader = read.map(|(node, stat)| Leader {
            node,
            owner: stat.owner,
            version: stat.version,
        });
        let leader = match leader {
            Some(l) if left_by_previous_run(&l, Some(&self.id), self.session) => {
                self.log(format!(
                    "removing the leadership left by a previous run (epoch {})",
                    l.node.epoch
                ));
                match self.call(delete(&layout.leader(), Some(l.version))).await {
                    Ok(_) | Err(ZkErr::NoNode) => None,
                    Err(_) => Some(l),
                }
            }
            other => other,
        };
        let counter = match self.call(Op::GetData(layout.epoch())).await {
            Ok(Answer::Data(Some((data, _)))) => Some(decode_epoch(&data)),
            _ => None,
        };
        if let Ok(Answer::Data(Some((data, _)))) = self.call(Op::GetData(layout.offset())).await {
            self.election.observe_group_offset(decode_offset(&data));
        }
        self.decide(|e, f| e.observe_leader(leader, counter, f))
    }

    async fn read_switchover(&mut self) -> Effects {
        let path = self.world.borrow().layout.switchover();
        let Ok(read) = self.read_json::<Switchover>(&path).await else {
            return Vec::new();
        };
        let read = read.map(|(value, stat)| Versioned {
            value,
            version: stat.version,
        });
        self.decide(|e, f| e.switchover_read(read, f))
    }

    async fn read_json<T: DeserializeOwned>(&mut self, path: &str) -> Result<Option<(T, Stat)>, ()> {
        match self.call(Op::GetData(path.into())).await {
            Ok(Answer::Data(Some((data, stat)))) => Ok(leader::decode::<T>(&data).ok().map(|v| (v, stat))),
            Ok(_) => Ok(None),
            Err(_) => Err(()),
        }
    }

    /// ZKSYNC.FAILOVER on this member (`Session::failover`).
    async fn failover(&mut self, request: Request) {
        self.log(format!("FAILOVER {request:?}"));
        let effects = self.read_leader().await;
        self.execute(effects).await;
        let planned = self.decide(|e, f| e.plan(&request, f));
        let created = match planned {
            Ok(sw) => {
                let path = self.world.borrow().layout.switchover();
                match self.call(create(&path, &leader::encode(&sw), true)).await {
                    Ok(_) => Ok(()),
                    Err(e) => Err(format!("{e:?}")),
                }
            }
            Err(e) => Err(e.to_string()),
        };
        match created {
            Ok(()) => {
                let deadline = self.now() + request.timeout;
                self.election.asked(deadline);
            }
            Err(e) => self.log(format!("FAILOVER answered {e}")),
        }
    }

    async fn take_leadership(&mut self, takeover: Takeover) -> Effects {
        let layout = self.world.borrow().layout.clone();
        let sent = self.now();
        let Ok(Answer::Data(Some((data, stat)))) = self.call(Op::GetData(layout.epoch())).await else {
            return Vec::new();
        };
        let Some(epoch) = takeover.next_epoch(decode_epoch(&data)) else {
            return vec![
                Effect::Notice("did not take the leadership: the switchover's leadership has changed".into()),
                Effect::ReadLeader,
            ];
        };
        let (node, change) = takeover.records(&self.id, epoch);
        let mut ops = Vec::new();
        if let Some(moved) = takeover.moved() {
            ops.push(set(
                &layout.switchover(),
                &leader::encode(&moved.value),
                Some(moved.version),
            ));
            if let Some(old) = &takeover.previous {
                ops.push(delete(&layout.leader(), Some(old.version)));
            }
        }
        let flawed = self.world.borrow().cfg.rules.flaw == Some(Flaw::UncheckedTakeover);
        if flawed {
            // Broken on purpose: whatever leads is replaced, the epoch unchecked.
            if let Ok(Answer::Stat(Some(_))) = self.call(Op::CheckStat(layout.leader())).await {
                ops.push(delete(&layout.leader(), None));
            }
        }
        if let (true, Some(version)) = (self.failsafe_on(), self.election.failsafe_list_version()) {
            // The list judged by is the list in force.
            ops.push(Op::Check {
                path: layout.failsafe(),
                version,
            });
        }
        let version = (!flawed).then_some(stat.version);
        ops.push(set(&layout.epoch(), epoch.to_string().as_bytes(), version));
        ops.push(create(&layout.leader(), &leader::encode(&node), true));
        ops.push(create(&layout.history_entry(epoch), &leader::encode(&change), false));
        match self.call(Op::Multi(ops)).await {
            Ok(_) => {
                self.log(format!("took the leadership, epoch {epoch}"));
                self.world.borrow_mut().takeovers += 1;
                if epoch > HISTORY {
                    let _ = self.call(delete(&layout.history_entry(epoch - HISTORY), None)).await;
                }
                self.decide(|e, f| e.took(takeover, node, sent, f))
            }
            Err(e) => vec![
                Effect::Notice(format!("did not take the leadership: {e:?}")),
                Effect::ReadLeader,
            ],
        }
    }
}

/// Detection (`session/detection.rs`).
impl Shell {
    /// The replication link dropped: the master's port is asked, in the background.
    fn master_link_down(&mut self) {
        let Some(leader) = self.election.leader().map(|l| l.node.clone()) else {
            return;
        };
        if leader.id == self.id || self.publisher.sample().is_none() {
            return;
        }
        let refusal = Refusal {
            leader: leader.id,
            epoch: leader.epoch,
        };
        self.world.borrow_mut().probe_master(self.m, refusal);
    }

    /// The master's port refused: said for the others, while it is the master of that epoch.
    async fn refused(&mut self, refusal: Refusal) {
        let current = self
            .election
            .leader()
            .is_some_and(|l| l.node.id == refusal.leader && l.node.epoch == refusal.epoch);
        if !current || self.publisher.sample().is_none() {
            return;
        }
        let path = self.world.borrow().layout.refusal(&self.id);
        let data = leader::encode(&refusal);
        if let Err(ZkErr::NodeExists) = self.call(create(&path, &data, true)).await {
            let _ = self.call(set(&path, &data, None)).await;
        }
        self.read_refusals().await;
    }

    /// Every member's refusal; a master confirmed dead loses its leadership.
    async fn read_refusals(&mut self) {
        let layout = self.world.borrow().layout.clone();
        let Ok(Answer::Children(children)) = self.call(Op::Children(layout.refused())).await else {
            return;
        };
        self.refusals = children
            .into_iter()
            .filter_map(|(path, data, _)| {
                let id = path.rsplit('/').next()?.to_string();
                leader::decode::<Refusal>(&data).ok().map(|r| (id, r))
            })
            .collect();
        let one_suffices = self.world.borrow().cfg.rules.flaw == Some(Flaw::OneRefusalSuffices);
        let dead = self.election.leader().is_some_and(|l| match one_suffices {
            // Broken on purpose: any other member's word is enough.
            true => self
                .refusals
                .iter()
                .any(|(by, r)| *by != l.node.id && r.leader == l.node.id && r.epoch == l.node.epoch),
            false => detection::dead(&l.node, &self.members, &self.refusals),
        });
        if dead {
            self.step(|e, f| e.leader_dead(f)).await;
        }
    }

    /// Deletes the leader znode of `epoch`, with the epoch counter's version checked.
    async fn remove_leader(&mut self, epoch: u64) {
        let layout = self.world.borrow().layout.clone();
        let Ok(Answer::Data(Some((data, stat)))) = self.call(Op::GetData(layout.epoch())).await else {
            return;
        };
        if decode_epoch(&data) != epoch {
            return;
        }
        let check = Op::Check {
            path: layout.epoch(),
            version: stat.version,
        };
        let removed = self.call(Op::Multi(vec![check, delete(&layout.leader(), None)])).await;
        self.log(format!("removing the leadership of epoch {epoch}: {removed:?}"));
        self.world.borrow_mut().removals += u64::from(removed.is_ok());
    }

    /// At the tick: the main thread's beat, older than the stall timeout, is a stall.
    async fn watch_stall(&mut self) {
        let (beat, now, timeout) = {
            let w = self.world.borrow();
            (w.beat(self.m), w.instant(), w.cfg.stall_timeout)
        };
        let stalled = detection::stalled(beat, now, timeout);
        if stalled == self.stalled {
            return;
        }
        self.stalled = stalled;
        self.publisher.set_stalled(stalled);
        self.log(format!(
            "main thread {}",
            if stalled { "stalled" } else { "runs again" }
        ));
        let stalled_for = now.saturating_duration_since(beat);
        self.step(|e, _| e.stall(stalled, stalled_for)).await;
        self.publish().await;
    }
}

fn entry(data: Vec<u8>, stat: Stat) -> Entry {
    Entry {
        data,
        mtime_ms: stat.mtime_ms,
        mzxid: stat.mzxid,
    }
}

fn create(path: &str, data: &[u8], ephemeral: bool) -> Op {
    Op::Create {
        path: path.into(),
        data: data.to_vec(),
        ephemeral,
    }
}

fn set(path: &str, data: &[u8], version: Option<i32>) -> Op {
    Op::SetData {
        path: path.into(),
        data: data.to_vec(),
        version,
    }
}

fn delete(path: &str, version: Option<i32>) -> Op {
    Op::Delete {
        path: path.into(),
        version,
    }
}

/// Failsafe: the list in ZooKeeper, grants asked and answered between
/// members; served even while ZooKeeper does not answer (`call`, `offline`).
impl Shell {
    fn failsafe_on(&self) -> bool {
        self.world.borrow().cfg.rules.failsafe
    }

    async fn read_failsafe_list(&mut self) {
        let path = self.world.borrow().layout.failsafe();
        if let Ok(Answer::Data(Some((data, stat)))) = self.call(Op::GetData(path)).await {
            self.election.failsafe_list_read(List::decode(&data), stat.version);
        }
    }

    /// In one transaction with a check that this master's leader znode is still there.
    async fn write_failsafe_list(&mut self, list: List, leader_version: i32) {
        let layout = self.world.borrow().layout.clone();
        let check = Op::Check {
            path: layout.leader(),
            version: leader_version,
        };
        let write = set(&layout.failsafe(), &list.encode(), None);
        let written = self.call(Op::Multi(vec![check, write])).await.is_ok();
        self.log(format!("failsafe list {:?} written: {written}", list.members));
        self.election.failsafe_list_written(list, written);
    }

    /// At the version read, then read again.
    async fn release_failsafe_list(&mut self, list: List, version: i32) {
        let path = self.world.borrow().layout.failsafe();
        let released = self.call(set(&path, &list.encode(), Some(version))).await;
        self.log(format!(
            "failsafe list of epoch {} released: {}",
            list.epoch,
            released.is_ok()
        ));
        self.read_failsafe_list().await;
    }

    /// An input of the failsafe's: its tick, an ask of this member, an
    /// answer to one of its asks. No ZooKeeper request is made.
    fn failsafe(&mut self, input: Input) {
        let effects = match input {
            Input::FailsafeTick if self.election.failsafe_claimed() => self.decide(|e, f| e.failsafe_tick(f)),
            Input::GrantAsked { from, gen, ask, sent } => {
                let answer = self.grant(&ask);
                self.world.borrow_mut().answer_grant(self.m, from, gen, sent, answer);
                Vec::new()
            }
            Input::GrantAnswer { by, sent, granted } => self.decide(|e, f| e.grant_answered(&by, sent, granted, f)),
            _ => Vec::new(),
        };
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            queue.extend(self.failsafe_effect(effect));
        }
    }

    fn grant(&mut self, ask: &Ask) -> bool {
        if self.world.borrow().cfg.rules.flaw == Some(Flaw::GrantAnyEpoch) {
            // Broken on purpose: whoever asks, at whatever epoch, is granted.
            return self.decide(|e, f| e.grant_unchecked(f));
        }
        let answer = self.decide(|e, f| e.grant_asked(ask, f));
        if let Err(refusal) = &answer {
            self.log(format!(
                "failsafe grant to {} (epoch {}) refused: {refusal:?}",
                ask.master, ask.epoch
            ));
        }
        answer.is_ok()
    }

    fn failsafe_effect(&mut self, effect: Effect) -> Effects {
        match effect {
            Effect::AskGrants { ask, sent, to } => {
                let flawed = self.world.borrow().cfg.rules.flaw == Some(Flaw::LeaseFromAllButOne);
                let faked = to.first().filter(|_| flawed && to.len() > 1).cloned();
                self.world.borrow_mut().ask_grants(self.m, &to, &ask, sent);
                if let Some(by) = faked {
                    // Broken on purpose: one member's grant is taken for granted.
                    return self.decide(|e, f| e.grant_answered(&by, sent, true, f));
                }
            }
            Effect::FailsafeLease(change) => self.world.borrow_mut().failsafe_lease(self.m, change),
            other => {
                let mut w = self.world.borrow_mut();
                w.unmodelled.get_or_insert(format!("m{}: {other:?}", self.m));
            }
        }
        Vec::new()
    }
}
