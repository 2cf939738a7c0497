//! The session thread: one ZooKeeper session, kept alive across faults.
//!
//! A state machine (`connecting` → `connected` ⇄ `suspended`, then `expired`,
//! `auth_failed` or `closed`) on a tokio current-thread runtime. It owns
//! everything ZooKeeper: watches, reads, requests from commands. It never
//! touches Redis: what it learns goes to the apply thread as `Update`s.

mod group;
mod leadership;
mod locks;
mod peer;
mod requests;

use crate::config::{Connection, MirrorSpec, Settings};
use crate::error::Error;
use crate::ffi::blocked::Pending;
use crate::ffi::{guard, log};
use crate::group::election::{Action, Election};
use crate::group::load::Sample;
use crate::group::membership::{Publisher, Table};
use crate::group::mntr;
use crate::group::switchover::Request as FailoverRequest;
use crate::group::view::Member;
use crate::lock::table::WaiterId;
use crate::lock::{self, LockRequest, VOUCHED};
use crate::mirror::events::{self, Reads, WatchEvent};
use crate::mirror::tree::Tree;
use crate::mirror::{read, Update};
use crate::path;
use crate::reply::Reply;
use crate::status::{SessionState, STATUS};
use locks::{Contention, LockEvent};
use once_cell::sync::OnceCell;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use zookeeper_client::{Acl, Acls, AddWatchMode, Client, EventType, Permission, SessionState as ZkState};

pub use requests::Request;

/// What the main thread tells the session thread.
pub enum Control {
    Settings(Settings),
    Request(Request, Pending),
    /// This server became a master: rewrite every mirrored key from ZooKeeper.
    Promoted,
    /// This server's load figures, every load interval while in a group.
    Sample(Sample),
    /// ZKSYNC.LOAD ZK: `mntr` of every server of the connect string (needs no session).
    AskServers(Pending),
    /// The role thread carried `Action` out; a sample taken right after.
    Acted(Action, Sample),
    /// redis-server began (`true`) or aborted (`false`) a shutdown: a master
    /// with replicas waits for them with writes paused; the sample is taken then.
    ShuttingDown(bool, Sample),
    /// ZKSYNC.FAILOVER [TO id] [TIMEOUT ms] [FORCE].
    Failover(FailoverRequest, Pending),
    /// ZKSYNC.LOCK of waiter `id`.
    Lock(WaiterId, LockRequest, Pending),
    /// Contender znodes of locks released (UNLOCK, a client gone).
    Release(Vec<String>),
    /// Waiters whose clients left.
    Cancel(Vec<WaiterId>),
    /// redis-server is shutting down: leave the group, close the session, then ack.
    Shutdown(crossbeam_channel::Sender<()>),
}

static CONTROL: OnceCell<UnboundedSender<Control>> = OnceCell::new();

/// Starts the session thread. Called once, from module load.
pub fn start(settings: Settings, updates: crossbeam_channel::Sender<Update>) -> Result<(), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    CONTROL
        .set(tx)
        .map_err(|_| "the session thread is already running".to_string())?;
    let runtime = runtime()?;
    crate::group::role::report_to(|action, sample| {
        send(Control::Acted(action, sample));
    });
    std::thread::Builder::new()
        .name("zksync-session".into())
        .spawn(move || Session::new(rx, updates, settings).serve_until_shutdown(runtime))
        .map_err(|e| format!("cannot start the session thread: {e}"))?;
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the session runtime: {e}"))
}

/// Closes the session on a clean shutdown, so that this member's znode goes
/// at once; waits at most `limit`.
pub fn shutdown(limit: Duration) {
    let (ack, done) = crossbeam_channel::bounded(1);
    if send(Control::Shutdown(ack)) {
        let _ = done.recv_timeout(limit);
    }
}

/// Hands `control` to the session thread; `false` if it is not running
/// (`control` is dropped: a pending client is answered ZKDOWN).
pub fn send(control: Control) -> bool {
    CONTROL.get().is_some_and(|tx| tx.send(control).is_ok())
}

