//! ZooKeeper's own load: the `mntr` four-letter word, asked of every server
//! of the connect string (on the session thread's runtime, never on Redis's
//! main thread).

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zksync_core::settings::ConnectString;

const TIMEOUT: Duration = Duration::from_secs(2);
/// `mntr` answers a few KB; more is not a ZooKeeper.
const MAX_REPLY: u64 = 1 << 20;

/// `mntr` keys and the names ZKSYNC.LOAD ZK gives them.
pub const FIELDS: [(&str, &str); 6] = [
    ("zk_server_state", "mode"),
    ("zk_avg_latency", "avg_latency"),
    ("zk_max_latency", "max_latency"),
    ("zk_outstanding_requests", "outstanding_requests"),
    ("zk_num_alive_connections", "connections"),
    ("zk_znode_count", "znode_count"),
];

/// What one server answered: the `FIELDS` values in order, or why not.
pub struct Report {
    pub server: String,
    pub figures: Result<Vec<String>, String>,
}

/// Asks every server at once.
pub async fn ask_all(connect: &ConnectString) -> Vec<Report> {
    let asks: Vec<_> = connect
        .servers()
        .iter()
        .cloned()
        .map(|server| {
            tokio::spawn(async move {
                let figures = match tokio::time::timeout(TIMEOUT, ask(&server)).await {
                    Ok(result) => result,
                    Err(_) => Err("no answer in time".to_string()),
                };
                Report { server, figures }
            })
        })
        .collect();
    let mut reports = Vec::with_capacity(asks.len());
    for ask in asks {
        if let Ok(report) = ask.await {
            reports.push(report);
        }
    }
    reports
}

async fn ask(server: &str) -> Result<Vec<String>, String> {
    let mut stream = TcpStream::connect(server).await.map_err(|e| e.to_string())?;
    stream.write_all(b"mntr").await.map_err(|e| e.to_string())?;
    let mut reply = String::new();
    stream
        .take(MAX_REPLY)
        .read_to_string(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    parse(&reply)
}

fn parse(reply: &str) -> Result<Vec<String>, String> {
    let pairs: Vec<(&str, &str)> = reply.lines().filter_map(|line| line.split_once('\t')).collect();
    if pairs.is_empty() {
        // E.g. "mntr is not executed because it is not in the whitelist."
        let text = reply.trim();
        return Err(if text.is_empty() { "empty reply to mntr" } else { text }.to_string());
    }
    Ok(FIELDS
        .iter()
        .map(|(key, _)| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mntr_and_refusals() {
        let reply = "zk_version\t3.8.0\nzk_server_state\tleader\nzk_avg_latency\t0.25\nzk_znode_count\t12\n";
        let figures = parse(reply).unwrap();
        assert_eq!(figures[0], "leader");
        assert_eq!(figures[1], "0.25");
        assert_eq!(figures[5], "12");
        assert_eq!(figures[3], "");
        let refused = parse("mntr is not executed because it is not in the whitelist.\n").unwrap_err();
        assert!(refused.contains("whitelist"));
    }
}
