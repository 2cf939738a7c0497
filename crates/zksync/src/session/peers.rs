//! A master in failsafe asks the other members for grants directly, over
//! the Redis protocol (`ZKSYNC.FAILSAFE group master epoch`), authenticated
//! as replication is (`masteruser`/`masterauth`). One task per member keeps
//! a connection; an ask not answered before its deadline counts for
//! nothing (only a reply grants or refuses), and only the newest ask to a
//! member is sent: a round that a newer one follows cannot extend the lease
//! further than the newer one.

use crate::ffi::log;
use crate::redis::credentials::Credentials;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::watch;
use zksync_core::group::failsafe::Ask;

/// A member's answer to the round of asks sent at `sent`.
#[derive(Debug)]
pub(super) struct Answer {
    pub by: String,
    pub sent: Instant,
    pub granted: bool,
}

/// One ask on its way to one member.
struct Call {
    command: [String; 4],
    sent: Instant,
    deadline: Instant,
}

/// The links to the other members, by member id (`host:port`).
pub(super) struct Peers {
    answers: UnboundedSender<Answer>,
    credentials: watch::Sender<Option<Credentials>>,
    links: RefCell<HashMap<String, UnboundedSender<Call>>>,
}

impl Peers {
    pub(super) fn new(answers: UnboundedSender<Answer>) -> Peers {
        Peers {
            answers,
            credentials: watch::channel(None).0,
            links: RefCell::new(HashMap::new()),
        }
    }

    /// Links open from now on authenticate with these.
    pub(super) fn set_credentials(&self, credentials: Option<Credentials>) {
        self.credentials.send_replace(credentials);
    }

    /// Asks members `to` for a grant to `ask` in `group`; each answer comes
    /// back as an `Answer`. An answer later than a third of the timeout
    /// could extend the lease by little: the ask is given up then.
    pub(super) fn ask(&self, group: &str, ask: &Ask, sent: Instant, to: &[String], timeout: Duration) {
        let command = [
            "ZKSYNC.FAILSAFE".to_string(),
            group.to_string(),
            ask.master.clone(),
            ask.epoch.to_string(),
        ];
        let mut links = self.links.borrow_mut();
        for id in to {
            let call = Call {
                command: command.clone(),
                sent,
                deadline: sent + timeout / 3,
            };
            let link = links.entry(id.clone()).or_insert_with(|| self.open(id));
            if let Err(mpsc::error::SendError(call)) = link.send(call) {
                // The link's task ended (its runtime is new): a new one.
                let fresh = self.open(id);
                let _ = fresh.send(call);
                *link = fresh;
            }
        }
    }

    fn open(&self, id: &str) -> UnboundedSender<Call> {
        let (tx, rx) = mpsc::unbounded_channel();
        let link = Link {
            id: id.to_string(),
            answers: self.answers.clone(),
            credentials: self.credentials.subscribe(),
            connection: None,
            last_error: None,
        };
        tokio::spawn(link.serve(rx));
        tx
    }
}

/// The task that asks one member.
struct Link {
    id: String,
    answers: UnboundedSender<Answer>,
    credentials: watch::Receiver<Option<Credentials>>,
    connection: Option<Connection>,
    /// Said once until it changes.
    last_error: Option<String>,
}

impl Link {
    async fn serve(mut self, mut calls: UnboundedReceiver<Call>) {
        while let Some(mut call) = calls.recv().await {
            while let Ok(newer) = calls.try_recv() {
                call = newer;
            }
            let deadline = tokio::time::Instant::from_std(call.deadline);
            let granted = match tokio::time::timeout_at(deadline, self.call(&call)).await {
                Ok(Ok(granted)) => granted,
                Ok(Err(e)) => {
                    self.failed(e);
                    continue;
                }
                Err(_) => {
                    self.failed("no answer in time".to_string());
                    continue;
                }
            };
            self.last_error = None;
            let answer = Answer {
                by: self.id.clone(),
                sent: call.sent,
                granted,
            };
            if self.answers.send(answer).is_err() {
                return;
            }
        }
    }

