//! zksync's side of `bench/locks`: ZKSYNC.LOCK and ZKSYNC.UNLOCK from Redis
//! connections. It prints the same `key value` lines as the Curator side
//! (`tests/java/CuratorLock.java`), so that the script reads both alike.
//!
//!   latency <port> <path> <count>                 one connection, uncontended LOCK+UNLOCK after
//!                                                 50 warm-ups: p50_us, p99_us, mean_us
//!   throughput <port> <path> <clients> <seconds>  that many connections loop LOCK+UNLOCK on one
//!                                                 path: acquisitions, per_sec
//!   hold <port> <path>                            LOCK, print `token <n>`, hold until stdin
//!                                                 closes, UNLOCK (for ZKSYNC.CHECK under load)
//!
//! Run by `bench/locks [--quick]`.

use std::io::Read;
use std::process::exit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

/// Long enough for any wait under contention here; a LOCK that times out
/// anyway is retried, not counted.
const LOCK_TIMEOUT_MS: u64 = 10_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| -> &str { args.get(i).map(String::as_str).unwrap_or_else(|| usage()) };
    let number = |i: usize| -> u64 { arg(i).parse().unwrap_or_else(|_| usage()) };
    let port = number(1) as u16;
    match arg(0) {
        "latency" => latency(port, arg(2), number(3) as usize),
        "throughput" => throughput(port, arg(2), number(3) as usize, number(4)),
        "hold" => hold(port, arg(2)),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: locks-bench latency|throughput|hold <redis port> <path> ...");
    exit(2)
}

/// Reports a failed command (e.g. the module lacks the lock commands) and exits.
fn fail(what: &str, e: redis::RedisError) -> ! {
    eprintln!("locks-bench: {what}: {e}");
    exit(1)
}

fn connect(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| fail("connect", e))
}

/// The fencing token, or `None` if the lock stayed taken for LOCK_TIMEOUT_MS.
fn lock(conn: &mut redis::Connection, path: &str) -> Option<i64> {
    redis::cmd("ZKSYNC.LOCK")
        .arg(path)
        .arg("TIMEOUT")
        .arg(LOCK_TIMEOUT_MS)
        .query(conn)
        .unwrap_or_else(|e| fail("ZKSYNC.LOCK", e))
}

fn unlock(conn: &mut redis::Connection, path: &str, token: i64) {
    let released: i64 = redis::cmd("ZKSYNC.UNLOCK")
        .arg(path)
        .arg(token)
        .query(conn)
        .unwrap_or_else(|e| fail("ZKSYNC.UNLOCK", e));
    if released != 1 {
        eprintln!("locks-bench: ZKSYNC.UNLOCK {path} {token} answered {released}: the lock was lost while held");
        exit(1);
    }
}

fn latency(port: u16, path: &str, count: usize) {
    let mut conn = connect(port);
    let mut round = || {
        let started = Instant::now();
        let token = lock(&mut conn, path).expect("an uncontended lock is free");
        unlock(&mut conn, path, token);
        started.elapsed()
    };
    for _ in 0..50 {
        round();
    }
    let mut micros: Vec<u64> = (0..count).map(|_| round().as_micros() as u64).collect();
    micros.sort_unstable();
    // The same ranks as the Curator side.
    println!("p50_us {}", micros[count * 50 / 100]);
    println!("p99_us {}", micros[(count * 99 / 100).min(count - 1)]);
    println!("mean_us {:.1}", micros.iter().sum::<u64>() as f64 / count as f64);
}

fn throughput(port: u16, path: &str, clients: usize, seconds: u64) {
    let acquisitions = Arc::new(AtomicU64::new(0));
    // Every connection open before the clock starts, as on the Curator side.
    let start = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let mut conn = connect(port);
            let (path, start, acquisitions) = (path.to_string(), start.clone(), acquisitions.clone());
            std::thread::spawn(move || {
                start.wait();
                let deadline = Instant::now() + Duration::from_secs(seconds);
                while Instant::now() < deadline {
                    if let Some(token) = lock(&mut conn, &path) {
                        acquisitions.fetch_add(1, Ordering::Relaxed);
                        unlock(&mut conn, &path, token);
                    }
                }
            })
        })
        .collect();
    start.wait();
    let started = Instant::now();
    for thread in threads {
        thread.join().expect("a client thread");
    }
    let total = acquisitions.load(Ordering::Relaxed);
    println!("acquisitions {total}");
    println!("per_sec {:.1}", total as f64 / started.elapsed().as_secs_f64());
}

fn hold(port: u16, path: &str) {
    let mut conn = connect(port);
    let token = lock(&mut conn, path).unwrap_or_else(|| {
        eprintln!("locks-bench: {path} stayed taken for {LOCK_TIMEOUT_MS} ms");
        exit(1)
    });
    println!("token {token}");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    unlock(&mut conn, path, token);
    println!("released");
}
