//! The session's side of the locks: one task per waiting LOCK contends in
//! ZooKeeper as Curator's `InterProcessMutex` does (see `lock::name`) and
//! reports back; the session keeps `lock::table` current (grants, leases,
//! losses), deletes released contender znodes, and confirms the session
//! while locks are held, so that CHECK can vouch for them (`shared::VOUCHED`).

use super::Session;
use crate::ffi::blocked::Pending;
use crate::ffi::log;
use crate::session::zk_error;
use crate::shared::{self, VOUCHED};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use zksync_core::error::Error;
use zksync_core::lease;
use zksync_core::lock::name::{position, Position, Protected};
use zksync_core::lock::table::{Grant, WaiterId};
use zksync_core::lock::{LockRequest, Token};
use zksync_core::reply::Reply;
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
    /// A released lock's znode could not be deleted: retried by the tick.
    Unreleased { znode: String },
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
    /// The watches of held locks: each holds the client, so they end with
    /// the session, or a session given up for expired would stay open.
    tasks: JoinSet<()>,
}

impl Contention {
    pub(super) fn new(events: mpsc::UnboundedSender<LockEvent>) -> Contention {
        Contention {
            events,
            waiting: HashMap::new(),
            releases: Vec::new(),
            attempts: 0,
            last_ping: None,
            tasks: JoinSet::new(),
        }
    }

    /// Whether the tick has work: waiters, holders or releases.
    pub(super) fn active(&self) -> bool {
        !self.waiting.is_empty() || !self.releases.is_empty() || shared::locks().holding()
    }
}

impl Session {
    /// ZKSYNC.LOCK: a contender task for waiter `id`.
    pub(super) fn lock(&mut self, client: &Client, id: WaiterId, request: LockRequest, pending: Pending) {
        self.contention.attempts += 1;
        let contender = Contender {
            client: client.clone(),
            id,
            dir: request.path.into_string(),
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
                let grant = shared::locks().grant(id, &znode, token, Instant::now());
                match (grant, waiting) {
                    (Grant::Held(_), Some(waiting)) => {
                        let events = self.contention.events.clone();
                        watch_held(&mut self.contention.tasks, client.clone(), znode, events);
                        waiting.pending.resolve(Reply::Integer(token.0));
                    }
                    // Cancelled meanwhile (its client left): give it back.
                    _ => self.release(client, vec![znode]),
                }
            }
            LockEvent::Ended { id, result } => {
                shared::locks().give_up(id);
                if let Some(waiting) = self.contention.waiting.remove(&id) {
                    waiting
                        .pending
                        .resolve(result.map_or_else(Reply::Error, |()| Reply::Nil));
                }
            }
            LockEvent::Deleted { znode } => shared::locks().deleted(&znode),
            LockEvent::Unreleased { znode } => self.contention.releases.push(znode),
        }
    }

    /// Deletes released contender znodes; those ZooKeeper did not answer for are retried.
    /// The deletes are sent at once and not awaited: a LOCK that follows
    /// an UNLOCK goes out behind them, and ZooKeeper answers one session's
    /// requests in order, so it never waits for its own old znode.
    pub(super) fn release(&mut self, client: &Client, znodes: Vec<String>) {
        for znode in znodes {
            let deleted = client.delete(&znode, None);
            let events = self.contention.events.clone();
            tokio::spawn(async move {
                match deleted.await {
                    Ok(()) | Err(ZkError::NoNode) => {}
                    Err(e) => {
                        log::warning(&format!("cannot release the lock znode {znode}: {e} (retrying)"));
                        let _ = events.send(LockEvent::Unreleased { znode });
                    }
                }
            });
        }
    }

    /// UNLOCK of a lock the session could not vouch for: only deleting its
    /// znode in this session proves it was still held. Answered 1 if that
    /// happens within the session timeout, else 0 (the deletion may still
    /// happen later: the client asked for the release). Not one of the
    /// session's tasks: the bound ends it, and the session's end must not
    /// cut its answer short.
    pub(super) fn unlock_unvouched(&mut self, client: &Client, znode: String, pending: Pending) {
        let bound = client.session_timeout();
        let client = client.clone();
        tokio::spawn(async move {
            let deleted = tokio::time::timeout(bound, delete_answered(&client, &znode)).await;
            pending.resolve(Reply::Integer(matches!(deleted, Ok(true)) as i64));
        });
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
        let holding = shared::locks().holding();
        if holding && lease::renewal_due(self.contention.last_ping, now, client.session_timeout()) {
            self.contention.last_ping = Some(now);
            if client.check_stat("/").await.is_ok() {
                VOUCHED.extend(lease::expiry(now, client.session_timeout()));
            }
        }
        // Reap the tasks that ended.
        while self.contention.tasks.try_join_next().is_some() {}
        let lapsed = shared::locks().lapse(Instant::now());
        let retries = std::mem::take(&mut self.contention.releases);
        self.release(client, lapsed.into_iter().chain(retries).collect());
    }

    /// The connection is back within the session: held znodes deleted
    /// meanwhile are lost; the session is confirmed again at once.
    pub(super) async fn locks_reconnected(&mut self, client: &Client) {
        self.contention.last_ping = None;
        let znodes = shared::locks().znodes();
        for znode in znodes {
            if let Ok(None) = client.check_stat(&znode).await {
                shared::locks().deleted(&znode);
            }
        }
    }

    /// The session is over: every lock is lost, every waiter answered.
    pub(super) fn locks_session_over(&mut self) {
        VOUCHED.revoke();
        self.contention.tasks.abort_all();
        shared::locks().session_lost();
        self.contention.releases.clear();
        for (id, waiting) in self.contention.waiting.drain() {
            waiting.task.abort();
            shared::locks().give_up(id);
            let why = "the ZooKeeper session ended before the lock was acquired";
            waiting.pending.resolve(Reply::Error(Error::ZkDown(why.into())));
        }
    }
}

