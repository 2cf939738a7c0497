//! Failures found in well under the session timeout, without I/O.
//!
//! - **Process death.** A dead master's port refuses connections at once,
//!   while its session lives on for the whole timeout. Each member whose
//!   replication link to the master drops asks the port; one that is
//!   refused says so in `/zksync/<group>/refused/<member>` (a `Refusal`).
//!   Once a majority of the other members agree (`dead`), the leader znode
//!   is removed and the group elects at once. A frozen or cut-off master
//!   is silent, never refused: it still waits for its lease to run out.
//! - **Stall.** The main thread beats at every serverCron; the session
//!   thread finds a master whose beat is older than `zksync.stall-timeout`
//!   stalled (`stalled`): it is fenced and gives its leadership up, and a
//!   stalled member says so in its member znode, so it is not elected.

use super::leader::LeaderNode;
use super::view::Member;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A member's word that the master of `epoch`, `leader`, refused it a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub leader: String,
    pub epoch: u64,
}

/// Whether `leader` is confirmed dead: a majority of the other members in
/// the table were refused by its port during its epoch. `refusals` are by
/// member id.
pub fn dead(leader: &LeaderNode, members: &[Member], refusals: &BTreeMap<String, Refusal>) -> bool {
    let others: Vec<&Member> = members.iter().filter(|m| m.id != leader.id).collect();
    let refused = others
        .iter()
        .filter(|m| {
            refusals
                .get(&m.id)
                .is_some_and(|r| r.leader == leader.id && r.epoch == leader.epoch)
        })
        .count();
    !others.is_empty() && refused * 2 > others.len()
}

/// Whether the main thread, which last beat at `beat`, is stalled at `now`
/// (`timeout` zero: never).
pub fn stalled(beat: Instant, now: Instant, timeout: Duration) -> bool {
    !timeout.is_zero() && now.saturating_duration_since(beat) > timeout
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::load::Role;
    use crate::group::member::Status;
    use crate::group::rank::tests::member;

    fn leader(id: &str, epoch: u64) -> LeaderNode {
        LeaderNode {
            id: id.into(),
            addr: id.into(),
            epoch,
            previous: None,
        }
    }

    fn refusals(of: &[(&str, &str, u64)]) -> BTreeMap<String, Refusal> {
        of.iter()
            .map(|(by, leader, epoch)| {
                let refusal = Refusal {
                    leader: leader.to_string(),
                    epoch: *epoch,
                };
                (by.to_string(), refusal)
            })
            .collect()
    }

    /// (members, (member, leader, epoch) refusals, dead, why)
    type Case<'a> = (&'a [Member], &'a [(&'a str, &'a str, u64)], bool, &'a str);

    #[test]
    fn a_majority_of_the_other_members_confirms_a_death() {
        let three: Vec<Member> = ["a:1", "b:1", "c:1"]
            .iter()
            .map(|id| member(id, Role::Replica, 0, 100, Status::Alive))
            .collect();
        let five: Vec<Member> = ["a:1", "b:1", "c:1", "d:1", "e:1"]
            .iter()
            .map(|id| member(id, Role::Replica, 0, 100, Status::Alive))
            .collect();
        let cases: &[Case] = &[
            (&three, &[("b:1", "a:1", 4), ("c:1", "a:1", 4)], true, "both replicas"),
            (&three, &[("b:1", "a:1", 4)], false, "one of two is no majority"),
            (
                &three,
                &[("b:1", "a:1", 4), ("c:1", "a:1", 3)],
                false,
                "an older epoch's refusal",
            ),
            (
                &three,
                &[("b:1", "a:1", 4), ("c:1", "x:1", 4)],
                false,
                "another leader's",
            ),
            (
                &three,
                &[("a:1", "a:1", 4), ("b:1", "a:1", 4)],
                false,
                "the leader's own word",
            ),
            (
                &three,
                &[("b:1", "a:1", 4), ("z:1", "a:1", 4)],
                false,
                "a member not in the table",
            ),
            (
                &five,
                &[("b:1", "a:1", 4), ("c:1", "a:1", 4), ("d:1", "a:1", 4)],
                true,
                "3 of 4",
            ),
            (&five, &[("b:1", "a:1", 4), ("c:1", "a:1", 4)], false, "2 of 4"),
            (&three[..1], &[], false, "a master alone"),
        ];
        for (members, words, want, why) in cases {
            assert_eq!(dead(&leader("a:1", 4), members, &refusals(words)), *want, "{why}");
        }
    }

    #[test]
    fn stalled_past_the_timeout_never_when_off() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        let cases = [
            (ms(5000), ms(4999), false),
            (ms(5000), ms(5000), false),
            (ms(5000), ms(5001), true),
            (ms(0), ms(60_000), false),
        ];
        for (timeout, age, want) in cases {
            assert_eq!(stalled(t, t + age, timeout), want, "{age:?} of {timeout:?}");
        }
    }
}
