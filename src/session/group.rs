//! The session side of the group: this server's member znode, and the
//! table of the group read from the members directory.
//!
//! The main thread samples figures every load interval and sends them here;
//! they are written only when worth it (`Figures::moved_from`, heartbeat).
//! The members directory is watched like a mirror (persistent recursive
//! watch, resync on every reconnect), but lands in `group::view`, not in
//! the keyspace.

use super::Session;
use crate::config::GroupSpec;
use crate::ffi::log;
use crate::group::load::{Figures, Sample, HEARTBEAT};
use crate::group::member::{MemberNode, ALIVE, WARNING};
use crate::group::view::{self, Member, View};
use crate::group::{leader, member_id, member_path, members_dir, split_addr};
use crate::mirror::read;
use crate::status::STATUS;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use zookeeper_client::{Client, CreateMode, Error as ZkError};

/// A member that stopped sampling for this many load intervals says so.
const STALE_INTERVALS: u32 = 3;

#[derive(Default)]
pub(super) struct Membership {
    /// The main thread's last sample, and when it arrived.
    sample: Option<(Sample, Instant)>,
    /// The member znode as this session wrote it; `None` until registered.
    published: Option<Published>,
    /// Member znodes as last read: path → (data, mtime, mzxid).
    table: BTreeMap<String, (Vec<u8>, i64, i64)>,
    /// The table decoded, sorted by id.
    members: Vec<Member>,
    /// Malformed member znodes already logged: (path, mtime).
    warned: HashSet<(String, i64)>,
    /// Write the member znode at the next publish, moved or not.
    force: bool,
}

struct Published {
    path: String,
    figures: Figures,
    status: &'static str,
    at: Instant,
}

impl Membership {
    pub(super) fn take_sample(&mut self, sample: Sample) {
        self.sample = Some((sample, Instant::now()));
    }

    /// A new session owns no znode yet.
    pub(super) fn new_session(&mut self) {
        self.published = None;
    }

    /// The main thread's last sample, and when it arrived.
    pub(super) fn sample(&self) -> Option<(&Sample, Instant)> {
        self.sample.as_ref().map(|(s, at)| (s, *at))
    }

    pub(super) fn members(&self) -> &[Member] {
        &self.members
    }

    pub(super) fn force_publish(&mut self) {
        self.force = true;
    }
}

impl Session {
    fn group_spec(&self) -> Option<&GroupSpec> {
        self.settings.group.as_ref()
    }

    /// The members directory, if in a group.
    fn members_root(&self) -> Option<String> {
        self.group_spec().map(|g| members_dir(&g.name))
    }

    /// The group's directory, watched whole: members, leader, switchover.
    pub(super) fn group_root(&self) -> Option<String> {
        self.group_spec().map(|g| leader::group_dir(&g.name))
    }

    /// This member's znode path, once the main thread told us our port.
    pub(super) fn own_path(&self) -> Option<(String, String)> {
        let group = self.group_spec()?;
        let (sample, _) = self.membership.sample.as_ref()?;
        let id = member_id(group.announce.as_deref(), sample.port);
        Some((member_path(&group.name, &id), id))
    }

    /// Joins the configured group on this session: the directory exists,
    /// the table is read, the member znode is written.
    pub(super) async fn join(&mut self, client: &Client) {
        let Some(dir) = self.members_root() else {
            view::set(View::default());
            return;
        };
        let options = CreateMode::Persistent.with_acls(self.acls());
        if let Err(e) = client.mkdir(&dir, &options).await {
            log::warning(&format!("cannot create {dir}: {e}"));
        }
        if let Some(group) = self.group_spec().map(|g| g.name.clone()) {
            self.prepare_group(client, &group).await;
        }
        self.read_members(client).await;
        self.publish(client).await;
        self.read_leader(client).await;
        self.read_switchover(client).await;
    }

    /// Re-reads what watch events under the group directory name.
    pub(super) async fn group_events(&mut self, client: &Client, paths: Vec<String>) {
        let Some(group) = self.group_spec().map(|g| g.name.clone()) else {
            return;
        };
        if paths.iter().any(|p| *p == leader::leader_path(&group)) {
            self.read_leader(client).await;
        }
        if paths.iter().any(|p| *p == leader::switchover_path(&group)) {
            self.read_switchover(client).await;
        }
        let members: Vec<String> = paths
            .into_iter()
            .filter(|p| crate::path::parent(p) == Some(members_dir(&group).as_str()))
            .collect();
        if !members.is_empty() {
            self.member_events(client, members).await;
        }
        self.elect(client).await;
    }

    /// Leaves the group: gives up the leadership, deletes this member's
    /// znode and forgets the table.
    pub(super) async fn leave(&mut self, client: &Client) {
        self.resign(client).await;
        if let Some(published) = self.membership.published.take() {
            match tokio::time::timeout(Duration::from_millis(500), client.delete(&published.path, None)).await {
                Ok(Ok(())) | Ok(Err(ZkError::NoNode)) => log::notice(&format!("left the group ({})", published.path)),
                Ok(Err(e)) => log::warning(&format!("cannot delete {}: {e}", published.path)),
                Err(_) => log::warning(&format!("no answer deleting {}", published.path)),
            }
        }
        self.membership.table.clear();
        view::set(View::default());
        STATUS.set_member(None);
    }

