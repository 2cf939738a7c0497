//! Where a group lives in ZooKeeper (under the chroot), in one place:
//!
//! - `/zksync/<group>/members/<id>`: one ephemeral znode per member, a
//!   ServerSet entry (see `member`);
//! - `/zksync/<group>/leader`: ephemeral, owned by the master's session
//!   (see `leader::LeaderNode`);
//! - `/zksync/<group>/epoch`: persistent, the last epoch handed out; every
//!   change of master bumps it with a version check in the transaction that
//!   creates the leader znode, so one epoch has one master;
//! - `/zksync/<group>/history/<epoch>`: one entry per change of master, the
//!   oldest dropped beyond `HISTORY`;
//! - `/zksync/<group>/switchover`: a switchover in progress, ephemeral to the
//!   member that started it;
//! - `/zksync/<group>/refused/<id>`: ephemeral, a member's word that the
//!   master's port refused it (see `detection::Refusal`);
//! - `/zksync/<group>/failsafe`: persistent, the members the master listed
//!   for failsafe (see `failsafe::List`), checked by every takeover;
//! - `/zksync/<group>/offset`: persistent, the replication offset the
//!   master last published, so that a member that comes back without data
//!   after every session expired knows how far behind it is.

/// History entries kept.
pub const HISTORY: u64 = 100;

/// The znode paths of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    dir: String,
}

impl Layout {
    pub fn new(group: &str) -> Layout {
        Layout {
            dir: format!("/zksync/{group}"),
        }
    }

    /// The group's directory, watched whole.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn members(&self) -> String {
        format!("{}/members", self.dir)
    }

    pub fn member(&self, id: &str) -> String {
        format!("{}/members/{id}", self.dir)
    }

    /// The member id of a path directly under the members directory.
    pub fn member_id<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.dir.as_str())?.strip_prefix("/members/")?;
        (!rest.is_empty() && !rest.contains('/')).then_some(rest)
    }

    pub fn leader(&self) -> String {
        format!("{}/leader", self.dir)
    }

    pub fn epoch(&self) -> String {
        format!("{}/epoch", self.dir)
    }

    pub fn history(&self) -> String {
        format!("{}/history", self.dir)
    }

    /// Zero-padded, so the entries sort by epoch.
    pub fn history_entry(&self, epoch: u64) -> String {
        format!("{}/history/{epoch:010}", self.dir)
    }

    pub fn offset(&self) -> String {
        format!("{}/offset", self.dir)
    }

    /// The failsafe list, kept by the master (see `failsafe::List`).
    pub fn failsafe(&self) -> String {
        format!("{}/failsafe", self.dir)
    }

    pub fn refused(&self) -> String {
        format!("{}/refused", self.dir)
    }

    pub fn refusal(&self, id: &str) -> String {
        format!("{}/refused/{id}", self.dir)
    }

    /// Whether `path` is in the refusals directory (or is it).
    pub fn is_refusal(&self, path: &str) -> bool {
        path.strip_prefix(self.dir.as_str())
            .is_some_and(|rest| rest == "/refused" || rest.starts_with("/refused/"))
    }

    pub fn switchover(&self) -> String {
        format!("{}/switchover", self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let l = Layout::new("g");
        let cases = [
            (l.dir().to_string(), "/zksync/g"),
            (l.members(), "/zksync/g/members"),
            (l.member("10.0.0.1:6379"), "/zksync/g/members/10.0.0.1:6379"),
            (l.leader(), "/zksync/g/leader"),
            (l.epoch(), "/zksync/g/epoch"),
            (l.history(), "/zksync/g/history"),
            (l.history_entry(42), "/zksync/g/history/0000000042"),
            (l.switchover(), "/zksync/g/switchover"),
            (l.refused(), "/zksync/g/refused"),
            (l.offset(), "/zksync/g/offset"),
            (l.refusal("10.0.0.1:6379"), "/zksync/g/refused/10.0.0.1:6379"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn member_ids() {
        let l = Layout::new("g");
        let cases = [
            ("/zksync/g/members/a:1", Some("a:1")),
            ("/zksync/g/members", None),
            ("/zksync/g/members/", None),
            ("/zksync/g/members/a:1/x", None),
            ("/zksync/g/leader", None),
            ("/zksync/gg/members/a:1", None),
        ];
        for (path, want) in cases {
            assert_eq!(l.member_id(path), want, "{path}");
        }
    }

    #[test]
    fn refusal_paths() {
        let l = Layout::new("g");
        let cases = [
            ("/zksync/g/refused/a:1", true),
            ("/zksync/g/refused", true),
            ("/zksync/g/refusedx", false),
            ("/zksync/g/members/a:1", false),
            ("/zksync/gg/refused/a:1", false),
        ];
        for (path, want) in cases {
            assert_eq!(l.is_refusal(path), want, "{path}");
        }
    }
}
