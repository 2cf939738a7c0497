//! Everything around the members' session threads: the simulated clock,
//! the network between each member and ZooKeeper (delays, silent cuts one
//! way or both), the ZooKeeper server (up, frozen, crashed), each member's
//! zookeeper-client (connection, pings, read timeout, reconnects, expiry),
//! its Redis (role, offset, pause, replication link), its role thread, its
//! main thread's samples and beat (stalled or not), its lease, its port (a
//! dead process's refuses), and its process (killed, restarted empty,
//! stopped).

use super::rng::Rng;
use super::zk::{Answer, Op, Zk, ZkErr};
use super::{Config, Flaw};
use crate::group::detection::Refusal;
use crate::group::election::{Action, FailsafeLease, LeaseChange};
use crate::group::failsafe::Ask;
use crate::group::layout::Layout;
use crate::group::load::{Figures, Role, Sample};
use crate::group::switchover::Request;
use crate::lease::{self, Deadline};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::time::{Duration, Instant};

/// How often ZooKeeper looks for expired sessions.
const ZK_TICK: Duration = Duration::from_millis(100);
/// The election's `failover-max-lag` (the default), and what a master
/// writes per load interval: a replica four intervals behind is too far.
pub const MAX_LAG: i64 = 1 << 20;
const WRITES: i64 = MAX_LAG / 4;
/// The session thread's clock (`connected.rs`).
const SHELL_TICK: Duration = Duration::from_millis(20);
/// A replica's `repl-timeout`: short, so that a silent master's replicas
/// drop their links (and ask its port) within a run.
const REPL_TIMEOUT: Duration = Duration::from_millis(1000);
/// The session's probes of a master's port (`session/detection.rs`).
const PROBE_EVERY: Duration = Duration::from_millis(50);
const PROBES: u32 = 10;

/// A connection's state, as the session thread's state watcher sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZkState {
    Disconnected,
    SyncConnected,
    Expired,
}

/// What the session thread's loop selects over.
#[derive(Debug)]
pub enum Input {
    State(ZkState),
    Watch(Vec<String>),
    Tick,
    LoadTimer,
    Sample(Sample),
    Acted(Action, Sample),
    /// ZKSYNC.FAILOVER asked of this member.
    Failover(Request),
    /// The replication link to the master dropped (a server event).
    MasterLinkDown,
    /// A probe of the master's port was refused.
    Refused(Refusal),
    /// A master asks for a failsafe grant (the internal command, over the
    /// Redis protocol): `from`, its process `gen`, its round `sent`.
    GrantAsked {
        from: usize,
        gen: u32,
        ask: Ask,
        sent: Instant,
    },
    /// A member answered this member's ask of the round `sent`.
    GrantAnswer {
        by: String,
        sent: Instant,
        granted: bool,
    },
    /// The failsafe's clock: it runs whether or not ZooKeeper answers.
    FailsafeTick,
}

/// A message between two members' processes.
#[derive(Debug)]
enum Peer {
    Ask {
        from: usize,
        gen: u32,
        ask: Ask,
        sent: Instant,
    },
    Answer {
        by: String,
        sent: Instant,
        granted: bool,
    },
}

#[derive(Clone, Debug)]
enum ToZk {
    Connect,
    Reconnect(i64),
    Ping,
    Request(u64, Op),
    AddWatch(u64, String),
}

#[derive(Clone, Debug)]
enum ToMember {
    Connected(i64),
    Resumed,
    Expired,
    /// The server's socket closed (ZooKeeper crashed).
    Reset,
    Pong,
    Reply(u64, Result<Answer, ZkErr>),
    Watch(String),
}

/// A fault and its healing, scheduled from the seed.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    ZkDown {
        freeze: bool,
    },
    ZkUp,
    /// A silent cut between a member and ZooKeeper, one way or both.
    Cut(usize, Way),
    Uncut(usize),
    /// SIGSTOP and SIGCONT of a member's process.
    Stop(usize),
    Cont(usize),
    Kill(usize),
    Start(usize),
    Slow(usize, Duration),
    Fast(usize),
    /// The main thread stops running (a long script) while the session
    /// thread runs on, and runs again.
    Stall(usize),
    Unstall(usize),
    /// A firewall on the member's host rejects its connections to the
    /// other members' Redis ports (its replication link drops), and is lifted.
    Reject(usize),
    Unreject(usize),
    /// Messages from one member to another dropped (`both`: either way).
    Part(usize, usize, bool),
    Unpart(usize, usize),
    /// ZKSYNC.FAILOVER [TO member] TIMEOUT t [FORCE], asked of a member.
    Failover {
        at: usize,
        to: Option<usize>,
        timeout: Duration,
        force: bool,
    },
}

/// Which way a cut drops messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    Both,
    ToZk,
    ToMember,
}

