//! The test side's ZooKeeper client: zookeeper-client's async one, made
//! synchronous on a runtime of its own.

use crate::zk;
use std::collections::BTreeMap;
use std::time::Duration;

/// A synchronous ZooKeeper client for the test side. Dropping it closes its
/// session at once (its ephemerals go), rather than letting it expire.
pub struct ZkClient {
    runtime: tokio::runtime::Runtime,
    client: Option<zk::Client>,
}

impl Drop for ZkClient {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        let mut states = client.state_watcher();
        // The last handle gone, the client sends CloseSession.
        drop(client);
        if states.peek_state().is_terminated() {
            return;
        }
        self.runtime.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(1), async {
                while !states.changed().await.is_terminated() {}
            })
            .await;
        });
    }
}

impl ZkClient {
    pub fn connect(connect: &str) -> ZkClient {
        ZkClient::open(connect, None).unwrap_or_else(|e| panic!("connect to ZooKeeper {connect}: {e}"))
    }

    pub fn connect_with_auth(connect: &str, scheme: &str, credentials: &[u8]) -> ZkClient {
        ZkClient::open(connect, Some((scheme, credentials))).unwrap_or_else(|e| panic!("connect to {connect}: {e}"))
    }

    pub fn try_connect(connect: &str, timeout: Duration) -> Option<ZkClient> {
        let runtime = runtime();
        let client = runtime
            .block_on(async {
                let connector = zk::Client::connector()
                    .with_session_timeout(Duration::from_secs(4))
                    .with_connection_timeout(timeout);
                tokio::time::timeout(timeout, connector.connect(connect)).await
            })
            .ok()?
            .ok()?;
        Some(ZkClient {
            runtime,
            client: Some(client),
        })
    }

    fn open(connect: &str, auth: Option<(&str, &[u8])>) -> Result<ZkClient, zk::Error> {
        let runtime = runtime();
        let client = runtime.block_on(async {
            let mut connector = zk::Client::connector().with_session_timeout(Duration::from_secs(6));
            if let Some((scheme, credentials)) = auth {
                connector = connector.with_auth(scheme, credentials);
            }
            connector.connect(connect).await
        })?;
        Ok(ZkClient {
            runtime,
            client: Some(client),
        })
    }

    pub fn client(&self) -> &zk::Client {
        // Some from `connect` until `drop`, which alone takes it.
        let Some(client) = self.client.as_ref() else {
            unreachable!("a ZkClient's client is taken only when it is dropped")
        };
        client
    }

    /// Closes the session now; its ephemeral znodes are deleted.
    pub fn close(self) {
        drop(self)
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    pub fn session_id(&self) -> i64 {
        self.client().session_id().0
    }

    /// Creates `path` with `data` and any missing parents, or sets it.
    pub fn create_all(&self, path: &str, data: &[u8]) {
        self.create_all_with(path, data, zk::Acls::anyone_all());
    }

    pub fn create_all_with(&self, path: &str, data: &[u8], acls: zk::Acls) {
        let options = zk::CreateMode::Persistent.with_acls(acls);
        self.block_on(async {
            if let Some(i) = path.rfind('/').filter(|i| *i > 0) {
                self.client()
                    .mkdir(&path[..i], &options)
                    .await
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", &path[..i]));
            }
            match self.client().create(path, data, &options).await {
                Ok(_) => {}
                Err(zk::Error::NodeExists) => {
                    self.client()
                        .set_data(path, data, None)
                        .await
                        .unwrap_or_else(|e| panic!("set {path}: {e}"));
                }
                Err(e) => panic!("create {path}: {e}"),
            }
        })
    }

    /// An ephemeral znode owned by this client's session.
    pub fn create_ephemeral(&self, path: &str, data: &[u8]) {
        let options = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        self.block_on(self.client().create(path, data, &options))
            .unwrap_or_else(|e| panic!("create {path}: {e}"));
    }

    pub fn set(&self, path: &str, data: &[u8]) {
        self.block_on(self.client().set_data(path, data, None))
            .unwrap_or_else(|e| panic!("set {path}: {e}"));
    }

    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        match self.block_on(self.client().get_data(path)) {
            Ok((data, _)) => Some(data),
            Err(zk::Error::NoNode) => None,
            Err(e) => panic!("get {path}: {e}"),
        }
    }

    pub fn stat(&self, path: &str) -> Option<zk::Stat> {
        self.block_on(self.client().check_stat(path))
            .unwrap_or_else(|e| panic!("stat {path}: {e}"))
    }

    pub fn exists(&self, path: &str) -> bool {
        self.stat(path).is_some()
    }

    pub fn version(&self, path: &str) -> Option<i32> {
        self.stat(path).map(|s| s.version)
    }

    pub fn ephemeral_owner(&self, path: &str) -> Option<i64> {
        self.stat(path).map(|s| s.ephemeral_owner)
    }

    /// Deletes `path` and everything below it; absent is fine.
    pub fn delete_all(&self, path: &str) {
        let children = match self.block_on(self.client().list_children(path)) {
            Ok(children) => children,
            Err(zk::Error::NoNode) => return,
            Err(e) => panic!("list {path}: {e}"),
        };
        for child in children {
            self.delete_all(&format!("{}/{child}", path.trim_end_matches('/')));
        }
        match self.block_on(self.client().delete(path, None)) {
            Ok(()) | Err(zk::Error::NoNode) => {}
            Err(e) => panic!("delete {path}: {e}"),
        }
    }

    /// Every znode of the subtree at `root`, root included: path → data.
    pub fn tree(&self, root: &str) -> BTreeMap<String, Vec<u8>> {
        let mut tree = BTreeMap::new();
        // Level by level, every read of a level in flight at once.
        let mut level = vec![root.to_string()];
        while !level.is_empty() {
            let reads = self.block_on(futures::future::join_all(level.iter().map(|path| async move {
                let data = self.client().get_data(path).await;
                let children = self.client().list_children(path).await;
                (path, data, children)
            })));
            let mut next = Vec::new();
            for (path, data, children) in reads {
                match (data, children) {
                    (Ok((data, _)), Ok(children)) => {
                        let parent = path.trim_end_matches('/');
                        next.extend(children.into_iter().map(|child| format!("{parent}/{child}")));
                        tree.insert(path.clone(), data);
                    }
                    (Err(zk::Error::NoNode), _) | (_, Err(zk::Error::NoNode)) => {}
                    (Err(e), _) | (_, Err(e)) => panic!("read {path}: {e}"),
                }
            }
            level = next;
        }
        tree
    }
}

/// A worker thread of its own keeps the session alive between calls.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("the test client's tokio runtime: {e}"))
}
