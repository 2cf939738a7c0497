//! The member znode: a ServerSet entry (as Finagle and Prometheus'
//! `serverset_sd_configs` read it) with zksync's figures beside it.
//!
//! ```json
//! {"serviceEndpoint":{"host":"10.0.0.1","port":6379},"additionalEndpoints":{},
//!  "status":"ALIVE","zksync":{"role":"master","epoch":0,"repl_offset":0,...}}
//! ```

use super::load::Figures;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A member's ServerSet status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Its figures are fresh.
    Alive,
    /// Its main thread stopped sampling: its session is alive, but its
    /// figures say nothing about it now.
    Warning,
    /// Any other ServerSet status (written by another tool): never picked.
    #[serde(other)]
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberNode {
    pub service_endpoint: Endpoint,
    pub additional_endpoints: BTreeMap<String, Endpoint>,
    pub status: Status,
    pub zksync: Figures,
}

impl MemberNode {
    pub fn new(host: &str, port: u16, status: Status, figures: Figures) -> MemberNode {
        MemberNode {
            service_endpoint: Endpoint {
                host: host.to_string(),
                port,
            },
            additional_endpoints: BTreeMap::new(),
            status,
            zksync: figures,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(data: &[u8]) -> Result<MemberNode, String> {
        serde_json::from_slice(data).map_err(|e| e.to_string())
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.service_endpoint.host, self.service_endpoint.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::load::Role;

    #[test]
    fn round_trip_and_serverset_shape() {
        let node = MemberNode::new(
            "10.0.0.1",
            6379,
            Status::Alive,
            Figures::new(Role::Replica, 7, 1, 2, 3, 0),
        );
        let json: serde_json::Value = serde_json::from_slice(&node.encode()).unwrap();
        assert_eq!(json["serviceEndpoint"]["host"], "10.0.0.1");
        assert_eq!(json["serviceEndpoint"]["port"], 6379);
        assert_eq!(json["additionalEndpoints"], serde_json::json!({}));
        assert_eq!(json["status"], "ALIVE");
        assert_eq!(json["zksync"]["role"], "replica");
        assert_eq!(json["zksync"]["repl_offset"], 7);
        assert_eq!(MemberNode::decode(&node.encode()).unwrap(), node);
        assert!(MemberNode::decode(b"{\"serviceEndpoint\":1}").is_err());
        assert!(MemberNode::decode(b"").is_err());
        let mut dead: serde_json::Value = serde_json::from_slice(&node.encode()).unwrap();
        dead["status"] = "DEAD".into();
        let dead = MemberNode::decode(&serde_json::to_vec(&dead).unwrap()).unwrap();
        assert_eq!(dead.status, Status::Other);
    }
}
