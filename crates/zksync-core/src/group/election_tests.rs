//! The election and the switchover, step by step, without ZooKeeper or Redis.

use super::*;
use crate::group::load::Figures;
use crate::group::member::Status;
use crate::group::rank::tests::member;
use crate::group::switchover::{Request, Rollback, Stage};

const SESSION: i64 = 0x51;
const OTHER: i64 = 0x99;
const ME: &str = "10.0.0.1:6379";
const PEER: &str = "10.0.0.2:6379";
const THIRD: &str = "10.0.0.3:6379";

/// What a step sees, owned.
struct World {
    now: Instant,
    me: Option<&'static str>,
    sample: Option<Sample>,
    members: Vec<Member>,
    manual: bool,
    failsafe: bool,
}

impl World {
    fn new() -> World {
        World {
            now: Instant::now(),
            me: Some(ME),
            sample: Some(sample(Role::Replica, 100, None)),
            members: vec![
                member(ME, Role::Replica, 100, 100, Status::Alive),
                member(PEER, Role::Replica, 50, 100, Status::Alive),
            ],
            manual: false,
            failsafe: false,
        }
    }

    fn facts(&self) -> Facts<'_> {
        Facts {
            now: self.now,
            group: "g",
            me: self.me,
            session: SESSION,
            session_timeout: Duration::from_millis(6000),
            sample: self.sample.as_ref(),
            members: &self.members,
            policy: Policy {
                manual: self.manual,
                max_lag: 1 << 20,
                failsafe: self.failsafe,
            },
        }
    }

    fn later(&mut self, ms: u64) {
        self.now += Duration::from_millis(ms);
    }

    /// Every member wrote its znode since the vacancy began.
    fn all_published(&mut self) {
        for m in &mut self.members {
            m.mzxid += 1;
        }
    }
}

fn sample(role: Role, offset: i64, master: Option<&str>) -> Sample {
    Sample {
        port: 6379,
        figures: Figures::new(role, offset, 0, 1, 0, 0),
        master: master.map(str::to_string),
    }
}

fn leader(id: &str, owner: i64, epoch: u64) -> Leader {
    Leader {
        node: LeaderNode {
            id: id.to_string(),
            addr: id.to_string(),
            epoch,
            previous: None,
        },
        owner,
        version: 0,
    }
}

fn roles(effects: &[Effect]) -> Vec<&Action> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Role(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn takeover(effects: &[Effect]) -> Option<&Takeover> {
    effects.iter().find_map(|e| match e {
        Effect::Take(t) => Some(t),
        _ => None,
    })
}

fn answers(effects: &[Effect]) -> Vec<&Result<(), Error>> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Answer(r) => Some(r),
            _ => None,
        })
        .collect()
}

fn follow(addr: &str, demote: bool) -> Action {
    Action::Follow {
        addr: addr.to_string(),
        demote,
    }
}

#[test]
fn the_owner_of_the_leader_znode_is_master_every_other_member_its_replica() {
    // (leader owner, this Redis's role, whom it follows, role action wanted)
    let cases = [
        (SESSION, Role::Replica, None, Some(Action::Promote)),
        (SESSION, Role::Master, None, None),
        (OTHER, Role::Master, None, Some(follow(PEER, false))),
        (OTHER, Role::Replica, Some(THIRD), Some(follow(PEER, false))),
        (OTHER, Role::Replica, Some(PEER), None),
    ];
    for (owner, role, master, want) in cases {
        let mut w = World::new();
        w.sample = Some(sample(role, 100, master));
        let id = if owner == SESSION { ME } else { PEER };
        let mut e = Election::default();
        let out = e.observe_leader(Some(leader(id, owner, 1)), Some(1), &w.facts());
        assert_eq!(
            roles(&out).first().copied(),
            want.as_ref(),
            "{owner:#x} {role:?} {master:?}"
        );
        assert_eq!(e.leading(), owner == SESSION);
        assert_eq!(out.contains(&Effect::Lease(LeaseChange::Revoke)), owner != SESSION);
    }
}

#[test]
fn a_role_action_is_not_repeated_within_a_second() {
    let mut w = World::new();
    w.sample = Some(sample(Role::Master, 100, None));
    let mut e = Election::default();
    let first = e.observe_leader(Some(leader(PEER, OTHER, 1)), None, &w.facts());
    assert_eq!(roles(&first), [&follow(PEER, false)]);
    w.later(999);
    assert!(roles(&e.reconcile(&w.facts())).is_empty());
    w.later(1);
    assert_eq!(roles(&e.reconcile(&w.facts())), [&follow(PEER, false)]);
}

#[test]
fn an_operators_replicaof_is_reverted_with_a_warning() {
    let mut w = World::new();
    w.sample = Some(sample(Role::Replica, 100, Some(PEER)));
    let mut e = Election::default();
    assert!(roles(&e.observe_leader(Some(leader(PEER, OTHER, 1)), None, &w.facts())).is_empty());
    w.sample = Some(sample(Role::Replica, 100, Some(THIRD)));
    let out = e.reconcile(&w.facts());
    assert!(matches!(out[0], Effect::Warning(_)));
    assert_eq!(roles(&out), [&follow(PEER, false)]);
}

