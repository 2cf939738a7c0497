//! Apache Curator's `InterProcessMutex` on the other side of zksync's locks:
//! `tests/java/CuratorLock.java` in a JVM of its own per call (its own
//! ZooKeeper session), compiled once and cached under `target/curator-lock/`.
//!
//! - `curator_contend`: takes the lock `count` times in the background; `join`
//!   gives each holding's wall-clock interval and fencing token (czxid);
//! - `curator_hold` / `CuratorHolder::start`: holds the lock until `release`;
//! - `curator_latency`, `curator_throughput`: the figures `bench/locks` prints;
//! - `overlaps`, `assert_tokens_increase`: checks on holdings from both sides,
//!   with `epoch_us` for the Rust side's timestamps (the same clock).

use crate::{temp_dir, workspace_root};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Debian's jars (`libcurator-recipes-java`, `libslf4j-java`). slf4j-simple
/// at level warn keeps the JVM's log short but not silent.
const JARS: [&str; 7] = [
    "zookeeper",
    "curator-client",
    "curator-framework",
    "curator-recipes",
    "guava",
    "slf4j-api",
    "slf4j-simple",
];

/// Short-lived JVMs: start-up matters more than peak speed.
const JVM_FLAGS: [&str; 6] = [
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xshare:auto",
    "-Xmx256m",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
    // ZooKeeper 3.8 warns on every clean close.
    "-Dorg.slf4j.simpleLogger.log.org.apache.zookeeper.ClientCnxn=error",
];

/// How long a JVM may take to start, connect and answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One holding of the lock: wall-clock microseconds since the epoch from
/// just after the acquisition to just before the release, and its fencing
/// token, the czxid of the holder's lock znode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holding {
    pub start_us: i64,
    pub end_us: i64,
    pub token: i64,
}

/// Now, in the clock `Holding` uses (the JVM's `Instant.now()`).
pub fn epoch_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as i64
}

/// Two holdings whose intervals intersect (touching ends do not), if any.
pub fn overlaps(holdings: &[Holding]) -> Option<(Holding, Holding)> {
    let mut sorted = holdings.to_vec();
    sorted.sort_by_key(|h| (h.start_us, h.end_us));
    // The holding that ends last so far: any later start before its end overlaps it.
    let mut latest: Option<Holding> = None;
    for h in sorted {
        match latest {
            Some(l) if h.start_us < l.end_us => return Some((l, h)),
            Some(l) if l.end_us >= h.end_us => {}
            _ => latest = Some(h),
        }
    }
    None
}

