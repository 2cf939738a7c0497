//! redis-py's Sentinel client, run from `tests/py/sentinel_writer.py` with
//! the redis-py that scripts/setup installs into target/python.

use super::wait_until;
use super::writer::Acked;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// redis-py's Sentinel client over Sentinels' (or zksync members')
/// addresses, INCRing `key` on the master it finds; every acknowledged
/// value, as it arrives.
pub struct SentinelClient {
    child: std::process::Child,
    acked: std::sync::Arc<Mutex<Acked>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl SentinelClient {
    /// `service`: the name the Sentinels monitor (a zksync group's name).
    pub fn start(service: &str, sentinels: &[u16], key: &str) -> SentinelClient {
        use std::io::BufRead;
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = std::process::Command::new("python3")
            .arg(root.join("tests/py/sentinel_writer.py"))
            .args([service, key])
            .args(sentinels.iter().map(u16::to_string))
            .env("PYTHONPATH", root.join("target/python"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 with redis-py in target/python (scripts/setup installs it)");
        let stdout = child.stdout.take().expect("piped");
        let acked: std::sync::Arc<Mutex<Acked>> = Default::default();
        let out = acked.clone();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = line.trim().parse() {
                    out.lock().unwrap().push((Instant::now(), value));
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
        self.acked.lock().unwrap().len()
    }

    pub fn acked(&self) -> Acked {
        self.acked.lock().unwrap().clone()
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