#[test]
fn a_master_that_loses_the_leadership_follows_as_demoted() {
    let mut w = World::new();
    w.sample = Some(sample(Role::Master, 100, None));
    let mut e = Election::default();
    e.observe_leader(Some(leader(ME, SESSION, 1)), None, &w.facts());
    let out = e.observe_leader(Some(leader(PEER, OTHER, 2)), None, &w.facts());
    assert!(!e.leading());
    assert_eq!(roles(&out), [&follow(PEER, true)]);
    assert!(out.contains(&Effect::Lease(LeaseChange::Revoke)));
    // Following in place ends the demotion.
    w.sample = Some(sample(Role::Replica, 100, Some(PEER)));
    e.reconcile(&w.facts());
    w.sample = Some(sample(Role::Replica, 100, Some(THIRD)));
    w.later(2000);
    assert_eq!(roles(&e.reconcile(&w.facts())), [&follow(PEER, false)]);
}

#[test]
fn a_new_master_is_announced_to_subscribers_after_the_first() {
    let mut w = World::new();
    w.sample = Some(sample(Role::Replica, 100, Some(PEER)));
    let mut e = Election::default();
    let out = e.observe_leader(Some(leader(PEER, OTHER, 1)), None, &w.facts());
    assert!(roles(&out).is_empty(), "the first master seen is not a switch");
    let mut next = leader(THIRD, OTHER, 2);
    next.node.previous = Some(PEER.to_string());
    let out = e.observe_leader(Some(next.clone()), None, &w.facts());
    let announce = Action::Announce("g 10.0.0.2 6379 10.0.0.3 6379".into());
    assert_eq!(roles(&out)[0], &announce);
    assert!(!roles(&e.observe_leader(Some(next), None, &w.facts())).contains(&&announce));
}

#[test]
fn a_leader_znode_left_by_this_servers_previous_run_is_stale() {
    let cases = [
        (ME, OTHER, Some(ME), true),
        (ME, SESSION, Some(ME), false),
        (PEER, OTHER, Some(ME), false),
        (ME, OTHER, None, false),
    ];
    for (id, owner, me, stale) in cases {
        assert_eq!(
            left_by_previous_run(&leader(id, owner, 1), me, SESSION),
            stale,
            "{id} {owner}"
        );
    }
}

/// An election with `ME` best placed, after the vacancy began.
fn vacancy(w: &mut World) -> Election {
    let mut e = Election::default();
    e.observe_leader(Some(leader(PEER, OTHER, 3)), Some(3), &w.facts());
    let out = e.observe_leader(None, Some(3), &w.facts());
    assert!(matches!(out[0], Effect::Warning(_)), "the master is gone");
    assert!(e.vacant());
    e
}

#[test]
fn the_best_member_takes_over_once_everyone_published_afresh() {
    let mut w = World::new();
    let mut e = vacancy(&mut w);
    assert_eq!(
        roles(&e.elect(&w.facts())),
        [&Action::Sample],
        "first, everyone samples"
    );
    assert!(e.elect(&w.facts()).is_empty(), "not everyone published yet");
    w.all_published();
    let out = e.elect(&w.facts());
    let Some(take) = takeover(&out) else {
        panic!("the best takes over: {out:?}")
    };
    assert_eq!(take.reason, Reason::Election);
    assert_eq!(take.previous, None);
}

#[test]
fn the_election_settles_without_waiting_for_the_silent() {
    let mut w = World::new();
    let mut e = vacancy(&mut w);
    e.elect(&w.facts());
    w.later(SETTLE.as_millis() as u64 - 1);
    assert!(e.elect(&w.facts()).is_empty());
    w.later(1);
    assert!(takeover(&e.elect(&w.facts())).is_some());
}

#[test]
fn others_wait_for_the_best_then_anyone_eligible_may_lead() {
    let mut w = World::new();
    w.members[1].node.zksync.repl_offset = 200;
    let mut e = vacancy(&mut w);
    e.elect(&w.facts());
    w.all_published();
    assert!(e.elect(&w.facts()).is_empty(), "{PEER} is ahead");
    let patience = SETTLE + Duration::from_millis(6000) * 2;
    w.later(patience.as_millis() as u64 + 1);
    assert!(takeover(&e.elect(&w.facts())).is_some());
}

#[test]
fn the_first_master_of_a_group_is_its_bootstrap() {
    let w = World::new();
    let mut e = Election::default();
    e.observe_leader(None, Some(0), &w.facts());
    e.elect(&w.facts());
    let mut w = w;
    w.all_published();
    assert_eq!(
        takeover(&e.elect(&w.facts())).map(|t| t.reason),
        Some(Reason::Bootstrap)
    );
}

#[test]
fn no_election_without_a_fresh_read_an_id_or_in_manual_mode() {
    let mut w = World::new();
    let mut e = vacancy(&mut w);
    e.new_session();
    assert!(e.elect(&w.facts()).is_empty(), "not read on this session");
    let mut e = vacancy(&mut w);
    w.me = None;
    assert!(e.elect(&w.facts()).is_empty(), "no id yet");
    w.me = Some(ME);
    w.manual = true;
    let out = e.elect(&w.facts());
    assert!(matches!(&out[..], [Effect::Warning(_)]), "manual: said once");
    assert!(e.elect(&w.facts()).is_empty());
}