#[derive(Debug)]
enum Event {
    ToZk(usize, u64, ToZk),
    ToMember(usize, u64, ToMember),
    ClientTick(usize, u32),
    ShellTick(usize, u32),
    LoadTick(usize, u32),
    RoleDone(usize, u32, Action),
    /// The main thread's serverCron beats again after a SIGCONT.
    Beat(usize, u32),
    /// The replication link to the master dropped.
    LinkDown(usize, u32),
    /// A probe of the master's port; so many left after this one.
    Probe(usize, u32, Refusal, u32),
    /// A message to member `m`'s process of generation `gen`.
    Peer(usize, u32, Peer),
    ZkTick,
    Fault(Fault),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Conn {
    Idle,
    Opening { since: Duration },
    Connected,
    Disconnected { attempt: Option<Duration> },
}

/// zookeeper-client, as far as the group sees it.
struct Client {
    state: Conn,
    session: Option<i64>,
    /// The current connection (0: none); messages of older ones are dropped.
    conn: u64,
    last_recv: Duration,
    last_sent: Duration,
    /// A ping awaits its answer.
    pinging: bool,
    /// Sent on this connection, awaiting their answers.
    pending: Vec<u64>,
    /// Asked while disconnected: sent once the session is resumed.
    queued: Vec<(u64, ToZk)>,
    replies: BTreeMap<u64, Result<Answer, ZkErr>>,
    /// A new session's outcome, for the session thread's connect.
    opened: Option<Option<i64>>,
}

impl Client {
    fn new() -> Client {
        Client {
            state: Conn::Idle,
            session: None,
            conn: 0,
            last_recv: Duration::ZERO,
            last_sent: Duration::ZERO,
            pinging: false,
            pending: Vec::new(),
            queued: Vec::new(),
            replies: BTreeMap::new(),
            opened: None,
        }
    }
}

/// The session thread's inputs, by kind: `tokio::select!` picks any ready one.
#[derive(Default)]
struct Inbox {
    /// A state watcher keeps the latest state only.
    state: Option<ZkState>,
    watches: VecDeque<String>,
    control: VecDeque<Input>,
    load_timer: bool,
    tick: bool,
    /// Grant asks and answers, served even while ZooKeeper does not answer.
    failsafe: VecDeque<Input>,
    failsafe_tick: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisRole {
    Master,
    Replica(usize),
}

/// One member: its process (generation `gen`), its link to ZooKeeper.
pub struct Proc {
    pub id: String,
    pub gen: u32,
    pub alive: bool,
    pub role: RedisRole,
    pub offset: i64,
    /// `CLIENT PAUSE WRITE` until then.
    paused_until: Option<Duration>,
    pub lease: Deadline,
    /// The failsafe lease: grants from every listed member.
    pub failsafe: Deadline,
    client: Client,
    inbox: Inbox,
    role_free_at: Duration,
    /// Stopped (SIGSTOP): what reaches it waits for SIGCONT.
    pub stopped: bool,
    waiting: Vec<Event>,
    /// The main thread runs no command and beats no more since then.
    pub stalled: Option<Duration>,
    /// Its last beat, while it beats no more (stopped or stalled).
    unbeat: Option<Duration>,
    /// What waits for the main thread to run again.
    main_waiting: Vec<Event>,
    /// The replication link to its master is up.
    link_up: bool,
    /// Its connections to the other members' ports are rejected.
    rejecting: bool,
    /// Cut towards ZooKeeper, towards the member.
    cut: [bool; 2],
    max_delay: Duration,
    /// Per direction (to ZooKeeper, to the member): FIFO delivery times, and
    /// what a cut holds back.
    last_delivery: [Duration; 2],
    held: [Vec<Event>; 2],
}

enum ZkServer {
    Up,
    Frozen(Vec<(usize, u64, ToZk)>),
    Crashed,
}

pub struct World {
    pub now: Duration,
    base: Instant,
    pub rng: Rng,
    pub cfg: Config,
    pub layout: Layout,
    zk: Zk,
    server: ZkServer,
    pub procs: Vec<Proc>,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    events: BTreeMap<u64, Event>,
    seq: u64,
    next_conn: u64,
    next_req: u64,
    conn_owner: BTreeMap<u64, usize>,
    pub trace: VecDeque<String>,
    pub verbose: bool,
    /// A session thread did something the simulation does not model.
    pub unmodelled: Option<String>,
    /// The first time a live member followed a master further behind it
    /// than `zksync.failover-max-lag` plus what a master may write unseen
    /// (`unpublished`): its data wiped by the full sync beyond what the
    /// rules allow. When, who, bytes.
    pub lost: Option<(Duration, usize, i64)>,
    /// Times a member followed a master further behind than the max lag
    /// alone (allowed: the lag counts from what was published).
    pub behind: u64,
    /// The highest offset a master reached: the most data ever acknowledged.
    pub written: i64,
    /// Leaderships taken (elections, switchovers).
    pub takeovers: u64,
    /// Leaderships removed (detection).
    pub removals: u64,
    /// Messages from the first member to the second are dropped.
    parted: std::collections::BTreeSet<(usize, usize)>,
    /// Failsafe leases taken (a round granted by every listed member).
    pub failsafe_leases: u64,
    /// What masters wrote on a failsafe lease alone, never recorded in ZooKeeper.
    failsafe_unrecorded: i64,
    /// As `lost`, within what was written on failsafe leases (a finding).
    pub failsafe_lost: Option<(Duration, usize, i64)>,
}

impl World {
    pub fn new(cfg: Config, rng: Rng, verbose: bool) -> World {
        let layout = Layout::new("g");
        let mut dirs = vec![
            "/zksync".to_string(),
            layout.dir().to_string(),
            layout.members(),
            layout.history(),
        ];
        if cfg.rules.detection {
            dirs.push(layout.refused());
        }
        // Empty: no list yet (the real shell creates it so, with the group).
        dirs.push(layout.failsafe());
        // The clock starts after the leases' own base, so deadlines compare right.
        let _ = Deadline::none().live(Instant::now());
        let procs = (0..cfg.members).map(|m| Proc::new(m, cfg.max_delay)).collect();
        let mut world = World {
            now: Duration::ZERO,
            base: Instant::now(),
            rng,
            cfg,
            layout,
            zk: Zk::new(&dirs),
            server: ZkServer::Up,
            procs,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            next_conn: 0,
            next_req: 0,
            conn_owner: BTreeMap::new(),
            trace: VecDeque::new(),
            verbose,
            unmodelled: None,
            lost: None,
            behind: 0,
            written: 0,
            takeovers: 0,
            removals: 0,
            parted: Default::default(),
            failsafe_leases: 0,
            failsafe_unrecorded: 0,
            failsafe_lost: None,
        };
        world.at(ZK_TICK, Event::ZkTick);
        world
    }

    pub fn instant(&self) -> Instant {
        self.base + self.now
    }

    pub fn log(&mut self, who: Option<usize>, line: String) {
        let who = who.map_or("world".to_string(), |m| format!("m{m}"));
        let line = format!("{:>9.3}s {who}: {line}", self.now.as_secs_f64());
        if self.verbose {
            println!("{line}");
        }
        self.trace.push_back(line);
        if self.trace.len() > 400 {
            self.trace.pop_front();
        }
    }

