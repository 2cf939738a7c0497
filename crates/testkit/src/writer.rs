//! Clients for failover scenarios: a background loop, and the counter writer
//! built on it (also used by `bench/failover`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Ports of stopped (SIGSTOP) servers: a connection to one would hang in its handshake.
static STOPPED: Mutex<Vec<u16>> = Mutex::new(Vec::new());

pub fn set_stopped(port: u16, stopped: bool) {
    let mut ports = STOPPED.lock().unwrap_or_else(PoisonError::into_inner);
    ports.retain(|p| *p != port);
    if stopped {
        ports.push(port);
    }
}

/// A connection with short timeouts, or `None` (refused, stopped, timed out).
pub fn connect(port: u16) -> Option<redis::Connection> {
    if STOPPED.lock().unwrap_or_else(PoisonError::into_inner).contains(&port) {
        return None;
    }
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let conn = client.get_connection_with_timeout(Duration::from_millis(300)).ok()?;
    conn.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    conn.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
    Some(conn)
}

/// A thread calling `step` until stopped; `step` records into a `T`.
pub struct Background<T> {
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<T>>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Default + Send + 'static> Background<T> {
    pub fn start(mut step: impl FnMut(&Mutex<T>) + Send + 'static) -> Background<T> {
        let stop = Arc::new(AtomicBool::new(false));
        let out = Arc::new(Mutex::new(T::default()));
        let (s, o) = (stop.clone(), out.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                step(&o);
            }
        });
        Background {
            stop,
            out,
            thread: Some(thread),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.out.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn stop(mut self) -> T {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.out.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<T> Drop for Background<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Acknowledged writes: when, and the counter's value.
pub type Acked = Vec<(Instant, i64)>;

/// INCRs `key` on the master that `discover(n)` names (asking its n-th
/// source), rediscovering after every error; records every acknowledged value.
pub fn counter_writer(discover: impl Fn(usize) -> Option<u16> + Send + 'static, key: &str) -> Background<Acked> {
    let key = key.to_string();
    let mut conn: Option<redis::Connection> = None;
    let mut asked = 0;
    Background::start(move |acked: &Mutex<Acked>| {
        let Some(c) = conn.as_mut() else {
            asked += 1;
            conn = discover(asked).and_then(connect);
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(5));
            }
            return;
        };
        match redis::cmd("INCR").arg(&key).query::<i64>(c) {
            Ok(v) => acked
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((Instant::now(), v)),
            Err(_) => conn = None,
        }
    })
}

/// Acknowledged writes a new master did not hold: the counter is INCRed one
/// by one, so every step back is a loss.
pub fn lost_writes(acked: &[(Instant, i64)]) -> i64 {
    acked.windows(2).map(|w| (w[0].1 - w[1].1 + 1).max(0)).sum()
}

/// The longest the writer went without an acknowledgement from `since` on.
pub fn longest_gap(acked: &[(Instant, i64)], since: Instant) -> Duration {
    let mut gap = Duration::ZERO;
    let mut previous = since;
    for (when, _) in acked.iter().filter(|(w, _)| *w >= since) {
        gap = gap.max(when.duration_since(previous));
        previous = *when;
    }
    gap
}
