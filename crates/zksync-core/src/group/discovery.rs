//! The group as Redis Sentinel describes a monitored master, so that any
//! Sentinel client (redis-py `Sentinel`, Jedis, Lettuce, go-redis, ioredis)
//! finds and follows the group's master by asking the members. The field
//! names are Sentinel's; every value is text, as Sentinel sends it.

use super::leader::LeaderNode;
use super::load::Role;
use super::split_addr;
use super::view::Row;

/// What a member may say about the leadership: the leader, but only while
/// this member can vouch for it. The master vouches for itself while it
/// holds a lease (ZooKeeper's or its failsafe's); another member while its
/// ZooKeeper session is connected. Otherwise it names the master it granted
/// failsafe to (`granted`, while that grant runs): that master may be
/// writing on it. A fenced master, or a member cut from ZooKeeper that
/// granted nothing, names no one.
pub fn vouched(
    leader: Option<LeaderNode>,
    connected: bool,
    me: Option<&str>,
    fenced: bool,
    granted: Option<LeaderNode>,
) -> Option<LeaderNode> {
    let mine = |l: &LeaderNode| me == Some(l.id.as_str());
    match leader.filter(|l| connected || mine(l)) {
        Some(l) if mine(&l) && fenced => None,
        Some(l) => Some(l),
        None => granted.filter(|g| !mine(g)),
    }
}

/// The group as one Sentinel-monitored master.
pub struct Group<'a> {
    pub name: &'a str,
    pub leader: &'a LeaderNode,
    pub epoch: u64,
    /// The members' rows, this member's included.
    pub rows: &'a [Row<'a>],
    pub me: Option<&'a str>,
    /// The session timeout, as Sentinel's `down-after-milliseconds`.
    pub timeout_ms: u64,
}

/// One Sentinel reply entry: field/value pairs in order.
pub type Fields = Vec<(&'static str, String)>;

impl Group<'_> {
    /// `SENTINEL MASTER <name>`, and this group's entry of `SENTINEL MASTERS`.
    pub fn master(&self) -> Fields {
        let (ip, port) = endpoint(&self.leader.addr);
        let members = self.rows.len().max(1);
        vec![
            ("name", self.name.to_string()),
            ("ip", ip),
            ("port", port),
            ("runid", self.leader.id.clone()),
            ("flags", "master".into()),
            ("link-pending-commands", "0".into()),
            ("link-refcount", "1".into()),
            ("last-ping-sent", "0".into()),
            ("last-ok-ping-reply", "0".into()),
            ("last-ping-reply", "0".into()),
            ("down-after-milliseconds", self.timeout_ms.to_string()),
            ("info-refresh", "0".into()),
            ("role-reported", "master".into()),
            ("role-reported-time", "0".into()),
            ("config-epoch", self.epoch.to_string()),
            ("num-slaves", self.replicas().count().to_string()),
            ("num-other-sentinels", self.others().count().to_string()),
            ("quorum", (members / 2 + 1).to_string()),
            ("failover-timeout", (self.timeout_ms * 2).to_string()),
            ("parallel-syncs", "1".into()),
        ]
    }

    /// `SENTINEL REPLICAS <name>`: the replica members; a stale one is down.
    pub fn replicas_fields(&self) -> Vec<Fields> {
        let (master_ip, master_port) = endpoint(&self.leader.addr);
        self.replicas()
            .map(|row| {
                let (ip, port) = endpoint(&row.member.node.addr());
                let figures = &row.member.node.zksync;
                let (flags, link) = if row.stale {
                    ("slave,s_down", "err")
                } else {
                    ("slave", "ok")
                };
                let mut fields = self.instance(format!("{ip}:{port}"), row, flags);
                fields.extend([
                    ("info-refresh", row.age_ms.to_string()),
                    ("role-reported", "slave".into()),
                    ("role-reported-time", "0".into()),
                    ("master-link-down-time", "0".into()),
                    ("master-link-status", link.into()),
                    ("master-host", master_ip.clone()),
                    ("master-port", master_port.clone()),
                    ("slave-priority", figures.priority.to_string()),
                    ("slave-repl-offset", figures.repl_offset.to_string()),
                    ("replica-announced", "1".into()),
                ]);
                fields
            })
            .collect()
    }

    /// `SENTINEL SENTINELS <name>`: the other members, each answering as a Sentinel.
    pub fn sentinels_fields(&self) -> Vec<Fields> {
        self.others()
            .map(|row| {
                let flags = if row.stale { "sentinel,s_down" } else { "sentinel" };
                let mut fields = self.instance(row.member.id.clone(), row, flags);
                fields.extend([
                    ("last-hello-message", row.age_ms.to_string()),
                    ("voted-leader", "?".into()),
                    ("voted-leader-epoch", "0".into()),
                ]);
                fields
            })
            .collect()
    }

    /// The fields Sentinel gives every instance it watches.
    fn instance(&self, name: String, row: &Row, flags: &str) -> Fields {
        let (ip, port) = endpoint(&row.member.node.addr());
        vec![
            ("name", name),
            ("ip", ip),
            ("port", port),
            ("runid", row.member.id.clone()),
            ("flags", flags.into()),
            ("link-pending-commands", "0".into()),
            ("link-refcount", "1".into()),
            ("last-ping-sent", "0".into()),
            ("last-ok-ping-reply", row.age_ms.to_string()),
            ("last-ping-reply", row.age_ms.to_string()),
            ("down-after-milliseconds", self.timeout_ms.to_string()),
        ]
    }

    fn replicas(&self) -> impl Iterator<Item = &Row<'_>> {
        self.rows
            .iter()
            .filter(|r| r.member.node.zksync.role == Role::Replica && r.member.id != self.leader.id)
    }

    fn others(&self) -> impl Iterator<Item = &Row<'_>> {
        self.rows.iter().filter(|r| Some(r.member.id.as_str()) != self.me)
    }
}