    fn at(&mut self, delay: Duration, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((self.now + delay, self.seq)));
        self.events.insert(self.seq, event);
    }

    pub fn schedule_fault(&mut self, at: Duration, fault: Fault) {
        let delay = at.saturating_sub(self.now);
        self.at(delay, Event::Fault(fault));
    }

    /// When the next event is due, if any.
    pub fn next_at(&self) -> Option<Duration> {
        self.queue.peek().map(|Reverse((t, _))| *t)
    }

    /// Runs the next event; returns a fault for the caller to act on
    /// (starting or killing a session thread).
    pub fn step(&mut self) -> Option<Fault> {
        let Reverse((t, seq)) = self.queue.pop()?;
        self.now = t;
        let event = self.events.remove(&seq)?;
        let target = match &event {
            Event::ToMember(m, ..)
            | Event::ClientTick(m, _)
            | Event::ShellTick(m, _)
            | Event::LoadTick(m, _)
            | Event::RoleDone(m, ..)
            | Event::Beat(m, _)
            | Event::LinkDown(m, _)
            | Event::Probe(m, ..)
            | Event::Peer(m, ..) => Some(*m),
            _ => None,
        };
        if let Some(m) = target.filter(|&m| self.procs[m].stopped) {
            self.procs[m].waiting.push(event);
            return None;
        }
        // The role thread's actions and server events need the main thread.
        // A grant is asked by a Redis command: the main thread runs it.
        let asked = matches!(event, Event::Peer(_, _, Peer::Ask { .. }));
        let main = asked || matches!(event, Event::RoleDone(..) | Event::Beat(..) | Event::LinkDown(..));
        if let Some(m) = target.filter(|&m| main && self.procs[m].stalled.is_some()) {
            self.procs[m].main_waiting.push(event);
            return None;
        }
        match event {
            Event::ToZk(m, conn, msg) => self.deliver_to_zk(m, conn, msg),
            Event::ToMember(m, conn, msg) => self.deliver_to_member(m, conn, msg),
            Event::ClientTick(m, gen) if self.current(m, gen) => self.client_tick(m, gen),
            Event::ShellTick(m, gen) if self.current(m, gen) => {
                self.procs[m].inbox.tick = true;
                self.procs[m].inbox.failsafe_tick = self.cfg.rules.failsafe;
                self.at(SHELL_TICK, Event::ShellTick(m, gen));
            }
            Event::LoadTick(m, gen) if self.current(m, gen) => self.load_tick(m, gen),
            Event::RoleDone(m, gen, action) if self.current(m, gen) => self.role_done(m, action),
            Event::Beat(m, gen) if self.current(m, gen) => self.procs[m].unbeat = None,
            Event::LinkDown(m, gen) if self.current(m, gen) => {
                self.procs[m].inbox.control.push_back(Input::MasterLinkDown);
            }
            Event::Probe(m, gen, refusal, left) if self.current(m, gen) => self.probe(m, gen, refusal, left),
            Event::Peer(m, gen, peer) if self.current(m, gen) => self.peer(m, peer),
            Event::ZkTick => self.zk_tick(),
            Event::Fault(fault) => return Some(self.fault(fault)),
            _ => {}
        }
        None
    }

    fn current(&self, m: usize, gen: u32) -> bool {
        self.procs[m].alive && self.procs[m].gen == gen
    }
}

/// The network: FIFO per direction, delayed, held back while cut.
impl World {
    fn post(&mut self, m: usize, event: Event) {
        let dir = usize::from(matches!(event, Event::ToMember(..)));
        let max = self.procs[m].max_delay.as_micros() as u64;
        let delay = Duration::from_micros(self.rng.between(100, max.max(100)));
        let at = (self.now + delay).max(self.procs[m].last_delivery[dir]);
        self.procs[m].last_delivery[dir] = at;
        self.at(at - self.now, event);
    }

    /// Whether `event` crosses the link now; if cut, it waits for the heal.
    fn crosses(&mut self, m: usize, event: Event) -> Option<Event> {
        let dir = usize::from(matches!(event, Event::ToMember(..)));
        if !self.procs[m].cut[dir] {
            return Some(event);
        }
        self.procs[m].held[dir].push(event);
        None
    }

    fn send_to_zk(&mut self, m: usize, msg: ToZk) {
        let conn = self.procs[m].client.conn;
        self.procs[m].client.last_sent = self.now;
        self.post(m, Event::ToZk(m, conn, msg));
    }

    fn reply(&mut self, m: usize, conn: u64, msg: ToMember) {
        self.post(m, Event::ToMember(m, conn, msg));
    }
}

/// The ZooKeeper server.
impl World {
    fn deliver_to_zk(&mut self, m: usize, conn: u64, msg: ToZk) {
        let Some(Event::ToZk(m, conn, msg)) = self.crosses(m, Event::ToZk(m, conn, msg)) else {
            return;
        };
        // A connection the client closed carries nothing further.
        if self.procs[m].client.conn != conn {
            return;
        }
        match &mut self.server {
            ZkServer::Up => self.serve(m, conn, msg),
            // A stopped JVM: the kernel buffers what arrives.
            ZkServer::Frozen(backlog) => backlog.push((m, conn, msg)),
            ZkServer::Crashed => {}
        }
    }