#[test]
fn a_vacancy_no_member_may_fill_is_logged_once_after_patience() {
    let mut w = World::new();
    for m in &mut w.members {
        m.node.zksync.priority = 0;
    }
    let mut e = vacancy(&mut w);
    e.elect(&w.facts());
    w.all_published();
    assert!(e.elect(&w.facts()).is_empty());
    w.later(60_000);
    assert!(matches!(&e.elect(&w.facts())[..], [Effect::Warning(_)]));
    assert!(e.elect(&w.facts()).is_empty());
}

/// `ME` leading at epoch 1, its Redis a master.
fn leading(w: &mut World) -> Election {
    w.sample = Some(sample(Role::Master, 100, None));
    let mut e = Election::default();
    let take = Takeover {
        reason: Reason::Bootstrap,
        previous: None,
        switchover: None,
        outwait_lease: false,
    };
    let node = leader(ME, SESSION, 1).node;
    let out = e.took(take, node, w.now, &w.facts());
    assert_eq!(out[0], Effect::Lease(LeaseChange::Renew(w.now)));
    assert!(e.leading());
    e
}

#[test]
fn the_lease_is_checked_every_sixth_of_the_session_timeout() {
    let mut w = World::new();
    let mut e = leading(&mut w);
    assert!(e.tick(&w.facts()).is_empty(), "renewed by the takeover");
    w.later(999);
    assert!(e.tick(&w.facts()).is_empty());
    w.later(1);
    assert_eq!(e.tick(&w.facts()), [Effect::CheckLease { sent: w.now }]);
    let cases = [
        (LeaseCheck::Owned, vec![Effect::Lease(LeaseChange::Renew(w.now))]),
        (LeaseCheck::Unanswered, vec![]),
    ];
    for (check, want) in cases {
        assert_eq!(e.lease_checked(w.now, check), want);
    }
    assert_eq!(e.lease_checked(w.now, LeaseCheck::Lost)[1], Effect::ReadLeader);
}

#[test]
fn a_new_session_loses_the_leadership_and_unpauses() {
    let mut w = World::new();
    let mut e = leading(&mut w);
    e.switchover_read(Some(requested(Some(ME), PEER, false)), &w.facts());
    let out = e.new_session();
    assert!(!e.leading());
    assert_eq!(out[0], Effect::Lease(LeaseChange::Revoke));
    assert_eq!(roles(&out), [&Action::Unpause]);
}

fn requested(from: Option<&str>, to: &str, force: bool) -> Versioned<Switchover> {
    Versioned {
        value: Switchover {
            from: from.map(str::to_string),
            to: to.to_string(),
            force,
            timeout_ms: 5000,
            stage: Stage::Requested,
            master_offset: 0,
            shutdown: false,
            epoch: Some(1),
        },
        version: 0,
    }
}

fn at(mut sw: Versioned<Switchover>, stage: Stage, offset: i64) -> Versioned<Switchover> {
    sw.value.stage = stage;
    sw.value.master_offset = offset;
    sw.version += 1;
    sw
}

#[test]
fn a_switchover_master_pauses_and_records_its_offset() {
    let mut w = World::new();
    let mut e = leading(&mut w);
    let sw = requested(Some(ME), PEER, false);
    let out = e.switchover_read(Some(sw.clone()), &w.facts());
    let cap = w.now + Duration::from_millis(5000);
    assert_eq!(
        out,
        [Effect::Lease(LeaseChange::Cap(cap)), Effect::Role(Action::Pause(5000))]
    );
    assert!(
        e.switchover_read(Some(sw.clone()), &w.facts()).is_empty(),
        "paused once"
    );
    assert!(e.tick(&w.facts()).is_empty(), "no lease while paused");
    let out = e.acted(&Action::Pause(5000), &w.facts());
    assert_eq!(
        out,
        [Effect::WriteSwitchover(Versioned {
            version: 0,
            ..at(sw, Stage::Paused, 100)
        })]
    );
}

#[test]
fn a_switchover_target_takes_over_once_caught_up() {
    // (stage, this replica's offset, leading, Redis role, what it does)
    let cases = [
        (Stage::Requested, 100, false, Role::Replica, None),
        (Stage::Paused, 99, false, Role::Replica, None),
        (Stage::Paused, 100, false, Role::Replica, Some(Reason::Switchover)),
        (Stage::Paused, 100, true, Role::Replica, None),
        (Stage::Moved, 100, true, Role::Replica, None),
    ];
    for (stage, offset, is_leading, role, want) in cases {
        let mut w = World::new();
        w.me = Some(PEER);
        let mut e = Election::default();
        e.observe_leader(Some(leader(ME, OTHER, 1)), None, &w.facts());
        if is_leading {
            e.observe_leader(Some(leader(PEER, SESSION, 2)), None, &w.facts());
        }
        w.sample = Some(sample(role, offset, Some(ME)));
        let sw = at(requested(Some(ME), PEER, false), stage, 100);
        assert_eq!(
            roles(&e.switchover_read(Some(sw.clone()), &w.facts())),
            [&Action::Sample]
        );
        let out = e.acted(&Action::Sample, &w.facts());
        let take = takeover(&out);
        assert_eq!(take.map(|t| t.reason), want, "{stage:?} {offset} {is_leading}");
        if let Some(take) = take {
            assert_eq!(take.previous.as_ref().map(|l| l.node.id.as_str()), Some(ME));
            assert_eq!(take.switchover, Some(sw));
        }
    }
}

