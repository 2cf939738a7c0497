//! The group: members registered in ZooKeeper with their load (`load`,
//! `member`), the table every member keeps of the others (`view`), and
//! ZooKeeper's own figures (`mntr`).
//!
//! Layout under the chroot: `/zksync/<group>/members/<id>`, one ephemeral
//! znode per member, whose JSON is a ServerSet entry (see `member`); the
//! leadership beside it (see `leader`), kept by the session thread, carried
//! out on the Redis side by the role thread (`role`) and enforced by the
//! fencing filter (`fence`).

pub mod fence;
pub mod leader;
pub mod load;
pub mod member;
pub mod mntr;
pub mod role;
pub mod view;

/// `/zksync/<group>/members`.
pub fn members_dir(group: &str) -> String {
    format!("/zksync/{group}/members")
}

/// `/zksync/<group>/members/<id>`.
pub fn member_path(group: &str, id: &str) -> String {
    format!("{}/{id}", members_dir(group))
}

/// A member's id: its announced address, else `127.0.0.1:<port>`.
pub fn member_id(announce: Option<&str>, port: u16) -> String {
    match announce {
        Some(addr) => addr.to_string(),
        None => format!("127.0.0.1:{port}"),
    }
}

/// Splits `host:port` (the port after the last colon).
pub fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}
