//! The session's side of `group::detection`: it asks a master's port when
//! this replica's link to it drops, records a refusal, reads the others',
//! removes a dead master's leadership, and watches the main thread's
//! heartbeat.

use super::Session;
use crate::ffi::log;
use crate::redis::HEARTBEAT;
use crate::status::STATUS;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use zksync_core::group::detection::{self, Refusal};
use zksync_core::group::layout::Layout;
use zksync_core::group::leader::{self, decode_epoch};
use zookeeper_client::{Client, CreateMode, Error as ZkError};

/// How long a connection attempt to the master may take: a refusal comes
/// at once from a live host; silence means a frozen or unreachable one.
const PROBE_LIMIT: Duration = Duration::from_millis(300);
/// How often, and how many times, the master's port is asked.
const PROBE_EVERY: Duration = Duration::from_millis(50);
const PROBES: usize = 10;

impl Session {
    /// This replica's link to its master dropped: if the master's port
    /// refuses connections, its process is gone. Asked a few times over
    /// half a second, in the background: a dying process may close its
    /// replication link before its listening socket.
    pub(super) fn master_link_down(&self) {
        let Some(me) = self.own_id() else { return };
        let Some(leader) = self.shared.election().leader().map(|l| l.node.clone()) else {
            return;
        };
        if leader.id == me {
            return;
        }
        tokio::spawn(async move {
            for _ in 0..PROBES {
                if refuses(&leader.addr).await {
                    let refusal = Refusal {
                        leader: leader.id,
                        epoch: leader.epoch,
                    };
                    super::send(super::Control::Refused(refusal));
                    return;
                }
                tokio::time::sleep(PROBE_EVERY).await;
            }
        });
    }

    /// The master's port refused this member: say so for the others, while
    /// it is still the master of that epoch.
    pub(super) async fn refused(&mut self, client: &Client, refusal: Refusal) {
        let Some((layout, me)) = self.layout().zip(self.own_id()) else {
            return;
        };
        let current = self
            .shared
            .election()
            .leader()
            .is_some_and(|l| l.node.id == refusal.leader && l.node.epoch == refusal.epoch);
        if !current {
            return;
        }
        log::notice(&format!(
            "the master {} refuses connections; telling the group (epoch {})",
            refusal.leader, refusal.epoch
        ));
        let path = layout.refusal(&me);
        let data = leader::encode(&refusal);
        let ephemeral = CreateMode::Ephemeral.with_acls(self.acls());
        let written = match client.create(&path, &data, &ephemeral).await {
            Err(ZkError::NodeExists) => client.set_data(&path, &data, None).await.map(drop),
            other => other.map(drop),
        };
        if let Err(e) = written {
            log::warning(&format!("cannot record the refusal at {path}: {e}"));
        }
        self.read_refusals(client).await;
    }

    /// Reads every member's refusal; a master confirmed dead loses its
    /// leadership at once.
    pub(super) async fn read_refusals(&mut self, client: &Client) {
        let Some(layout) = self.layout() else { return };
        self.refusals = match read_refusals(client, &layout).await {
            Ok(refusals) => refusals,
            Err(e) => return log::warning(&format!("cannot read {}: {e}", layout.refused())),
        };
        let dead = self
            .shared
            .election()
            .leader()
            .is_some_and(|l| detection::dead(&l.node, &self.members, &self.refusals));
        if dead {
            self.step(client, |e, f| e.leader_dead(f)).await;
        }
    }

    /// Deletes the leader znode of `epoch`, in one transaction with a
    /// check that the epoch counter has not moved: a later master's znode
    /// is never removed.
    pub(super) async fn remove_leader(&mut self, client: &Client, layout: &Layout, epoch: u64) {
        let (data, stat) = match client.get_data(&layout.epoch()).await {
            Ok(read) => read,
            Err(e) => return log::warning(&format!("cannot read {}: {e}", layout.epoch())),
        };
        if decode_epoch(&data) != epoch {
            return;
        }
        let mut multi = client.new_multi_writer();
        let built = multi
            .add_check_version(&layout.epoch(), stat.version)
            .and(multi.add_delete(&layout.leader(), None));
        if let Err(e) = built {
            return log::warning(&format!("cannot build the removal of the leadership: {e}"));
        }
        match multi.commit().await {
            Ok(_) => log::notice(&format!("removed the leadership of epoch {epoch}")),
            Err(e) => log::notice(&format!("did not remove the leadership of epoch {epoch}: {e}")),
        }
    }

    /// The tick's share: a main thread that stopped beating for longer than
    /// `zksync.stall-timeout` is stalled until it beats again.
    pub(super) async fn watch_stall(&mut self, client: &Client) {
        let now = Instant::now();
        let beat = HEARTBEAT.get().unwrap_or(now);
        let stalled = detection::stalled(beat, now, self.settings.stall_timeout);
        if stalled == self.stalled {
            return;
        }
        self.stalled = stalled;
        self.publisher.set_stalled(stalled);
        if stalled {
            STATUS.stalls.fetch_add(1, Ordering::Relaxed);
        } else {
            log::notice("the main thread runs again");
        }
        let stalled_for = now.saturating_duration_since(beat);
        self.step(client, |e, _| e.stall(stalled, stalled_for)).await;
        self.publish(client).await;
    }
}

/// Whether a TCP connection to `addr` is refused (nothing listens there).
async fn refuses(addr: &str) -> bool {
    let attempt = tokio::time::timeout(PROBE_LIMIT, tokio::net::TcpStream::connect(addr)).await;
    matches!(attempt, Ok(Err(e)) if e.kind() == ErrorKind::ConnectionRefused)
}

/// The refusals directory, by member id; malformed entries are skipped.
async fn read_refusals(client: &Client, layout: &Layout) -> Result<BTreeMap<String, Refusal>, ZkError> {
    let children = match client.list_children(&layout.refused()).await {
        Ok(children) => children,
        Err(ZkError::NoNode) => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    let mut refusals = BTreeMap::new();
    for id in children {
        match client.get_data(&layout.refusal(&id)).await {
            Ok((data, _)) => {
                if let Ok(refusal) = leader::decode::<Refusal>(&data) {
                    refusals.insert(id, refusal);
                }
            }
            Err(ZkError::NoNode) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(refusals)
}
