//! The session's side of the mirrors: persistent recursive watches, full
//! reads after every (re)connect, and the reads that watch events name; every
//! read goes to the apply thread, whose index decides what changed.

use super::read;
use super::Session;
use crate::ffi::log;
use crate::latency::{Hop, Timing, HOPS};
use crate::redis::apply::{ResyncPart, Update};
use crate::status::{SessionState, STATUS};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use zksync_core::mirror::events::{self, Reads, WatchEvent};
use zksync_core::mirror::Op;
use zksync_core::settings::MirrorSpec;
use zookeeper_client::{AddWatchMode, Client, EventType};

/// The persistent recursive watches of one session: a task per watched
/// root, all feeding one channel.
pub(super) struct Watches {
    pub(super) events: UnboundedSender<WatchEvent>,
    pub(super) tasks: HashMap<String, JoinHandle<()>>,
}

impl Watches {
    pub(super) fn roots(&self) -> Vec<String> {
        self.tasks.keys().cloned().collect()
    }

    /// Keeps the watches of the roots `keep` accepts.
    pub(super) fn retain(&mut self, keep: impl Fn(&String) -> bool) {
        self.tasks.retain(|root, task| {
            let kept = keep(root);
            if !kept {
                task.abort();
            }
            kept
        });
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for task in self.tasks.values() {
            task.abort();
        }
    }
}

impl Session {
    /// Retries what failed: a watch that could not be added (a mirror's or
    /// the group's directory: without it, changes there would go unseen until
    /// the next reconnect), then the mirror's read, or the group's.
    pub(super) async fn retry_mirrors(&mut self, client: &Client, watches: &mut Watches) {
        for root in std::mem::take(&mut self.retry) {
            if !watches.tasks.contains_key(&root) {
                self.watch(client, &root, watches).await;
                if !watches.tasks.contains_key(&root) {
                    continue;
                }
            }
            if let Some(spec) = self.settings.mirrors.iter().find(|m| m.root == root).cloned() {
                self.resync(client, &spec).await;
            } else if self.group_root().as_ref() == Some(&root) {
                self.read_group(client).await;
                self.settle(client).await;
            }
        }
    }

    /// Installs the mirrors in force; returns the new ones.
    pub(super) fn take_mirrors(&mut self, mirrors: &[MirrorSpec]) -> Vec<MirrorSpec> {
        if mirrors == self.settings.mirrors.as_slice() {
            return Vec::new();
        }
        self.send(Update::Mirrors(mirrors.to_vec()));
        let added = mirrors
            .iter()
            .filter(|spec| !self.settings.mirrors.contains(spec))
            .cloned()
            .collect();
        let group_root = self.group_root();
        self.retry
            .retain(|root| mirrors.iter().any(|m| &m.root == root) || group_root.as_ref() == Some(root));
        added
    }

    /// Has the apply thread forget every mirrored version, so the next
    /// resync rewrites every key.
    pub(super) fn forget(&mut self) {
        self.send(Update::Forget);
    }

    /// Whether `root` is the root of a mirror in force.
    pub(super) fn mirrored(&self, root: &str) -> bool {
        self.settings.mirrors.iter().any(|m| m.root == root)
    }

    /// Adds the persistent recursive watch of one mirror (or of the group's
    /// members); its events flow into `events` as `(root, path)`. Replaces an
    /// older watch of `root`.
    pub(super) async fn watch(&mut self, client: &Client, root: &str, watches: &mut Watches) {
        match client.watch(root, AddWatchMode::PersistentRecursive).await {
            Ok(mut watcher) => {
                let events = watches.events.clone();
                let watched = root.to_string();
                let task = tokio::spawn(async move {
                    loop {
                        let event = watcher.changed().await;
                        if event.event_type == EventType::Session {
                            // The watcher must not be polled after a terminal state.
                            if event.session_state.is_terminated() {
                                break;
                            }
                            continue;
                        }
                        let event = WatchEvent {
                            root: watched.clone(),
                            // Only a create or a delete changes the parent's stat.
                            parent_changed: matches!(event.event_type, EventType::NodeCreated | EventType::NodeDeleted),
                            path: event.path,
                        };
                        if events.send(event).is_err() {
                            break;
                        }
                    }
                });
                if let Some(old) = watches.tasks.insert(root.to_string(), task) {
                    old.abort();
                }
            }
            Err(e) => {
                log::warning(&format!("cannot watch {root}: {e} (retrying)"));
                // A watch of an earlier connection sees nothing more: forgotten, so the retry adds it.
                if let Some(old) = watches.tasks.remove(root) {
                    old.abort();
                }
                self.retry.insert(root.to_string());
            }
        }
    }