/// `(ip, port)` of `host:port`, as text.
fn endpoint(addr: &str) -> (String, String) {
    match split_addr(addr) {
        Some((host, port)) => (host.to_string(), port.to_string()),
        None => (addr.to_string(), "0".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::member::Status;
    use crate::group::rank::tests::member;
    use crate::group::view::View;

    fn leader(id: &str) -> LeaderNode {
        LeaderNode {
            id: id.into(),
            addr: id.into(),
            epoch: 4,
            previous: None,
        }
    }

    #[test]
    fn only_a_member_that_can_vouch_names_the_leader() {
        let cases = [
            // (connected, me, fenced, named)
            (true, Some("b:1"), false, true),
            (true, Some("a:1"), false, true),
            (true, Some("a:1"), true, false),
            (true, Some("b:1"), true, true),
            (false, Some("b:1"), false, false),
            // The master writes (on a lease still running, or on grants).
            (false, Some("a:1"), false, true),
            (false, Some("a:1"), true, false),
        ];
        for (connected, me, fenced, named) in cases {
            let got = vouched(Some(leader("a:1")), connected, me, fenced, None);
            assert_eq!(got.is_some(), named, "{connected} {me:?} {fenced}");
        }
        assert_eq!(vouched(None, true, None, false, None), None);
    }

    #[test]
    fn a_member_that_granted_failsafe_names_that_master() {
        let granted = || Some(leader("a:1"));
        // Cut from ZooKeeper, or seeing no leader there: the granted master.
        assert_eq!(
            vouched(Some(leader("a:1")), false, Some("b:1"), false, granted()),
            granted()
        );
        assert_eq!(vouched(None, true, Some("b:1"), false, granted()), granted());
        // A leader read on a live session is named whatever was granted.
        assert_eq!(
            vouched(Some(leader("c:1")), true, Some("b:1"), false, granted()),
            Some(leader("c:1"))
        );
        // A grant never makes a fenced master name itself.
        assert_eq!(vouched(None, false, Some("a:1"), true, granted()), None);
    }

    fn field<'a>(fields: &'a Fields, name: &str) -> &'a str {
        fields
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    #[test]
    fn the_group_as_sentinel_describes_it() {
        let view = View {
            members: vec![
                member("10.0.0.1:6379", Role::Master, 100, 100, Status::Alive),
                member("10.0.0.2:6379", Role::Replica, 90, 50, Status::Alive),
                member("10.0.0.3:6379", Role::Replica, 80, 100, Status::Alive),
            ],
        };
        let rows = view.rows(0, 1_000);
        let leader = leader("10.0.0.1:6379");
        let group = Group {
            name: "cache",
            leader: &leader,
            epoch: 4,
            rows: &rows,
            me: Some("10.0.0.2:6379"),
            timeout_ms: 2000,
        };
        let master = group.master();
        let expect = [
            ("name", "cache"),
            ("ip", "10.0.0.1"),
            ("port", "6379"),
            ("flags", "master"),
            ("num-slaves", "2"),
            ("num-other-sentinels", "2"),
            ("quorum", "2"),
            ("config-epoch", "4"),
            ("down-after-milliseconds", "2000"),
        ];
        for (name, value) in expect {
            assert_eq!(field(&master, name), value, "{name}");
        }
        let replicas = group.replicas_fields();
        assert_eq!(replicas.len(), 2);
        assert_eq!(field(&replicas[0], "name"), "10.0.0.2:6379");
        assert_eq!(field(&replicas[0], "slave-priority"), "50");
        assert_eq!(field(&replicas[0], "master-host"), "10.0.0.1");
        assert_eq!(field(&replicas[1], "slave-repl-offset"), "80");
        let sentinels = group.sentinels_fields();
        let names: Vec<&str> = sentinels.iter().map(|s| field(s, "name")).collect();
        assert_eq!(names, ["10.0.0.1:6379", "10.0.0.3:6379"]);
    }
}