#[test]
fn a_moved_switchover_is_done_once_the_target_is_master() {
    let mut w = World::new();
    let mut e = leading(&mut w);
    let sw = at(requested(Some(PEER), ME, false), Stage::Moved, 100);
    e.switchover_read(Some(sw.clone()), &w.facts());
    let out = e.acted(&Action::Promote, &w.facts());
    assert_eq!(
        out,
        [Effect::WriteSwitchover(Versioned {
            version: sw.version,
            ..at(sw, Stage::Done, 100)
        })]
    );
}

#[test]
fn a_forced_switchover_waits_out_a_live_masters_lease() {
    let mut w = World::new();
    w.me = Some(PEER);
    let mut e = Election::default();
    e.observe_leader(Some(leader(ME, OTHER, 1)), None, &w.facts());
    e.switchover_read(Some(requested(Some(ME), PEER, true)), &w.facts());
    let out = e.acted(&Action::Sample, &w.facts());
    let Some(take) = takeover(&out) else {
        panic!("forced: at once: {out:?}")
    };
    assert_eq!(take.reason, Reason::Forced);
    assert!(take.outwait_lease);
    // Leading, it promotes only once the old lease is over, counted from
    // the commit (the old master may have renewed until then).
    w.later(30);
    let out = e.took(take.clone(), leader(PEER, SESSION, 2).node, w.now, &w.facts());
    assert!(!roles(&out).contains(&&Action::Promote));
    w.later(3999);
    assert!(roles(&e.reconcile(&w.facts())).is_empty());
    w.later(1);
    assert_eq!(roles(&e.reconcile(&w.facts())), [&Action::Promote]);
}

/// A switchover planned against epoch `planned`, from `from` (force: `from` may be none).
fn planned(from: Option<&str>, force: bool, stage: Stage, planned: Option<u64>) -> Versioned<Switchover> {
    let mut sw = at(requested(from, PEER, force), stage, 100);
    sw.value.epoch = planned;
    sw
}

#[test]
fn a_switchover_is_carried_out_only_against_the_leadership_it_was_planned_for() {
    // (the switchover, the leader seen (id, epoch), the epoch counter, a
    // takeover that waits out a lease (Some(wait)) or none, why)
    let cases = [
        (
            planned(Some(ME), false, Stage::Paused, Some(1)),
            Some((ME, 1)),
            1,
            Some(false),
            "as planned",
        ),
        (
            planned(Some(ME), false, Stage::Paused, Some(1)),
            Some((THIRD, 2)),
            2,
            None,
            "another master elected since",
        ),
        (
            planned(Some(ME), false, Stage::Paused, Some(1)),
            None,
            2,
            None,
            "one elected and gone since",
        ),
        (
            planned(Some(ME), false, Stage::Paused, Some(1)),
            Some((ME, 1)),
            2,
            None,
            "the counter moved on",
        ),
        (
            planned(Some(ME), false, Stage::Paused, Some(1)),
            None,
            1,
            Some(false),
            "the old master gone, none since",
        ),
        (
            planned(Some(ME), false, Stage::Paused, None),
            Some((ME, 1)),
            1,
            None,
            "an older version's znode",
        ),
        (
            planned(Some(ME), true, Stage::Requested, Some(1)),
            Some((ME, 1)),
            1,
            Some(true),
            "forced from a live master",
        ),
        (
            planned(Some(ME), true, Stage::Requested, Some(1)),
            Some((THIRD, 2)),
            2,
            None,
            "forced, another master since",
        ),
        (
            planned(None, true, Stage::Requested, Some(1)),
            None,
            1,
            Some(false),
            "forced with no master",
        ),
        (
            planned(None, true, Stage::Requested, Some(1)),
            Some((THIRD, 2)),
            2,
            None,
            "forced, a master elected since",
        ),
        (
            planned(None, true, Stage::Requested, Some(2)),
            Some((THIRD, 2)),
            2,
            Some(true),
            "forced, a master elected as planned",
        ),
        (
            planned(None, true, Stage::Requested, None),
            None,
            1,
            None,
            "forced, an older version's znode",
        ),
    ];
    for (sw, seen, counter, want, why) in cases {
        let mut w = World::new();
        w.me = Some(PEER);
        w.sample = Some(sample(Role::Replica, 100, seen.map(|(id, _)| id)));
        let mut e = Election::default();
        e.observe_leader(Some(leader(ME, OTHER, 1)), Some(1), &w.facts());
        let seen = seen.map(|(id, epoch)| leader(id, OTHER, epoch));
        e.observe_leader(seen, Some(counter), &w.facts());
        e.switchover_read(Some(sw.clone()), &w.facts());
        let out = e.acted(&Action::Sample, &w.facts());
        let take = takeover(&out);
        assert_eq!(take.map(|t| t.outwait_lease), want, "{why}: {out:?}");
        if let Some(take) = take {
            assert_eq!(take.next_epoch(counter), Some(counter + 1), "{why}");
        }
    }
}

