//! Mirror assertions: the keys zksync mirrored into Redis, compared with
//! the ZooKeeper subtree they mirror.

use crate::server::Redis;
use crate::zk_client::ZkClient;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn glob_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The mirrored keys of `root`: path → value.
pub fn mirror_keys(redis: &Redis, prefix: &str, root: &str) -> BTreeMap<String, Vec<u8>> {
    let mut conn = redis.conn();
    let keys = scan_mirrored(&mut conn, prefix, root);
    let mut out = BTreeMap::new();
    for chunk in keys.chunks(1000) {
        for ((path, _), value) in chunk.iter().zip(get_each(&mut conn, chunk)) {
            match value {
                Ok(Some(value)) => {
                    out.insert(path.clone(), value);
                }
                Ok(None) => {}
                Err(e) => {
                    out.insert(path.clone(), format!("<GET failed: {e}>").into_bytes());
                }
            }
        }
    }
    out
}

/// The keys under `prefix` that mirror `root` or a znode below it: (path, key).
fn scan_mirrored(conn: &mut redis::Connection, prefix: &str, root: &str) -> Vec<(String, Vec<u8>)> {
    let pattern = format!("{}*", glob_escape(&format!("{prefix}{root}")));
    let keys: Vec<Vec<u8>> = redis::cmd("SCAN")
        .cursor_arg(0)
        .arg("MATCH")
        .arg(&pattern)
        .arg("COUNT")
        .arg(1000)
        .clone()
        .iter(conn)
        .unwrap_or_else(|e| panic!("SCAN {pattern}: {e}"))
        .collect();
    keys.into_iter()
        .filter_map(|key| {
            let path = String::from_utf8_lossy(key.strip_prefix(prefix.as_bytes())?).into_owned();
            let within = path == root || root == "/" || path.starts_with(&format!("{root}/"));
            within.then_some((path, key))
        })
        .collect()
}

/// GET of each key, in one pipeline.
fn get_each(conn: &mut redis::Connection, keys: &[(String, Vec<u8>)]) -> Vec<redis::RedisResult<Option<Vec<u8>>>> {
    let mut pipe = redis::pipe();
    for (_, key) in keys {
        pipe.cmd("GET").arg(key);
    }
    // One error fails a whole pipeline: then each key on its own, so that
    // a key of another type shows up as a difference, not as missing.
    match pipe.query::<Vec<Option<Vec<u8>>>>(conn) {
        Ok(values) => values.into_iter().map(Ok).collect(),
        Err(_) => keys
            .iter()
            .map(|(_, key)| redis::cmd("GET").arg(key).query(conn))
            .collect(),
    }
}

/// Bytes for a failure message: text when printable, escaped otherwise, cut at 60.
pub fn show(bytes: &[u8]) -> String {
    let shown: String = bytes
        .iter()
        .take(60)
        .flat_map(|b| std::ascii::escape_default(*b))
        .map(char::from)
        .collect();
    if bytes.len() > 60 {
        format!("\"{shown}\"... ({} bytes)", bytes.len())
    } else {
        format!("\"{shown}\"")
    }
}

/// Polls until the keyspace mirrors ZooKeeper's subtree at `root` exactly;
/// panics with the difference.
pub fn wait_mirror_equals(redis: &Redis, zk: &ZkClient, root: &str, prefix: &str, timeout: Duration) {
    wait_tree_equals(
        zk,
        root,
        timeout,
        || mirror_keys(redis, prefix, root),
        || {
            format!(
                "mirror of {root} (prefix {prefix}), redis log tail:\n{}",
                redis.log_tail()
            )
        },
    );
}

/// Polls until `have` (paths and values, read from Redis) equals
/// ZooKeeper's subtree at `root`; panics with the difference and `what`.
pub fn wait_tree_equals(
    zk: &ZkClient,
    root: &str,
    timeout: Duration,
    mut have: impl FnMut() -> BTreeMap<String, Vec<u8>>,
    what: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let want = zk.tree(root);
        let have = have();
        if want == have {
            return;
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = want.keys().filter(|k| !have.contains_key(*k)).take(10).collect();
            let extra: Vec<_> = have.keys().filter(|k| !want.contains_key(*k)).take(10).collect();
            let different: Vec<_> = want
                .iter()
                .filter_map(|(k, v)| match have.get(k) {
                    Some(h) if h != v => Some(format!("{k}: zk {} redis {}", show(v), show(h))),
                    _ => None,
                })
                .take(10)
                .collect();
            panic!(
                "{} differs from ZooKeeper after {timeout:?}: {} znodes, {} keys\n  missing: {missing:?}\n  \
                 extra: {extra:?}\n  different: {different:#?}",
                what(),
                want.len(),
                have.len(),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