    fn serve(&mut self, m: usize, conn: u64, msg: ToZk) {
        let now = self.now;
        let session = match msg {
            ToZk::Connect => {
                let id = self.zk.open_session(self.cfg.session_timeout, now, conn);
                self.conn_owner.insert(conn, m);
                return self.reply(m, conn, ToMember::Connected(id));
            }
            ToZk::Reconnect(id) => {
                let answer = match self.zk.sessions.get_mut(&id) {
                    Some(s) => {
                        s.conn = conn;
                        s.watch = None;
                        self.conn_owner.insert(conn, m);
                        self.zk.touch(id, now);
                        ToMember::Resumed
                    }
                    None => ToMember::Expired,
                };
                return self.reply(m, conn, answer);
            }
            _ => self.zk.sessions.iter().find(|(_, s)| s.conn == conn).map(|(id, _)| *id),
        };
        let Some(session) = session else {
            return self.reply(m, conn, ToMember::Expired);
        };
        self.zk.touch(session, now);
        match msg {
            ToZk::Ping => self.reply(m, conn, ToMember::Pong),
            ToZk::AddWatch(req, dir) => {
                if let Some(s) = self.zk.sessions.get_mut(&session) {
                    s.watch = Some((conn, dir));
                }
                self.reply(m, conn, ToMember::Reply(req, Ok(Answer::Done)));
            }
            ToZk::Request(req, op) => {
                let now_ms = self.now.as_millis() as i64;
                let (result, changed) = self.zk.apply(session, &op, now_ms);
                self.reply(m, conn, ToMember::Reply(req, result));
                self.notify(changed);
            }
            _ => {}
        }
    }

    /// Watch events, to every session watching a directory above a path.
    fn notify(&mut self, changed: Vec<String>) {
        for path in changed {
            let watchers: Vec<u64> = self
                .zk
                .sessions
                .values()
                .filter_map(|s| s.watch.as_ref().filter(|(c, _)| *c == s.conn))
                .filter(|(_, dir)| path.starts_with(&format!("{dir}/")) || path == *dir)
                .map(|(conn, _)| *conn)
                .collect();
            for conn in watchers {
                if let Some(&m) = self.conn_owner.get(&conn) {
                    self.reply(m, conn, ToMember::Watch(path.clone()));
                }
            }
        }
    }

    fn zk_tick(&mut self) {
        if matches!(self.server, ZkServer::Up) {
            self.expire_sessions();
        }
        self.at(ZK_TICK, Event::ZkTick);
    }

    fn expire_sessions(&mut self) {
        let (gone, changed) = self.zk.expire(self.now, self.now.as_millis() as i64);
        for id in gone {
            self.log(None, format!("ZooKeeper expired session {id:#x}"));
        }
        self.notify(changed);
    }

    fn zk_down(&mut self, freeze: bool) {
        if !matches!(self.server, ZkServer::Up) {
            return;
        }
        self.log(None, format!("ZooKeeper {}", if freeze { "frozen" } else { "crashed" }));
        if freeze {
            self.server = ZkServer::Frozen(Vec::new());
            return;
        }
        self.server = ZkServer::Crashed;
        for m in 0..self.procs.len() {
            let conn = self.procs[m].client.conn;
            if self.procs[m].alive && conn != 0 {
                self.reply(m, conn, ToMember::Reset);
            }
        }
    }

    /// A frozen server expires every overdue session and serves what it
    /// buffered, in either order; a restarted one gives every session a
    /// full timeout again.
    fn zk_up(&mut self) {
        let server = std::mem::replace(&mut self.server, ZkServer::Up);
        self.log(None, "ZooKeeper back".into());
        match server {
            ZkServer::Up => {}
            ZkServer::Crashed => {
                for s in self.zk.sessions.values_mut() {
                    s.deadline = self.now + s.timeout;
                    s.conn = 0;
                }
            }
            ZkServer::Frozen(backlog) => {
                let expire_first = self.rng.chance(50);
                if expire_first {
                    self.expire_sessions();
                }
                for (m, conn, msg) in backlog {
                    self.serve(m, conn, msg);
                }
                if !expire_first {
                    self.expire_sessions();
                }
            }
        }
    }
}

/// Each member's zookeeper-client.
impl World {
    fn deliver_to_member(&mut self, m: usize, conn: u64, msg: ToMember) {
        let Some(Event::ToMember(m, conn, msg)) = self.crosses(m, Event::ToMember(m, conn, msg)) else {
            return;
        };
        let p = &mut self.procs[m];
        if !p.alive || p.client.conn != conn {
            return;
        }
        p.client.last_recv = self.now;
        match msg {
            ToMember::Connected(id) if matches!(p.client.state, Conn::Opening { .. }) => {
                p.client.state = Conn::Connected;
                p.client.session = Some(id);
                p.client.opened = Some(Some(id));
                // A new client: a new state watcher and a new event channel.
                p.inbox.state = None;
                p.inbox.watches.clear();
            }
            ToMember::Resumed if matches!(p.client.state, Conn::Disconnected { .. }) => {
                p.client.state = Conn::Connected;
                p.inbox.state = Some(ZkState::SyncConnected);
                for (req, msg) in std::mem::take(&mut p.client.queued) {
                    self.procs[m].client.pending.push(req);
                    self.send_to_zk(m, msg);
                }
            }
            ToMember::Expired => self.expired(m),
            ToMember::Reset => self.disconnect(m),
            ToMember::Pong => p.client.pinging = false,
            ToMember::Reply(req, result) => {
                if let Some(i) = p.client.pending.iter().position(|r| *r == req) {
                    p.client.pending.remove(i);
                    p.client.replies.insert(req, result);
                }
            }
            ToMember::Watch(path) => p.inbox.watches.push_back(path),
            _ => {}
        }
    }

    /// What was sent on a lost connection fails; with `queued`, what
    /// waited for the next one too (the session is over).
    fn fail_pending(&mut self, m: usize, queued: bool) {
        let client = &mut self.procs[m].client;
        client.pinging = false;
        for req in std::mem::take(&mut client.pending) {
            client.replies.insert(req, Err(ZkErr::ConnectionLoss));
        }
        if queued {
            for (req, _) in std::mem::take(&mut client.queued) {
                client.replies.insert(req, Err(ZkErr::ConnectionLoss));
            }
        }
    }

