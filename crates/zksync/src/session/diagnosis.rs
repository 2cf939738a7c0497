//! Why a connection attempt failed. When no server of the connect string
//! lets it in, the ZooKeeper client returns a bare timeout; the cause (a
//! refused TLS handshake, a connection closed by a TLS port) it reports only
//! through `tracing`. A subscriber, set only while a connection attempt is
//! polled, keeps the first such report: the last one is often only the
//! attempt's deadline.

use std::fmt::Write;
use std::future::Future;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::instrument::WithSubscriber;
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber};

/// The client's reports of a failed attempt start so.
const FAILURE: &str = "fails ";
/// The module of the client that connects.
const TARGET: &str = "zookeeper_client::session";

/// The first failure the client reported during the current attempt. A
/// static: the client reports through `tracing`, to a subscriber it owns.
static FIRST: Mutex<Option<String>> = Mutex::new(None);

/// Runs a connection attempt, keeping the client's report of why it failed.
pub async fn watched<F: Future>(attempt: F) -> F::Output {
    static DISPATCH: once_cell::sync::Lazy<Dispatch> = once_cell::sync::Lazy::new(|| Dispatch::new(Reports));
    take();
    attempt.with_subscriber(DISPATCH.clone()).await
}

/// The first failure the client reported in the attempt, once.
pub fn take() -> Option<String> {
    FIRST.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// A failed attempt: why, and which server the client's report was of. Two
/// failures for the same reason at different servers of an ensemble are
/// one reason (logged once).
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub why: String,
    pub server: Option<String>,
}

impl Failure {
    /// The client's `error`, with its `report` of the first failure if any.
    pub fn new(error: &str, report: Option<&str>) -> Failure {
        let Some(report) = report else {
            return Failure {
                why: error.to_string(),
                server: None,
            };
        };
        match split(report) {
            Some((action, server, reason)) => Failure {
                why: format!("{error}; first: {action} due to {reason}"),
                server: Some(server.to_string()),
            },
            None => Failure {
                why: format!("{error}; first: {report}"),
                server: None,
            },
        }
    }
}

impl From<String> for Failure {
    fn from(why: String) -> Failure {
        Failure { why, server: None }
    }
}

/// `ACTION to SERVER due to REASON`, as the client words its reports.
fn split(report: &str) -> Option<(&str, &str, &str)> {
    let (head, reason) = report.split_once(" due to ")?;
    let (action, server) = head.rsplit_once(" to ")?;
    Some((action, server, reason))
}

/// Keeps the client's debug and louder events of its connecting code.
struct Reports;

fn wanted(metadata: &Metadata<'_>) -> bool {
    metadata.is_event() && metadata.target().starts_with(TARGET) && *metadata.level() <= tracing::Level::DEBUG
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl Subscriber for Reports {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        match wanted(metadata) {
            true => Interest::sometimes(),
            false => Interest::never(),
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        wanted(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }

    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        if message.0.starts_with(FAILURE) {
            FIRST.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(message.0);
        }
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_the_reason_apart_from_the_server() {
        let cases = [
            (
                "timeout",
                Some("fails in connecting to tcp+tls://127.0.0.1:2281 due to Custom { kind: InvalidData }"),
                "timeout; first: fails in connecting due to Custom { kind: InvalidData }",
                Some("tcp+tls://127.0.0.1:2281"),
            ),
            (
                "timeout",
                Some("fails to establish session to tcp://10.0.0.1:2181 due to connection to server has lost"),
                "timeout; first: fails to establish session due to connection to server has lost",
                Some("tcp://10.0.0.1:2181"),
            ),
            ("timeout", Some("fails somehow"), "timeout; first: fails somehow", None),
            ("no hosts", None, "no hosts", None),
        ];
        for (error, report, why, server) in cases {
            let failure = Failure::new(error, report);
            assert_eq!(
                (failure.why.as_str(), failure.server.as_deref()),
                (why, server),
                "{report:?}"
            );
        }
        let a = Failure::new("timeout", Some("fails in connecting to a:1 due to X"));
        let b = Failure::new("timeout", Some("fails in connecting to b:2 due to X"));
        assert_eq!(a.why, b.why);
    }
}