/// Why `serve` returned.
enum End {
    Reconnect,
    Expired,
    AuthFailed,
    /// With the sender to ack once the session is closed.
    Shutdown(Option<crossbeam_channel::Sender<()>>),
}

/// The outcome of waiting while no session serves requests.
enum Offline<T> {
    Done(T),
    Reconnect,
    Shutdown(Option<crossbeam_channel::Sender<()>>),
}

struct Session {
    control: UnboundedReceiver<Control>,
    updates: crossbeam_channel::Sender<Update>,
    settings: Settings,
    /// Per mirror root: what was sent to the apply thread.
    trees: HashMap<String, Tree>,
    /// Mirrors whose last resync failed, retried on a timer.
    retry: BTreeSet<String>,
    /// When this server's member znode is worth writing.
    publisher: Publisher,
    /// The members directory as read, and decoded.
    table: Table,
    members: Vec<Member>,
    /// Who leads the group, and this member's part in changing it.
    election: Election,
    /// The ZKSYNC.FAILOVER this member was asked, until it ends.
    asked: Option<Pending>,
    /// The waiting LOCKs and what their tasks report.
    contention: Contention,
    lock_events: UnboundedReceiver<LockEvent>,
}

/// The persistent recursive watches of one session: a task per watched
/// root, all feeding one channel.
struct Watches {
    events: UnboundedSender<WatchEvent>,
    tasks: HashMap<String, JoinHandle<()>>,
}

impl Watches {
    fn roots(&self) -> Vec<String> {
        self.tasks.keys().cloned().collect()
    }