#[test]
fn a_master_pauses_only_for_a_switchover_of_its_own_leadership() {
    // (the epoch the switchover was planned against, pauses)
    let cases = [(Some(1), true), (Some(0), false), (Some(2), false), (None, false)];
    for (epoch, pauses) in cases {
        let mut w = World::new();
        let mut e = leading(&mut w);
        let sw = planned(Some(ME), false, Stage::Requested, epoch);
        let out = e.switchover_read(Some(sw), &w.facts());
        assert_eq!(roles(&out).contains(&&Action::Pause(5000)), pauses, "{epoch:?}");
    }
}

#[test]
fn the_takeover_transaction_requires_the_counter_a_switchover_was_planned_at() {
    let takeover = |sw: Option<Versioned<Switchover>>| Takeover {
        reason: Reason::Switchover,
        previous: None,
        switchover: sw,
        outwait_lease: false,
    };
    // (takeover, the counter read, the epoch it hands out)
    let cases = [
        (takeover(None), 7, Some(8)),
        (
            takeover(Some(planned(Some(ME), false, Stage::Paused, Some(7)))),
            7,
            Some(8),
        ),
        (
            takeover(Some(planned(Some(ME), false, Stage::Paused, Some(7)))),
            8,
            None,
        ),
        (takeover(Some(planned(Some(ME), false, Stage::Paused, None))), 7, None),
    ];
    for (take, counter, want) in cases {
        assert_eq!(take.next_epoch(counter), want, "{counter} {:?}", take.switchover);
    }
}

/// `ME` asked for a switchover from `PEER` to `THIRD`.
fn asked(w: &mut World) -> Election {
    let mut e = Election::default();
    w.sample = Some(sample(Role::Replica, 100, Some(PEER)));
    e.observe_leader(Some(leader(PEER, OTHER, 1)), None, &w.facts());
    e.switchover_read(Some(requested(Some(PEER), THIRD, false)), &w.facts());
    e.asked(w.now + Duration::from_millis(5000));
    e
}

#[test]
fn a_finished_switchover_is_answered_and_removed_by_the_member_that_asked() {
    let mut w = World::new();
    let mut e = asked(&mut w);
    let done = at(requested(Some(PEER), THIRD, false), Stage::Done, 100);
    let out = e.switchover_read(Some(done), &w.facts());
    assert_eq!(out, [Effect::Answer(Ok(())), Effect::DeleteSwitchover]);
    // It re-points only once the reply has left.
    let next = leader(THIRD, OTHER, 2);
    assert!(roles(&e.observe_leader(Some(next), None, &w.facts())).is_empty());
    w.later(REPLY_GRACE.as_millis() as u64);
    assert_eq!(roles(&e.reconcile(&w.facts())), [&follow(THIRD, false)]);
}

#[test]
fn a_switchover_is_rolled_back_at_its_deadline() {
    let mut w = World::new();
    let mut e = asked(&mut w);
    assert!(e.tick(&w.facts()).is_empty());
    w.later(5000);
    assert_eq!(e.tick(&w.facts()), [Effect::RollBack(Some(0))]);
    let out = e.rolled_back(Rollback::Done, &w.facts());
    assert!(matches!(answers(&out)[..], [Err(Error::Failover(_))]));
}

#[test]
fn a_rollback_that_races_the_takeover_waits_once_more() {
    let mut w = World::new();
    let mut e = asked(&mut w);
    w.later(5000);
    let out = e.rolled_back(Rollback::Raced, &w.facts());
    assert_eq!(out, [Effect::ReadSwitchover]);
    e.switchover_read(
        Some(at(requested(Some(PEER), THIRD, false), Stage::Moved, 100)),
        &w.facts(),
    );
    assert!(e.tick(&w.facts()).is_empty(), "moved, deadline extended");
    w.later(6000);
    let out = e.tick(&w.facts());
    assert!(
        matches!(answers(&out)[..], [Err(Error::Failover(_))]),
        "unconfirmed: given up"
    );
}

#[test]
fn a_paused_master_resumes_when_the_switchover_is_gone() {
    let mut w = World::new();
    let mut e = leading(&mut w);
    e.switchover_read(Some(requested(Some(ME), PEER, false)), &w.facts());
    let out = e.switchover_read(None, &w.facts());
    assert_eq!(out, [Effect::CheckLease { sent: w.now }, Effect::Role(Action::Unpause)]);
}

#[test]
fn a_failover_is_planned_only_when_it_can_happen() {
    let request = |to: Option<&str>, force| Request {
        to: to.map(str::to_string),
        timeout: Duration::from_millis(5000),
        force,
    };
    let mut w = World::new();
    w.members.push(member(THIRD, Role::Master, 100, 100, Status::Alive));
    let no_leader = Election::default();
    let mut led = Election::default();
    led.observe_leader(Some(leader(THIRD, OTHER, 1)), None, &w.facts());
    // (election, to, force, planned target or the error's words)
    let cases = [
        (&no_leader, None, false, Err("no master")),
        (&no_leader, None, true, Ok(ME)),
        (&led, None, false, Ok(ME)),
        (&led, Some(PEER), false, Ok(PEER)),
        (&led, Some(THIRD), false, Err("already the master")),
        (&led, Some("x:1"), false, Err("not a member")),
    ];
    let mut counted = Election::default();
    counted.observe_leader(None, Some(3), &w.facts());
    // (election, force, the epoch it is stamped with)
    let stamped = [
        (&no_leader, true, Some(0)),
        (&counted, true, Some(3)),
        (&led, false, Some(1)),
    ];
    for (e, force, epoch) in stamped {
        let sw = e.plan(&request(None, force), &w.facts()).map(|sw| sw.epoch);
        assert_eq!(sw.ok(), Some(epoch), "the leadership planned against");
    }
    for (e, to, force, want) in cases {
        let got = e.plan(&request(to, force), &w.facts());
        match (got, want) {
            (Ok(sw), Ok(target)) => {
                assert_eq!(sw.to, target);
                assert_eq!(sw.stage, Stage::Requested);
            }
            (Err(e), Err(words)) => assert!(e.to_string().contains(words), "{e} / {words}"),
            (got, want) => panic!("{to:?} {force}: {got:?}, want {want:?}"),
        }
    }
    let mut busy = asked(&mut w);
    busy.switchover = None;
    assert!(busy.plan(&request(None, false), &w.facts()).is_err());
}