    fn disconnect(&mut self, m: usize) {
        if self.procs[m].client.state != Conn::Connected {
            return;
        }
        self.fail_pending(m, false);
        let p = &mut self.procs[m];
        p.client.state = Conn::Disconnected { attempt: None };
        p.client.conn = 0;
        p.inbox.state = Some(ZkState::Disconnected);
    }

    fn expired(&mut self, m: usize) {
        self.fail_pending(m, true);
        let p = &mut self.procs[m];
        if p.client.session.take().is_some() {
            p.inbox.state = Some(ZkState::Expired);
        }
        p.client.state = Conn::Idle;
        p.client.conn = 0;
    }

    fn new_conn(&mut self, m: usize) -> u64 {
        self.next_conn += 1;
        self.procs[m].client.conn = self.next_conn;
        self.next_conn
    }

    /// zookeeper-client 0.11.2's timers, from its tick of 1/20 of the
    /// session timeout: a ping after 3 ticks without sending, the
    /// connection given up after 8 ticks (2/5) without an answer, a
    /// reconnect attempt as long again, and the session given up 7/5 of the
    /// timeout after the last answer.
    fn client_tick(&mut self, m: usize, gen: u32) {
        let timeout = self.cfg.session_timeout;
        let now = self.now;
        let client = &self.procs[m].client;
        let silent = now.saturating_sub(client.last_recv);
        match client.state {
            Conn::Connected if silent >= timeout * 2 / 5 => self.disconnect(m),
            Conn::Connected if !client.pinging && now.saturating_sub(client.last_sent) >= timeout * 3 / 20 => {
                self.procs[m].client.pinging = true;
                self.send_to_zk(m, ToZk::Ping);
            }
            Conn::Disconnected { .. } if silent >= timeout * 7 / 5 => self.expired(m),
            Conn::Disconnected { attempt } if attempt.is_none_or(|a| now - a >= timeout * 2 / 5) => {
                let session = client.session.unwrap_or_default();
                self.new_conn(m);
                self.procs[m].client.state = Conn::Disconnected { attempt: Some(now) };
                self.send_to_zk(m, ToZk::Reconnect(session));
            }
            Conn::Opening { since } if now - since >= timeout => {
                let client = &mut self.procs[m].client;
                client.state = Conn::Idle;
                client.conn = 0;
                client.opened = Some(None);
            }
            _ => {}
        }
        self.at(self.cfg.session_timeout / 20, Event::ClientTick(m, gen));
    }
}

/// What the session thread calls.
impl World {
    /// Opens a new session (`connect_once`); `opened` tells how it went.
    pub fn open(&mut self, m: usize) {
        self.new_conn(m);
        let client = &mut self.procs[m].client;
        client.state = Conn::Opening { since: self.now };
        client.opened = None;
        self.send_to_zk(m, ToZk::Connect);
    }

    pub fn opened(&mut self, m: usize) -> Option<Option<i64>> {
        self.procs[m].client.opened.take()
    }

    /// Sends a request; fails at once without a connection.
    pub fn request(&mut self, m: usize, op: Op) -> Result<u64, ZkErr> {
        self.send(m, |req| ToZk::Request(req, op))
    }

    pub fn add_watch(&mut self, m: usize, dir: String) -> Result<u64, ZkErr> {
        self.send(m, |req| ToZk::AddWatch(req, dir))
    }

    /// A request waits for the connection while the session may resume;
    /// without a session it fails at once.
    fn send(&mut self, m: usize, msg: impl FnOnce(u64) -> ToZk) -> Result<u64, ZkErr> {
        self.next_req += 1;
        let req = self.next_req;
        match self.procs[m].client.state {
            Conn::Connected => {
                self.procs[m].client.pending.push(req);
                self.send_to_zk(m, msg(req));
            }
            Conn::Disconnected { .. } => self.procs[m].client.queued.push((req, msg(req))),
            Conn::Idle | Conn::Opening { .. } => return Err(ZkErr::ConnectionLoss),
        }
        Ok(req)
    }

    pub fn reply_to(&mut self, m: usize, req: u64) -> Option<Result<Answer, ZkErr>> {
        self.procs[m].client.replies.remove(&req)
    }

    /// The next input, as `tokio::select!` would pick among the ready ones.
    pub fn next_input(&mut self, m: usize, connected: bool) -> Option<Input> {
        let inbox = &self.procs[m].inbox;
        let candidates = [
            (connected && inbox.state.is_some(), 0),
            (connected && !inbox.watches.is_empty(), 1),
            (connected && inbox.load_timer, 3),
            (connected && inbox.tick, 4),
            (!inbox.control.is_empty(), 2),
            (!inbox.failsafe.is_empty() || inbox.failsafe_tick, 5),
        ];
        // On the stack: this runs at every poll of every session thread.
        let mut ready = [0u8; 6];
        let mut count = 0;
        for (_, kind) in candidates.iter().filter(|(r, _)| *r) {
            ready[count] = *kind;
            count += 1;
        }
        if count == 0 {
            return None;
        }
        let kind = *self.rng.pick(&ready[..count]);
        let inbox = &mut self.procs[m].inbox;
        match kind {
            0 => inbox.state.take().map(Input::State),
            1 => Some(Input::Watch(inbox.watches.drain(..).collect())),
            2 => inbox.control.pop_front(),
            3 => {
                inbox.load_timer = false;
                Some(Input::LoadTimer)
            }
            5 => self.next_failsafe(m),
            _ => {
                inbox.tick = false;
                Some(Input::Tick)
            }
        }
    }

    /// The failsafe's next input: an ask or answer, else its tick.
    pub fn next_failsafe(&mut self, m: usize) -> Option<Input> {
        let inbox = &mut self.procs[m].inbox;
        if let Some(input) = inbox.failsafe.pop_front() {
            return Some(input);
        }
        std::mem::take(&mut inbox.failsafe_tick).then_some(Input::FailsafeTick)
    }

    /// When the main thread last beat.
    pub fn beat(&self, m: usize) -> Instant {
        self.base + self.procs[m].unbeat.unwrap_or(self.now)
    }

