//! ZooKeeper servers: standalone and 3-node ensembles on loopback, each
//! member a JVM of its own, and the one of each a test binary shares.

use crate::process::{free_port, tail, temp_dir, wait_until, Guarded};
use crate::zk_client::ZkClient;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

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
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("create {}: {e}", data.display()));
        let extra = extra(&dir);
        std::fs::write(
            dir.join("zoo.cfg"),
            format!(
                "tickTime=500\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 4lw.commands.whitelist=*\nadmin.enableServer=false\nmaxClientCnxns=0\n{extra}",
                dir.join("data").display()
            ),
        )
        .unwrap_or_else(|e| panic!("write ZooKeeper's zoo.cfg: {e}"));
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
        self.process
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|p| p.pid())
    }

    /// SIGKILL; `restart` brings it back with the same data.
    pub fn kill(&self) {
        if let Some(mut p) = self.process.lock().unwrap_or_else(PoisonError::into_inner).take() {
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
        *self.process.lock().unwrap_or_else(PoisonError::into_inner) = Some(process);
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
            std::fs::create_dir_all(dir.join("data"))
                .and_then(|()| std::fs::write(dir.join("data/myid"), format!("{}\n", i + 1)))
                .unwrap_or_else(|e| panic!("write the ensemble's myid {i}: {e}"));
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
            .unwrap_or_else(|e| panic!("write the ensemble's zoo.cfg {i}: {e}"));
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
        self.processes.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(process);
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
        self.processes.lock().unwrap_or_else(PoisonError::into_inner)[i]
            .as_ref()
            .map(|p| p.pid())
    }

    pub fn kill(&self, i: usize) {
        if let Some(mut p) = self.processes.lock().unwrap_or_else(PoisonError::into_inner)[i].take() {
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