#[test]
fn a_master_shutting_down_hands_over_to_the_best_replica() {
    let mut w = World::new();
    let mut e = leading(&mut w);
    w.members[0].node.zksync.role = Role::Master;
    w.members[1].node.zksync.repl_offset = 100;
    let out = e.shutting_down(true, &w.facts());
    assert_eq!(out[0], Effect::Lease(LeaseChange::Revoke));
    let Effect::HandOver(sw) = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (sw.to.as_str(), sw.stage, sw.shutdown, sw.master_offset, sw.epoch),
        (PEER, Stage::Paused, true, 100, Some(1))
    );
    let sw = sw.clone();
    assert!(matches!(
        e.handed_over(&sw, Ok(()), &w.facts())[..],
        [Effect::Notice(_)]
    ));
    assert!(e.tick(&w.facts()).is_empty(), "no lease while handing over");
    // The target took over: clients go; done, the znode is removed.
    let out = e.observe_leader(Some(leader(PEER, OTHER, 2)), None, &w.facts());
    assert!(roles(&out).contains(&&Action::Disconnect));
    let done = Versioned {
        value: sw.clone(),
        version: 2,
    };
    let done = at(done, Stage::Done, 100);
    assert_eq!(e.switchover_read(Some(done), &w.facts()), [Effect::DeleteSwitchover]);
}

#[test]
fn resigning_gives_the_znode_up() {
    let mut w = World::new();
    let mut e = leading(&mut w);
    assert_eq!(e.resign(), [Effect::DeleteLeader, Effect::Lease(LeaseChange::Revoke)]);
    assert!(e.leader().is_none() && !e.leading());
    assert!(e.resign().is_empty());
}

#[test]
fn a_dead_master_loses_its_znode_once_and_is_not_elected_while_its_session_lingers() {
    let mut w = World::new();
    // THIRD led, with the best offset; its process died.
    w.members.push(member(THIRD, Role::Master, 300, 100, Status::Alive));
    let mut e = Election::default();
    e.observe_leader(Some(leader(THIRD, OTHER, 4)), Some(4), &w.facts());
    let out = e.leader_dead(&w.facts());
    assert!(out.contains(&Effect::RemoveLeader { epoch: 4 }), "{out:?}");
    assert!(e.leader_dead(&w.facts()).is_empty(), "once");
    // Its znode gone, the vacancy does not wait for THIRD to publish, nor rank it.
    e.observe_leader(None, Some(4), &w.facts());
    e.elect(&w.facts());
    w.all_published();
    w.members[2].mzxid -= 1;
    let out = e.elect(&w.facts());
    assert!(takeover(&out).is_some(), "{ME} is the best of the living: {out:?}");
    // A later master clears the mark.
    e.observe_leader(Some(leader(PEER, OTHER, 5)), Some(5), &w.facts());
    e.observe_leader(Some(leader(THIRD, OTHER, 6)), Some(6), &w.facts());
    assert!(e.leader_dead(&w.facts()).contains(&Effect::RemoveLeader { epoch: 6 }));
}

#[test]
fn a_leader_never_removes_itself_as_dead() {
    let mut w = World::new();
    let mut e = leading(&mut w);
    assert!(e.leader_dead(&w.facts()).is_empty());
}

#[test]
fn a_stalled_master_is_fenced_and_gives_up_and_a_stalled_member_does_not_stand() {
    let mut w = World::new();
    let mut e = leading(&mut w);
    let out = e.stall(true, Duration::from_millis(5001));
    assert_eq!(out[0], Effect::Lease(LeaseChange::Revoke), "fenced first");
    assert!(out.contains(&Effect::RemoveLeader { epoch: 1 }), "{out:?}");
    assert!(!e.leading());
    assert!(e.stall(true, Duration::from_millis(6000)).is_empty(), "once");
    // Its znode gone: it does not stand while stalled, and does once it runs.
    e.observe_leader(None, Some(1), &w.facts());
    e.elect(&w.facts());
    w.all_published();
    assert!(e.elect(&w.facts()).is_empty(), "stalled: no takeover");
    assert!(e.stall(false, Duration::ZERO).is_empty());
    assert_eq!(roles(&e.elect(&w.facts())), [&Action::Sample]);
    assert!(takeover(&e.elect(&w.facts())).is_some());
}