/// Deletes `znode`, asking again after a lost connection: whether this
/// session deleted it.
async fn delete_answered(client: &Client, znode: &str) -> bool {
    loop {
        match client.delete(znode, None).await {
            Ok(()) => return true,
            Err(ZkError::ConnectionLoss) => tokio::time::sleep(RETRY).await,
            Err(_) => return false,
        }
    }
}

/// Reports when a held lock's znode is deleted (by an UNLOCK too: the table
/// no longer has it then). Ends with the session.
fn watch_held(tasks: &mut JoinSet<()>, client: Client, znode: String, events: mpsc::UnboundedSender<LockEvent>) {
    tasks.spawn(async move {
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

/// The children of a lock, and when they were asked for.
struct Listing {
    children: Vec<String>,
    sent: Instant,
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
        let (znode, token, listing) = match self.create().await {
            Ok(created) => created,
            Err(e) => return self.ended(Err(zk_error(e, &self.dir))),
        };
        match self.wait(&znode, listing, &mut cancelled).await {
            Ok(Some(confirmed)) => LockEvent::Granted {
                id: self.id,
                znode,
                token,
                confirmed,
            },
            // Timed out or cancelled (`Ok`), or failed: leave nothing behind.
            result => {
                let _ = self.client.delete(&znode, None).await;
                self.ended(result.map(|_| ()))
            }
        }
    }

    fn ended(&self, result: Result<(), Error>) -> LockEvent {
        LockEvent::Ended { id: self.id, result }
    }

    /// Creates this contender's znode. The listing of the lock goes out
    /// right behind the create: ZooKeeper answers a session's requests in
    /// order, so it shows the new znode, and an uncontended LOCK takes one
    /// round trip.
    async fn create(&self) -> Result<(String, Token, Option<Listing>), ZkError> {
        let path = self.protected.path(&self.dir);
        let options = CreateMode::EphemeralSequential.with_acls(self.acls);
        let sent = Instant::now();
        let created = self.client.create(&path, b"", &options);
        let listed = self.client.list_children(&self.dir);
        match created.await {
            Ok((stat, sequence)) => {
                let listing = listed.await.ok().map(|children| Listing { children, sent });
                Ok((format!("{path}{sequence}"), Token(stat.czxid), listing))
            }
            Err(e) => {
                let (znode, token) = self.create_again(e).await?;
                Ok((znode, token, None))
            }
        }
    }

    /// After a failed create: the lock's znode made (as containers, like
    /// Curator) if missing; after a lost connection, this attempt's znode
    /// found by its protected name.
    async fn create_again(&self, mut error: ZkError) -> Result<(String, Token), ZkError> {
        let path = self.protected.path(&self.dir);
        let options = CreateMode::EphemeralSequential.with_acls(self.acls);
        loop {
            match error {
                ZkError::NoNode => {
                    let parents = CreateMode::Container.with_acls(self.acls);
                    match self.client.mkdir(&self.dir, &parents).await {
                        Ok(()) | Err(ZkError::NodeExists) => {}
                        Err(e) => return Err(e),
                    }
                }
                ZkError::ConnectionLoss => {
                    tokio::time::sleep(RETRY).await;
                    if let Some(found) = self.find().await? {
                        return Ok(found);
                    }
                }
                e => return Err(e),
            }
            match self.client.create(&path, b"", &options).await {
                Ok((stat, sequence)) => return Ok((format!("{path}{sequence}"), Token(stat.czxid))),
                Err(e) => error = e,
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
    async fn wait(
        &self,
        znode: &str,
        mut listing: Option<Listing>,
        cancelled: &mut oneshot::Receiver<()>,
    ) -> Result<Option<Instant>, Error> {
        let name = znode.rsplit('/').next().unwrap_or_default();
        loop {
            let Listing { children, sent } = match listing.take() {
                Some(listing) => listing,
                None => match self.list().await? {
                    Some(listing) => listing,
                    None => continue,
                },
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

    /// The lock's children; `None` after a lost connection (to be asked again).
    async fn list(&self) -> Result<Option<Listing>, Error> {
        let sent = Instant::now();
        match self.client.list_children(&self.dir).await {
            Ok(children) => Ok(Some(Listing { children, sent })),
            Err(ZkError::ConnectionLoss) => {
                tokio::time::sleep(RETRY).await;
                Ok(None)
            }
            Err(e) => Err(zk_error(e, &self.dir)),
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
            Err(e) => return Err(zk_error(e, ahead)),
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
