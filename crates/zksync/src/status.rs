//! Figures for ZKSYNC.STATUS and INFO zksync. Each field has one writer
//! (the session thread or the apply thread); commands read a snapshot.

use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;
use zksync_core::group::election::Report as FailsafeReport;
use zksync_core::group::leader::LeaderNode;
use zksync_core::lease::Deadline;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SessionState {
    Connecting = 0,
    Connected = 1,
    Suspended = 2,
    Expired = 3,
    AuthFailed = 4,
    Closed = 5,
}

impl SessionState {
    pub fn name(self) -> &'static str {
        match self {
            SessionState::Connecting => "connecting",
            SessionState::Connected => "connected",
            SessionState::Suspended => "suspended",
            SessionState::Expired => "expired",
            SessionState::AuthFailed => "auth_failed",
            SessionState::Closed => "closed",
        }
    }

    fn from_u8(v: u8) -> SessionState {
        match v {
            1 => SessionState::Connected,
            2 => SessionState::Suspended,
            3 => SessionState::Expired,
            4 => SessionState::AuthFailed,
            5 => SessionState::Closed,
            _ => SessionState::Connecting,
        }
    }
}

#[derive(Default)]
pub struct Status {
    // Written by the session thread.
    state: AtomicU8,
    /// Until when the session is confirmed: 2/3 of the timeout after the
    /// sending of the last request ZooKeeper answered.
    confirmed: Deadline,
    pub session_id: AtomicI64,
    pub session_timeout_ms: AtomicU64,
    pub last_zxid: AtomicI64,
    pub resyncs: AtomicU64,
    pub last_resync_ms: AtomicU64,
    server: Mutex<String>,
    /// The group this server is a registered member of.
    member: Mutex<Option<MemberOf>>,
    /// Times the main thread was found stalled (`zksync.stall-timeout`).
    pub stalls: AtomicU64,
    /// The group's master, and the highest epoch seen.
    leader: Mutex<Option<LeaderNode>>,
    /// What failsafe shows: the list, the grants.
    failsafe: Mutex<Failsafe>,
    epoch: AtomicU64,
    // Written by the apply thread.
    pub znodes: AtomicU64,
    /// Heap bytes of the index STAT and LS answer from (`Index::bytes`).
    pub index_bytes: AtomicU64,
    pub events_applied: AtomicU64,
    /// Nanoseconds the apply thread has held the Redis lock: main-thread
    /// time the mirror took.
    pub lock_held_ns: AtomicU64,
    pub mirrors: AtomicU64,
    pub diverged: AtomicU64,
    // Redis Cluster, written at every serverCron: the slots this node serves, the keys it holds.
    pub cluster_slots: AtomicU64,
    pub cluster_keys: AtomicU64,
}

/// A static: STATUS and INFO, which Redis calls without a pointer of ours,
/// read what every thread writes here.
pub static STATUS: Lazy<Status> = Lazy::new(Status::default);

impl Status {
    /// The session's state. `connected` holds only while the session is
    /// confirmed, by the monotonic clock: a silent link turns it
    /// `suspended` on time whatever the session thread is waiting for.
    pub fn state(&self) -> SessionState {
        match SessionState::from_u8(self.state.load(Ordering::Relaxed)) {
            SessionState::Connected if !self.confirmed.live(Instant::now()) => SessionState::Suspended,
            state => state,
        }
    }

    /// A request sent at some instant was answered: the session is
    /// confirmed until `until` (see `lease::expiry`).
    pub fn confirm(&self, until: Instant) {
        self.confirmed.extend(until);
    }

    /// A new session starts unconfirmed.
    pub fn unconfirm(&self) {
        self.confirmed.revoke();
    }

    pub fn set_state(&self, state: SessionState) {
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// The state STATUS reports: `diverged` overrides a healthy session.
    pub fn state_name(&self) -> &'static str {
        match self.state() {
            SessionState::Connected if self.diverged.load(Ordering::Relaxed) > 0 => "diverged",
            state => state.name(),
        }
    }

