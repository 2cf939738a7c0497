//! The session thread: one ZooKeeper session, kept alive across faults.
//!
//! A state machine (`connecting` → `connected` ⇄ `suspended`, then `expired`,
//! `auth_failed` or `closed`) on a tokio current-thread runtime. It owns
//! everything ZooKeeper: watches, reads, requests from commands. It never
//! touches Redis: what it learns goes to the apply thread as `Update`s.

mod requests;

use crate::config::{Connection, MirrorSpec, Settings};
use crate::error::Error;
use crate::mirror::tree::Tree;
use crate::mirror::{read, Update};
use crate::path;
use crate::reply::{Pending, Reply};
use crate::status::{SessionState, STATUS};
use once_cell::sync::OnceCell;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use zookeeper_client::{AddWatchMode, Client, EventType, SessionState as ZkState};

pub use requests::Request;

/// What the main thread tells the session thread.
pub enum Control {
    Settings(Settings),
    Request(Request, Pending),
    /// This server became a master: rewrite every mirrored key from ZooKeeper.
    Promoted,
}

static CONTROL: OnceCell<UnboundedSender<Control>> = OnceCell::new();

/// Starts the session thread. Called once, from module load.
pub fn start(settings: Settings, updates: crossbeam_channel::Sender<Update>) -> Result<(), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    CONTROL
        .set(tx)
        .map_err(|_| "the session thread is already running".to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the session runtime: {e}"))?;
    std::thread::Builder::new()
        .name("zksync-session".into())
        .spawn(move || {
            let session = Session {
                control: rx,
                updates,
                settings,
                trees: HashMap::new(),
                retry: BTreeSet::new(),
            };
            runtime.block_on(session.run());
        })
        .map_err(|e| format!("cannot start the session thread: {e}"))?;
    Ok(())
}

/// Hands `control` to the session thread. Returns it back if the thread is not running.
pub fn send(control: Control) -> Result<(), Control> {
    match CONTROL.get() {
        Some(tx) => tx.send(control).map_err(|e| e.0),
        None => Err(control),
    }
}

/// Why `serve` returned.
enum End {
    Reconnect,
    Expired,
    AuthFailed,
    Shutdown,
}

/// The outcome of waiting while no session serves requests.
enum Offline<T> {
    Done(T),
    Reconnect,
    Shutdown,
}

struct Session {
    control: UnboundedReceiver<Control>,
    updates: crossbeam_channel::Sender<Update>,
    settings: Settings,
    /// Per mirror root: what was sent to the apply thread.
    trees: HashMap<String, Tree>,
    /// Mirrors whose last resync failed, retried on a timer.
    retry: BTreeSet<String>,
}

impl Session {
    async fn run(mut self) {
        self.send(Update::Mirrors(self.settings.mirrors.clone()));
        loop {
            STATUS.set_state(SessionState::Connecting);
            let client = match self.connect().await {
                Some(client) => client,
                None => break,
            };
            match self.serve(&client).await {
                End::Reconnect => {}
                End::Shutdown => break,
                End::Expired => {
                    STATUS.set_state(SessionState::Expired);
                    log_warning("ZooKeeper session expired; opening a new one and resyncing every mirror");
                }
                End::AuthFailed => {
                    STATUS.set_state(SessionState::AuthFailed);
                    log_warning("ZooKeeper refused authentication; check zksync.auth (retrying every 10 s)");
                    if let Offline::Shutdown = self.offline(tokio::time::sleep(Duration::from_secs(10))).await {
                        break;
                    }
                }
            }
        }
        STATUS.set_state(SessionState::Closed);
    }

    /// Opens a session, retrying with backoff; `None` on shutdown.
    async fn connect(&mut self) -> Option<Client> {
        let mut backoff = Duration::from_millis(100);
        let mut last_error = String::new();
        loop {
            let attempt = connect_once(self.settings.connection.clone());
            match self.offline(attempt).await {
                Offline::Done(Ok(client)) => return Some(client),
                Offline::Done(Err(e)) => {
                    let message = e.to_string();
                    if message != last_error {
                        log_warning(&format!(
                            "cannot reach ZooKeeper at {}: {message} (retrying)",
                            self.settings.connection.servers
                        ));
                        last_error = message;
                    }
                }
                Offline::Reconnect => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Offline::Shutdown => return None,
            }
            match self.offline(tokio::time::sleep(backoff)).await {
                Offline::Done(()) => backoff = (backoff * 2).min(Duration::from_secs(5)),
                Offline::Reconnect => backoff = Duration::from_millis(100),
                Offline::Shutdown => return None,
            }
        }
    }

