//! Failsafe on the session thread: grants asked of this member, answers to
//! its own asks, and the failsafe's clock (`group::failsafe` has the rules).
//!
//! All of it must run while ZooKeeper does not answer, which is when it
//! matters, and the session loop may then await a request for a whole
//! session timeout. So it is a task of its own beside the session loop, on
//! the same thread: the election is shared between the two (`Shared`), each
//! borrowing it only between awaits, so decisions never interleave. A grant
//! asked while a takeover is under way is refused by the election itself.

use super::peers::{Answer, Peers};
use crate::ffi::blocked::Pending;
use crate::ffi::log;
use crate::redis::credentials::Credentials;
use crate::redis::fence;
use crate::status::STATUS;
use once_cell::sync::OnceCell;
use std::cell::{Cell, RefCell, RefMut};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use zksync_core::error::Error;
use zksync_core::group::election::{Effect, Effects, Election, Facts, Policy};
use zksync_core::group::failsafe::Ask;
use zksync_core::reply::Reply;

/// What the main thread tells the failsafe.
pub enum Input {
    /// ZKSYNC.FAILSAFE: a master asks this member for a grant.
    Asked(Ask, Pending),
    /// This server's `masteruser`/`masterauth`, which members use to call each other.
    Credentials(Option<Credentials>),
}

/// The failsafe task's inbox. A static: ZKSYNC.FAILSAFE's handler and
/// serverCron feed it, and Redis calls them without a pointer of ours.
static INPUTS: OnceCell<UnboundedSender<Input>> = OnceCell::new();

/// The channel the main thread feeds; its receiver outlives session restarts.
pub(super) fn channel() -> Result<UnboundedReceiver<Input>, String> {
    let (tx, rx) = mpsc::unbounded_channel();
    INPUTS
        .set(tx)
        .map_err(|_| "the failsafe channel exists already".to_string())?;
    Ok(rx)
}

/// Hands `input` to the session thread; `false` if it is not running (a
/// pending client is then answered ZKDOWN).
pub fn send(input: Input) -> bool {
    INPUTS.get().is_some_and(|tx| tx.send(input).is_ok())
}

/// The facts a failsafe decision needs, as the session last knew them: the
/// failsafe runs on without a session.
#[derive(Clone, Debug, Default)]
pub(super) struct Basis {
    pub me: Option<String>,
    pub group: String,
    pub session: i64,
    pub session_timeout: Duration,
    pub policy: Policy,
}

/// What the session loop and the failsafe task share on the session thread.
pub(super) struct Shared {
    election: RefCell<Election>,
    basis: RefCell<Basis>,
    pub peers: Peers,
    /// This master wrote on grants at the last report.
    on_grants: Cell<bool>,
}

impl Shared {
    /// The shared state, and the task that serves the failsafe with it.
    pub(super) fn new() -> (Rc<Shared>, Server) {
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let shared = Rc::new(Shared {
            election: RefCell::new(Election::default()),
            basis: RefCell::new(Basis::default()),
            peers: Peers::new(answers_tx),
            on_grants: Cell::new(false),
        });
        let server = Server {
            shared: shared.clone(),
            answers,
            last_refusal: RefCell::new(None),
        };
        (shared, server)
    }

    /// The election, borrowed until the end of the caller's statement: never
    /// across an await.
    pub(super) fn election(&self) -> RefMut<'_, Election> {
        self.election.borrow_mut()
    }

    /// The session's facts of now, kept for the failsafe.
    pub(super) fn keep_basis(&self, basis: Basis) {
        *self.basis.borrow_mut() = basis;
    }

    /// Runs one failsafe decision with the facts the session last knew.
    fn decide<R>(&self, decision: impl FnOnce(&mut Election, &Facts) -> R) -> R {
        let basis = self.basis.borrow().clone();
        let facts = Facts {
            now: Instant::now(),
            group: &basis.group,
            me: basis.me.as_deref(),
            session: basis.session,
            session_timeout: basis.session_timeout,
            sample: None,
            members: &[],
            policy: basis.policy,
        };
        decision(&mut self.election.borrow_mut(), &facts)
    }

    /// Carries out a failsafe effect: none of them waits for ZooKeeper.
    pub(super) fn carry_out(&self, effect: Effect) {
        match effect {
            Effect::AskGrants { ask, sent, to } => {
                let basis = self.basis.borrow();
                self.peers.ask(&basis.group, &ask, sent, &to, basis.session_timeout);
            }
            Effect::FailsafeLease(change) => fence::failsafe(change),
            other => log::warning(&format!("failsafe: unexpected effect {other:?}")),
        }
    }

    /// STATUS's view of failsafe, after every failsafe decision; the log
    /// says when this master begins and ends writing on grants.
    pub(super) fn report(&self) {
        let report = self.election.borrow().failsafe_report(Instant::now());
        let on_grants = fence::on_grants();
        if self.on_grants.replace(on_grants) != on_grants {
            match on_grants {
                true => log::warning(&format!(
                    "ZooKeeper does not confirm this master's lease: writing on the grants of {} (failsafe)",
                    report.grantors.join(", ")
                )),
                false => log::notice("no longer writing on failsafe grants"),
            }
        }
        STATUS.set_failsafe(report, on_grants);
    }
}

/// The failsafe's task: its clock, the grants asked of this member, the
/// answers to its own asks.
pub(super) struct Server {
    shared: Rc<Shared>,
    answers: UnboundedReceiver<Answer>,
    last_refusal: RefCell<Option<String>>,
}

impl Server {
    /// Serves until the session thread ends (it never returns by itself).
    pub(super) async fn serve(&mut self, inputs: &mut UnboundedReceiver<Input>) {
        // The failsafe's clock, as fine as the group's.
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            let effects = tokio::select! {
                _ = tick.tick() => self.tick(),
                Some(input) = inputs.recv() => self.input(input),
                Some(answer) = self.answers.recv() => self.answered(answer),
                else => return,
            };
            for effect in effects {
                self.shared.carry_out(effect);
            }
            self.shared.report();
        }
    }

    fn tick(&self) -> Effects {
        let claimed = self.shared.election().failsafe_claimed();
        match claimed {
            true => self.shared.decide(|e, f| e.failsafe_tick(f)),
            false => Vec::new(),
        }
    }

    fn input(&self, input: Input) -> Effects {
        match input {
            Input::Asked(ask, pending) => pending.resolve(self.grant(&ask)),
            Input::Credentials(credentials) => self.shared.peers.set_credentials(credentials),
        }
        Vec::new()
    }

    /// The grant is recorded before the reply leaves: the master counts on
    /// it only once it has the reply.
    fn grant(&self, ask: &Ask) -> Reply {
        match self.shared.decide(|e, f| e.grant_asked(ask, f)) {
            Ok(until) => Reply::Integer(until.saturating_duration_since(Instant::now()).as_millis() as i64),
            Err(refusal) => {
                let why = format!("no failsafe grant to {} at epoch {}: {refusal}", ask.master, ask.epoch);
                // Asked again every sixth of the timeout: said once.
                if self.last_refusal.replace(Some(why.clone())).as_ref() != Some(&why) {
                    log::notice(&why);
                }
                Reply::Error(Error::Refused(refusal.to_string()))
            }
        }
    }

    fn answered(&self, answer: Answer) -> Effects {
        self.shared
            .decide(|e, f| e.grant_answered(&answer.by, answer.sent, answer.granted, f))
    }
}