    /// The connection is given up (a reply may still be on its way).
    fn failed(&mut self, why: String) {
        self.connection = None;
        if self.last_error.as_ref() != Some(&why) {
            log::notice(&format!("failsafe: cannot ask member {} for a grant: {why}", self.id));
            self.last_error = Some(why);
        }
    }

    /// `true` for a grant, `false` for a refusal; `Err` for anything else.
    async fn call(&mut self, call: &Call) -> Result<bool, String> {
        if self.connection.is_none() {
            let credentials = self.credentials.borrow().clone();
            self.connection = Some(Connection::open(&self.id, credentials.as_ref()).await?);
        }
        let Some(connection) = self.connection.as_mut() else {
            return Err("no connection".into());
        };
        match connection.request(&call.command).await? {
            Resp::Integer(_) => Ok(true),
            Resp::Error(e) if e.starts_with("REFUSED") => Ok(false),
            Resp::Error(e) => Err(e),
            Resp::Simple(s) => Err(format!("unexpected reply {s}")),
        }
    }
}

/// A reply of the kinds these requests get.
#[derive(Debug, PartialEq, Eq)]
enum Resp {
    Simple(String),
    Error(String),
    Integer(i64),
}

/// One RESP line: `+text`, `-error` or `:integer`.
fn parse_line(line: &str) -> Result<Resp, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    match line.split_at_checked(1) {
        Some(("+", text)) => Ok(Resp::Simple(text.to_string())),
        Some(("-", text)) => Ok(Resp::Error(text.to_string())),
        Some((":", n)) => n
            .parse()
            .map(Resp::Integer)
            .map_err(|_| format!("bad integer reply {n}")),
        _ => Err(format!("unexpected reply {line:?}")),
    }
}

/// A command as RESP: an array of bulk strings.
fn encode(args: &[impl AsRef<[u8]>]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        out.extend(format!("${}\r\n", arg.len()).into_bytes());
        out.extend(arg);
        out.extend(b"\r\n");
    }
    out
}

struct Connection {
    stream: BufReader<TcpStream>,
}

impl Connection {
    async fn open(id: &str, credentials: Option<&Credentials>) -> Result<Connection, String> {
        let stream = TcpStream::connect(id).await.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let mut connection = Connection {
            stream: BufReader::new(stream),
        };
        if let Some(credentials) = credentials {
            match connection.request(&credentials.auth_command()).await? {
                Resp::Simple(_) => {}
                Resp::Error(e) => return Err(format!("authentication refused: {e}")),
                other => return Err(format!("unexpected reply to AUTH: {other:?}")),
            }
        }
        Ok(connection)
    }

    async fn request(&mut self, args: &[impl AsRef<[u8]>]) -> Result<Resp, String> {
        let io = |e: std::io::Error| e.to_string();
        self.stream.get_mut().write_all(&encode(args)).await.map_err(io)?;
        let mut line = String::new();
        if self.stream.read_line(&mut line).await.map_err(io)? == 0 {
            return Err("connection closed".into());
        }
        parse_line(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_commands_as_arrays_of_bulk_strings() {
        assert_eq!(
            encode(&["ZKSYNC.FAILSAFE", "g", "127.0.0.1:6379", "7"]),
            b"*4\r\n$15\r\nZKSYNC.FAILSAFE\r\n$1\r\ng\r\n$14\r\n127.0.0.1:6379\r\n$1\r\n7\r\n".to_vec()
        );
    }

    #[test]
    fn parses_the_replies_a_grant_gets() {
        let cases = [
            (":6000\r\n", Ok(Resp::Integer(6000))),
            ("+OK\r\n", Ok(Resp::Simple("OK".into()))),
            ("-REFUSED no\r\n", Ok(Resp::Error("REFUSED no".into()))),
            (":x\r\n", Err("bad integer reply x".to_string())),
            ("$3\r\n", Err("unexpected reply \"$3\"".to_string())),
            ("", Err("unexpected reply \"\"".to_string())),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line), want, "{line:?}");
        }
    }
}