    pub(super) async fn resync_all(&mut self, client: &Client) {
        let started = Instant::now();
        for spec in self.settings.mirrors.clone() {
            self.resync(client, &spec).await;
        }
        STATUS.resyncs.fetch_add(1, Ordering::Relaxed);
        STATUS
            .last_resync_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Reads one mirror whole, sending it to the apply thread in parts as it
    /// is read; the apply thread writes what changed.
    pub(super) async fn resync(&mut self, client: &Client, spec: &MirrorSpec) {
        let root = spec.root.clone();
        let part = |part| Update::Resync {
            root: root.clone(),
            part,
        };
        self.send(part(ResyncPart::Begin));
        let updates = self.updates.clone();
        // A follower may lag behind the leader: catch it up before reading.
        let read = async {
            client.sync(&root).await.or_else(|e| match e {
                zookeeper_client::Error::NoNode => Ok(()),
                e => Err(e),
            })?;
            read::subtree_in_parts(client, &root, |nodes, zxid| {
                STATUS.note_zxid(zxid);
                // The apply thread lives as long as the process.
                let _ = updates.send(part(ResyncPart::Nodes(nodes, zxid)));
            })
            .await
        };
        let zxid = match read.await {
            Ok(zxid) => zxid,
            Err(e) => {
                self.send(part(ResyncPart::End(None)));
                if self.retry.insert(root.clone()) {
                    if matches!(e, zookeeper_client::Error::NoAuth) {
                        STATUS.set_state(SessionState::AuthFailed);
                    }
                    log::warning(&format!("cannot read mirror {root}: {e} (retrying)"));
                }
                return;
            }
        };
        if self.retry.remove(&root) && STATUS.state() == SessionState::AuthFailed {
            STATUS.set_state(SessionState::Connected);
        }
        STATUS.note_zxid(zxid);
        self.send(part(ResyncPart::End(Some(zxid))));
    }

    /// Reads the znodes named by a burst of watch events, the first `seen`
    /// at that instant, and sends the changes.
    pub(super) async fn apply_events(&mut self, client: &Client, events: Vec<WatchEvent>, seen: Instant) {
        let group_root = self.group_root();
        for reads in events::coalesce(events, group_root.as_deref()) {
            match reads {
                Reads::Group(paths) => self.group_events(client, paths).await,
                Reads::Mirror { root, paths } => self.read_changes(client, root, paths, seen).await,
            }
        }
    }

    /// Reads `paths` under the mirror at `root` and sends every read: the
    /// apply thread drops what its index already holds.
    pub(super) async fn read_changes(&mut self, client: &Client, root: String, paths: Vec<String>, seen: Instant) {
        if !self.mirrored(&root) {
            return;
        }
        let results = match read::nodes(client, &paths).await {
            Ok(results) => results,
            Err(e) => {
                // The reconnect (or the retry timer) resyncs this mirror.
                log::warning(&format!("cannot read changes under {root}: {e}"));
                self.retry.insert(root);
                return;
            }
        };
        let timing = Timing {
            event: seen,
            read: Instant::now(),
        };
        HOPS.record(Hop::Read, timing.event, timing.read);
        let mut ops = Vec::new();
        for (p, result) in paths.into_iter().zip(results) {
            match result {
                Ok(Some(node)) => ops.push(Op::Upsert(node)),
                Ok(None) => ops.push(Op::Delete(p)),
                Err(e) => log::warning(&format!("cannot read {p}: {e}")),
            }
        }
        if !ops.is_empty() {
            self.send(Update::Changes {
                root,
                ops,
                timing: Some(timing),
            });
        }
    }
}

/// A burst of watch events: `first` and whatever is queued behind it (at most 10,000).
pub(super) fn drain(first: WatchEvent, events: &mut UnboundedReceiver<WatchEvent>) -> Vec<WatchEvent> {
    let mut batch = vec![first];
    while batch.len() < 10_000 {
        match events.try_recv() {
            Ok(event) => batch.push(event),
            Err(_) => break,
        }
    }
    batch
}