/// Panics unless each holding, in order of start, has a larger token than
/// the one before: a later holder must fence every earlier one.
pub fn assert_tokens_increase(holdings: &[Holding]) {
    let mut sorted = holdings.to_vec();
    sorted.sort_by_key(|h| h.start_us);
    for pair in sorted.windows(2) {
        assert!(
            pair[1].token > pair[0].token,
            "fencing token did not increase: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}

/// Panics unless `overlaps` finds what it should; a plain function, so that
/// a lock test calls it once rather than every test binary running it.
pub fn check_overlaps() {
    let h = |start_us, end_us| Holding {
        start_us,
        end_us,
        token: 0,
    };
    assert_eq!(overlaps(&[]), None);
    assert_eq!(overlaps(&[h(0, 10)]), None);
    assert_eq!(
        overlaps(&[h(10, 20), h(0, 10), h(20, 30)]),
        None,
        "touching is not overlapping"
    );
    assert_eq!(overlaps(&[h(0, 10), h(9, 20)]), Some((h(0, 10), h(9, 20))));
    assert_eq!(overlaps(&[h(5, 6), h(0, 100)]), Some((h(0, 100), h(5, 6))));
    // A long holding overlaps one that starts after a short one nested in it.
    assert_eq!(
        overlaps(&[h(0, 100), h(50, 60), h(70, 80)]),
        Some((h(0, 100), h(50, 60)))
    );
    assert_eq!(
        overlaps(&[h(0, 100), h(100, 110), h(105, 120)]),
        Some((h(100, 110), h(105, 120)))
    );
}

/// `curator_contend` running in the background.
pub struct Contend {
    jvm: Jvm,
}

/// Takes `path` `count` times in a JVM of its own, holding it `hold` each
/// time; returns at once. `wait_ready` tells when it starts contending.
pub fn curator_contend(connect: &str, path: &str, count: usize, hold: Duration) -> Contend {
    let args = [
        connect.to_string(),
        path.to_string(),
        count.to_string(),
        hold.as_millis().to_string(),
    ];
    Contend {
        jvm: Jvm::spawn("contend", &args),
    }
}

impl Contend {
    /// Waits until the JVM is connected and about to acquire; returns the
    /// time since it was spawned.
    pub fn wait_ready(&mut self) -> Duration {
        self.jvm.wait_ready()
    }

    /// Waits for the last holding (120 s at most); panics if the tool failed.
    pub fn join(mut self) -> Vec<Holding> {
        let lines = self.jvm.finish(Duration::from_secs(120));
        if lines.last().map(String::as_str) != Some("DONE") {
            self.jvm.fail("ended without DONE");
        }
        lines
            .iter()
            .filter(|l| l.starts_with("HELD "))
            .map(|l| parse_holding(l).unwrap_or_else(|| self.jvm.fail(&format!("bad line {l:?}"))))
            .collect()
    }
}

fn parse_holding(line: &str) -> Option<Holding> {
    let fields: Vec<i64> = line
        .strip_prefix("HELD ")?
        .split(' ')
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    match fields[..] {
        [start_us, end_us, token] => Some(Holding {
            start_us,
            end_us,
            token,
        }),
        _ => None,
    }
}

/// A Curator client holding (or waiting for) the lock until `release`.
/// Dropped, its JVM is killed (the lock znode then lasts until its 10 s
/// session expires).
pub struct CuratorHolder {
    jvm: Jvm,
    token: Option<i64>,
}

/// Takes `path` and returns once it holds it.
pub fn curator_hold(connect: &str, path: &str) -> CuratorHolder {
    let mut holder = CuratorHolder::start(connect, path);
    holder.wait_held(START_TIMEOUT);
    holder
}

impl CuratorHolder {
    /// Starts acquiring `path` and returns at once, e.g. to queue behind a
    /// Redis client that holds it.
    pub fn start(connect: &str, path: &str) -> CuratorHolder {
        CuratorHolder {
            jvm: Jvm::spawn("hold", &[connect.to_string(), path.to_string()]),
            token: None,
        }
    }

    /// The token once held within `timeout`, or `None` if still waiting.
    pub fn held_within(&mut self, timeout: Duration) -> Option<i64> {
        if self.token.is_none() {
            let line = self.jvm.line_starting("HELD ", timeout)?;
            let token = line[5..]
                .parse()
                .unwrap_or_else(|_| self.jvm.fail(&format!("bad line {line:?}")));
            self.token = Some(token);
        }
        self.token
    }

    /// The token; panics unless held within `timeout`.
    pub fn wait_held(&mut self, timeout: Duration) -> i64 {
        match self.held_within(timeout) {
            Some(token) => token,
            None => self.jvm.fail(&format!("did not hold the lock within {timeout:?}")),
        }
    }

    /// The fencing token of this holding; panics if not held yet.
    pub fn token(&self) -> i64 {
        let Some(token) = self.token else {
            panic!("the Curator holder does not hold the lock yet");
        };
        token
    }

    /// Releases the lock, or stops waiting for it, and closes the session;
    /// returns once the JVM has exited.
    pub fn release(mut self) {
        self.jvm.send("release");
        let lines = self.jvm.finish(START_TIMEOUT);
        if !lines.iter().any(|l| l == "RELEASED" || l == "CANCELLED") {
            self.jvm.fail("ended without RELEASED or CANCELLED");
        }
    }

    /// SIGKILL: a crashed holder. Its lock znode stays until the session
    /// expires (10 s).
    pub fn kill(mut self) {
        self.jvm.kill();
    }
}

/// `curator_latency`'s figures, microseconds.
#[derive(Clone, Copy, Debug)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
}

/// Uncontended acquire+release of `path`, `count` times after 50 warm-ups.
pub fn curator_latency(connect: &str, path: &str, count: usize) -> Latency {
    let mut jvm = Jvm::spawn("latency", &[connect.to_string(), path.to_string(), count.to_string()]);
    let lines = jvm.finish(Duration::from_secs(600));
    let mut value = |key| figure(&mut jvm, &lines, key);
    Latency {
        p50_us: value("p50_us"),
        p99_us: value("p99_us"),
        mean_us: value("mean_us"),
    }
}

/// `curator_throughput`'s figures.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    pub acquisitions: u64,
    pub per_sec: f64,
}

/// `clients` sessions, each looping acquire+release of `path` for `seconds`.
pub fn curator_throughput(connect: &str, path: &str, clients: usize, seconds: u64) -> Throughput {
    let args = [
        connect.to_string(),
        path.to_string(),
        clients.to_string(),
        seconds.to_string(),
    ];
    let mut jvm = Jvm::spawn("throughput", &args);
    let lines = jvm.finish(START_TIMEOUT + Duration::from_secs(seconds));
    Throughput {
        acquisitions: figure(&mut jvm, &lines, "acquisitions") as u64,
        per_sec: figure(&mut jvm, &lines, "per_sec"),
    }
}

/// The value of a `key value` line.
fn figure(jvm: &mut Jvm, lines: &[String], key: &str) -> f64 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| jvm.fail(&format!("no {key} line")))
}