    /// Awaits `fut` while answering the main thread without a session:
    /// requests get ZKDOWN, settings are taken in.
    async fn offline<F: Future>(&mut self, fut: F) -> Offline<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Offline::Done(out),
                control = self.control.recv() => match control {
                    None => return Offline::Shutdown,
                    Some(Control::Request(_, pending)) => {
                        pending.resolve(Reply::Error(Error::ZkDown(STATUS.state().name().into())));
                    }
                    Some(Control::Settings(settings)) => {
                        let reconnect = settings.connection != self.settings.connection;
                        self.take_mirrors(&settings.mirrors);
                        self.settings = settings;
                        if reconnect {
                            return Offline::Reconnect;
                        }
                    }
                    Some(Control::Promoted) => self.forget(),
                },
            }
        }
    }

    async fn serve(&mut self, client: &Client) -> End {
        let timeout = client.session_timeout();
        STATUS.set_state(SessionState::Connected);
        STATUS.session_id.store(client.session_id().0, Ordering::Relaxed);
        STATUS
            .session_timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
        STATUS.set_server(&self.settings.connection.servers);
        log_notice(&format!(
            "connected to ZooKeeper {} (session {}, negotiated timeout {} ms)",
            self.settings.connection.servers,
            client.session_id(),
            timeout.as_millis()
        ));
        let mut states = client.state_watcher();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut watches: HashMap<String, JoinHandle<()>> = HashMap::new();
        for spec in self.settings.mirrors.clone() {
            self.trees.entry(spec.root.clone()).or_default();
            self.watch(client, &spec.root, &events_tx, &mut watches).await;
        }
        self.resync_all(client).await;
        let mut retry_timer = tokio::time::interval(Duration::from_secs(2));
        let end = loop {
            tokio::select! {
                state = states.changed() => match state {
                    ZkState::Disconnected => {
                        STATUS.set_state(SessionState::Suspended);
                        log_warning("lost the ZooKeeper connection; the session is suspended");
                    }
                    ZkState::SyncConnected | ZkState::ConnectedReadOnly => {
                        STATUS.set_state(SessionState::Connected);
                        log_notice("ZooKeeper connection back; resyncing (watches replay nothing)");
                        // zookeeper-client 0.11.2 does not restore persistent
                        // watches on reconnect (its SetWatches omits them):
                        // add them again before reading.
                        for root in watches.keys().cloned().collect::<Vec<_>>() {
                            self.watch(client, &root, &events_tx, &mut watches).await;
                        }
                        self.resync_all(client).await;
                    }
                    ZkState::Expired => break End::Expired,
                    ZkState::AuthFailed => break End::AuthFailed,
                    ZkState::Closed => break End::Reconnect,
                },
                Some(first) = events.recv() => {
                    let mut batch = vec![first];
                    while batch.len() < 10_000 {
                        match events.try_recv() {
                            Ok(event) => batch.push(event),
                            Err(_) => break,
                        }
                    }
                    self.apply_events(client, batch).await;
                }
                control = self.control.recv() => match control {
                    None => break End::Shutdown,
                    Some(Control::Request(request, pending)) => self.request(client, request, pending).await,
                    Some(Control::Settings(settings)) => {
                        if settings.connection != self.settings.connection {
                            self.take_mirrors(&settings.mirrors);
                            self.settings = settings;
                            break End::Reconnect;
                        }
                        let added = self.take_mirrors(&settings.mirrors);
                        self.settings = settings;
                        watches.retain(|root, task| {
                            let keep = self.trees.contains_key(root);
                            if !keep {
                                task.abort();
                            }
                            keep
                        });
                        for spec in added {
                            self.trees.entry(spec.root.clone()).or_default();
                            self.watch(client, &spec.root, &events_tx, &mut watches).await;
                            self.resync(client, &spec).await;
                        }
                    }
                    Some(Control::Promoted) => {
                        self.forget();
                        self.resync_all(client).await;
                    }
                },
                _ = retry_timer.tick(), if !self.retry.is_empty() => {
                    for root in std::mem::take(&mut self.retry) {
                        if let Some(spec) = self.settings.mirrors.iter().find(|m| m.root == root).cloned() {
                            self.resync(client, &spec).await;
                        }
                    }
                }
            }
        };
        for task in watches.into_values() {
            task.abort();
        }
        end
    }

    /// Installs the mirrors in force; returns the new ones.
    fn take_mirrors(&mut self, mirrors: &[MirrorSpec]) -> Vec<MirrorSpec> {
        if mirrors == self.settings.mirrors.as_slice() {
            return Vec::new();
        }
        self.send(Update::Mirrors(mirrors.to_vec()));
        let mut old = std::mem::take(&mut self.trees);
        let mut added = Vec::new();
        for spec in mirrors {
            let kept = if self.settings.mirrors.contains(spec) {
                old.remove(&spec.root)
            } else {
                None
            };
            if kept.is_none() {
                added.push(spec.clone());
            }
            self.trees.insert(spec.root.clone(), kept.unwrap_or_default());
        }
        self.retry.retain(|root| mirrors.iter().any(|m| &m.root == root));
        added
    }

    /// Forgets what was sent, so the next resync rewrites every key.
    fn forget(&mut self) {
        for tree in self.trees.values_mut() {
            *tree = Tree::default();
        }
        self.send(Update::Forget);
    }

    /// Adds the persistent recursive watch of one mirror; its events flow
    /// into `events` as `(root, path)`. Replaces an older watch of `root`.
    async fn watch(
        &mut self,
        client: &Client,
        root: &str,
        events: &mpsc::UnboundedSender<(String, String)>,
        watches: &mut HashMap<String, JoinHandle<()>>,
    ) {
        match client.watch(root, AddWatchMode::PersistentRecursive).await {
            Ok(mut watcher) => {
                let events = events.clone();
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
                        if events.send((watched.clone(), event.path)).is_err() {
                            break;
                        }
                    }
                });
                if let Some(old) = watches.insert(root.to_string(), task) {
                    old.abort();
                }
            }
            Err(e) => {
                log_warning(&format!("cannot watch {root}: {e}"));
                self.retry.insert(root.to_string());
            }
        }
    }

    async fn resync_all(&mut self, client: &Client) {
        let started = Instant::now();
        for spec in self.settings.mirrors.clone() {
            self.resync(client, &spec).await;
        }
        STATUS.resyncs.fetch_add(1, Ordering::Relaxed);
        STATUS
            .last_resync_ms
            .store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Reads one mirror whole and sends what changed since the last read.
    async fn resync(&mut self, client: &Client, spec: &MirrorSpec) {
        // A follower may lag behind the leader: catch it up before reading.
        let read = async {
            client.sync(&spec.root).await.or_else(|e| match e {
                zookeeper_client::Error::NoNode => Ok(()),
                e => Err(e),
            })?;
            read::subtree(client, &spec.root).await
        };
        let subtree = match read.await {
            Ok(subtree) => subtree,
            Err(e) => {
                if self.retry.insert(spec.root.clone()) {
                    if matches!(e, zookeeper_client::Error::NoAuth) {
                        STATUS.set_state(SessionState::AuthFailed);
                    }
                    log_warning(&format!("cannot read mirror {}: {e} (retrying)", spec.root));
                }
                return;
            }
        };
        if self.retry.remove(&spec.root) && STATUS.state() == SessionState::AuthFailed {
            STATUS.set_state(SessionState::Connected);
        }
        STATUS.note_zxid(subtree.zxid);
        let root_present = subtree.nodes.first().is_some_and(|n| n.path == spec.root);
        let tree = self.trees.entry(spec.root.clone()).or_default();
        let ops = tree.resync(subtree.nodes);
        self.send(Update::Resync {
            root: spec.root.clone(),
            root_present,
            zxid: subtree.zxid,
            ops,
        });
    }

    /// Reads the znodes named by a burst of watch events and sends the changes.
    async fn apply_events(&mut self, client: &Client, events: Vec<(String, String)>) {
        let mut by_root: Vec<(String, Vec<String>)> = Vec::new();
        for (root, p) in events {
            match by_root.iter_mut().find(|(r, _)| *r == root) {
                Some((_, paths)) if !paths.contains(&p) => paths.push(p),
                Some(_) => {}
                None => by_root.push((root, vec![p])),
            }
        }
        for (root, paths) in by_root {
            if !self.trees.contains_key(&root) {
                continue;
            }
            let results = match read::nodes(client, &paths).await {
                Ok(results) => results,
                Err(e) => {
                    // The reconnect (or the retry timer) resyncs this mirror.
                    log_warning(&format!("cannot read changes under {root}: {e}"));
                    self.retry.insert(root);
                    continue;
                }
            };
            let Some(tree) = self.trees.get_mut(&root) else {
                continue;
            };
            let mut ops = Vec::new();
            for (p, result) in paths.iter().zip(results) {
                match result {
                    Ok(node) => ops.extend(tree.observe(p, node)),
                    Err(e) => log_warning(&format!("cannot read {p}: {e}")),
                }
            }
            if !ops.is_empty() {
                self.send(Update::Changes { root, ops });
            }
        }
    }

    fn send(&self, update: Update) {
        // The apply thread lives as long as the process.
        let _ = self.updates.send(update);
    }

    /// The mirror whose subtree holds `p`.
    fn mirror_of(&self, p: &str) -> Option<&MirrorSpec> {
        self.settings.mirrors.iter().find(|m| path::is_within(p, &m.root))
    }
}

async fn connect_once(connection: Connection) -> Result<Client, zookeeper_client::Error> {
    let mut connector = Client::connector().with_session_timeout(connection.session_timeout);
    if let Some(auth) = &connection.auth {
        connector = connector.with_auth(&auth.scheme, &auth.credentials);
    }
    connector.connect(&connection.servers).await
}

pub fn log_warning(message: &str) {
    redis_module::logging::log_warning(format!("zksync: {message}"));
}

pub fn log_notice(message: &str) {
    redis_module::logging::log_notice(format!("zksync: {message}"));
}
