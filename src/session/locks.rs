//! The session's side of the locks: one task per waiting LOCK contends in
//! ZooKeeper as Curator's `InterProcessMutex` does (see `lock::name`) and
//! reports back; the session keeps `lock::table` current (grants, leases,
//! losses), deletes released contender znodes, and confirms the session
//! while locks are held, so that CHECK can vouch for them (`lock::VOUCHED`).

use super::Session;
use crate::error::Error;
use crate::ffi::log;
use crate::lease;
use crate::lock::name::{position, Position, Protected};
use crate::lock::table::{Grant, WaiterId};
use crate::lock::{self, LockRequest, Token, VOUCHED};
use crate::ffi::blocked::Pending;
use crate::reply::Reply;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, EventType};

/// How long a contender waits before retrying a request after a lost connection.
const RETRY: Duration = Duration::from_millis(100);

/// What a contender task reports.
pub(super) enum LockEvent {
    /// Its znode is the lowest: the lock is its waiter's. `confirmed`: when
    /// the request that showed it was sent (the session lived then).
    Granted {
        id: WaiterId,
        znode: String,
        token: Token,
        confirmed: Instant,
    },
    /// It ended without the lock, its znode deleted: `Ok` on timeout or cancel.
    Ended { id: WaiterId, result: Result<(), Error> },
    /// A held lock's znode is gone.
    Deleted { znode: String },
}

/// One waiting LOCK.
struct Waiting {
    pending: Pending,
    cancel: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The locks' share of a session.
pub(super) struct Contention {
    events: mpsc::UnboundedSender<LockEvent>,
    waiting: HashMap<WaiterId, Waiting>,
    /// Contender znodes released while ZooKeeper did not answer.
    releases: Vec<String>,
    attempts: u64,
    last_ping: Option<Instant>,
}

impl Contention {
    pub(super) fn new(events: mpsc::UnboundedSender<LockEvent>) -> Contention {
        Contention {
            events,
            waiting: HashMap::new(),
            releases: Vec::new(),
            attempts: 0,
            last_ping: None,
        }
    }

    /// Whether the tick has work: waiters, holders or releases.
    pub(super) fn active(&self) -> bool {
        !self.waiting.is_empty() || !self.releases.is_empty() || lock::table().holding()
    }
}

impl Session {
    /// ZKSYNC.LOCK: a contender task for waiter `id`.
    pub(super) fn lock(&mut self, client: &Client, id: WaiterId, request: LockRequest, pending: Pending) {
        self.contention.attempts += 1;
        let contender = Contender {
            client: client.clone(),
            id,
            dir: request.path,
            protected: Protected::new(client.session_id().0, self.contention.attempts),
            deadline: request.timeout.map(|t| Instant::now() + t),
            acls: self.acls(),
        };
        let (cancel, cancelled) = oneshot::channel();
        let events = self.contention.events.clone();
        let task = tokio::spawn(async move {
            let event = contender.contend(cancelled).await;
            let _ = events.send(event);
        });
        let waiting = Waiting { pending, cancel, task };
        self.contention.waiting.insert(id, waiting);
    }

    pub(super) async fn lock_event(&mut self, client: &Client, event: LockEvent) {
        match event {
            LockEvent::Granted {
                id,
                znode,
                token,
                confirmed,
            } => {
                VOUCHED.extend(lease::expiry(confirmed, client.session_timeout()));
                let waiting = self.contention.waiting.remove(&id);
                let grant = lock::table().grant(id, &znode, token, Instant::now());
                match (grant, waiting) {
                    (Grant::Held(_), Some(waiting)) => {
                        watch_held(client.clone(), znode, self.contention.events.clone());
                        waiting.pending.resolve(Reply::Integer(token.0));
                    }
                    // Cancelled meanwhile (its client left): give it back.
                    _ => self.release(client, vec![znode]).await,
                }
            }
            LockEvent::Ended { id, result } => {
                lock::table().give_up(id);
                if let Some(waiting) = self.contention.waiting.remove(&id) {
                    waiting
                        .pending
                        .resolve(result.map_or_else(Reply::Error, |()| Reply::Nil));
                }
            }
            LockEvent::Deleted { znode } => lock::table().deleted(&znode),
        }
    }

