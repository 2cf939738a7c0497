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
