//! This server as a group member, without I/O: when its member znode is
//! worth writing (`Publisher`), and the group's table decoded from the
//! members directory (`Table`).
//!
//! The main thread samples figures every load interval; they are written
//! only when worth it (`Figures::moved_from`, the status, the heartbeat).

use super::load::{Figures, Sample, HEARTBEAT};
use super::member::{MemberNode, Status};
use super::split_addr;
use super::view::Member;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

/// A member that stopped sampling for this many load intervals says so.
const STALE_INTERVALS: u32 = 3;

/// This member's znode: its id and path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Own {
    pub id: String,
    pub path: String,
}

/// A member znode to write.
#[derive(Clone, Debug, PartialEq)]
pub struct Publication {
    pub own: Own,
    pub node: MemberNode,
    /// This session's znode is at that path already: overwrite it.
    pub overwrite: bool,
}

struct Published {
    path: String,
    figures: Figures,
    status: Status,
    at: Instant,
}

#[derive(Default)]
pub struct Publisher {
    /// The main thread's last sample, and when it arrived.
    sample: Option<(Sample, Instant)>,
    /// The member znode as this session wrote it; `None` until registered.
    published: Option<Published>,
    /// Write the member znode at the next publish, moved or not.
    force: bool,
    /// The main thread is stalled: whatever the sample, say `WARNING`.
    stalled: bool,
}

impl Publisher {
    pub fn take_sample(&mut self, sample: Sample, now: Instant) {
        self.sample = Some((sample, now));
    }

    pub fn sample(&self) -> Option<&Sample> {
        self.sample.as_ref().map(|(s, _)| s)
    }

    /// This member's id: its announced address, else `127.0.0.1:<port>`,
    /// once the main thread told the port.
    pub fn id(&self, announce: Option<&str>) -> Option<String> {
        let (sample, _) = self.sample.as_ref()?;
        Some(match announce {
            Some(addr) => addr.to_string(),
            None => format!("127.0.0.1:{}", sample.port),
        })
    }

    /// A new session owns no znode yet (nor does one whose znode was deleted).
    pub fn unpublished(&mut self) {
        self.published = None;
    }

    pub fn force(&mut self) {
        self.force = true;
    }

    /// The main thread stalled (`true`) or runs again: the status to publish.
    pub fn set_stalled(&mut self, stalled: bool) {
        self.stalled = stalled;
    }

    /// The path of the znode this session wrote, if any.
    pub fn published_path(&self) -> Option<&str> {
        self.published.as_ref().map(|p| p.path.as_str())
    }

    /// The member znode to write now, if missing or worth rewriting: a
    /// figure moved, the status changed, or the heartbeat is due.
    pub fn due(&self, own: Own, epoch: u64, load_interval: Duration, now: Instant) -> Option<Publication> {
        let (sample, at) = self.sample.as_ref()?;
        let stale = now.saturating_duration_since(*at) > load_interval * STALE_INTERVALS;
        let status = match stale || self.stalled {
            true => Status::Warning,
            false => Status::Alive,
        };
        let mut figures = sample.figures.clone();
        figures.epoch = epoch;
        let due = match &self.published {
            None => true,
            Some(_) if self.force => true,
            Some(p) => {
                p.path != own.path
                    || p.status != status
                    || figures.moved_from(&p.figures)
                    || now.saturating_duration_since(p.at) >= HEARTBEAT
            }
        };
        let (host, port) = split_addr(&own.id)?;
        let node = MemberNode::new(host, port, status, figures);
        let overwrite = self.published.as_ref().is_some_and(|p| p.path == own.path);
        due.then_some(Publication { own, node, overwrite })
    }

    /// `publication` was written.
    pub fn published(&mut self, publication: Publication, now: Instant) {
        self.force = false;
        self.published = Some(Published {
            path: publication.own.path,
            figures: publication.node.zksync,
            status: publication.node.status,
            at: now,
        });
    }
}

/// A member znode as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub data: Vec<u8>,
    /// When it was last written (ZooKeeper's clock, ms since the epoch).
    pub mtime_ms: i64,
    pub mzxid: i64,
}

/// The members directory as read, by path.
#[derive(Default)]
pub struct Table {
    entries: BTreeMap<String, Entry>,
    /// Malformed member znodes already logged: (path, mtime).
    warned: HashSet<(String, i64)>,
}

impl Table {
    pub fn replace(&mut self, entries: BTreeMap<String, Entry>) {
        self.entries = entries;
    }