/// Compiles `CuratorLock.java` into `target/curator-lock/<hash of the
/// source>/`, once per source: test binaries and the benchmark share it.
fn classes() -> &'static Path {
    static CLASSES: OnceLock<PathBuf> = OnceLock::new();
    CLASSES.get_or_init(compile)
}

fn classpath() -> String {
    let jars: Vec<String> = JARS.iter().map(|j| format!("/usr/share/java/{j}.jar")).collect();
    if let Some(missing) = jars.iter().find(|j| !Path::new(j).exists()) {
        panic!("{missing} is missing: run scripts/setup (it installs libcurator-recipes-java)");
    }
    jars.join(":")
}

fn compile() -> PathBuf {
    let source = workspace_root().join("tests/java/CuratorLock.java");
    let text = std::fs::read(&source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    let root = workspace_root().join("target/curator-lock");
    let dir = root.join(format!("{:016x}", fnv1a(&text)));
    if dir.join("CuratorLock.class").exists() {
        return dir;
    }
    // Compiled aside and renamed into place: another test binary may be
    // compiling the same source at this moment.
    let scratch = root.join(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap_or_else(|e| panic!("create target/curator-lock: {e}"));
    let out = Command::new("javac")
        .args(["-nowarn", "-proc:none", "-d"])
        .arg(&scratch)
        .args(["-cp", &classpath()])
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("run javac ({e}): run scripts/setup (it installs openjdk-17-jdk-headless)"));
    assert!(
        out.status.success(),
        "javac {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    if std::fs::rename(&scratch, &dir).is_err() {
        // Someone else's copy got there first.
        let _ = std::fs::remove_dir_all(&scratch);
        assert!(
            dir.join("CuratorLock.class").exists(),
            "could not place {}",
            dir.display()
        );
    }
    dir
}

/// A stable hash (std's `DefaultHasher` may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A CuratorLock JVM: stdout read line by line by a thread of its own,
/// stderr into a log kept when a test fails.
struct Jvm {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Each line with the time it was read.
    lines: Receiver<(Instant, String)>,
    seen: Vec<String>,
    dir: PathBuf,
    spawned: Instant,
    ready: Option<Instant>,
}

impl Jvm {
    fn spawn(mode: &str, args: &[String]) -> Jvm {
        let classpath = format!("{}:{}", classpath(), classes().display());
        let dir = temp_dir("curator");
        let spawned = Instant::now();
        let log = std::fs::File::create(dir.join("stderr.log")).unwrap_or_else(|e| panic!("create the JVM's log: {e}"));
        let mut child = Command::new("java")
            .args(JVM_FLAGS)
            .args(["-cp", &classpath, "CuratorLock", mode])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("run java ({e}): run scripts/setup"));
        // Cannot fail: spawned with a piped stdout, taken once here.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Jvm {
            what: format!("CuratorLock {mode} {}", args.join(" ")),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            dir,
            spawned,
            ready: None,
        }
    }

    /// The next line within `timeout`, `None` on timeout; panics if the JVM
    /// ended first.
    fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok((at, line)) => {
                if line == "READY" {
                    self.ready = Some(at);
                }
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => self.fail("ended early"),
        }
    }

    /// The first line (seen before or arriving within `timeout`) starting with `prefix`.
    fn line_starting(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        if let Some(line) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return Some(line.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.next_line(left)?;
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
    }

    /// From the spawn to the READY line.
    fn wait_ready(&mut self) -> Duration {
        if self.line_starting("READY", START_TIMEOUT).is_none() {
            self.fail("never became READY");
        }
        let Some(ready) = self.ready else {
            self.fail("never became READY")
        };
        ready - self.spawned
    }

    fn send(&mut self, line: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            // It may have exited already; `finish` reports how.
            let _ = writeln!(stdin, "{line}").and_then(|_| stdin.flush());
        }
    }

    /// Every line until stdout closes (within `timeout`), then the exit;
    /// panics unless it exited cleanly.
    fn finish(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((_, line)) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => self.fail(&format!("still running after {timeout:?}")),
            }
        }
        self.stdin = None;
        let status = self.child.wait().unwrap_or_else(|e| panic!("wait for java: {e}"));
        if !status.success() {
            self.fail(&format!("exited with {status}"));
        }
        self.seen.clone()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Panics with what the JVM printed; its log directory is kept.
    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let stderr = std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{}: {why}\nstdout:\n{}\nstderr ({}):\n{}",
            self.what,
            self.seen.join("\n"),
            self.dir.display(),
            tail.join("\n")
        );
    }
}

impl Drop for Jvm {
    fn drop(&mut self) {
        self.kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