    /// What the election decided of the lease, as `fence::change` applies it.
    pub fn lease(&mut self, m: usize, change: LeaseChange) {
        let timeout = self.cfg.session_timeout;
        let now = self.instant();
        let lease = &self.procs[m].lease;
        let held = lease.live(now);
        match change {
            LeaseChange::Renew(sent) => lease.set(match self.cfg.rules.flaw {
                Some(Flaw::LeaseOutlivesSession) => sent + timeout * 3 / 2,
                _ => lease::expiry(sent, timeout),
            }),
            LeaseChange::Cap(until) => lease.cap(until),
            LeaseChange::Revoke => lease.revoke(),
        }
        if held != lease.live(now) {
            let line = if held { "lease ended" } else { "lease taken" };
            self.log(Some(m), line.into());
        }
    }

    /// Hands `action` to the role thread, which carries actions out in order.
    pub fn role(&mut self, m: usize, action: Action) {
        let delay = Duration::from_micros(self.rng.between(200, 5000));
        let at = (self.now + delay).max(self.procs[m].role_free_at);
        self.procs[m].role_free_at = at;
        let gen = self.procs[m].gen;
        self.at(at - self.now, Event::RoleDone(m, gen, action));
    }
}

/// Failsafe: grants asked and answered between members' processes, over
/// links with delays that may be cut one way or both; the failsafe lease.
impl World {
    /// Master `m` asks the members `to` (by id) for a grant.
    pub fn ask_grants(&mut self, m: usize, to: &[String], ask: &Ask, sent: Instant) {
        let gen = self.procs[m].gen;
        for id in to {
            let Some(t) = self.procs.iter().position(|p| p.id == *id) else {
                continue;
            };
            let peer = Peer::Ask {
                from: m,
                gen,
                ask: ask.clone(),
                sent,
            };
            self.send_peer(m, t, peer);
        }
    }

    /// Member `m` answers the ask of master `to` (process `gen`).
    pub fn answer_grant(&mut self, m: usize, to: usize, gen: u32, sent: Instant, granted: bool) {
        let by = self.procs[m].id.clone();
        if self.procs[to].gen == gen {
            self.send_peer(m, to, Peer::Answer { by, sent, granted });
        }
    }

    fn send_peer(&mut self, from: usize, to: usize, peer: Peer) {
        if self.parted.contains(&(from, to)) || !self.procs[to].alive {
            return;
        }
        let max = self.procs[from].max_delay.max(self.procs[to].max_delay);
        let delay = Duration::from_micros(self.rng.between(100, (max.as_micros() as u64).max(100)));
        let gen = self.procs[to].gen;
        self.at(delay, Event::Peer(to, gen, peer));
    }

    fn peer(&mut self, m: usize, peer: Peer) {
        let input = match peer {
            Peer::Ask { from, gen, ask, sent } => Input::GrantAsked { from, gen, ask, sent },
            Peer::Answer { by, sent, granted } => Input::GrantAnswer { by, sent, granted },
        };
        self.procs[m].inbox.failsafe.push_back(input);
    }

    /// What the election decided of the failsafe lease (the fence's second deadline).
    pub fn failsafe_lease(&mut self, m: usize, change: FailsafeLease) {
        let now = self.instant();
        let held = self.procs[m].failsafe.live(now);
        match change {
            FailsafeLease::Extend(until) => {
                self.procs[m].failsafe.extend(until);
                self.failsafe_leases += 1;
            }
            FailsafeLease::Revoke => self.procs[m].failsafe.revoke(),
        }
        if held != self.procs[m].failsafe.live(now) {
            let line = if held {
                "failsafe lease ended"
            } else {
                "failsafe lease taken"
            };
            self.log(Some(m), line.into());
        }
    }
}

/// Each member's Redis: its role thread and its main thread.
impl World {
    fn role_done(&mut self, m: usize, action: Action) {
        let offset = self.procs[m].offset;
        let master = self.procs[m].role == RedisRole::Master;
        match &action {
            Action::Pause(ms) => self.procs[m].paused_until = Some(self.now + Duration::from_millis(*ms)),
            Action::Unpause => self.procs[m].paused_until = None,
            // Following from a master ends its pause (CLIENT UNPAUSE).
            Action::Follow { .. } if master => self.procs[m].paused_until = None,
            _ => {}
        }
        match &action {
            Action::Promote if self.procs[m].role != RedisRole::Master => {
                self.procs[m].role = RedisRole::Master;
                self.log(Some(m), format!("REPLICAOF NO ONE (offset {offset})"));
            }
            Action::Follow { addr, .. } => {
                let master = self.procs.iter().position(|p| p.id == *addr);
                if let Some(master) = master.filter(|&o| self.procs[m].role != RedisRole::Replica(o)) {
                    if self.procs[m].role == RedisRole::Master {
                        // A master turned replica disconnects its own replicas.
                        self.links_drop(m);
                    }
                    self.procs[m].role = RedisRole::Replica(master);
                    self.procs[m].link_up = false;
                    let theirs = self.procs[master].offset;
                    self.log(
                        Some(m),
                        format!("REPLICAOF m{master} (offset {offset}, the master's {theirs})"),
                    );
                }
            }
            _ => {}
        }
        let sample = self.sample(m);
        self.procs[m].inbox.control.push_back(Input::Acted(action, sample));
    }

    /// Replica `m` takes master `of`'s data: anything it had beyond is gone
    /// (a full sync). A Redis replica syncs only from a master that streams
    /// (a fenced one refuses its PSYNC), so that is when data can be lost.
    fn sync(&mut self, m: usize, of: usize) {
        let (offset, theirs) = (self.procs[m].offset, self.procs[of].offset);
        if offset - theirs > MAX_LAG {
            self.behind += 1;
        }
        let wiped = offset - theirs - MAX_LAG - self.unpublished();
        if wiped > self.failsafe_unrecorded {
            self.lost.get_or_insert((self.now, m, offset - theirs));
        } else if wiped > 0 {
            self.failsafe_lost.get_or_insert((self.now, m, offset - theirs));
        }
        self.procs[m].offset = theirs;
    }

