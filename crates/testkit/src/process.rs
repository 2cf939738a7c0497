//! The processes the harness starts, and what each test gets of its own: a
//! free port, a temp dir, a ZooKeeper root. Every process runs under a
//! watchdog shell that kills it when the test binary exits, however it
//! exits: statics are never dropped.

use std::collections::HashSet;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Numbers temp dirs and ZooKeeper roots, so that no two in a process meet.
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A loopback port nobody listens on, never handed out twice in this process.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("bind a free port: {e}"))
            .port();
        if given.lock().unwrap_or_else(PoisonError::into_inner).insert(port) {
            return port;
        }
    }
}

/// A subtree of its own for one test: `/t/<name>-<n>-<pid>`.
pub fn unique_root(name: &str) -> String {
    format!(
        "/t/{name}-{}-{}",
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::process::id()
    )
}

pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "zksync-test-{}-{}-{name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// A server process: a direct child of the test binary (so `kill` can reap
/// it: once it returns the server's ports are closed), in a process group of
/// its own (redis-server's fork children die with it), watched by a shell
/// that kills the group when the test binary is gone — however it ended:
/// statics are never dropped — and then removes `cleanup`.
/// Not PR_SET_PDEATHSIG: that fires when the spawning *thread* exits, and
/// cargo test ends a thread after every test.
pub struct Guarded {
    server: Child,
    watchdog: Child,
}

impl Guarded {
    pub fn spawn(program: &str, args: &[String], log: &Path, cleanup: Option<&Path>) -> Guarded {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("open the server log {}: {e}", log.display()));
        let server = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("share the server log: {e}")))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let pid = server.id();
        let cleanup = cleanup
            .map(|dir| format!("rm -rf {}; ", shell_quote(&dir.to_string_lossy())))
            .unwrap_or_default();
        let test = std::process::id();
        // Ends by itself when the server is gone (after `kill`, the server is
        // reaped and `kill -0` fails).
        let script = format!(
            "while kill -0 {test} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.3; done; \
             if ! kill -0 {test} 2>/dev/null; then \
               kill -9 -{pid} 2>/dev/null; \
               n=0; while kill -0 {pid} 2>/dev/null && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done; \
               {cleanup}fi"
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn a watchdog: {e}"));
        Guarded { server, watchdog }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.server.id()
    }

    /// SIGKILL to the server's group; returns once the server is reaped.
    pub fn kill(&mut self) {
        if !self.exited() {
            // SAFETY: kill(2) on the process group we created.
            unsafe {
                libc::kill(-(self.server.id() as i32), libc::SIGKILL);
            }
        }
        let _ = self.server.wait();
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }

    pub(crate) fn exited(&mut self) -> bool {
        matches!(self.server.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.kill();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
