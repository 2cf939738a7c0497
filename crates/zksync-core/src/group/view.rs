//! The group's table as this member sees it: written whole by the session
//! thread on every change of the members directory, read by ZKSYNC.LOAD on
//! the main thread from memory.

use super::load::Role;
use super::member::{MemberNode, Status};

#[derive(Clone)]
pub struct Member {
    pub id: String,
    pub node: MemberNode,
    /// When the member last wrote its znode (ZooKeeper's clock, ms since the epoch).
    pub mtime_ms: i64,
    /// The zxid of that write.
    pub mzxid: i64,
}

/// Members sorted by id.
#[derive(Default)]
pub struct View {
    pub members: Vec<Member>,
}

/// One member as ZKSYNC.LOAD shows it.
pub struct Row<'a> {
    pub member: &'a Member,
    pub age_ms: i64,
    /// Bytes behind the master's published offset; 0 for the master, -1 when no master is known.
    pub lag: i64,
    /// Not to be picked: it flagged its own figures as old, or has not
    /// written for longer than its heartbeat allows.
    pub stale: bool,
}

impl View {
    /// The table of `members`, in any order.
    pub fn new(mut members: Vec<Member>) -> View {
        members.sort_by(|a, b| a.id.cmp(&b.id));
        View { members }
    }

    /// `stale_after_ms`: the heartbeat plus 3 load intervals plus the session timeout.
    pub fn rows(&self, now_ms: i64, stale_after_ms: i64) -> Vec<Row<'_>> {
        let masters: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| m.node.zksync.role == Role::Master)
            .collect();
        let master_offset = match masters.as_slice() {
            [master] => Some(master.node.zksync.repl_offset),
            _ => None,
        };
        self.members
            .iter()
            .map(|member| {
                let figures = &member.node.zksync;
                let age_ms = (now_ms - member.mtime_ms).max(0);
                let lag = match (figures.role, master_offset) {
                    (Role::Master, _) => 0,
                    (Role::Replica, Some(offset)) => (offset - figures.repl_offset).max(0),
                    (Role::Replica, None) => -1,
                };
                Row {
                    member,
                    age_ms,
                    lag,
                    stale: member.node.status != Status::Alive || age_ms > stale_after_ms,
                }
            })
            .collect()
    }

    /// The address of the fresh member of `role` (any with `None`) with the
    /// lowest score; ties go to the lowest id.
    pub fn pick(&self, role: Option<Role>, now_ms: i64, stale_after_ms: i64) -> Option<String> {
        self.rows(now_ms, stale_after_ms)
            .into_iter()
            .filter(|row| !row.stale && role.is_none_or(|r| row.member.node.zksync.role == r))
            .min_by(|a, b| (a.member.node.zksync.score, &a.member.id).cmp(&(b.member.node.zksync.score, &b.member.id)))
            .map(|row| row.member.node.addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::load::{Cpu, Figures};

    fn member(id: &str, role: Role, cpu: u32, offset: i64, status: Status, mtime_ms: i64) -> Member {
        let (host, port) = crate::group::split_addr(id).unwrap();
        // Every member replays the same writes: only CPU tells them apart.
        let figures = Figures::new(role, offset, 50_000, 1, 0, 0).with_cpu(Some(Cpu::from(cpu)));
        Member {
            id: id.to_string(),
            node: MemberNode::new(host, port, status, figures),
            mtime_ms,
            mzxid: 0,
        }
    }

    #[test]
    fn pick_lowest_fresh_score_of_the_role() {
        let view = View {
            members: vec![
                member("10.0.0.1:6379", Role::Master, 90, 1000, Status::Alive, 1000),
                member("10.0.0.2:6379", Role::Replica, 10, 900, Status::Alive, 1000),
                member("10.0.0.3:6379", Role::Replica, 5, 1000, Status::Alive, 0),
                member("10.0.0.4:6379", Role::Replica, 0, 1000, Status::Warning, 1000),
            ],
        };
        let now = 1500;
        assert_eq!(view.pick(None, now, 1000), Some("10.0.0.2:6379".into()));
        assert_eq!(view.pick(None, now, 2000), Some("10.0.0.3:6379".into()));
        assert_eq!(view.pick(Some(Role::Master), now, 1000), Some("10.0.0.1:6379".into()));
        let rows = view.rows(now, 1000);
        assert_eq!(rows.iter().map(|r| r.lag).collect::<Vec<_>>(), vec![0, 100, 0, 0]);
        assert_eq!(
            rows.iter().map(|r| r.stale).collect::<Vec<_>>(),
            vec![false, false, true, true]
        );
        assert_eq!(View::default().pick(None, now, 1000), None);
    }
}
