//! Leadership of a group, as ZooKeeper holds it:
//!
//! - `/zksync/<group>/leader`: ephemeral, owned by the master's session,
//!   `{"id":..,"addr":..,"epoch":N,"previous":..}`;
//! - `/zksync/<group>/epoch`: persistent, the last epoch handed out; every
//!   change of master bumps it with a version check in the same transaction
//!   that creates the leader znode, so one epoch has one master;
//! - `/zksync/<group>/history/<epoch>`: one entry per change, the oldest
//!   dropped beyond `HISTORY`;
//! - `/zksync/<group>/switchover`: a coordinated switchover in progress
//!   (ZKSYNC.FAILOVER), ephemeral to the member that asked for it.
//!
//! And the choice of the next master among the members (`rank`).

use super::load::Role;
use super::member::ALIVE;
use super::view::Member;
use serde::{Deserialize, Serialize};

/// History entries kept.
pub const HISTORY: u64 = 100;

pub fn group_dir(group: &str) -> String {
    format!("/zksync/{group}")
}

pub fn leader_path(group: &str) -> String {
    format!("/zksync/{group}/leader")
}

pub fn epoch_path(group: &str) -> String {
    format!("/zksync/{group}/epoch")
}

pub fn history_dir(group: &str) -> String {
    format!("/zksync/{group}/history")
}

/// Zero-padded, so the entries sort by epoch.
pub fn history_path(group: &str, epoch: u64) -> String {
    format!("{}/{epoch:010}", history_dir(group))
}

pub fn switchover_path(group: &str) -> String {
    format!("/zksync/{group}/switchover")
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderNode {
    pub id: String,
    pub addr: String,
    pub epoch: u64,
    /// The master this one replaced, for `+switch-master`.
    #[serde(default)]
    pub previous: Option<String>,
}

/// A history entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub epoch: u64,
    pub from: Option<String>,
    pub to: String,
    /// `bootstrap`, `election`, `switchover`, `shutdown` or `forced`.
    pub reason: String,
}

/// Where a switchover stands; each step is written by the member that made it.
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

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub fn decode<'a, T: Deserialize<'a>>(data: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(data).map_err(|e| e.to_string())
}

/// The members that may become master, best first: fresh (`ALIVE`),
/// `replica-priority` not 0, and no more than `max_lag` bytes behind the
/// highest offset known (theirs, or `master_offset`, the old master's last
/// published one). Best = highest offset, then lowest priority number (as
/// Sentinel reads `replica-priority`), then lowest id.
pub fn rank(members: &[Member], master_offset: i64, max_lag: i64) -> Vec<&Member> {
    let fresh: Vec<&Member> = members
        .iter()
        .filter(|m| m.node.status == ALIVE && m.node.zksync.priority > 0)
        .collect();
    let top = fresh
        .iter()
        .map(|m| m.node.zksync.repl_offset)
        .max()
        .unwrap_or(0)
        .max(master_offset);
    let mut eligible: Vec<&Member> = fresh
        .into_iter()
        .filter(|m| top - m.node.zksync.repl_offset <= max_lag)
        .collect();
    eligible.sort_by(|a, b| {
        let (a, b) = (&a.node.zksync, &b.node.zksync);
        b.repl_offset.cmp(&a.repl_offset).then(a.priority.cmp(&b.priority))
    });
    // The sort is stable and members come sorted by id: ties go to the lowest id.
    eligible
}

/// Whether `member` may be the target of ZKSYNC.FAILOVER.
pub fn can_lead(member: &Member) -> bool {
    member.node.status == ALIVE && member.node.zksync.priority > 0 && member.node.zksync.role == Role::Replica
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::load::Figures;
    use crate::group::member::{MemberNode, WARNING};

    fn member(id: &str, offset: i64, priority: i64, status: &str) -> Member {
        let (host, port) = crate::group::split_addr(id).unwrap();
        let mut figures = Figures::new(Role::Replica, offset, 0, 1, 0, 0);
        figures.priority = priority;
        Member {
            id: id.to_string(),
            node: MemberNode::new(host, port, status, figures),
            mtime_ms: 0,
            mzxid: 0,
        }
    }

    fn ids(ranked: Vec<&Member>) -> Vec<&str> {
        ranked.into_iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn ranks_by_offset_then_priority_then_id() {
        let members = vec![
            member("10.0.0.1:1", 100, 100, ALIVE),
            member("10.0.0.2:1", 200, 100, ALIVE),
            member("10.0.0.3:1", 200, 50, ALIVE),
            member("10.0.0.4:1", 200, 50, ALIVE),
            member("10.0.0.5:1", 900, 0, ALIVE),
            member("10.0.0.6:1", 900, 10, WARNING),
        ];
        assert_eq!(
            ids(rank(&members, 0, 1000)),
            vec!["10.0.0.3:1", "10.0.0.4:1", "10.0.0.2:1", "10.0.0.1:1"]
        );
        // Too far behind the best, or behind the old master's offset.
        assert_eq!(
            ids(rank(&members, 0, 50)),
            vec!["10.0.0.3:1", "10.0.0.4:1", "10.0.0.2:1"]
        );
        assert!(rank(&members, 10_000, 1000).is_empty());
        assert!(rank(&[], 0, 0).is_empty());
    }

    #[test]
    fn nodes_round_trip() {
        let node = LeaderNode {
            id: "a:1".into(),
            addr: "a:1".into(),
            epoch: 3,
            previous: None,
        };
        assert_eq!(decode::<LeaderNode>(&encode(&node)).unwrap(), node);
        let json: serde_json::Value = serde_json::from_slice(&encode(&node)).unwrap();
        assert_eq!(json["epoch"], 3);
        assert!(decode::<LeaderNode>(b"nope").is_err());
        assert_eq!(history_path("g", 42), "/zksync/g/history/0000000042");
    }
}