    /// A member znode read again: `None` if it is gone.
    pub fn update(&mut self, path: &str, entry: Option<Entry>) {
        match entry {
            Some(entry) => self.entries.insert(path.to_string(), entry),
            None => self.entries.remove(path),
        };
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path)
    }

    /// The members, sorted by id, and a warning for each malformed znode
    /// not reported before.
    pub fn decode(&mut self) -> (Vec<Member>, Vec<String>) {
        let mut members = Vec::with_capacity(self.entries.len());
        let mut warnings = Vec::new();
        for (path, entry) in &self.entries {
            match MemberNode::decode(&entry.data) {
                Ok(node) => members.push(Member {
                    id: path.rsplit('/').next().unwrap_or_default().to_string(),
                    node,
                    mtime_ms: entry.mtime_ms,
                    mzxid: entry.mzxid,
                }),
                Err(e) => {
                    if self.warned.insert((path.clone(), entry.mtime_ms)) {
                        warnings.push(format!("skipping malformed member znode {path}: {e}"));
                    }
                }
            }
        }
        (members, warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::load::Role;

    fn sample(offset: i64, ops: i64) -> Sample {
        Sample {
            port: 6379,
            figures: Figures::new(Role::Replica, offset, ops, 1, 0, 0),
            master: None,
        }
    }

    fn own(id: &str) -> Own {
        Own {
            id: id.to_string(),
            path: format!("/zksync/g/members/{id}"),
        }
    }

    #[test]
    fn ids_from_the_port_or_the_announced_address() {
        let mut p = Publisher::default();
        assert_eq!(p.id(None), None);
        p.take_sample(sample(0, 0), Instant::now());
        assert_eq!(p.id(None).as_deref(), Some("127.0.0.1:6379"));
        assert_eq!(p.id(Some("10.0.0.1:7000")).as_deref(), Some("10.0.0.1:7000"));
    }

    #[test]
    fn a_stalled_member_says_warning_at_once_and_alive_after() {
        let t = Instant::now();
        let interval = Duration::from_secs(1);
        let mut p = Publisher::default();
        p.take_sample(sample(0, 10), t);
        let first = p.due(own("a:1"), 0, interval, t).unwrap();
        p.published(first, t);
        for (stalled, status) in [(true, Status::Warning), (false, Status::Alive)] {
            p.set_stalled(stalled);
            let due = p
                .due(own("a:1"), 0, interval, t)
                .expect("a new status is worth a write");
            assert_eq!(due.node.status, status);
            p.published(due, t);
        }
    }

    #[test]
    fn publishes_when_worth_a_write() {
        let t = Instant::now();
        let interval = Duration::from_secs(1);
        let s = Duration::from_secs;
        // (sample ops, epoch, now, path, forced, due, status)
        let cases = [
            (10, 0, t, "a:1", false, false, Status::Alive),
            (1_000, 0, t, "a:1", false, true, Status::Alive),
            (10, 1, t, "a:1", false, true, Status::Alive),
            (10, 0, t, "b:1", false, true, Status::Alive),
            (10, 0, t, "a:1", true, true, Status::Alive),
            (10, 0, t + s(4), "a:1", false, true, Status::Warning),
            (10, 0, t + s(3), "a:1", false, false, Status::Alive),
            (10, 0, t + HEARTBEAT, "a:1", false, true, Status::Warning),
        ];
        for (ops, epoch, now, id, forced, due, status) in cases {
            let mut p = Publisher::default();
            assert!(p.due(own(id), 0, interval, t).is_none(), "no sample, nothing to write");
            p.take_sample(sample(0, 10), t);
            let first = p.due(own("a:1"), 0, interval, t).expect("never written: due");
            assert!(!first.overwrite);
            p.published(first, t);
            p.take_sample(sample(0, ops), t);
            if forced {
                p.force();
            }
            let got = p.due(own(id), epoch, interval, now);
            assert_eq!(got.is_some(), due, "{ops} {epoch} {id} {forced}");
            if let Some(got) = got {
                assert_eq!(got.node.status, status);
                assert_eq!(got.node.zksync.epoch, epoch);
                assert_eq!(got.overwrite, id == "a:1");
                p.published(got, now);
                assert!(p.due(own(id), epoch, interval, now).is_none(), "written: not due again");
            }
        }
    }

    #[test]
    fn a_new_session_writes_again() {
        let t = Instant::now();
        let mut p = Publisher::default();
        p.take_sample(sample(0, 0), t);
        let first = p.due(own("a:1"), 0, Duration::from_secs(1), t).unwrap();
        p.published(first, t);
        assert_eq!(p.published_path(), Some("/zksync/g/members/a:1"));
        p.unpublished();
        let again = p.due(own("a:1"), 0, Duration::from_secs(1), t).unwrap();
        assert!(!again.overwrite, "a new session creates its own ephemeral znode");
    }

    #[test]
    fn table_decodes_and_warns_once_per_write() {
        let good = MemberNode::new("10.0.0.2", 1, Status::Alive, sample(5, 0).figures).encode();
        let entry = |data: &[u8], mtime_ms| Entry {
            data: data.to_vec(),
            mtime_ms,
            mzxid: 7,
        };
        let mut table = Table::default();
        table.replace(BTreeMap::from([
            ("/zksync/g/members/10.0.0.2:1".to_string(), entry(&good, 1)),
            ("/zksync/g/members/bad:1".to_string(), entry(b"{", 1)),
        ]));
        let (members, warnings) = table.decode();
        assert_eq!(
            members.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
            ["10.0.0.2:1"]
        );
        assert_eq!((members[0].mtime_ms, members[0].mzxid), (1, 7));
        assert_eq!(warnings.len(), 1);
        assert!(table.decode().1.is_empty(), "logged once");
        table.update("/zksync/g/members/bad:1", Some(entry(b"{", 2)));
        assert_eq!(table.decode().1.len(), 1, "a new write of it is logged again");
        table.update("/zksync/g/members/bad:1", None);
        assert!(!table.contains("/zksync/g/members/bad:1"));
        table.clear();
        assert!(table.decode().0.is_empty());
    }
}