#[test]
fn a_stalled_replica_only_stops_standing() {
    let mut e = Election::default();
    assert!(e.stall(true, Duration::from_millis(5001)).is_empty());
}

#[test]
fn a_member_without_data_is_not_elected_behind_the_groups_recorded_offset() {
    // Every session expired; this process came back empty and is alone.
    let cases = [(0, true), (1 << 20, true), ((1 << 20) + 1, false), (50 << 20, false)];
    for (recorded, elected) in cases {
        let mut w = World::new();
        w.sample = Some(sample(Role::Replica, 0, None));
        w.members = vec![member(ME, Role::Replica, 0, 100, Status::Alive)];
        let mut e = Election::default();
        e.observe_group_offset(recorded);
        e.observe_leader(None, Some(7), &w.facts());
        e.elect(&w.facts());
        w.all_published();
        assert_eq!(takeover(&e.elect(&w.facts())).is_some(), elected, "recorded {recorded}");
    }
}

#[test]
fn a_paused_master_rolls_back_a_switchover_no_one_finishes_once_its_pause_is_over() {
    // (the stage, ms after the pause, this master asked for it, rolls back)
    let cases = [
        (Stage::Requested, 4999, false, false),
        (Stage::Requested, 5000, false, true),
        (Stage::Paused, 5000, false, true),
        (Stage::Moved, 5000, false, false),
        (Stage::Paused, 5000, true, false),
    ];
    for (stage, ms, asked, want) in cases {
        let mut w = World::new();
        let mut e = leading(&mut w);
        e.switchover_read(Some(requested(Some(ME), PEER, false)), &w.facts());
        let sw = at(requested(Some(ME), PEER, false), stage, 100);
        e.switchover_read(Some(sw.clone()), &w.facts());
        if asked {
            e.asked(w.now + Duration::from_millis(9000));
        }
        w.later(ms);
        let out = e.tick(&w.facts());
        let rollback = Effect::RollBack(Some(sw.version));
        assert_eq!(out.contains(&rollback), want, "{stage:?} {ms} {asked}: {out:?}");
        if want {
            w.later(20);
            assert!(!e.tick(&w.facts()).contains(&rollback), "again only a second later");
            let out = e.rolled_back(Rollback::Done, &w.facts());
            assert_eq!(roles(&out), [&Action::Unpause], "resumes");
        }
    }
}

/// Failsafe, step by step (session timeout 6 s: a grant lasts 6 s, a lease
/// from a round 4 s; asks from 2 s without a confirmation).
mod failsafe {
    use super::*;
    use crate::group::failsafe::{Ask, List, Refusal};

    fn world() -> World {
        let mut w = World::new();
        w.failsafe = true;
        w
    }

    fn ask(master: &str, epoch: u64) -> Ask {
        Ask {
            master: master.into(),
            epoch,
        }
    }

    fn written(out: &[Effect]) -> Option<&List> {
        out.iter().find_map(|e| match e {
            Effect::WriteFailsafeList { list, .. } => Some(list),
            _ => None,
        })
    }

    fn asked(out: &[Effect]) -> Option<(Instant, Vec<String>)> {
        out.iter().find_map(|e| match e {
            Effect::AskGrants { sent, to, .. } => Some((*sent, to.clone())),
            _ => None,
        })
    }

    /// A master that has written its list, its lease confirmed now.
    fn master(w: &mut World) -> Election {
        w.sample = Some(sample(Role::Master, 100, None));
        let mut e = Election::default();
        e.observe_leader(Some(leader(ME, SESSION, 3)), Some(3), &w.facts());
        let Some(list) = written(&e.tick(&w.facts())).cloned() else {
            panic!("the list is written")
        };
        assert_eq!(list, List::of(3, ME, [ME, PEER]));
        e.failsafe_list_written(list, true);
        e.lease_checked(w.now, LeaseCheck::Owned);
        e
    }

    #[test]
    fn the_master_asks_once_zookeeper_stops_confirming_and_writes_on_every_grant() {
        let mut w = world();
        let mut e = master(&mut w);
        w.later(1999);
        assert_eq!(
            asked(&e.failsafe_tick(&w.facts())),
            None,
            "ZooKeeper confirmed it lately"
        );
        assert_eq!(written(&e.tick(&w.facts())), None, "the list is unchanged");
        w.later(1);
        let Some((sent, to)) = asked(&e.failsafe_tick(&w.facts())) else {
            panic!("asks")
        };
        assert_eq!(to, [PEER]);
        assert_eq!(asked(&e.failsafe_tick(&w.facts())), None, "one round a sixth");
        w.later(5);
        let out = e.grant_answered(PEER, sent, true, &w.facts());
        let until = sent + Duration::from_millis(4000);
        assert_eq!(out, [Effect::FailsafeLease(FailsafeLease::Extend(until))]);
        // Its session expires: the failsafe lease is not the ZooKeeper lease.
        let out = e.new_session();
        assert!(!out.contains(&Effect::FailsafeLease(FailsafeLease::Revoke)), "{out:?}");
    }

