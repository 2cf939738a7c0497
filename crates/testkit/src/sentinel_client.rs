//! Sentinel clients of two libraries, each INCRing a counter on the master
//! it finds: redis-py's, run from `tests/py/sentinel_writer.py` with the
//! redis-py that scripts/setup installs into target/python, and go-redis
//! v5's, `tests/go/sentinel_writer.go` built once per test binary into
//! target/go against Debian's golang-gopkg-redis.v5-dev.

use crate::writer::Acked;
use crate::{wait_until, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// The client library a `SentinelClient` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Library {
    /// redis-py's `Sentinel`.
    RedisPy,
    /// go-redis v5's `NewFailoverClient`.
    GoRedis,
}

impl Library {
    pub fn name(self) -> &'static str {
        match self {
            Library::RedisPy => "redis-py",
            Library::GoRedis => "go-redis v5",
        }
    }

    fn command(self) -> Command {
        let root = workspace_root();
        match self {
            Library::RedisPy => {
                let mut command = Command::new("python3");
                command
                    .arg(root.join("tests/py/sentinel_writer.py"))
                    .env("PYTHONPATH", root.join("target/python"));
                command
            }
            Library::GoRedis => Command::new(go_writer()),
        }
    }
}

/// A Sentinel client over Sentinels' (or zksync members') addresses,
/// INCRing `key` on the master it finds; every acknowledged value, as it
/// arrives.
pub struct SentinelClient {
    child: std::process::Child,
    acked: std::sync::Arc<Mutex<Acked>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl SentinelClient {
    /// redis-py's client. `service`: the name the Sentinels monitor (a
    /// zksync group's name).
    pub fn start(service: &str, sentinels: &[u16], key: &str) -> SentinelClient {
        SentinelClient::start_with(Library::RedisPy, service, sentinels, key)
    }

    /// The client of `library`.
    pub fn start_with(library: Library, service: &str, sentinels: &[u16], key: &str) -> SentinelClient {
        use std::io::BufRead;
        let mut child = library
            .command()
            .args([service, key])
            .args(sentinels.iter().map(u16::to_string))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| match library {
                Library::RedisPy => panic!("python3 with redis-py in target/python (scripts/setup installs it): {e}"),
                Library::GoRedis => panic!("start the go-redis writer: {e}"),
            });
        // Cannot fail: spawned with a piped stdout, taken once here.
        let stdout = child.stdout.take().expect("stdout is piped");
        let acked: std::sync::Arc<Mutex<Acked>> = Default::default();
        let out = acked.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = line.trim().parse() {
                    out.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((Instant::now(), value));
                }
            }
        });
        SentinelClient {
            child,
            acked,
            reader: Some(reader),
        }
    }

    pub fn count(&self) -> usize {
        self.acked.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    pub fn acked(&self) -> Acked {
        self.acked.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits for `n` more acknowledged writes.
    pub fn wait_more(&self, n: usize, what: &str) {
        let before = self.count();
        wait_until(Duration::from_secs(15), what, || self.count() > before + n);
    }
}

impl Drop for SentinelClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Debian's go-redis v5 (golang-gopkg-redis.v5-dev) lives in the system
/// GOPATH; there are no modules and no network, so the build is in GOPATH
/// mode with that tree after a writable one under target/go.
const SYSTEM_GOPATH: &str = "/usr/share/gocode";

/// `tests/go/sentinel_writer.go`, built once per test binary.
fn go_writer() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(build_go_writer)
}

fn build_go_writer() -> PathBuf {
    let root = workspace_root();
    if !Path::new(SYSTEM_GOPATH).join("src/gopkg.in/redis.v5").is_dir() {
        panic!("{SYSTEM_GOPATH}/src/gopkg.in/redis.v5 is missing: run scripts/setup (it installs golang-gopkg-redis.v5-dev)");
    }
    let dir = root.join("target/go");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create target/go: {e}"));
    let binary = dir.join("sentinel_writer");
    // Built aside and renamed into place: another test binary may be
    // building it at this moment.
    let scratch = dir.join(format!("sentinel_writer.tmp-{}", std::process::id()));
    let out = Command::new("go")
        .arg("build")
        .arg("-o")
        .arg(&scratch)
        .arg(root.join("tests/go/sentinel_writer.go"))
        .current_dir(root)
        .env("GO111MODULE", "off")
        .env("GOPATH", format!("{}:{SYSTEM_GOPATH}", dir.display()))
        .env("GOCACHE", root.join("target/go-cache"))
        .env("GOFLAGS", "")
        .output()
        .unwrap_or_else(|e| panic!("run go (scripts/setup installs golang-go): {e}"));
    if !out.status.success() {
        panic!(
            "go build tests/go/sentinel_writer.go failed (scripts/setup installs golang-go and \
             golang-gopkg-redis.v5-dev):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::rename(&scratch, &binary).unwrap_or_else(|e| panic!("move the go-redis writer into target/go: {e}"));
    binary
}
