//! The session's side of the group membership: it writes this server's
//! member znode when `group::membership` says it is due, and reads the
//! members directory into the table. The directory is watched like a mirror
//! (persistent recursive watch, read again after every reconnect), but
//! lands in `group::view`, not in the keyspace.

use super::Session;
use crate::ffi::log;
use crate::session::read;
use crate::shared;
use crate::status::{MemberOf, STATUS};
use std::time::{Duration, Instant};
use zksync_core::group::layout::Layout;
use zksync_core::group::load::Sample;
use zksync_core::group::membership::{Entry, Own, Publication};
use zksync_core::group::view::View;
use zksync_core::settings::GroupSpec;
use zookeeper_client::{Client, CreateMode, Error as ZkError};

impl Session {
    fn group_spec(&self) -> Option<&GroupSpec> {
        self.settings.group.as_ref()
    }

    pub(super) fn layout(&self) -> Option<Layout> {
        self.group_spec().map(|g| Layout::new(&g.name))
    }

    /// The group's directory, watched whole: members, leader, switchover.
    pub(super) fn group_root(&self) -> Option<String> {
        self.layout().map(|l| l.dir().to_string())
    }

    /// This member's id, once the main thread told us our port.
    pub(super) fn own_id(&self) -> Option<String> {
        self.publisher.id(self.group_spec()?.announce.as_deref())
    }

    fn own(&self) -> Option<Own> {
        let id = self.own_id()?;
        let path = self.layout()?.member(&id);
        Some(Own { id, path })
    }

    pub(super) fn take_sample(&mut self, sample: Sample) {
        self.publisher.take_sample(sample, Instant::now());
    }

    /// Joins the configured group on this session: the directories exist,
    /// the table is read, the member znode is written, the leadership read.
    pub(super) async fn join(&mut self, client: &Client) {
        let Some(layout) = self.layout() else {
            shared::VIEW.publish(View::default());
            return;
        };
        let options = CreateMode::Persistent.with_acls(self.acls());
        for dir in [layout.members(), layout.history(), layout.refused()] {
            if let Err(e) = client.mkdir(&dir, &options).await {
                log::warning(&format!("cannot create {dir}: {e}"));
            }
        }
        for (path, data) in [(layout.epoch(), &b"0"[..]), (layout.failsafe(), &b""[..])] {
            match client.create(&path, data, &options).await {
                Ok(_) | Err(ZkError::NodeExists) => {}
                Err(e) => log::warning(&format!("cannot create {path}: {e}")),
            }
        }
        self.read_group(client).await;
    }

    /// Reads the whole group again (after joining or a reconnect).
    pub(super) async fn read_group(&mut self, client: &Client) {
        self.read_members(client).await;
        self.publish(client).await;
        self.read_failsafe_list(client).await;
        self.read_leadership(client).await;
        self.read_refusals(client).await;
    }

    /// Re-reads what watch events under the group directory name.
    pub(super) async fn group_events(&mut self, client: &Client, paths: Vec<String>) {
        let Some(layout) = self.layout() else { return };
        if paths.contains(&layout.leader()) {
            let effects = self.read_leader(client).await;
            self.execute(client, effects).await;
        }
        if paths.contains(&layout.switchover()) {
            let effects = self.read_switchover(client).await;
            self.execute(client, effects).await;
        }
        if paths.contains(&layout.failsafe()) {
            self.read_failsafe_list(client).await;
        }
        let refused = paths.iter().any(|p| layout.is_refusal(p));
        let members: Vec<String> = paths.into_iter().filter(|p| layout.member_id(p).is_some()).collect();
        if !members.is_empty() {
            self.member_events(client, members).await;
        }
        if refused {
            self.read_refusals(client).await;
        }
        self.settle(client).await;
    }

    /// Leaves the group: gives up the leadership, deletes this member's
    /// znode and forgets the table.
    pub(super) async fn leave(&mut self, client: &Client) {
        let effects = self.shared.election().resign();
        self.execute(client, effects).await;
        if let Some(path) = self.publisher.published_path().map(str::to_string) {
            self.publisher.unpublished();
            match tokio::time::timeout(Duration::from_millis(500), client.delete(&path, None)).await {
                Ok(Ok(())) | Ok(Err(ZkError::NoNode)) => log::notice(&format!("left the group ({path})")),
                Ok(Err(e)) => log::warning(&format!("cannot delete {path}: {e}")),
                Err(_) => log::warning(&format!("no answer deleting {path}")),
            }
        }
        self.table.clear();
        self.members.clear();
        shared::VIEW.publish(View::default());
        STATUS.set_member(None);
    }