    /// Keeps the watches of the roots `keep` accepts.
    fn retain(&mut self, keep: impl Fn(&String) -> bool) {
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
    fn new(
        control: UnboundedReceiver<Control>,
        updates: crossbeam_channel::Sender<Update>,
        settings: Settings,
    ) -> Session {
        let (lock_events_tx, lock_events) = mpsc::unbounded_channel();
        Session {
            control,
            updates,
            settings,
            trees: HashMap::new(),
            retry: BTreeSet::new(),
            publisher: Publisher::default(),
            table: Table::default(),
            members: Vec::new(),
            election: Election::default(),
            asked: None,
            contention: Contention::new(lock_events_tx),
            lock_events,
        }
    }

    /// Runs the session until redis-server shuts down. A panic (a bug) does
    /// not end it: the session starts over from its channels and settings on
    /// a fresh runtime, and a new connection resyncs every mirror.
    fn serve_until_shutdown(mut self, runtime: tokio::runtime::Runtime) {
        let mut runtime = Some(runtime);
        loop {
            let rt = match runtime.take().map_or_else(self::runtime, Ok) {
                Ok(rt) => rt,
                Err(e) => {
                    STATUS.set_state(SessionState::Closed);
                    return log::warning(&format!("{e}; the session thread stops"));
                }
            };
            if guard::catch("the session thread", || rt.block_on(self.run())).is_some() {
                return;
            }
            drop(rt);
            STATUS.set_state(SessionState::Connecting);
            self = Session::new(self.control, self.updates, self.settings);
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    async fn run(&mut self) {
        self.send(Update::Mirrors(self.settings.mirrors.clone()));
        let ack = loop {
            STATUS.set_state(SessionState::Connecting);
            let client = match self.connect().await {
                Ok(client) => client,
                Err(ack) => break ack,
            };
            match self.serve(&client).await {
                End::Reconnect => {}
                End::Shutdown(ack) => {
                    close(client).await;
                    break ack;
                }
                End::Expired => {
                    STATUS.set_state(SessionState::Expired);
                    log::warning("ZooKeeper session expired; opening a new one and resyncing every mirror");
                }
                End::AuthFailed => {
                    STATUS.set_state(SessionState::AuthFailed);
                    log::warning("ZooKeeper refused authentication; check zksync.auth (retrying every 10 s)");
                    if let Offline::Shutdown(ack) = self.offline(tokio::time::sleep(Duration::from_secs(10))).await {
                        break ack;
                    }
                }
            }
        };
        STATUS.set_state(SessionState::Closed);
        if let Some(ack) = ack {
            let _ = ack.send(());
        }
    }

    /// Opens a session, retrying with backoff; `Err` on shutdown.
    async fn connect(&mut self) -> Result<Client, Option<crossbeam_channel::Sender<()>>> {
        let mut backoff = Duration::from_millis(100);
        let mut last_error = String::new();
        loop {
            let attempt = connect_once(self.settings.connection.clone());
            match self.offline(attempt).await {
                Offline::Done(Ok(client)) => return Ok(client),
                Offline::Done(Err(e)) => {
                    let message = e.to_string();
                    if message != last_error {
                        log::warning(&format!(
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
                Offline::Shutdown(ack) => return Err(ack),
            }
            match self.offline(tokio::time::sleep(backoff)).await {
                Offline::Done(()) => backoff = (backoff * 2).min(Duration::from_secs(5)),
                Offline::Reconnect => backoff = Duration::from_millis(100),
                Offline::Shutdown(ack) => return Err(ack),
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
                    None => return Offline::Shutdown(None),
                    Some(Control::Shutdown(ack)) => return Offline::Shutdown(Some(ack)),
                    Some(Control::Request(_, pending)) => {
                        pending.resolve(Reply::Error(Error::ZkDown(STATUS.state().name().into())));
                    }
                    Some(Control::AskServers(pending)) => self.ask_servers(pending),
                    Some(Control::Sample(sample))
                    | Some(Control::Acted(_, sample))
                    | Some(Control::ShuttingDown(_, sample)) => self.take_sample(sample),
                    Some(Control::Lock(id, _, pending)) => {
                        lock::table().give_up(id);
                        pending.resolve(Reply::Error(Error::ZkDown(STATUS.state().name().into())));
                    }
                    // Without a session its znodes are gone already.
                    Some(Control::Release(_)) | Some(Control::Cancel(_)) => {}
                    Some(Control::Failover(_, pending)) => {
                        pending.resolve(Reply::Error(Error::ZkDown(STATUS.state().name().into())));
                    }
                    Some(Control::Settings(settings)) => {
                        let reconnect = settings.connection != self.settings.connection;
                        self.take_mirrors(&settings.mirrors);
                        if settings.group != self.settings.group {
                            STATUS.set_member(None);
                        }
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

    /// Reports the server that holds the session (the connect string if it
    /// cannot tell) in STATUS; returns it.
    async fn note_server(&self) -> String {
        let connect = &self.settings.connection.servers;
        let server = peer::connected_server(connect)
            .await
            .unwrap_or_else(|| connect.to_string());
        STATUS.set_server(&server);
        server
    }

    async fn serve(&mut self, client: &Client) -> End {
        self.note_connected(client).await;
        let mut states = client.state_watcher();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut watches = Watches {
            events: events_tx,
            tasks: HashMap::new(),
        };
        for spec in self.settings.mirrors.clone() {
            self.trees.entry(spec.root.clone()).or_default();
            self.watch(client, &spec.root, &mut watches).await;
        }
        self.resync_all(client).await;
        self.publisher.unpublished();
        let effects = self.election.new_session();
        self.execute(client, effects).await;
        if let Some(dir) = self.group_root() {
            self.watch(client, &dir, &mut watches).await;
        }
        self.join(client).await;
        let mut retry_timer = tokio::time::interval(Duration::from_secs(2));
        // The group's and the locks' clock.
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut load_timer = tokio::time::interval(self.settings.load_interval);
        let end = loop {
            tokio::select! {
                state = states.changed() => {
                    if let Some(end) = self.on_state(client, state, &mut watches).await {
                        break end;
                    }
                }
                Some(first) = events.recv() => {
                    let batch = drain(first, &mut events);
                    self.apply_events(client, batch).await;
                }
                Some(event) = self.lock_events.recv() => self.lock_event(client, event).await,
                control = self.control.recv() => {
                    if let Some(end) = self.on_control(client, control, &mut watches).await {
                        break end;
                    }
                    if load_timer.period() != self.settings.load_interval {
                        load_timer = tokio::time::interval(self.settings.load_interval);
                    }
                }
                // A member whose main thread stopped sampling says so; the heartbeat.
                _ = load_timer.tick() => self.publish(client).await,
                _ = tick.tick(), if self.settings.group.is_some() || self.contention.active() => {
                    if self.settings.group.is_some() {
                        self.step(client, |e, f| e.tick(f)).await;
                        self.settle(client).await;
                    }
                    self.locks_tick(client).await;
                }
                _ = retry_timer.tick(), if !self.retry.is_empty() => self.retry_mirrors(client).await,
            }
        };
        drop(watches);
        let effects = self.election.new_session();
        self.execute(client, effects).await;
        self.locks_session_over();
        end
    }

    /// The figures first: a client that sees `connected` reads them next.
    async fn note_connected(&self, client: &Client) {
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
    async fn on_state(&mut self, client: &Client, state: ZkState, watches: &mut Watches) -> Option<End> {
        match state {
            ZkState::Disconnected => {
                // Nothing is confirmed until the connection is back.
                VOUCHED.revoke();
                STATUS.set_state(SessionState::Suspended);
                log::warning("lost the ZooKeeper connection; the session is suspended");
            }
            ZkState::SyncConnected | ZkState::ConnectedReadOnly => {
                let server = self.note_server().await;
                STATUS.set_state(SessionState::Connected);
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
    async fn on_control(&mut self, client: &Client, control: Option<Control>, watches: &mut Watches) -> Option<End> {
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
            Control::Cancel(ids) => self.cancel(ids),
            Control::Settings(settings) => return self.take_settings(client, settings, watches).await,
            Control::Promoted => {
                self.forget();
                self.resync_all(client).await;
            }
        }
        None
    }

    /// The main thread's sample of this server, every load interval.
    async fn sampled(&mut self, client: &Client, sample: Sample) {
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
    async fn acted(&mut self, client: &Client, action: Action, sample: Sample) {
        self.take_sample(sample);
        if self.election.vacant() && action == Action::Sample {
            // The election waits for every member's fresh offset.
            self.publisher.force();
        }
        self.publish(client).await;
        self.step(client, |e, f| e.acted(&action, f)).await;
        self.settle(client).await;
    }

    /// New configs while connected; `Some` if the connection must be reopened.
    async fn take_settings(&mut self, client: &Client, settings: Settings, watches: &mut Watches) -> Option<End> {
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
        watches.retain(|root| self.trees.contains_key(root) || Some(root) == group_root.as_ref());
        for spec in added {
            self.trees.entry(spec.root.clone()).or_default();
            self.watch(client, &spec.root, watches).await;
            self.resync(client, &spec).await;
        }
        if regroup {
            let effects = self.election.new_session();
            self.execute(client, effects).await;
            if let Some(dir) = group_root {
                self.watch(client, &dir, watches).await;
            }
            self.join(client).await;
        }
        None
    }

    async fn retry_mirrors(&mut self, client: &Client) {
        for root in std::mem::take(&mut self.retry) {
            if let Some(spec) = self.settings.mirrors.iter().find(|m| m.root == root).cloned() {
                self.resync(client, &spec).await;
            }
        }
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

    /// Adds the persistent recursive watch of one mirror (or of the group's
    /// members); its events flow into `events` as `(root, path)`. Replaces an
    /// older watch of `root`.
    async fn watch(&mut self, client: &Client, root: &str, watches: &mut Watches) {
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
                log::warning(&format!("cannot watch {root}: {e}"));
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
                    log::warning(&format!("cannot read mirror {}: {e} (retrying)", spec.root));
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
    async fn apply_events(&mut self, client: &Client, events: Vec<WatchEvent>) {
        let group_root = self.group_root();
        for reads in events::coalesce(events, group_root.as_deref()) {
            match reads {
                Reads::Group(paths) => self.group_events(client, paths).await,
                Reads::Mirror { root, paths } => self.read_changes(client, root, paths).await,
            }
        }
    }

    /// Reads `paths` under the mirror at `root` and sends what changed.
    async fn read_changes(&mut self, client: &Client, root: String, paths: Vec<String>) {
        if !self.trees.contains_key(&root) {
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
        let Some(tree) = self.trees.get_mut(&root) else {
            return;
        };
        let mut ops = Vec::new();
        for (p, result) in paths.iter().zip(results) {
            match result {
                Ok(node) => ops.extend(tree.observe(p, node)),
                Err(e) => log::warning(&format!("cannot read {p}: {e}")),
            }
        }
        if !ops.is_empty() {
            self.send(Update::Changes { root, ops });
        }
    }

    /// Asks every server of the connect string for `mntr`, in the background.
    fn ask_servers(&self, pending: Pending) {
        let servers = self.settings.connection.servers.clone();
        tokio::spawn(async move {
            let reports = mntr::ask_all(&servers).await;
            pending.resolve(mntr_reply(reports));
        });
    }

    fn send(&self, update: Update) {
        // The apply thread lives as long as the process.
        let _ = self.updates.send(update);
    }

    /// The mirror whose subtree holds `p`.
    /// The ACL of every znode zksync creates: with `zksync.auth`, all rights
    /// for that identity and read for everyone; without, ZooKeeper's open
    /// ACL. (So every member of a group must share one identity.)
    fn acls(&self) -> Acls<'static> {
        static AUTHENTICATED: [Acl; 2] = [
            Acl::new_const(Permission::ALL, "auth", ""),
            Acl::new_const(Permission::READ, "world", "anyone"),
        ];
        match self.settings.connection.auth {
            Some(_) => Acls::new(&AUTHENTICATED),
            None => Acls::anyone_all(),
        }
    }

    fn mirror_of(&self, p: &str) -> Option<&MirrorSpec> {
        self.settings.mirrors.iter().find(|m| path::is_within(p, &m.root))
    }
}

/// Closes the session (dropping the last client sends closeSession) and waits
/// briefly for ZooKeeper to confirm, so ephemeral znodes go at once.
/// A burst of watch events: `first` and whatever is queued behind it (at most 10,000).
fn drain(first: WatchEvent, events: &mut UnboundedReceiver<WatchEvent>) -> Vec<WatchEvent> {
    let mut batch = vec![first];
    while batch.len() < 10_000 {
        match events.try_recv() {
            Ok(event) => batch.push(event),
            Err(_) => break,
        }
    }
    batch
}

async fn close(client: Client) {
    let mut states = client.state_watcher();
    drop(client);
    let closed = async { while !states.changed().await.is_terminated() {} };
    let _ = tokio::time::timeout(Duration::from_millis(500), closed).await;
}

fn mntr_reply(reports: Vec<mntr::Report>) -> Reply {
    Reply::Array(
        reports
            .into_iter()
            .map(|report| {
                let mut fields = vec![("server", Reply::text(report.server))];
                match report.figures {
                    Ok(values) => fields.extend(
                        mntr::FIELDS
                            .iter()
                            .zip(values)
                            .map(|((_, name), value)| (*name, Reply::text(value))),
                    ),
                    Err(why) => fields.push(("error", Reply::text(why))),
                }
                Reply::Map(fields)
            })
            .collect(),
    )
}

async fn connect_once(connection: Connection) -> Result<Client, zookeeper_client::Error> {
    let mut connector = Client::connector().with_session_timeout(connection.session_timeout);
    if let Some(auth) = &connection.auth {
        connector = connector.with_auth(&auth.scheme, &auth.credentials);
    }
    connector.connect(connection.servers.as_str()).await
}
