//! The session while connected: one loop over the connection's state,
//! watch events, the main thread's controls, lock tasks and the timers,
//! each handled by its own function.

use super::liveness::Liveness;
use super::mirrors::{drain, Watches};
use super::{peer, Control, End, Session};
use crate::ffi::log;
use crate::status::{SessionState, STATUS};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use zksync_core::group::election::Action;
use zksync_core::group::load::Sample;
use zksync_core::mirror::events::WatchEvent;
use zksync_core::settings::Settings;
use zookeeper_client::{Client, SessionState as ZkState};

impl Session {
    /// Reports the server that holds the session (the connect string if it
    /// cannot tell) in STATUS; returns it.
    pub(super) async fn note_server(&self) -> String {
        let connect = &self.settings.connection.servers;
        let server = peer::connected_server(connect)
            .await
            .unwrap_or_else(|| connect.to_string());
        STATUS.set_server(&server);
        server
    }

    /// Serves one session, known alive at `since`, until it ends, and says why.
    pub(super) async fn serve(&mut self, client: &Client, since: Instant) -> End {
        let mut liveness = Liveness::start(client, since);
        self.note_connected(client).await;
        let (events_tx, events) = mpsc::unbounded_channel();
        let mut watches = Watches {
            events: events_tx,
            tasks: HashMap::new(),
        };
        // The loop may be awaiting a request that the client library holds
        // back until a connection is back: the verdict of silence cuts it short.
        let end = tokio::select! {
            biased;
            silence = liveness.expired() => {
                log::warning(&format!(
                    "no answer from ZooKeeper for {} ms, the whole session timeout: the session is taken as expired",
                    silence.as_millis()
                ));
                End::Expired
            }
            end = self.serve_events(client, events, &mut watches) => end,
        };
        drop(liveness);
        drop(watches);
        let effects = self.shared.election().new_session();
        self.execute(client, effects).await;
        self.locks_session_over();
        end
    }

    /// The session's loop: each source handled by its own function.
    async fn serve_events(
        &mut self,
        client: &Client,
        mut events: mpsc::UnboundedReceiver<WatchEvent>,
        watches: &mut Watches,
    ) -> End {
        let mut states = client.state_watcher();
        self.begin(client, watches).await;
        let mut retry_timer = tokio::time::interval(Duration::from_secs(2));
        // The group's and the locks' clock.
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut load_timer = tokio::time::interval(self.settings.load_interval);
        loop {
            tokio::select! {
                state = states.changed() => {
                    if let Some(end) = self.on_state(client, state, watches).await {
                        return end;
                    }
                }
                Some(first) = events.recv() => {
                    let seen = Instant::now();
                    let batch = drain(first, &mut events);
                    self.apply_events(client, batch, seen).await;
                }
                Some(event) = self.lock_events.recv() => self.lock_event(client, event).await,
                control = self.control.recv() => {
                    if let Some(end) = self.on_control(client, control, watches).await {
                        return end;
                    }
                    if load_timer.period() != self.settings.load_interval {
                        load_timer = tokio::time::interval(self.settings.load_interval);
                    }
                }
                // A member whose main thread stopped sampling says so; the heartbeat.
                _ = load_timer.tick() => self.publish(client).await,
                _ = tick.tick(), if self.settings.group.is_some() || self.contention.active() => {
                    if self.settings.group.is_some() {
                        self.watch_stall(client).await;
                        self.step(client, |e, f| e.tick(f)).await;
                        self.settle(client).await;
                    }
                    self.locks_tick(client).await;
                }
                _ = retry_timer.tick(), if !self.retry.is_empty() => self.retry_mirrors(client, watches).await,
            }
        }
    }

    /// A new session: every mirror watched and read whole, the group joined.
    async fn begin(&mut self, client: &Client, watches: &mut Watches) {
        for spec in self.settings.mirrors.clone() {
            self.watch(client, &spec.root, watches).await;
        }
        self.resync_all(client).await;
        self.publisher.unpublished();
        let effects = self.shared.election().new_session();
        self.execute(client, effects).await;
        if let Some(dir) = self.group_root() {
            self.watch(client, &dir, watches).await;
        }
        self.join(client).await;
    }

    /// The figures first: a client that sees `connected` reads them next.
    pub(super) async fn note_connected(&self, client: &Client) {
        let timeout = client.session_timeout();
        let server = self.note_server().await;
        STATUS.session_id.store(client.session_id().0, Ordering::Relaxed);
        STATUS
            .session_timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
        STATUS.set_state(SessionState::Connected);
        log::notice(&format!(
            "connected to ZooKeeper {server} (session {}, negotiated timeout {} ms)",
            client.session_id(),
            timeout.as_millis()
        ));
    }

