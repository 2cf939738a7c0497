//! The session thread: one ZooKeeper session, kept alive across faults.
//!
//! A state machine (`connecting` → `connected` ⇄ `suspended`, then `expired`,
//! `auth_failed` or `closed`) on a tokio current-thread runtime. It owns
//! everything ZooKeeper: watches, reads, requests from commands. It never
//! touches Redis: what it learns goes to the apply thread as `Update`s.

mod connected;
mod detection;
mod diagnosis;
pub mod failsafe;
mod group;
mod leadership;
mod liveness;
mod locks;
mod mirrors;
pub mod mntr;
mod peer;
mod peers;
mod read;
mod requests;

use crate::ffi::blocked::Pending;
use crate::ffi::{guard, log};
use crate::redis::apply::Update;
use crate::shared;
use crate::status::{SessionState, STATUS};
use crate::tls;
use diagnosis::Failure;
use failsafe::Shared;
use locks::{Contention, LockEvent};
use once_cell::sync::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use zksync_core::error::Error;
use zksync_core::group::detection::Refusal;
use zksync_core::group::election::Action;
use zksync_core::group::load::Sample;
use zksync_core::group::membership::{Publisher, Table};
use zksync_core::group::switchover::Request as FailoverRequest;
use zksync_core::group::view::Member;
use zksync_core::lock::table::WaiterId;
use zksync_core::lock::LockRequest;
use zksync_core::path;
use zksync_core::reply::Reply;
use zksync_core::settings::TlsFiles;
use zksync_core::settings::{ConnectString, Connection, MirrorSpec, Settings};
use zookeeper_client::{Acl, Acls, Client, Error as ZkError, Permission, TlsOptions};

pub use requests::Request;

/// What the main thread tells the session thread.
pub enum Control {
    Settings(Settings),
    Request(Request, Pending),
    /// This server became a master: rewrite every mirrored key from ZooKeeper.
    Promoted,
    /// Redis Cluster: this node now writes slots it did not: read the mirrors again.
    SlotsGained,
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
    /// The contender znode of a lock UNLOCKed while the session was not
    /// confirmed: 1 if this session deletes it, else 0.
    Unlock(String, Pending),
    /// Waiters whose clients left.
    Cancel(Vec<WaiterId>),
    /// redis-server is shutting down: leave the group, close the session, then ack.
    Shutdown(crossbeam_channel::Sender<()>),
    /// This replica's replication link to its master went down.
    MasterLinkDown,
    /// The master's port refused this member a connection.
    Refused(Refusal),
}

/// The session thread's inbox. A static: command handlers, server events
/// and the config setters send to it, and Redis calls them without a
/// pointer of ours.
static CONTROL: OnceCell<UnboundedSender<Control>> = OnceCell::new();

/// Starts the session thread. Called once, from module load.
pub fn start(settings: Settings, updates: crossbeam_channel::Sender<Update>) -> Result<(), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    CONTROL
        .set(tx)
        .map_err(|_| "the session thread is already running".to_string())?;
    let failsafe_inputs = failsafe::channel()?;
    let runtime = runtime()?;
    crate::redis::role::report_to(|action, sample| {
        send(Control::Acted(action, sample));
    });
    std::thread::Builder::new()
        .name("zksync-session".into())
        .spawn(move || serve_until_shutdown(rx, failsafe_inputs, updates, settings, runtime))
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
    /// Mirrors whose last resync failed, retried on a timer.
    retry: BTreeSet<String>,
    /// When this server's member znode is worth writing.
    publisher: Publisher,
    /// The members directory as read, and decoded.
    table: Table,
    members: Vec<Member>,
    /// Who leads the group, and this member's part in changing it: shared
    /// with the failsafe's task.
    shared: Rc<Shared>,
    /// The ZKSYNC.FAILOVER this member was asked, until it ends.
    asked: Option<Pending>,
    /// Each member's word that the master's port refused it, by member id.
    refusals: BTreeMap<String, Refusal>,
    /// This server's main thread is stalled (`zksync.stall-timeout`).
    stalled: bool,
    /// The waiting LOCKs and what their tasks report.
    contention: Contention,
    lock_events: UnboundedReceiver<LockEvent>,
}

impl Session {
    fn new(
        control: UnboundedReceiver<Control>,
        updates: crossbeam_channel::Sender<Update>,
        settings: Settings,
        shared: Rc<Shared>,
    ) -> Session {
        let (lock_events_tx, lock_events) = mpsc::unbounded_channel();
        Session {
            control,
            updates,
            settings,
            retry: BTreeSet::new(),
            publisher: Publisher::default(),
            table: Table::default(),
            members: Vec::new(),
            shared,
            asked: None,
            refusals: BTreeMap::new(),
            stalled: false,
            contention: Contention::new(lock_events_tx),
            lock_events,
        }
    }