    /// Writes the member znode if it is missing or worth rewriting: a figure
    /// moved, the status changed, or the heartbeat is due.
    pub(super) async fn publish(&mut self, client: &Client) {
        let Some((own, id)) = self.own_path() else { return };
        let Some((sample, at)) = &self.membership.sample else {
            return;
        };
        let status = if at.elapsed() > self.settings.load_interval * STALE_INTERVALS {
            WARNING
        } else {
            ALIVE
        };
        let mut figures = sample.figures.clone();
        figures.epoch = self.election_epoch();
        let due = match &self.membership.published {
            None => true,
            Some(_) if self.membership.force => true,
            Some(p) => {
                p.path != own || p.status != status || figures.moved_from(&p.figures) || p.at.elapsed() >= HEARTBEAT
            }
        };
        if !due {
            return;
        }
        let Some((host, port)) = split_addr(&id) else { return };
        let data = MemberNode::new(host, port, status, figures.clone()).encode();
        let written = match &self.membership.published {
            Some(p) if p.path == own => match client.set_data(&own, &data, None).await {
                Err(ZkError::NoNode) => self.register(client, &own, &data).await,
                other => other.map(|_| ()),
            },
            _ => self.register(client, &own, &data).await,
        };
        match written {
            Ok(()) => {
                self.membership.force = false;
                if self.membership.published.is_none() {
                    log::notice(&format!("registered as group member {own}"));
                }
                self.membership.published = Some(Published {
                    path: own,
                    figures,
                    status,
                    at: Instant::now(),
                });
                if let Some(group) = self.group_spec() {
                    STATUS.set_member(Some((group.name.clone(), id)));
                }
            }
            Err(e) => log::warning(&format!("cannot write member znode {own}: {e}")),
        }
    }

    /// Creates this session's ephemeral member znode. A node of the same id
    /// left by another session (a restart within the session timeout) is
    /// replaced, never adopted.
    async fn register(&self, client: &Client, own: &str, data: &[u8]) -> Result<(), ZkError> {
        let options = CreateMode::Ephemeral.with_acls(self.acls());
        let mut attempts = 0;
        loop {
            attempts += 1;
            match client.create(own, data, &options).await {
                Ok(_) => return Ok(()),
                Err(ZkError::NodeExists) if attempts < 3 => {}
                Err(e) => return Err(e),
            }
            match client.check_stat(own).await? {
                Some(stat) if stat.ephemeral_owner == client.session_id().0 => {
                    return client.set_data(own, data, None).await.map(|_| ());
                }
                Some(stat) => {
                    log::notice(&format!(
                        "replacing {own}, left by an older session {:#x}",
                        stat.ephemeral_owner
                    ));
                    match client.delete(own, Some(stat.version)).await {
                        Ok(()) | Err(ZkError::NoNode) | Err(ZkError::BadVersion) => {}
                        Err(e) => return Err(e),
                    }
                }
                None => {}
            }
        }
    }

    /// Reads the whole members directory (after a (re)connect).
    pub(super) async fn read_members(&mut self, client: &Client) {
        let Some(dir) = self.members_root() else { return };
        match read::subtree(client, &dir).await {
            Ok(subtree) => {
                self.membership.table = subtree
                    .nodes
                    .into_iter()
                    .filter(|n| crate::path::parent(&n.path) == Some(dir.as_str()))
                    .map(|n| (n.path, (n.data, n.stat.mtime, n.stat.mzxid)))
                    .collect();
                self.refresh_view();
            }
            Err(e) => log::warning(&format!("cannot read the group at {dir}: {e}")),
        }
    }

    /// Re-reads the member znodes named by watch events.
    async fn member_events(&mut self, client: &Client, paths: Vec<String>) {
        let Some(dir) = self.members_root() else { return };
        let paths: Vec<String> = paths
            .into_iter()
            .filter(|p| crate::path::parent(p) == Some(dir.as_str()))
            .collect();
        match read::nodes(client, &paths).await {
            Ok(results) => {
                for (p, result) in paths.iter().zip(results) {
                    match result {
                        Ok(Some(node)) => {
                            self.membership
                                .table
                                .insert(node.path, (node.data, node.stat.mtime, node.stat.mzxid));
                        }
                        Ok(None) => {
                            self.membership.table.remove(p);
                        }
                        Err(e) => log::warning(&format!("cannot read member {p}: {e}")),
                    }
                }
            }
            Err(e) => {
                log::warning(&format!("cannot read the group at {dir}: {e}"));
                return self.read_members(client).await;
            }
        }
        self.refresh_view();
        // Someone deleted our znode: write it again.
        let own_gone = self
            .membership
            .published
            .as_ref()
            .is_some_and(|p| !self.membership.table.contains_key(&p.path));
        if own_gone {
            self.membership.published = None;
            self.publish(client).await;
        }
    }

    /// Hands the table to the main thread; malformed znodes are skipped and logged once.
    fn refresh_view(&mut self) {
        let mut members = Vec::with_capacity(self.membership.table.len());
        for (p, (data, mtime, mzxid)) in &self.membership.table {
            match MemberNode::decode(data) {
                Ok(node) => members.push(Member {
                    id: p.rsplit('/').next().unwrap_or_default().to_string(),
                    node,
                    mtime_ms: *mtime,
                    mzxid: *mzxid,
                }),
                Err(e) => {
                    if self.membership.warned.insert((p.clone(), *mtime)) {
                        log::warning(&format!("skipping malformed member znode {p}: {e}"));
                    }
                }
            }
        }
        self.membership.members = members.clone();
        view::set(View { members });
        self.note_master_offset();
    }
}