    /// The most a master can write that the group never saw published: the
    /// rest of its lease after its last publication (2/3 of the session
    /// timeout), plus a load interval before the sample and one before the
    /// write. The max lag counts from what was published, so a member may
    /// follow a master this much further behind by the rules.
    fn unpublished(&self) -> i64 {
        let lease = self.cfg.session_timeout.as_millis() * 2 / 3;
        let intervals = lease.div_ceil(self.cfg.load_interval.as_millis().max(1)) as i64 + 2;
        WRITES * intervals
    }

    pub fn sample(&self, m: usize) -> Sample {
        let p = &self.procs[m];
        let (role, master) = match p.role {
            RedisRole::Master => (Role::Master, None),
            RedisRole::Replica(of) => (Role::Replica, Some(self.procs[of].id.clone())),
        };
        Sample {
            port: 6379,
            figures: Figures::new(role, p.offset, 0, 1, 0, 0),
            master,
        }
    }

    /// A live Redis master holding its lease, its main thread not stalled
    /// (a stopped one counts: it writes the moment it is continued).
    pub fn accepts_writes(&self, m: usize, now: Instant) -> bool {
        let p = &self.procs[m];
        let paused = p.paused_until.is_some_and(|until| self.now < until);
        p.alive && p.stalled.is_none() && p.role == RedisRole::Master && p.leased(now) && !paused
    }

    /// A master its replicas sync from: live, running, not fenced.
    fn streams(&self, m: usize, now: Instant) -> bool {
        let p = &self.procs[m];
        p.alive && !p.stopped && p.stalled.is_none() && p.role == RedisRole::Master && p.leased(now)
    }

    /// Whether `m`'s replication link to `of` drops now: `of` is gone, or
    /// silent past the repl-timeout, or `m` rejects connections to it.
    fn link_drops(&self, m: usize, of: usize) -> bool {
        let master = &self.procs[of];
        let silent = master.unbeat.is_some_and(|t| self.now.saturating_sub(t) > REPL_TIMEOUT);
        !master.alive || silent || self.procs[m].rejecting
    }

    /// Every load interval: clients write to a master that holds its lease,
    /// replicas catch up with a live master, the main thread samples.
    fn load_tick(&mut self, m: usize, gen: u32) {
        let now = self.instant();
        if self.procs[m].stalled.is_some() {
            // The session thread's load timer runs on; the main thread does not.
            self.procs[m].inbox.load_timer = true;
            return self.at(self.cfg.load_interval, Event::LoadTick(m, gen));
        }
        if let RedisRole::Replica(of) = self.procs[m].role {
            self.link_check(m, of);
        }
        match self.procs[m].role {
            RedisRole::Master if self.accepts_writes(m, now) => {
                if !self.procs[m].lease.live(now) {
                    // Written on grants alone: ZooKeeper's record of the offset cannot follow.
                    self.failsafe_unrecorded += WRITES;
                }
                self.procs[m].offset += WRITES;
                self.written = self.written.max(self.procs[m].offset);
            }
            // A fenced master refuses its replicas' PSYNC: a master restarted
            // empty at their master's address does not wipe them. A paused one
            // still streams; a stopped one does not.
            RedisRole::Replica(of) if self.streams(of, now) && !self.procs[m].rejecting => self.sync(m, of),
            _ => {}
        }
        let sample = self.sample(m);
        let inbox = &mut self.procs[m].inbox;
        inbox.control.push_back(Input::Sample(sample));
        inbox.load_timer = true;
        self.at(self.cfg.load_interval, Event::LoadTick(m, gen));
    }
}

/// The replication links and the probes of a master's port (detection).
impl World {
    fn detection(&self) -> bool {
        self.cfg.rules.detection
    }

    /// At a replica's load tick: its link to `of` drops, or comes up once
    /// the master streams to it.
    fn link_check(&mut self, m: usize, of: usize) {
        let now = self.instant();
        if !self.detection() {
            return;
        }
        if self.procs[m].link_up && self.link_drops(m, of) {
            self.link_down(m);
        } else if !self.procs[m].link_up && self.streams(of, now) && !self.procs[m].rejecting {
            self.procs[m].link_up = true;
        }
    }

    fn link_down(&mut self, m: usize) {
        self.procs[m].link_up = false;
        let delay = Duration::from_micros(self.rng.between(100, 2000));
        let gen = self.procs[m].gen;
        self.at(delay, Event::LinkDown(m, gen));
    }

    /// The links of `master`'s replicas drop at once (it died or was demoted).
    fn links_drop(&mut self, master: usize) {
        if !self.detection() {
            return;
        }
        for r in 0..self.procs.len() {
            let p = &self.procs[r];
            if p.alive && p.link_up && p.role == RedisRole::Replica(master) {
                self.link_down(r);
            }
        }
    }

    /// The session thread asks the master's port, `PROBES` times at most.
    pub fn probe_master(&mut self, m: usize, refusal: Refusal) {
        let gen = self.procs[m].gen;
        self.at(Duration::ZERO, Event::Probe(m, gen, refusal, PROBES - 1));
    }

