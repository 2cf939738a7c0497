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
use crate::lease::{self, Standing};
use crate::lock::VOUCHED;
use crate::status::{SessionState, STATUS};
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
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

async fn judge(client: Client, since: Instant, expired: oneshot::Sender<Duration>) {
    let timeout = client.session_timeout();
    let mut states = client.state_watcher();
    let mut answered = since;
    let mut ping: Option<Ping> = None;
    let mut next_ping = Instant::now();
    let mut said_suspended = false;
    loop {
        let verdict_at = match lease::standing(answered, Instant::now(), timeout) {
            Standing::Confirmed => lease::expiry(answered, timeout),
            Standing::Suspended | Standing::Expired => answered + timeout,
        };
        tokio::select! {
            biased;
            state = states.changed() => match state {
                ZkState::Disconnected => {
                    // No lock is vouched for until its znode is checked on
                    // the next connection (`Session::locks_reconnected`).
                    VOUCHED.revoke();
                    STATUS.set_state(SessionState::Suspended);
                    said_suspended = true;
                }
                ZkState::SyncConnected | ZkState::ConnectedReadOnly => {
                    STATUS.set_state(SessionState::Connected);
                    said_suspended = false;
                    // Confirm the session on the new connection at once.
                    ping = None;
                    next_ping = Instant::now();
                }
                // The session loop ends the session.
                _ => return,
            },
            result = answer(&mut ping) => {
                let sent = ping.take().map_or(answered, |p| p.sent);
                if result.is_ok() {
                    answered = answered.max(sent);
                    STATUS.confirm(lease::expiry(sent, timeout));
                    said_suspended = false;
                }
                next_ping = sent + timeout / 6;
            }
            _ = tokio::time::sleep_until(next_ping.into()), if ping.is_none() => {
                let sent = Instant::now();
                ping = Some(Ping { sent, answer: Box::pin(client.check_stat("/")) });
            }
            _ = tokio::time::sleep_until(verdict_at.into()) => {
                let silence = answered.elapsed();
                match lease::standing(answered, Instant::now(), timeout) {
                    Standing::Confirmed => {}
                    // `Status::state` reads the lapsed confirmation as
                    // `suspended` by itself: the stored state stays the
                    // client's, so the next answer is `connected` again.
                    Standing::Suspended if !said_suspended => {
                        said_suspended = true;
                        log::warning(&format!(
                            "no answer from ZooKeeper for {} ms (2/3 of the session timeout); the session is suspended",
                            silence.as_millis()
                        ));
                    }
                    Standing::Suspended => {}
                    Standing::Expired => {
                        STATUS.set_state(SessionState::Expired);
                        let _ = expired.send(silence);
                        return;
                    }
                }
            }
        }
    }
}

/// The answer to the request in flight; never, without one.
async fn answer(ping: &mut Option<Ping>) -> Result<Option<Stat>, ZkError> {
    match ping {
        Some(ping) => (&mut ping.answer).await,
        None => std::future::pending().await,
    }
}
