//! Reading ZooKeeper for the mirror: whole subtrees level by level with
//! multi-reads, and batches of single znodes, all pipelined.

use std::future::Future;
use zksync_core::mirror::{stat_zxid, Node, Stat};
use zksync_core::path;
use zookeeper_client::{Client, Error, MultiReadResult};

/// Znodes per multi-read request (two operations each for a subtree read).
const NODES_PER_REQUEST: usize = 100;
/// Multi-read requests in flight at once.
const REQUESTS_IN_FLIGHT: usize = 16;

pub struct Subtree {
    /// Every znode of the subtree, parents before children; empty if the root is absent.
    pub nodes: Vec<Node>,
    /// The highest zxid the read saw (stats of the subtree and pzxid of the
    /// root's ancestors): in the same history it never goes down.
    pub zxid: i64,
}

/// Reads the subtree at `root` with its data.
pub async fn subtree(client: &Client, root: &str) -> Result<Subtree, Error> {
    let mut nodes = Vec::new();
    let zxid = subtree_in_parts(client, root, |part, _| nodes.extend(part)).await?;
    Ok(Subtree { nodes, zxid })
}

/// Reads the subtree at `root` with its data, handing `part` the znodes as
/// they arrive (parents before children, a window of requests at a time) with
/// the highest zxid seen so far, so that they can be written while the rest
/// is read. Returns the highest zxid the read saw (stats of the subtree and
/// pzxid of the root's ancestors): in the same history it never goes down.
pub async fn subtree_in_parts(client: &Client, root: &str, mut part: impl FnMut(Vec<Node>, i64)) -> Result<i64, Error> {
    let ancestors: Vec<_> = path::ancestors(root).map(|a| client.check_stat(a)).collect();
    let mut zxid = 0;
    for stat in ancestors {
        if let Some(stat) = stat.await? {
            zxid = zxid.max(stat.pzxid);
        }
    }
    let mut level = vec![root.to_string()];
    while !level.is_empty() {
        let mut next = Vec::new();
        for window in level.chunks(NODES_PER_REQUEST * REQUESTS_IN_FLIGHT) {
            let nodes = read_window(client, window, &mut next).await?;
            zxid = nodes.iter().map(|n| stat_zxid(&n.stat)).fold(zxid, i64::max);
            if !nodes.is_empty() {
                part(nodes, zxid);
            }
        }
        level = next;
    }
    Ok(zxid)
}

/// Reads the znodes at `paths` with their children, whose paths go to `next`.
async fn read_window(client: &Client, paths: &[String], next: &mut Vec<String>) -> Result<Vec<Node>, Error> {
    let results = pipelined(paths, |chunk| {
        let mut reader = client.new_multi_reader();
        for p in chunk {
            reader.add_get_data(p)?;
            reader.add_get_children(p)?;
        }
        Ok(reader.commit())
    })
    .await?;
    let mut nodes = Vec::with_capacity(paths.len());
    let mut results = results.into_iter();
    for p in paths {
        match (results.next(), results.next()) {
            (Some(MultiReadResult::Data { data, stat }), Some(MultiReadResult::Children { children })) => {
                next.extend(children.iter().map(|c| path::child(p, c)));
                nodes.push(Node {
                    path: p.clone(),
                    data,
                    stat: stat_of(&stat),
                });
            }
            // Deleted between listing its parent and reading it.
            (Some(MultiReadResult::Error { err: Error::NoNode }), _) => {}
            (Some(MultiReadResult::Error { err }), _) | (_, Some(MultiReadResult::Error { err })) => return Err(err),
            _ => return Err(Error::UnexpectedError(format!("unexpected multi-read reply for {p}"))),
        }
    }
    Ok(nodes)
}

/// Reads each of `paths`: `Ok(None)` for a znode that does not exist.
pub async fn nodes(client: &Client, paths: &[String]) -> Result<Vec<Result<Option<Node>, Error>>, Error> {
    let results = pipelined(paths, |chunk| {
        let mut reader = client.new_multi_reader();
        for p in chunk {
            reader.add_get_data(p)?;
        }
        Ok(reader.commit())
    })
    .await?;
    Ok(paths
        .iter()
        .zip(results)
        .map(|(p, result)| match result {
            MultiReadResult::Data { data, stat } => Ok(Some(Node {
                path: p.clone(),
                data,
                stat: stat_of(&stat),
            })),
            MultiReadResult::Error { err: Error::NoNode } => Ok(None),
            MultiReadResult::Error { err } => Err(err),
            _ => Err(Error::UnexpectedError(format!("unexpected multi-read reply for {p}"))),
        })
        .collect())
}

/// Sends one request per chunk of `paths`, keeping several in flight (a
/// request is sent when its future is created), and concatenates the replies.
async fn pipelined<F, Fut>(paths: &[String], mut request: F) -> Result<Vec<MultiReadResult>, Error>
where
    F: FnMut(&[String]) -> Result<Fut, Error>,
    Fut: Future<Output = Result<Vec<MultiReadResult>, Error>>,
{
    let mut results = Vec::with_capacity(paths.len() * 2);
    for window in paths.chunks(NODES_PER_REQUEST * REQUESTS_IN_FLIGHT) {
        let in_flight = window
            .chunks(NODES_PER_REQUEST)
            .map(&mut request)
            .collect::<Result<Vec<_>, _>>()?;
        for reply in in_flight {
            results.extend(reply.await?);
        }
    }
    Ok(results)
}

/// The client's stat as the core keeps it.
pub fn stat_of(stat: &zookeeper_client::Stat) -> Stat {
    Stat {
        czxid: stat.czxid,
        mzxid: stat.mzxid,
        ctime: stat.ctime,
        mtime: stat.mtime,
        version: stat.version,
        cversion: stat.cversion,
        aversion: stat.aversion,
        ephemeral_owner: stat.ephemeral_owner,
        data_length: stat.data_length,
        num_children: stat.num_children,
        pzxid: stat.pzxid,
    }
}