    /// A connection to a dead process's port is refused; a stopped or
    /// stalled one's is accepted by the kernel; a rejecting firewall refuses.
    fn probe(&mut self, m: usize, gen: u32, refusal: Refusal, left: u32) {
        let target = self.procs.iter().position(|p| p.id == refusal.leader);
        let silent = |p: &Proc| p.stopped || p.stalled.is_some();
        let flawed = self.cfg.rules.flaw == Some(Flaw::SilenceIsDeath);
        let refused = self.procs[m].rejecting
            || target.is_some_and(|t| !self.procs[t].alive || (flawed && silent(&self.procs[t])));
        if refused {
            self.log(Some(m), format!("{} refuses a connection", refusal.leader));
            self.procs[m].inbox.control.push_back(Input::Refused(refusal));
        } else if left > 0 {
            self.at(PROBE_EVERY, Event::Probe(m, gen, refusal, left - 1));
        }
    }
}

/// Faults.
impl World {
    fn fault(&mut self, fault: Fault) -> Fault {
        self.log(None, format!("fault: {fault:?}"));
        match fault {
            Fault::ZkDown { freeze } => self.zk_down(freeze),
            Fault::ZkUp => self.zk_up(),
            Fault::Cut(m, way) => {
                self.procs[m].cut = [way != Way::ToMember, way != Way::ToZk];
            }
            Fault::Uncut(m) => self.uncut(m),
            Fault::Stop(m) => {
                let p = &mut self.procs[m];
                p.stopped = true;
                p.unbeat.get_or_insert(self.now);
            }
            Fault::Cont(m) => self.cont(m),
            Fault::Kill(m) => self.kill(m),
            Fault::Start(m) => self.start(m),
            Fault::Slow(m, delay) => self.procs[m].max_delay = delay,
            Fault::Failover { at, to, timeout, force } => {
                let request = Request {
                    to: to.map(|to| self.procs[to].id.clone()),
                    timeout,
                    force,
                };
                if self.procs[at].alive {
                    self.procs[at].inbox.control.push_back(Input::Failover(request));
                }
            }
            Fault::Fast(m) => self.procs[m].max_delay = self.cfg.max_delay,
            Fault::Stall(m) => self.stall(m),
            Fault::Unstall(m) => self.unstall(m),
            Fault::Reject(m) => self.reject(m),
            Fault::Unreject(m) => self.procs[m].rejecting = false,
            Fault::Part(a, b, both) => {
                self.parted.insert((a, b));
                if both {
                    self.parted.insert((b, a));
                }
            }
            Fault::Unpart(a, b) => {
                self.parted.remove(&(a, b));
                self.parted.remove(&(b, a));
            }
        }
        fault
    }

    fn stall(&mut self, m: usize) {
        let p = &mut self.procs[m];
        if !p.alive || p.stalled.is_some() {
            return;
        }
        p.stalled = Some(self.now);
        p.unbeat.get_or_insert(self.now);
    }

    /// The main thread runs again: it beats, and what waited for it runs.
    fn unstall(&mut self, m: usize) {
        let p = &mut self.procs[m];
        if p.stalled.take().is_none() {
            return;
        }
        if !p.stopped {
            p.unbeat = None;
        }
        for event in std::mem::take(&mut p.main_waiting) {
            self.at(Duration::ZERO, event);
        }
    }

    fn reject(&mut self, m: usize) {
        self.procs[m].rejecting = true;
        if self.procs[m].alive && self.procs[m].link_up && self.detection() {
            self.link_down(m);
        }
    }

    /// What waited for a stopped process reaches it now, in order.
    fn cont(&mut self, m: usize) {
        let was = std::mem::replace(&mut self.procs[m].stopped, false);
        for event in std::mem::take(&mut self.procs[m].waiting) {
            self.at(Duration::ZERO, event);
        }
        if was && self.detection() {
            // The main thread beats at its next serverCron, racing the session thread's tick.
            let delay = Duration::from_millis(self.rng.between(0, 100));
            let gen = self.procs[m].gen;
            self.at(delay, Event::Beat(m, gen));
        } else if self.procs[m].stalled.is_none() {
            self.procs[m].unbeat = None;
        }
    }

    fn uncut(&mut self, m: usize) {
        self.procs[m].cut = [false; 2];
        for dir in 0..2 {
            for event in std::mem::take(&mut self.procs[m].held[dir]) {
                self.post(m, event);
            }
        }
    }

    /// SIGKILL: nothing of the process survives; its session lives on in
    /// ZooKeeper until it expires.
    fn kill(&mut self, m: usize) {
        let p = &mut self.procs[m];
        if !p.alive {
            return;
        }
        p.alive = false;
        p.stopped = false;
        p.waiting.clear();
        p.stalled = None;
        p.unbeat = None;
        p.main_waiting.clear();
        p.link_up = false;
        p.lease.revoke();
        p.failsafe.revoke();
        p.client = Client::new();
        p.inbox = Inbox::default();
        // Its replicas' links are reset at once.
        self.links_drop(m);
    }

    /// A fresh process: an empty Redis, a master until told otherwise.
    fn start(&mut self, m: usize) {
        if self.procs[m].alive {
            return;
        }
        let p = &mut self.procs[m];
        p.gen += 1;
        p.alive = true;
        p.role = RedisRole::Master;
        p.offset = 0;
        p.paused_until = None;
        p.role_free_at = Duration::ZERO;
        let gen = p.gen;
        self.at(Duration::ZERO, Event::LoadTick(m, gen));
        self.at(SHELL_TICK, Event::ShellTick(m, gen));
        self.at(Duration::ZERO, Event::ClientTick(m, gen));
    }
}

impl Proc {
    /// A live lease: ZooKeeper's or failsafe's.
    fn leased(&self, now: Instant) -> bool {
        self.lease.live(now) || self.failsafe.live(now)
    }

    fn new(m: usize, max_delay: Duration) -> Proc {
        Proc {
            id: format!("10.0.0.{}:6379", m + 1),
            gen: 0,
            alive: false,
            role: RedisRole::Master,
            offset: 0,
            paused_until: None,
            lease: Deadline::none(),
            failsafe: Deadline::none(),
            client: Client::new(),
            inbox: Inbox::default(),
            role_free_at: Duration::ZERO,
            stopped: false,
            waiting: Vec::new(),
            stalled: None,
            unbeat: None,
            main_waiting: Vec::new(),
            link_up: false,
            rejecting: false,
            cut: [false; 2],
            max_delay,
            last_delivery: [Duration::ZERO; 2],
            held: [Vec::new(), Vec::new()],
        }
    }
}