    /// Deletes released contender znodes; those ZooKeeper did not answer for are retried.
    pub(super) async fn release(&mut self, client: &Client, znodes: Vec<String>) {
        for znode in znodes {
            match client.delete(&znode, None).await {
                Ok(()) | Err(ZkError::NoNode) => {}
                Err(e) => {
                    log::warning(&format!("cannot release the lock znode {znode}: {e} (retrying)"));
                    self.contention.releases.push(znode);
                }
            }
        }
    }

    /// Waiters whose clients left: their tasks delete their znodes.
    pub(super) fn cancel(&mut self, ids: Vec<WaiterId>) {
        for id in ids {
            if let Some(waiting) = self.contention.waiting.remove(&id) {
                let _ = waiting.cancel.send(());
            }
        }
    }

    /// The tick's share: confirm the session while locks are held, end
    /// the leases that ran out, retry releases.
    pub(super) async fn locks_tick(&mut self, client: &Client) {
        let now = Instant::now();
        let holding = lock::table().holding();
        if holding && lease::renewal_due(self.contention.last_ping, now, client.session_timeout()) {
            self.contention.last_ping = Some(now);
            if client.check_stat("/").await.is_ok() {
                VOUCHED.extend(lease::expiry(now, client.session_timeout()));
            }
        }
        let lapsed = lock::table().lapse(Instant::now());
        let retries = std::mem::take(&mut self.contention.releases);
        self.release(client, lapsed.into_iter().chain(retries).collect()).await;
    }

    /// The connection is back within the session: held znodes deleted
    /// meanwhile are lost; the session is confirmed again at once.
    pub(super) async fn locks_reconnected(&mut self, client: &Client) {
        self.contention.last_ping = None;
        let znodes = lock::table().znodes();
        for znode in znodes {
            if let Ok(None) = client.check_stat(&znode).await {
                lock::table().deleted(&znode);
            }
        }
    }

    /// The session is over: every lock is lost, every waiter answered.
    pub(super) fn locks_session_over(&mut self) {
        VOUCHED.revoke();
        lock::table().session_lost();
        self.contention.releases.clear();
        for (id, waiting) in self.contention.waiting.drain() {
            waiting.task.abort();
            lock::table().give_up(id);
            let why = "the ZooKeeper session ended before the lock was acquired";
            waiting.pending.resolve(Reply::Error(Error::ZkDown(why.into())));
        }
    }
}

/// Reports when a held lock's znode is deleted (by an UNLOCK too: the table
/// no longer has it then). Ends with the session.
fn watch_held(client: Client, znode: String, events: mpsc::UnboundedSender<LockEvent>) {
    tokio::spawn(async move {
        loop {
            let watcher = match client.get_and_watch_data(&znode).await {
                Ok((_, _, watcher)) => watcher,
                Err(ZkError::NoNode) => break,
                Err(ZkError::ConnectionLoss) => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                Err(_) => return,
            };
            let event = watcher.changed().await;
            match event.event_type {
                EventType::NodeDeleted => break,
                EventType::Session if event.session_state.is_terminated() => return,
                _ => {}
            }
        }
        let _ = events.send(LockEvent::Deleted { znode });
    });
}

/// One LOCK contending in ZooKeeper.
struct Contender {
    client: Client,
    id: WaiterId,
    /// The lock's znode.
    dir: String,
    protected: Protected,
    deadline: Option<Instant>,
    acls: Acls<'static>,
}

impl Contender {
    async fn contend(self, mut cancelled: oneshot::Receiver<()>) -> LockEvent {
        let (znode, token) = match self.create().await {
            Ok(created) => created,
            Err(e) => return self.ended(Err(Error::from_zk(e, &self.dir))),
        };
        let result = self.wait(&znode, &mut cancelled).await;
        match result {
            Ok(Some(confirmed)) => LockEvent::Granted {
                id: self.id,
                znode,
                token,
                confirmed,
            },
            Ok(None) => {
                // Timed out or cancelled: leave nothing behind.
                let _ = self.client.delete(&znode, None).await;
                self.ended(Ok(()))
            }
            Err(e) => {
                let _ = self.client.delete(&znode, None).await;
                self.ended(Err(e))
            }
        }
    }

