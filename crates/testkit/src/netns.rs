//! Real network partitions: a network namespace joined to this one by a
//! veth pair, and silent cuts made by blackholing an address inside it
//! (packets dropped both ways, sockets left open, no reset). `tc netem`
//! would do too, but this kernel has no netem: policy routing is in every
//! kernel. Needs root and iproute2, as the tests run here and in CI;
//! `available` says.
//!
//! Addresses are link-local (169.254.K.x), on no other network: the
//! namespace is .2; this side is .1 plus .11, .12, ... (`host_addrs`), one
//! per server to cut on its own. A namespace left by a test binary that
//! died is removed by the next one (names carry the pid).

use std::process::Command;

pub struct NetNs {
    name: String,
    host_if: String,
    ns_if: String,
    /// This side's addresses, each of which the namespace reaches and
    /// `silence` cuts on its own.
    pub host_addrs: Vec<String>,
    /// The namespace's address, which this side reaches.
    pub ns_addr: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    run("ip", args)
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    match out.status.success() {
        true => Ok(()),
        false => Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Whether namespaces can be made here (root, iproute2).
pub fn available() -> bool {
    let probe = format!("zks-probe-{}", std::process::id());
    let made = ip(&["netns", "add", &probe]).is_ok();
    let _ = ip(&["netns", "del", &probe]);
    made
}

/// Removes the namespaces of test binaries that are gone.
fn remove_stale() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(pid) = name.strip_prefix("zks-").and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        // SAFETY: kill(2) with signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

impl NetNs {
    /// One namespace for this test binary (one at a time), with `n`
    /// addresses on this side.
    pub fn create(n: u8) -> NetNs {
        remove_stale();
        let pid = std::process::id();
        let k = 1 + pid % 250;
        let k = if k == 169 { 170 } else { k };
        let ns = NetNs {
            name: format!("zks-{pid}"),
            host_if: format!("zksh{pid}"),
            ns_if: format!("zksn{pid}"),
            host_addrs: (11..11 + n).map(|i| format!("169.254.{k}.{i}")).collect(),
            ns_addr: format!("169.254.{k}.2"),
        };
        ns.set_up().unwrap_or_else(|e| panic!("a network namespace: {e}"));
        ns
    }

    fn set_up(&self) -> Result<(), String> {
        let (name, h, n) = (self.name.as_str(), self.host_if.as_str(), self.ns_if.as_str());
        ip(&["netns", "add", name])?;
        ip(&["link", "add", h, "type", "veth", "peer", "name", n])?;
        ip(&["link", "set", n, "netns", name])?;
        let net = self.ns_addr.trim_end_matches(".2");
        ip(&["addr", "add", &format!("{net}.1/24"), "dev", h])?;
        for addr in &self.host_addrs {
            ip(&["addr", "add", &format!("{addr}/32"), "dev", h])?;
        }
        ip(&["link", "set", h, "up"])?;
        self.exec(&["ip", "addr", "add", &format!("{}/24", self.ns_addr), "dev", n])?;
        self.exec(&["ip", "link", "set", n, "up"])?;
        self.exec(&["ip", "link", "set", "lo", "up"])
    }

    fn exec(&self, args: &[&str]) -> Result<(), String> {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// The command prefix that runs a program inside.
    pub fn prefix(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name].map(String::from).to_vec()
    }

    /// Drops every packet between the namespace and `addr` (one of
    /// `host_addrs`), both ways, until `heal`: policy routing rules
    /// inside the namespace that blackhole it. Sockets stay open and see
    /// silence, no error.
    pub fn silence(&self, addr: &str) {
        for way in ["to", "from"] {
            self.exec(&["ip", "rule", "add", way, addr, "blackhole"])
                .unwrap_or_else(|e| panic!("silence {addr}: {e}"));
        }
    }

    /// Forwards everything between the namespace and `addr` again.
    pub fn heal(&self, addr: &str) {
        for way in ["to", "from"] {
            let _ = self.exec(&["ip", "rule", "del", way, addr, "blackhole"]);
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}
