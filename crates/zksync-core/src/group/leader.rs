//! The leadership znodes' contents (paths in `layout`): the leader znode,
//! owned by the master's session, and the history entry of each change.

use serde::{Deserialize, Serialize};

/// `/zksync/<group>/leader`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderNode {
    pub id: String,
    pub addr: String,
    pub epoch: u64,
    /// The master this one replaced, for `+switch-master`.
    #[serde(default)]
    pub previous: Option<String>,
}

/// Why the leadership changed hands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// The group's first master.
    Bootstrap,
    /// The master was gone; the best member took over.
    Election,
    /// ZKSYNC.FAILOVER, the master paused until the target caught up.
    Switchover,
    /// The master handed over as it shut down.
    Shutdown,
    /// ZKSYNC.FAILOVER FORCE.
    Forced,
    /// The master that wrote through a ZooKeeper outage on its members'
    /// grants took its leadership back (a new epoch: its znode had gone).
    Failsafe,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::Bootstrap => "bootstrap",
            Reason::Election => "election",
            Reason::Switchover => "switchover",
            Reason::Shutdown => "shutdown",
            Reason::Forced => "forced",
            Reason::Failsafe => "failsafe",
        }
    }
}

/// `/zksync/<group>/history/<epoch>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub epoch: u64,
    pub from: Option<String>,
    pub to: String,
    pub reason: Reason,
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

pub fn decode<'a, T: Deserialize<'a>>(data: &'a [u8]) -> Result<T, String> {
    serde_json::from_slice(data).map_err(|e| e.to_string())
}

/// The epoch counter's text (`0` when unreadable: the counter only grows).
pub fn decode_epoch(data: &[u8]) -> u64 {
    String::from_utf8_lossy(data).trim().parse().unwrap_or(0)
}

/// The group's recorded offset (a decimal; 0 if malformed).
pub fn decode_offset(data: &[u8]) -> i64 {
    String::from_utf8_lossy(data).trim().parse().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_round_trip() {
        let node = LeaderNode {
            id: "a:1".into(),
            addr: "a:1".into(),
            epoch: 3,
            previous: None,
        };
        assert_eq!(decode::<LeaderNode>(&encode(&node)).unwrap(), node);
        let json: serde_json::Value = serde_json::from_slice(&encode(&node)).unwrap();
        assert_eq!(json["epoch"], 3);
        assert!(decode::<LeaderNode>(b"nope").is_err());
        let change = Change {
            epoch: 4,
            from: Some("a:1".into()),
            to: "b:1".into(),
            reason: Reason::Switchover,
        };
        let json: serde_json::Value = serde_json::from_slice(&encode(&change)).unwrap();
        assert_eq!(json["reason"], "switchover");
        assert_eq!(decode::<Change>(&encode(&change)).unwrap(), change);
    }

    #[test]
    fn epoch_counter() {
        for (text, epoch) in [(&b"7"[..], 7), (b" 12\n", 12), (b"", 0), (b"x", 0)] {
            assert_eq!(decode_epoch(text), epoch);
        }
    }
}
