//! ZKSYNC.PULL, PUSH and DELETE on the session thread. Each answers through
//! the apply thread, after the mirror changes it caused, so a client reads
//! its own write as soon as it has the reply.

use super::read;
use super::Session;
use crate::ffi::blocked::Pending;
use crate::redis::apply::Update;
use crate::session::zk_error;
use std::time::Duration;
use zksync_core::access;
use zksync_core::error::Error;
use zksync_core::mirror::{Node, Op};
use zksync_core::path;
use zksync_core::reply::Reply;
use zksync_core::settings::DEFAULT_PREFIX;
use zookeeper_client::{Acls, Client, CreateMode, Error as ZkError, Stat};

pub enum Request {
    /// `user`: the Redis user every written key is checked for (`None`: no check).
    Pull {
        path: String,
        user: Option<Vec<u8>>,
    },
    Push {
        path: String,
        value: Vec<u8>,
        version: Option<i32>,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
}

impl Session {
    pub(super) async fn request(&mut self, client: &Client, request: Request, pending: Pending) {
        // Bounded so that a silent ZooKeeper cannot stall the session thread.
        let limit = client.session_timeout().max(Duration::from_secs(1));
        let outcome = match request {
            Request::Pull { path, user } => match tokio::time::timeout(limit, self.pull(client, &path)).await {
                Ok(Ok((prefix, subtree))) => {
                    let (zxid, nodes) = subtree;
                    return self.send(Update::Pull {
                        prefix,
                        path,
                        zxid,
                        nodes,
                        user,
                        pending,
                    });
                }
                Ok(Err(e)) => Err(e),
                Err(_) => Err(Error::Timeout),
            },
            Request::Push { path, value, version } => {
                match tokio::time::timeout(limit, push(client, &path, &value, version, self.acls())).await {
                    Ok(Ok(stat)) => {
                        self.observe(
                            &path,
                            Some(Node {
                                path: path.clone(),
                                data: value,
                                stat: read::stat_of(&stat),
                            }),
                        );
                        Ok(Reply::Integer(stat.version.into()))
                    }
                    Ok(Err(e)) => Err(zk_error(e, &path)),
                    Err(_) => Err(Error::Timeout),
                }
            }
            Request::Delete { path, version } => match tokio::time::timeout(limit, client.delete(&path, version)).await
            {
                Ok(Ok(())) => {
                    self.observe(&path, None);
                    Ok(Reply::Integer(1))
                }
                Ok(Err(ZkError::NoNode)) => Ok(Reply::Integer(0)),
                Ok(Err(e)) => Err(zk_error(e, &path)),
                Err(_) => Err(Error::Timeout),
            },
        };
        let reply = outcome.unwrap_or_else(Reply::Error);
        self.send(Update::Reply(pending, reply));
    }

    /// Reads the subtree at `p` after catching the server up with the leader;
    /// returns the prefix of its keys and the read.
    async fn pull(&mut self, client: &Client, p: &str) -> Result<(String, (i64, Vec<Node>)), Error> {
        match client.sync(p).await {
            Ok(()) | Err(ZkError::NoNode) => {}
            Err(e) => return Err(zk_error(e, p)),
        }
        let mut subtree = read::subtree(client, p).await.map_err(|e| zk_error(e, p))?;
        let prefix = match self.mirror_of(p).cloned() {
            // The apply thread replaces the index entries below `p`.
            Some(spec) => spec.prefix,
            None => {
                // A copy, not a mirror: zksync's own tree stays out of it.
                subtree.nodes.retain(|n| !access::left_out_of_copy(&n.path));
                DEFAULT_PREFIX.to_string()
            }
        };
        Ok((prefix, (subtree.zxid, subtree.nodes)))
    }

    /// Sends the change a request made to a mirrored znode ahead of its watch event.
    fn observe(&mut self, p: &str, node: Option<Node>) {
        let Some(root) = self.mirror_of(p).map(|m| m.root.clone()) else {
            return;
        };
        let op = match node {
            Some(node) => Op::Upsert(node),
            None => Op::Delete(p.to_string()),
        };
        // Its watch event reads the same version: the apply thread drops it then.
        self.send(Update::Changes {
            root,
            ops: vec![op],
            timing: None,
        });
    }
}

/// Sets the data of `p`; without `version`, creates it (and missing parents) when absent.
async fn push(client: &Client, p: &str, value: &[u8], version: Option<i32>, acls: Acls<'_>) -> Result<Stat, ZkError> {
    if version.is_some() {
        return client.set_data(p, value, version).await;
    }
    let options = CreateMode::Persistent.with_acls(acls);
    loop {
        match client.set_data(p, value, None).await {
            Err(ZkError::NoNode) => {}
            other => return other,
        }
        if let Some(parent) = path::parent(p).filter(|parent| *parent != "/") {
            client.mkdir(parent, &options).await?;
        }
        match client.create(p, value, &options).await {
            Ok((stat, _)) => return Ok(stat),
            // Created meanwhile by someone else: set it.
            Err(ZkError::NodeExists) => continue,
            Err(e) => return Err(e),
        }
    }
}