    /// A change of the connection's state; `Some` ends the session.
    pub(super) async fn on_state(&mut self, client: &Client, state: ZkState, watches: &mut Watches) -> Option<End> {
        match state {
            // `Liveness` keeps the state.
            ZkState::Disconnected => log::warning("lost the ZooKeeper connection; the session is suspended"),
            ZkState::SyncConnected | ZkState::ConnectedReadOnly => {
                let server = self.note_server().await;
                log::notice(&format!(
                    "ZooKeeper connection back, to {server}; resyncing (watches replay nothing)"
                ));
                // zookeeper-client 0.11.2 does not restore persistent
                // watches on reconnect (its SetWatches omits them): add them
                // again before reading.
                for root in watches.roots() {
                    self.watch(client, &root, watches).await;
                }
                self.resync_all(client).await;
                self.read_group(client).await;
                self.locks_reconnected(client).await;
            }
            ZkState::Expired => return Some(End::Expired),
            ZkState::AuthFailed => return Some(End::AuthFailed),
            ZkState::Closed => return Some(End::Reconnect),
        }
        None
    }

    /// What the main thread says while connected; `Some` ends the session.
    pub(super) async fn on_control(
        &mut self,
        client: &Client,
        control: Option<Control>,
        watches: &mut Watches,
    ) -> Option<End> {
        match control? {
            Control::Shutdown(ack) => {
                self.leave(client).await;
                return Some(End::Shutdown(Some(ack)));
            }
            Control::Request(request, pending) => self.request(client, request, pending).await,
            Control::AskServers(pending) => self.ask_servers(pending),
            Control::Sample(sample) => self.sampled(client, sample).await,
            Control::Acted(action, sample) => self.acted(client, action, sample).await,
            Control::ShuttingDown(started, sample) => {
                self.take_sample(sample);
                self.step(client, |e, f| e.shutting_down(started, f)).await;
            }
            Control::Failover(request, pending) => self.failover(client, request, pending).await,
            Control::Lock(id, request, pending) => self.lock(client, id, request, pending),
            Control::Release(znodes) => self.release(client, znodes),
            Control::Unlock(znode, pending) => self.unlock_unvouched(client, znode, pending),
            Control::Cancel(ids) => self.cancel(ids),
            Control::Settings(settings) => return self.take_settings(client, settings, watches).await,
            Control::Promoted => {
                self.forget();
                self.resync_all(client).await;
            }
            Control::SlotsGained => {
                crate::redis::cluster::resync_started();
                self.resync_all(client).await;
            }
            Control::MasterLinkDown => self.master_link_down(),
            Control::Refused(refusal) => self.refused(client, refusal).await,
        }
        None
    }

    /// The main thread's sample of this server, every load interval.
    pub(super) async fn sampled(&mut self, client: &Client, sample: Sample) {
        let first = self.publisher.sample().is_none();
        self.take_sample(sample);
        self.publish(client).await;
        if first {
            // Our id is known only now: a leader znode of our own may be stale.
            let effects = self.read_leader(client).await;
            self.execute(client, effects).await;
        }
        self.settle(client).await;
    }

    /// What the role thread carried out came back with a fresh sample.
    pub(super) async fn acted(&mut self, client: &Client, action: Action, sample: Sample) {
        self.take_sample(sample);
        if self.shared.election().vacant() && action == Action::Sample {
            // The election waits for every member's fresh offset.
            self.publisher.force();
        }
        self.publish(client).await;
        self.step(client, |e, f| e.acted(&action, f)).await;
        self.settle(client).await;
    }

    /// New configs while connected; `Some` if the connection must be reopened.
    pub(super) async fn take_settings(
        &mut self,
        client: &Client,
        settings: Settings,
        watches: &mut Watches,
    ) -> Option<End> {
        let regroup = settings.group != self.settings.group;
        if regroup {
            self.leave(client).await;
        }
        if settings.connection != self.settings.connection {
            self.take_mirrors(&settings.mirrors);
            self.settings = settings;
            return Some(End::Reconnect);
        }
        let added = self.take_mirrors(&settings.mirrors);
        self.settings = settings;
        let group_root = self.group_root();
        watches.retain(|root| self.mirrored(root) || Some(root) == group_root.as_ref());
        for spec in added {
            self.watch(client, &spec.root, watches).await;
            self.resync(client, &spec).await;
        }
        if regroup {
            let effects = self.shared.election().new_session();
            self.execute(client, effects).await;
            if let Some(dir) = group_root {
                self.watch(client, &dir, watches).await;
            }
            self.join(client).await;
        }
        None
    }
}