    /// Writes the member znode if it is missing or worth rewriting.
    pub(super) async fn publish(&mut self, client: &Client) {
        let Some(own) = self.own() else { return };
        let interval = self.settings.load_interval;
        let due = self
            .publisher
            .due(own, self.shared.election().epoch(), interval, Instant::now());
        let Some(publication) = due else { return };
        let data = publication.node.encode();
        let path = &publication.own.path;
        let written = match publication.overwrite {
            true => match client.set_data(path, &data, None).await {
                Err(ZkError::NoNode) => self.register(client, path, &data).await,
                other => other.map(|_| ()),
            },
            false => self.register(client, path, &data).await,
        };
        match written {
            Ok(()) => {
                let offset = publication.node.zksync.repl_offset;
                self.published(publication);
                if self.shared.election().leading() {
                    self.record_offset(client, offset).await;
                }
            }
            Err(e) => log::warning(&format!("cannot write member znode {path}: {e}")),
        }
    }

    /// The master records the offset it published in the group's
    /// persistent `offset` znode (see `Election::observe_group_offset`).
    async fn record_offset(&self, client: &Client, offset: i64) {
        let Some(layout) = self.layout() else { return };
        let path = layout.offset();
        let data = offset.to_string();
        let written = match client.set_data(&path, data.as_bytes(), None).await {
            Err(ZkError::NoNode) => {
                let options = CreateMode::Persistent.with_acls(self.acls());
                client.create(&path, data.as_bytes(), &options).await.map(drop)
            }
            other => other.map(drop),
        };
        if let Err(e) = written {
            log::warning(&format!("cannot record the group's offset at {path}: {e}"));
        }
    }

    fn published(&mut self, publication: Publication) {
        if self.publisher.published_path().is_none() {
            log::notice(&format!("registered as group member {}", publication.own.path));
        }
        if let Some(group) = self.group_spec() {
            STATUS.set_member(Some(MemberOf {
                group: group.name.clone(),
                id: publication.own.id.clone(),
            }));
        }
        self.publisher.published(publication, Instant::now());
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

    /// Reads the whole members directory.
    async fn read_members(&mut self, client: &Client) {
        let Some(layout) = self.layout() else { return };
        match read::subtree(client, &layout.members()).await {
            Ok(subtree) => {
                let entries = subtree
                    .nodes
                    .into_iter()
                    .filter(|n| layout.member_id(&n.path).is_some())
                    .map(|n| (n.path, entry(n.data, &n.stat)))
                    .collect();
                self.table.replace(entries);
                self.refresh_view();
            }
            Err(e) => log::warning(&format!("cannot read the group at {}: {e}", layout.members())),
        }
    }

    /// Re-reads the member znodes named by watch events.
    async fn member_events(&mut self, client: &Client, paths: Vec<String>) {
        match read::nodes(client, &paths).await {
            Ok(results) => {
                for (p, result) in paths.iter().zip(results) {
                    match result {
                        Ok(node) => self.table.update(p, node.map(|n| entry(n.data, &n.stat))),
                        Err(e) => log::warning(&format!("cannot read member {p}: {e}")),
                    }
                }
            }
            Err(e) => {
                log::warning(&format!("cannot read the group's members: {e}"));
                return self.read_members(client).await;
            }
        }
        self.refresh_view();
        // Someone deleted our znode: write it again.
        if self.publisher.published_path().is_some_and(|p| !self.table.contains(p)) {
            self.publisher.unpublished();
            self.publish(client).await;
        }
    }

    /// Hands the table to the main thread; malformed znodes are skipped and logged once.
    fn refresh_view(&mut self) {
        let (members, warnings) = self.table.decode();
        for warning in warnings {
            log::warning(&warning);
        }
        self.members = members.clone();
        shared::VIEW.publish(View::new(members));
        self.shared.election().members_changed(&self.members);
    }
}

fn entry(data: Vec<u8>, stat: &zksync_core::mirror::Stat) -> Entry {
    Entry {
        data,
        mtime_ms: stat.mtime,
        mzxid: stat.mzxid,
    }
}
