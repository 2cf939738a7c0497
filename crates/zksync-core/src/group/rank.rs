//! Who may become the group's master, and in which order.

use super::load::Role;
use super::member::Status;
use super::view::Member;

/// The members that may become master, best first: fresh (`Alive`),
/// `replica-priority` not 0, and no more than `max_lag` bytes behind the
/// highest offset known (theirs, or `master_offset`, the old master's last
/// published one). Best = highest offset, then lowest priority number (as
/// Sentinel reads `replica-priority`), then lowest id.
pub fn rank(members: &[Member], master_offset: i64, max_lag: i64) -> Vec<&Member> {
    let fresh: Vec<&Member> = members
        .iter()
        .filter(|m| m.node.status == Status::Alive && m.node.zksync.priority > 0)
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

/// Whether `member` may be the target of a switchover: a fresh replica
/// with `replica-priority` above 0.
pub fn can_lead(member: &Member) -> bool {
    member.node.status == Status::Alive && member.node.zksync.priority > 0 && member.node.zksync.role == Role::Replica
}

/// The best switchover target, however far behind: the master waits for it.
pub fn best_target(members: &[Member]) -> Option<String> {
    let candidates: Vec<Member> = members.iter().filter(|m| can_lead(m)).cloned().collect();
    rank(&candidates, 0, i64::MAX).first().map(|m| m.id.clone())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::group::load::Figures;
    use crate::group::member::MemberNode;

    /// A member for tests: `id` is `host:port`.
    pub fn member(id: &str, role: Role, offset: i64, priority: i64, status: Status) -> Member {
        let (host, port) = crate::group::split_addr(id).unwrap();
        let mut figures = Figures::new(role, offset, 0, 1, 0, 0);
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
        let replica = |id, offset, priority, status| member(id, Role::Replica, offset, priority, status);
        let members = vec![
            replica("10.0.0.1:1", 100, 100, Status::Alive),
            replica("10.0.0.2:1", 200, 100, Status::Alive),
            replica("10.0.0.3:1", 200, 50, Status::Alive),
            replica("10.0.0.4:1", 200, 50, Status::Alive),
            replica("10.0.0.5:1", 900, 0, Status::Alive),
            replica("10.0.0.6:1", 900, 10, Status::Warning),
        ];
        let cases: [(i64, i64, &[&str]); 4] = [
            (0, 1000, &["10.0.0.3:1", "10.0.0.4:1", "10.0.0.2:1", "10.0.0.1:1"]),
            // Too far behind the best.
            (0, 50, &["10.0.0.3:1", "10.0.0.4:1", "10.0.0.2:1"]),
            (0, 0, &["10.0.0.3:1", "10.0.0.4:1", "10.0.0.2:1"]),
            // Everyone behind the old master's offset.
            (10_000, 1000, &[]),
        ];
        for (master_offset, max_lag, want) in cases {
            assert_eq!(
                ids(rank(&members, master_offset, max_lag)),
                want,
                "{master_offset} {max_lag}"
            );
        }
        assert!(rank(&[], 0, 0).is_empty());
    }

    #[test]
    fn targets_are_fresh_replicas_that_may_lead() {
        let cases = [
            (member("a:1", Role::Replica, 0, 100, Status::Alive), true),
            (member("a:1", Role::Master, 0, 100, Status::Alive), false),
            (member("a:1", Role::Replica, 0, 0, Status::Alive), false),
            (member("a:1", Role::Replica, 0, 100, Status::Warning), false),
            (member("a:1", Role::Replica, 0, 100, Status::Other), false),
        ];
        for (m, want) in cases {
            assert_eq!(can_lead(&m), want, "{:?}", m.node);
        }
        let members = vec![
            member("a:1", Role::Master, 900, 100, Status::Alive),
            member("b:1", Role::Replica, 100, 100, Status::Alive),
            member("c:1", Role::Replica, 200, 100, Status::Alive),
            member("d:1", Role::Replica, 300, 0, Status::Alive),
        ];
        assert_eq!(best_target(&members).as_deref(), Some("c:1"));
        assert_eq!(best_target(&members[..1]), None);
    }
}
