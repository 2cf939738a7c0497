//! Which ZooKeeper server holds the session. zookeeper-client does not say,
//! so it is read from Linux: the remote end of this process's established
//! TCP connection to a server of the connect string.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use zksync_core::settings::ConnectString;

/// How long a host name of the connect string may take to resolve: the
/// session thread waits for it (a slow DNS only makes STATUS vaguer).
const RESOLVE_LIMIT: Duration = Duration::from_millis(200);

/// The `host:port` of the connect string that this process is connected to,
/// if exactly one is (a ZKSYNC.LOAD ZK in flight may add another).
pub async fn connected_server(connect: &ConnectString) -> Option<String> {
    let servers = resolve(connect.servers()).await;
    let sockets = own_sockets();
    let mut found = HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for (remote, inode) in text.lines().skip(1).filter_map(established) {
            if let Some(server) = servers.get(&remote).filter(|_| sockets.contains(&inode)) {
                found.insert(server.clone());
            }
        }
    }
    let mut found = found.into_iter();
    match (found.next(), found.next()) {
        (Some(server), None) => Some(server),
        _ => None,
    }
}

/// Every address of every `host:port` of the connect string.
async fn resolve(hosts: &[String]) -> HashMap<SocketAddr, String> {
    let mut servers = HashMap::new();
    for server in hosts {
        let addrs = match server.parse::<SocketAddr>() {
            Ok(addr) => vec![addr],
            Err(_) => tokio::time::timeout(RESOLVE_LIMIT, async_net::resolve(server.as_str()))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
        };
        for addr in addrs {
            servers.insert(addr, server.clone());
        }
    }
    servers
}

/// The inodes of this process's sockets.
fn own_sockets() -> HashSet<u64> {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return HashSet::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// `(remote address, inode)` of a line of /proc/net/tcp{,6} in state
/// ESTABLISHED: `sl local rem st tx:rx tr:when retrnsmt uid timeout inode`.
fn established(line: &str) -> Option<(SocketAddr, u64)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(3) != Some(&"01") {
        return None;
    }
    Some((parse_addr(fields.get(2)?)?, fields.get(9)?.parse().ok()?))
}

/// `0100007F:0885` (IPv4) or 32 hex digits and a port (IPv6): the address
/// as the kernel's 32-bit words in host order, the port in hex.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = ip.get(8 * i..8 * i + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[4 * i..4 * i + 4].copy_from_slice(&word(i)?);
            }
            let v6 = Ipv6Addr::from(bytes);
            // A v4 server reached over a dual-stack socket.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_tcp_lines() {
        let v4 = "   3: 0100007F:A1B2 0100007F:0885 01 00000000:00000000 00:00000000 00000000     0        0 123456 1";
        assert_eq!(established(v4), Some(("127.0.0.1:2181".parse().unwrap(), 123456)));
        let listening = v4.replace(" 01 ", " 0A ");
        assert_eq!(established(&listening), None);
        let v6 = "   0: 00000000000000000000000000000000:1F90 00000000000000000000000001000000:0885 01 \
                  00000000:00000000 00:00000000 00000000 0 0 42 1";
        assert_eq!(established(v6), Some(("[::1]:2181".parse().unwrap(), 42)));
        let mapped = "   0: 0000000000000000FFFF00000100007F:1F90 0000000000000000FFFF00000100007F:0885 01 \
                      00000000:00000000 00:00000000 00000000 0 0 7 1";
        assert_eq!(established(mapped), Some(("127.0.0.1:2181".parse().unwrap(), 7)));
    }

    #[tokio::test]
    async fn resolves_the_connect_string_without_its_chroot() {
        let connect = |text: &str| zksync_core::settings::parse_servers(text).unwrap();
        let servers = resolve(connect("127.0.0.1:2181,localhost:2182/app").servers()).await;
        assert_eq!(
            servers.get(&"127.0.0.1:2182".parse().unwrap()).map(String::as_str),
            Some("localhost:2182")
        );
        let servers = resolve(connect("127.0.0.1:2181,127.0.0.2:2182/app").servers()).await;
        assert_eq!(
            servers.get(&"127.0.0.2:2182".parse().unwrap()).map(String::as_str),
            Some("127.0.0.2:2182")
        );
        assert_eq!(servers.len(), 2);
    }
}
