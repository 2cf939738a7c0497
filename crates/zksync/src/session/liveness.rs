//! The session's own read timeout, as the Java client has one.
//!
//! zookeeper-client 0.11.2 cannot be relied on to say that a link went
//! silent. Its state is a watch channel that keeps only the latest value,
//! so a `Disconnected` followed by `Expired` before the session loop looks
//! shows as `Expired` alone; and a request made while it reconnects waits
//! unanswered until a connection is back or until its own expiry at 7/5 of
//! the timeout, so a loop awaiting one looks at nothing else meanwhile.
//!
//! So the session is judged here by when ZooKeeper last answered: a cheap
//! request every sixth of the timeout, whose answer confirms the session
//! from the instant it was sent (`lease::standing`). STATUS says
//! `connected` only while that confirmation runs (`Status::state`); once
//! the whole timeout has passed unanswered the session is taken as expired
//! and the session loop ends it, whatever it was awaiting. The client
//! library moves on to the next server of the connect string by itself
//! after 2/5 of the timeout without a byte.

use crate::ffi::log;
use crate::shared::VOUCHED;
use crate::status::{SessionState, STATUS};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zksync_core::lease::{self, Standing};
use zookeeper_client::{Client, Error as ZkError, SessionState as ZkState, Stat};

/// Judges one session, beside the session loop, until dropped.
pub(super) struct Liveness {
    task: JoinHandle<()>,
    expired: oneshot::Receiver<Duration>,
}

impl Liveness {
    /// Starts judging the session of `client`, known alive at `since`.
    pub(super) fn start(client: &Client, since: Instant) -> Liveness {
        STATUS.unconfirm();
        STATUS.confirm(lease::expiry(since, client.session_timeout()));
        let (expired_tx, expired) = oneshot::channel();
        let task = tokio::spawn(judge(client.clone(), since, expired_tx));
        Liveness { task, expired }
    }

    /// Resolves once the whole timeout passed without an answer, with the
    /// silence it measured.
    pub(super) async fn expired(&mut self) -> Duration {
        match (&mut self.expired).await {
            Ok(silence) => silence,
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Option<Stat>, ZkError>> + Send>>;

/// A request in flight, and when it was sent.
struct Ping {
    sent: Instant,
    answer: Answer,
}

/// What the judge knows of the session.
struct Judge {
    client: Client,
    timeout: Duration,
    /// When the last request ZooKeeper answered was sent.
    answered: Instant,
    ping: Option<Ping>,
    next_ping: Instant,
    /// This silence was logged (or the client said it first).
    said_suspended: bool,
}

async fn judge(client: Client, since: Instant, expired: oneshot::Sender<Duration>) {
    let mut states = client.state_watcher();
    let mut judge = Judge {
        timeout: client.session_timeout(),
        client,
        answered: since,
        ping: None,
        next_ping: Instant::now(),
        said_suspended: false,
    };
    loop {
        let (idle, next_ping, verdict_at) = (judge.ping.is_none(), judge.next_ping, judge.verdict_at());
        tokio::select! {
            biased;
            state = states.changed() => {
                if !judge.state_changed(state) {
                    return;
                }
            }
            result = answer(&mut judge.ping) => judge.answered(result.is_ok()),
            _ = tokio::time::sleep_until(next_ping.into()), if idle => judge.send_ping(),
            _ = tokio::time::sleep_until(verdict_at.into()) => {
                if let Some(silence) = judge.verdict() {
                    STATUS.set_state(SessionState::Expired);
                    let _ = expired.send(silence);
                    return;
                }
            }
        }
    }
}

impl Judge {
    /// The client's state changed; `false` once the session is over (the
    /// session loop ends it).
    fn state_changed(&mut self, state: ZkState) -> bool {
        match state {
            ZkState::Disconnected => {
                // No lock is vouched for until its znode is checked on
                // the next connection (`Session::locks_reconnected`).
                VOUCHED.revoke();
                STATUS.set_state(SessionState::Suspended);
                self.said_suspended = true;
            }
            ZkState::SyncConnected | ZkState::ConnectedReadOnly => {
                STATUS.set_state(SessionState::Connected);
                self.said_suspended = false;
                // Confirm the session on the new connection at once.
                self.ping = None;
                self.next_ping = Instant::now();
            }
            _ => return false,
        }
        true
    }

    fn send_ping(&mut self) {
        let answer = Box::pin(self.client.check_stat("/"));
        self.ping = Some(Ping {
            sent: Instant::now(),
            answer,
        });
    }

    /// The request in flight was answered (`ok`) or failed.
    fn answered(&mut self, ok: bool) {
        let sent = self.ping.take().map_or(self.answered, |p| p.sent);
        if ok {
            self.answered = self.answered.max(sent);
            STATUS.confirm(lease::expiry(sent, self.timeout));
            self.said_suspended = false;
        }
        self.next_ping = sent + self.timeout / 6;
    }

    /// When the silence since the last answer next changes the session's standing.
    fn verdict_at(&self) -> Instant {
        match lease::standing(self.answered, Instant::now(), self.timeout) {
            Standing::Confirmed => lease::expiry(self.answered, self.timeout),
            Standing::Suspended | Standing::Expired => self.answered + self.timeout,
        }
    }

    /// The silence's verdict: `Some` (how long) once the whole timeout
    /// passed, and the session is taken as expired.
    fn verdict(&mut self) -> Option<Duration> {
        let silence = self.answered.elapsed();
        match lease::standing(self.answered, Instant::now(), self.timeout) {
            Standing::Confirmed => {}
            // `Status::state` reads the lapsed confirmation as `suspended`
            // by itself: the stored state stays the client's, so the next
            // answer is `connected` again.
            Standing::Suspended if !self.said_suspended => {
                self.said_suspended = true;
                log::warning(&format!(
                    "no answer from ZooKeeper for {} ms (2/3 of the session timeout); the session is suspended",
                    silence.as_millis()
                ));
            }
            Standing::Suspended => {}
            Standing::Expired => return Some(silence),
        }
        None
    }
}

/// The answer to the request in flight; never, without one.
async fn answer(ping: &mut Option<Ping>) -> Result<Option<Stat>, ZkError> {
    match ping {
        Some(ping) => (&mut ping.answer).await,
        None => std::future::pending().await,
    }
}