    fn ended(&self, result: Result<(), Error>) -> LockEvent {
        LockEvent::Ended { id: self.id, result }
    }

    /// Creates this contender's znode (and the lock's, as containers, like
    /// Curator); after a lost connection finds it by its protected name.
    async fn create(&self) -> Result<(String, Token), ZkError> {
        let path = self.protected.path(&self.dir);
        let options = CreateMode::EphemeralSequential.with_acls(self.acls);
        loop {
            match self.client.create(&path, b"", &options).await {
                Ok((stat, sequence)) => return Ok((format!("{path}{sequence}"), Token(stat.czxid))),
                Err(ZkError::NoNode) => {
                    let parents = CreateMode::Container.with_acls(self.acls);
                    match self.client.mkdir(&self.dir, &parents).await {
                        Ok(()) | Err(ZkError::NodeExists) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(ZkError::ConnectionLoss) => {
                    tokio::time::sleep(RETRY).await;
                    if let Some(found) = self.find().await? {
                        return Ok(found);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// This attempt's znode, if a create whose answer was lost made it.
    async fn find(&self) -> Result<Option<(String, Token)>, ZkError> {
        let children = match self.client.list_children(&self.dir).await {
            Ok(children) => children,
            Err(ZkError::NoNode) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(name) = children.into_iter().find(|c| self.protected.owns(c)) else {
            return Ok(None);
        };
        let znode = format!("{}/{name}", self.dir);
        match self.client.check_stat(&znode).await? {
            Some(stat) => Ok(Some((znode, Token(stat.czxid)))),
            None => Ok(None),
        }
    }

    /// Waits until `znode` is the lowest (`Some`: when the request showing
    /// it was sent), the deadline passes or the waiter is cancelled (`None`).
    async fn wait(&self, znode: &str, cancelled: &mut oneshot::Receiver<()>) -> Result<Option<Instant>, Error> {
        let name = znode.rsplit('/').next().unwrap_or_default();
        loop {
            let sent = Instant::now();
            let children = match self.client.list_children(&self.dir).await {
                Ok(children) => children,
                Err(ZkError::ConnectionLoss) => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
                Err(e) => return Err(Error::from_zk(e, &self.dir)),
            };
            let ahead = match position(&children, name) {
                Position::Holder => return Ok(Some(sent)),
                Position::Missing => {
                    return Err(Error::Zk {
                        path: znode.to_string(),
                        message: "the contender znode was deleted while waiting".into(),
                    })
                }
                Position::Behind(ahead) => format!("{}/{ahead}", self.dir),
            };
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            if !self.await_turn(&ahead, cancelled).await? {
                return Ok(None);
            }
        }
    }

    /// Watches the contender just ahead until it goes; `false` on the
    /// deadline or a cancel.
    async fn await_turn(&self, ahead: &str, cancelled: &mut oneshot::Receiver<()>) -> Result<bool, Error> {
        let watcher = match self.client.get_and_watch_data(ahead).await {
            Ok((_, _, watcher)) => watcher,
            Err(ZkError::NoNode) => return Ok(true),
            Err(ZkError::ConnectionLoss) => {
                tokio::time::sleep(RETRY).await;
                return Ok(true);
            }
            Err(e) => return Err(Error::from_zk(e, ahead)),
        };
        let deadline = async {
            match self.deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = watcher.changed() => Ok(true),
            _ = deadline => Ok(false),
            _ = cancelled => Ok(false),
        }
    }
}