    async fn run(&mut self) {
        self.send(Update::Mirrors(self.settings.mirrors.clone()));
        let ack = loop {
            STATUS.set_state(SessionState::Connecting);
            let (client, since) = match self.connect().await {
                Ok(connected) => connected,
                Err(ack) => break ack,
            };
            match self.serve(&client, since).await {
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

    /// Opens a session, retrying with backoff, and says when the attempt
    /// that opened it began (the session was alive then); `Err` on shutdown.
    async fn connect(&mut self) -> Result<(Client, Instant), Option<crossbeam_channel::Sender<()>>> {
        let mut backoff = Duration::from_millis(100);
        let mut last_error = String::new();
        loop {
            let began = Instant::now();
            let attempt = diagnosis::watched(connect_once(self.settings.connection.clone()));
            match self.offline(attempt).await {
                Offline::Done(Ok(client)) => return Ok((client, began)),
                Offline::Done(Err(failure)) => {
                    if failure.why != last_error {
                        let at = failure.server.map(|s| format!("; at {s}")).unwrap_or_default();
                        log::warning(&format!(
                            "cannot reach ZooKeeper at {}: {}{at} (retrying)",
                            self.settings.connection.servers, failure.why
                        ));
                        last_error = failure.why;
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
                        shared::locks().give_up(id);
                        pending.resolve(Reply::Error(Error::ZkDown(STATUS.state().name().into())));
                    }
                    // Without a session its znodes are gone already; the
                    // master's death is for the members with a session.
                    Some(Control::Release(_))
                    | Some(Control::Cancel(_))
                    | Some(Control::MasterLinkDown)
                    | Some(Control::Refused(_)) => {}
                    Some(Control::Unlock(_, pending)) => pending.resolve(Reply::Integer(0)),
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
                    // The reconnect's resync covers them; later gains may ask again.
                    Some(Control::SlotsGained) => crate::redis::cluster::resync_started(),
                },
            }
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

/// Runs the session, and the failsafe's task beside it, until redis-server
/// shuts down. A panic (a bug) does not end them: they start over from
/// their channels and settings on a fresh runtime, and a new connection
/// resyncs every mirror (the grants this member gave are forgotten, which
/// the failsafe rules take as a process start).
fn serve_until_shutdown(
    control: UnboundedReceiver<Control>,
    mut failsafe_inputs: UnboundedReceiver<failsafe::Input>,
    updates: crossbeam_channel::Sender<Update>,
    settings: Settings,
    runtime: tokio::runtime::Runtime,
) {
    let (shared, mut failsafe) = Shared::new();
    let mut session = Session::new(control, updates, settings, shared);
    let mut runtime = Some(runtime);
    loop {
        let rt = match runtime.take().map_or_else(self::runtime, Ok) {
            Ok(rt) => rt,
            Err(e) => {
                STATUS.set_state(SessionState::Closed);
                return log::warning(&format!("{e}; the session thread stops"));
            }
        };
        let served = guard::catch("the session thread", || {
            rt.block_on(async {
                tokio::select! {
                    () = session.run() => {}
                    () = failsafe.serve(&mut failsafe_inputs) => {}
                }
            })
        });
        if served.is_some() {
            return;
        }
        // The session went with the runtime, and its locks with it.
        drop(rt);
        session.locks_session_over();
        STATUS.set_state(SessionState::Connecting);
        let (shared, server) = Shared::new();
        failsafe = server;
        session = Session::new(session.control, session.updates, session.settings, shared);
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Closes the session (dropping the last client sends closeSession) and waits
/// briefly for ZooKeeper to confirm, so ephemeral znodes go at once.
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

/// One attempt at a session; `Err` says why, with the client's own report
/// of its first failure if it made one (a TLS handshake refused...).
async fn connect_once(connection: Connection) -> Result<Client, Failure> {
    let mut connector = Client::connector().with_session_timeout(connection.session_timeout);
    if let Some(auth) = &connection.auth {
        connector = connector.with_auth(&auth.scheme, &auth.credentials);
    }
    let connected = match &connection.tls {
        None => connector.connect(connection.servers.as_str()).await,
        Some(files) => {
            let options = tls_options(files, &connection.servers)?;
            connector
                .with_tls(options)
                .secure_connect(connection.servers.as_str())
                .await
        }
    };
    connected.map_err(|e| Failure::new(&e.to_string(), diagnosis::take().as_deref()))
}

/// The client's TLS options from the files, read now (a renewed
/// certificate counts from the next connection).
fn tls_options(files: &TlsFiles, servers: &ConnectString) -> Result<TlsOptions, String> {
    for server in servers.servers() {
        tls::server_name(server)?;
    }
    let pem = tls::read_files(files)?;
    let options = TlsOptions::new()
        .with_pem_ca(&pem.ca)
        .map_err(|e| format!("zksync.tls-ca-cert-file {}: {e}", files.ca))?;
    match &pem.identity {
        None => Ok(options),
        Some((cert, key)) => options
            .with_pem_identity(cert, key)
            .map_err(|e| format!("zksync.tls-cert-file/zksync.tls-key-file: {e}")),
    }
}

/// Maps a ZooKeeper client error on `path`.
pub fn zk_error(err: ZkError, path: &str) -> Error {
    let path = path.to_string();
    match err {
        ZkError::NoNode => Error::NoNode(path),
        ZkError::NodeExists => Error::NodeExists(path),
        ZkError::BadVersion => Error::BadVersion(path),
        ZkError::NotEmpty => Error::NotEmpty(path),
        ZkError::NoAuth | ZkError::AuthFailed => Error::NoAuth(path),
        ZkError::Timeout => Error::Timeout,
        ZkError::ConnectionLoss | ZkError::SessionExpired | ZkError::ClientClosed | ZkError::NoHosts => {
            Error::ZkDown(err.to_string())
        }
        other => Error::Zk {
            path,
            message: other.to_string(),
        },
    }
}