    #[test]
    fn the_failsafe_master_takes_its_leadership_back_before_anyone() {
        let mut w = world();
        let mut e = master(&mut w);
        w.later(2000);
        let Some((sent, _)) = asked(&e.failsafe_tick(&w.facts())) else {
            panic!("asks")
        };
        e.grant_answered(PEER, sent, true, &w.facts());
        e.new_session();
        w.later(1000);
        e.observe_leader(None, Some(3), &w.facts());
        e.failsafe_list_read(Some(List::of(3, ME, [ME, PEER])), 4);
        let out = e.elect(&w.facts());
        assert_eq!(takeover(&out).map(|t| t.reason), Some(Reason::Failsafe), "{out:?}");
    }

    #[test]
    fn a_member_grants_the_master_it_follows_and_stands_only_once_it_released() {
        let mut w = world();
        let mut e = Election::default();
        e.observe_leader(Some(leader(PEER, OTHER, 3)), Some(3), &w.facts());
        let list = List::of(3, PEER, [ME, PEER]);
        e.failsafe_list_read(Some(list.clone()), 1);
        let cases = [
            (ask(PEER, 3), Ok(())),
            (ask(PEER, 2), Err(Refusal::Newer(3))),
            (ask(THIRD, 3), Err(Refusal::NotFollowing)),
        ];
        for (a, want) in cases {
            assert_eq!(e.grant_asked(&a, &w.facts()).map(|_| ()), want, "{a:?}");
        }
        e.observe_leader(None, Some(3), &w.facts());
        w.all_published();
        for _ in 0..3 {
            w.later(1000);
            assert_eq!(takeover(&e.elect(&w.facts())), None, "it holds a grant");
        }
        assert_eq!(e.grant_asked(&ask(PEER, 3), &w.facts()).map(|_| ()), Ok(()), "renewed");
        w.later(6000);
        let out = e.elect(&w.facts());
        let released = Effect::ReleaseFailsafeList {
            list: list.released(),
            version: 1,
        };
        assert_eq!(out, [released]);
        let sealed = e.grant_asked(&ask(PEER, 3), &w.facts()).map(|_| ());
        assert_eq!(sealed, Err(Refusal::Sealed));
        e.failsafe_list_read(Some(list.released()), 2);
        let mut took = None;
        for _ in 0..3 {
            took = took.or(takeover(&e.elect(&w.facts())).cloned());
            w.later(300);
        }
        assert_eq!(took.map(|t| t.reason), Some(Reason::Election));
    }

    #[test]
    fn a_member_left_off_the_list_does_not_stand_nor_grant_while_taking() {
        let mut w = world();
        let mut e = Election::default();
        e.observe_leader(Some(leader(PEER, OTHER, 3)), Some(3), &w.facts());
        e.failsafe_list_read(Some(List::of(3, PEER, [PEER, THIRD])), 1);
        e.observe_leader(None, Some(3), &w.facts());
        w.all_published();
        for _ in 0..10 {
            w.later(1000);
            assert_eq!(takeover(&e.elect(&w.facts())), None, "not listed");
        }
        // The list of a newer epoch's master (or none): it may stand.
        e.failsafe_list_read(None, 2);
        let mut took = None;
        for _ in 0..3 {
            took = took.or(takeover(&e.elect(&w.facts())).cloned());
            w.later(300);
        }
        assert!(took.is_some());
        let refused = e.grant_asked(&ask(PEER, 3), &w.facts()).map(|_| ());
        assert_eq!(refused, Err(Refusal::Standing), "taking the leadership itself");
    }

    /// A member that started less than a grant time ago, or that granted
    /// the master, stands at once when that master is found dead: its
    /// process is gone, so it writes on no grant.
    #[test]
    fn a_dead_master_bars_no_one() {
        let mut w = world();
        w.members.push(member(THIRD, Role::Master, 300, 100, Status::Alive));
        let mut e = Election::default();
        e.observe_leader(Some(leader(THIRD, OTHER, 4)), Some(4), &w.facts());
        e.failsafe_list_read(Some(List::of(4, THIRD, [ME, PEER, THIRD])), 1);
        assert!(e.grant_asked(&ask(THIRD, 4), &w.facts()).is_ok());
        e.leader_dead(&w.facts());
        e.observe_leader(None, Some(4), &w.facts());
        w.all_published();
        w.members[2].mzxid -= 1;
        let mut took = None;
        for _ in 0..3 {
            took = took.or(takeover(&e.elect(&w.facts())).cloned());
            w.later(100);
        }
        assert!(took.is_some(), "started 200 ms ago and granted THIRD, found dead");
    }

    #[test]
    fn with_failsafe_off_nothing_changes() {
        let mut w = World::new();
        w.sample = Some(sample(Role::Master, 100, None));
        let mut e = Election::default();
        e.observe_leader(Some(leader(ME, SESSION, 3)), Some(3), &w.facts());
        for _ in 0..10 {
            w.later(1000);
            let mut out = e.tick(&w.facts());
            out.extend(e.failsafe_tick(&w.facts()));
            let failsafe = |e: &Effect| {
                matches!(
                    e,
                    Effect::WriteFailsafeList { .. } | Effect::AskGrants { .. } | Effect::FailsafeLease(_)
                )
            };
            assert!(!out.iter().any(failsafe), "{out:?}");
        }
        let refused = e.grant_asked(&ask(PEER, 3), &w.facts()).map(|_| ());
        assert_eq!(refused, Err(Refusal::Off));
    }
}