    pub fn server(&self) -> String {
        self.server.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_server(&self, server: &str) {
        *self.server.lock().unwrap_or_else(|e| e.into_inner()) = server.to_string();
    }

    /// The group this server is a registered member of, and its id there.
    pub fn member(&self) -> Option<MemberOf> {
        self.member.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_member(&self, member: Option<MemberOf>) {
        *self.member.lock().unwrap_or_else(|e| e.into_inner()) = member;
    }

    pub fn set_leader(&self, leader: Option<&LeaderNode>, epoch: u64) {
        let mut current = self.leader.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref() != leader {
            *current = leader.cloned();
        }
        self.epoch.store(epoch, Ordering::Relaxed);
    }

    pub fn leader(&self) -> Option<LeaderNode> {
        self.leader.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The failsafe's state after its last decision; `on_grants`: this
    /// master writes on its members' grants now.
    pub fn set_failsafe(&self, report: FailsafeReport, on_grants: bool) {
        *self.failsafe.lock().unwrap_or_else(|e| e.into_inner()) = Failsafe { report, on_grants };
    }

    /// The master this member granted failsafe to, while that grant runs:
    /// discovery keeps naming it when ZooKeeper cannot be asked.
    pub fn granted_master(&self, now: Instant) -> Option<LeaderNode> {
        let failsafe = self.failsafe.lock().unwrap_or_else(|e| e.into_inner());
        let (id, epoch, until) = failsafe.report.granted.clone()?;
        (now < until).then(|| LeaderNode {
            addr: id.clone(),
            id,
            epoch,
            previous: None,
        })
    }

    pub fn note_zxid(&self, zxid: i64) {
        self.last_zxid.fetch_max(zxid, Ordering::Relaxed);
    }

    /// `(field, value)` pairs in the order the README documents them.
    pub fn fields(&self, fencing: Fencing) -> Vec<(&'static str, Field)> {
        let int = |a: &AtomicU64| Field::Int(a.load(Ordering::Relaxed) as i64);
        let mut fields = vec![
            ("state", Field::Text(self.state_name().to_string())),
            ("server", Field::Text(self.server())),
            (
                "session_id",
                Field::Text(format!("{:#x}", self.session_id.load(Ordering::Relaxed))),
            ),
            ("session_timeout", int(&self.session_timeout_ms)),
            (
                "last_zxid",
                Field::Text(format!("{:#x}", self.last_zxid.load(Ordering::Relaxed))),
            ),
            ("mirrors", int(&self.mirrors)),
            ("znodes", int(&self.znodes)),
            ("index_bytes", int(&self.index_bytes)),
            ("events_applied", int(&self.events_applied)),
            ("resyncs", int(&self.resyncs)),
            ("last_resync_ms", int(&self.last_resync_ms)),
            (
                "lock_held_us",
                Field::Int((self.lock_held_ns.load(Ordering::Relaxed) / 1000) as i64),
            ),
        ];
        let locks = crate::shared::locks();
        let counts = locks.counts();
        fields.push(("locks_held", Field::Int(locks.held() as i64)));
        fields.push(("lock_waiters", Field::Int(locks.waiting() as i64)));
        fields.push(("lock_acquisitions", Field::Int(counts.acquisitions as i64)));
        fields.push(("lock_losses", Field::Int(counts.losses as i64)));
        drop(locks);
        if crate::redis::cluster::enabled() {
            fields.push(("cluster_slots", int(&self.cluster_slots)));
            fields.push(("cluster_keys", int(&self.cluster_keys)));
        }
        let member = self.member.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(MemberOf { group, id }) = member {
            let role = if fencing.replica { "replica" } else { "master" };
            fields.push(("group", Field::Text(group)));
            fields.push(("member_id", Field::Text(id)));
            fields.push(("role", Field::Text(role.to_string())));
            // During failsafe, the master this member granted (as discovery names it).
            let leader = self.leader().or_else(|| self.granted_master(Instant::now()));
            let leader = leader.map(|l| l.id).unwrap_or_default();
            fields.push(("leader", Field::Text(leader)));
            fields.push(("epoch", int(&self.epoch)));
            fields.push(("fenced", Field::Int(fencing.fenced as i64)));
            fields.push(("stalls", int(&self.stalls)));
            let failsafe = self.failsafe.lock().unwrap_or_else(|e| e.into_inner());
            fields.extend(failsafe.fields(fencing.failsafe, Instant::now()));
        }
        fields
    }
}

/// Failsafe as STATUS shows it.
#[derive(Default)]
struct Failsafe {
    report: FailsafeReport,
    on_grants: bool,
}

impl Failsafe {
    fn fields(&self, enabled: bool, now: Instant) -> [(&'static str, Field); 4] {
        let state = match (enabled, self.on_grants) {
            (false, _) => "off",
            (true, false) => "standby",
            (true, true) => "active",
        };
        let list = self.report.list.as_ref().map_or(String::new(), |l| {
            let members: Vec<&str> = l.members.iter().map(String::as_str).collect();
            format!("{}:{}", l.epoch, members.join(","))
        });
        let granted_ms = self.report.granted.as_ref().map_or(0, |(_, _, until)| {
            until.saturating_duration_since(now).as_millis() as i64
        });
        [
            ("failsafe", Field::Text(state.to_string())),
            ("failsafe_list", Field::Text(list)),
            ("failsafe_grants", Field::Text(self.report.grantors.join(","))),
            ("failsafe_granted_ms", Field::Int(granted_ms)),
        ]
    }
}

/// This server's role and lease, as the fencing filter sees them.
#[derive(Clone, Copy, Debug)]
pub struct Fencing {
    pub replica: bool,
    pub fenced: bool,
    /// `zksync.failsafe`.
    pub failsafe: bool,
}

/// A group this server is a member of, under an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberOf {
    pub group: String,
    pub id: String,
}

pub enum Field {
    Int(i64),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Hop;

    /// `name` appears in `text` as a word of its own (not inside a longer name).
    fn mentions(text: &str, name: &str) -> bool {
        let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
        text.match_indices(name).any(|(at, _)| {
            let before = text[..at].chars().next_back();
            let after = text[at + name.len()..].chars().next();
            !before.is_some_and(is_name) && !after.is_some_and(is_name)
        })
    }

    /// Every STATUS and INFO field the code gives, a group member's
    /// included, is named in the docs, and INFO's latency fields by the
    /// name Redis gives them (prefixed with the module's), with each hop.
    #[test]
    fn every_field_is_documented() {
        let docs = [
            include_str!("../../../docs/mirror.md"),
            include_str!("../../../docs/load.md"),
            include_str!("../../../docs/locks.md"),
            include_str!("../../../docs/architecture.md"),
        ]
        .concat();
        let status = Status::default();
        status.set_member(Some(MemberOf {
            group: "g".into(),
            id: "127.0.0.1:6379".into(),
        }));
        let fencing = Fencing {
            replica: false,
            fenced: false,
            failsafe: true,
        };
        for (name, _) in status.fields(fencing) {
            assert!(mentions(&docs, name), "STATUS field {name} is not in the docs");
        }
        assert!(docs.contains("`zksync_latency_usec_<hop>:"));
        for hop in Hop::ALL {
            assert!(mentions(&docs, hop.name()), "hop {} is not in the docs", hop.name());
        }
    }
}
