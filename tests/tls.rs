//! TLS to ZooKeeper: a ZooKeeper serving TLS with client certificates
//! required (`ssl.clientAuth=need`) on one port and plaintext on another;
//! certificates made with openssl. The mirror, the change stream, PUSH, a
//! lock and a group over TLS, and an ensemble; a wrong CA, no client
//! certificate, a missing or wrong file, TLS to the plaintext port and
//! plaintext to the TLS port: a clear state and log, never a crash.

use redis::Value;
use std::sync::OnceLock;
use std::time::Duration;
use testkit::tls::{Certs, TlsEnsemble, TlsZk};
use testkit::*;

const SETTLE: Duration = Duration::from_secs(10);

/// One TLS ZooKeeper and its certificates for the whole binary.
fn shared() -> (&'static Certs, &'static TlsZk) {
    static SHARED: OnceLock<TlsZk> = OnceLock::new();
    let zk = SHARED.get_or_init(TlsZk::start);
    (&zk.certs, zk)
}

/// zksync over TLS to the shared ZooKeeper, with the client certificate.
fn tls_configs(certs: &Certs) -> Vec<(&'static str, String)> {
    vec![
        ("zksync.tls", "yes".into()),
        ("zksync.tls-ca-cert-file", certs.ca.clone()),
        ("zksync.tls-cert-file", certs.client_cert.clone()),
        ("zksync.tls-key-file", certs.client_key.clone()),
    ]
}

fn start(servers: &str, configs: &[(&str, String)]) -> Redis {
    let configs: Vec<(&str, &str)> = configs.iter().map(|(n, v)| (*n, v.as_str())).collect();
    Redis::start(servers, &configs)
}

/// The `zksync:` warnings of the log since `from` (a byte offset).
fn warnings_since(redis: &Redis, from: usize) -> String {
    redis.log()[from..]
        .lines()
        .filter(|l| l.contains(" # ") && l.contains("zksync"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits for a warning since `from` holding every one of `words` (a word
/// `a|b`: either).
fn wait_warning(redis: &Redis, from: usize, words: &[&str]) {
    let mut seen = String::new();
    let found = (0..(SETTLE.as_millis() / 50)).any(|_| {
        seen = warnings_since(redis, from);
        let hit = seen
            .lines()
            .any(|l| words.iter().all(|w| w.split('|').any(|w| l.contains(w))));
        if !hit {
            std::thread::sleep(Duration::from_millis(50));
        }
        hit
    });
    assert!(found, "no warning with {words:?}; warnings:\n{seen}");
}

fn config_set(redis: &Redis, pairs: &[(&str, &str)]) {
    let mut args = vec!["CONFIG", "SET"];
    for (name, value) in pairs {
        args.extend([*name, *value]);
    }
    redis.cmd(&args);
}

#[test]
fn mirror_push_lock_and_group_over_tls() {
    let (certs, zk) = shared();
    let root = unique_root("tls");
    let plain = ZkClient::connect(&zk.zk.connect_string());
    plain.create_all(&format!("{root}/config/db"), b"postgres");
    // Readable only by the client certificate's subject (ZooKeeper's x509 scheme).
    static X509: [zk::Acl; 1] = [zk::Acl::new_const(zk::Permission::ALL, "x509", "CN=zksync")];
    let x509 = format!("{root}/config/x509");
    plain.create_all_with(&x509, b"for zksync's certificate", zk::Acls::new(&X509));
    assert!(plain.block_on(plain.client().get_data(&x509)).is_err(), "protected");
    let mut configs = tls_configs(certs);
    configs.extend([
        ("zksync.mirrors", format!("{root}/config")),
        ("zksync.allow", format!("{root}/locks")),
        ("zksync.group", format!("tls-{}", std::process::id())),
        ("zksync.stream", "changes".to_string()),
    ]);
    let redis = start(&zk.secure_connect_string(), &configs);
    redis.wait_state("connected", SETTLE);
    let key = format!("zk:{root}/config/db");
    wait_until(SETTLE, "the mirror over TLS", || {
        redis.cmd(&["GET", &key]) == Value::BulkString(b"postgres".to_vec())
    });
    wait_until(SETTLE, "the znode only zksync's certificate may read", || {
        redis.cmd(&["GET", &format!("zk:{x509}")]) == Value::BulkString(b"for zksync's certificate".to_vec())
    });
    // The group: this lone member leads, and so writes (PUSH too).
    wait_until(SETTLE, "this server leads its group", || {
        redis.try_cmd(&["SET", "probe", "1"]).is_ok()
    });
    assert_eq!(
        redis.cmd(&["ZKSYNC.PUSH", &format!("{root}/config/new"), "v"]),
        Value::Int(0)
    );
    assert_eq!(plain.get(&format!("{root}/config/new")), Some(b"v".to_vec()));
    plain.set(&format!("{root}/config/db"), b"mysql");
    wait_until(SETTLE, "a live change over TLS", || {
        redis.cmd(&["GET", &key]) == Value::BulkString(b"mysql".to_vec())
    });
    // The change stream: an entry per key change, the live one last.
    let last = redis.cmd(&["XREVRANGE", "changes", "+", "-", "COUNT", "1"]);
    assert!(format!("{last:?}").contains("mysql"), "{last:?}");

    let lock = format!("{root}/locks/report");
    let mut conn = redis.conn();
    let token: i64 = redis::cmd("ZKSYNC.LOCK").arg(&lock).query(&mut conn).unwrap();
    let checked: String = redis::cmd("ZKSYNC.CHECK")
        .arg(&lock)
        .arg(token)
        .query(&mut conn)
        .unwrap();
    assert_eq!(checked, "OK");
    let released: i64 = redis::cmd("ZKSYNC.UNLOCK")
        .arg(&lock)
        .arg(token)
        .query(&mut conn)
        .unwrap();
    assert_eq!(released, 1);

    assert!(matches!(redis.cmd(&["ZKSYNC.LEADER"]), Value::Array(ref a) if a.len() == 3));
}

#[test]
fn bad_files_are_refused_with_the_reason() {
    let (certs, zk) = shared();
    let redis = start(&zk.secure_connect_string(), &tls_configs(certs));
    redis.wait_state("connected", SETTLE);
    let refusals = [
        ("zksync.tls-ca-cert-file", "/nonexistent/ca.pem", "No such file"),
        ("zksync.tls-cert-file", "/nonexistent/client.crt", "No such file"),
        ("zksync.tls-key-file", certs.client_cert.as_str(), "no PEM private key"),
        (
            "zksync.tls-ca-cert-file",
            certs.client_key.as_str(),
            "no PEM certificate",
        ),
        ("zksync.tls-ca-cert-file", "", "needs zksync.tls-ca-cert-file"),
    ];
    for (name, value, why) in refusals {
        match redis.try_cmd(&["CONFIG", "SET", name, value]) {
            Err(e) => assert!(e.to_string().contains(why), "{name} {value}: {e}"),
            Ok(v) => panic!("{name} {value} accepted: {v:?}"),
        }
    }
    let plain = start(&zk.zk.connect_string(), &[]);
    match plain.try_cmd(&["CONFIG", "SET", "zksync.tls", "yes"]) {
        Err(e) => assert!(e.to_string().contains("needs zksync.tls-ca-cert-file"), "{e}"),
        Ok(v) => panic!("tls without a CA accepted: {v:?}"),
    }
    // The old values stay in force: still connected over TLS.
    redis.cmd(&["PING"]);
    assert_eq!(redis.status()["state"], "connected");
    assert_eq!(
        redis.cmd(&["CONFIG", "GET", "zksync.tls"]),
        Value::Array(vec![
            Value::BulkString(b"zksync.tls".to_vec()),
            Value::BulkString(b"yes".to_vec())
        ])
    );
}

/// Each failure leaves the state `connecting` with a warning saying why;
/// the right settings bring the session back.
#[test]
fn failed_handshakes_say_why_and_never_crash() {
    let (certs, zk) = shared();
    let redis = start(&zk.secure_connect_string(), &tls_configs(certs));
    redis.wait_state("connected", SETTLE);
    let (plain, secure) = (zk.zk.connect_string(), zk.secure_connect_string());
    // (the case, the configs set, words of the warning)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a [&'a str]);
    let cases: [Case; 4] = [
        (
            "a wrong CA",
            vec![("zksync.tls-ca-cert-file", &certs.other_ca)],
            &["cannot reach ZooKeeper", "UnknownIssuer"],
        ),
        (
            "no client certificate",
            vec![
                ("zksync.tls-ca-cert-file", &certs.ca),
                ("zksync.tls-cert-file", ""),
                ("zksync.tls-key-file", ""),
            ],
            // TLS 1.3: the server's refusal may come once the client is done
            // with the handshake, as the session is being established.
            &[
                "cannot reach ZooKeeper",
                "BadCertificate|CertificateRequired|fails to establish session",
            ],
        ),
        (
            "TLS to the plaintext port",
            vec![
                ("zksync.tls-cert-file", &certs.client_cert),
                ("zksync.tls-key-file", &certs.client_key),
                ("zksync.servers", &plain),
            ],
            &[
                "cannot reach ZooKeeper",
                "tls handshake eof|InvalidMessage|InvalidContentType",
            ],
        ),
        (
            "plaintext to the TLS port",
            vec![("zksync.tls", "no"), ("zksync.servers", &secure)],
            &["cannot reach ZooKeeper", "fails to establish session"],
        ),
    ];
    for (case, pairs, words) in cases {
        let from = redis.log().len();
        config_set(&redis, &pairs);
        wait_warning(&redis, from, words);
        assert_eq!(redis.status()["state"], "connecting", "{case}");
        redis.cmd(&["PING"]);
    }
    config_set(&redis, &[("zksync.tls", "yes")]);
    redis.wait_state("connected", SETTLE);
}

/// Over TLS to an ensemble: the member holding the session is killed, the
/// session moves to another over TLS and the mirror follows.
#[test]
fn an_ensemble_over_tls_survives_a_member() {
    let (certs, _) = shared();
    let tls = TlsEnsemble::start(certs);
    let root = unique_root("tls-ensemble");
    let plain = ZkClient::connect(&tls.ensemble.connect_string());
    plain.create_all(&format!("{root}/k"), b"1");
    let mut configs = tls_configs(certs);
    configs.push(("zksync.mirrors", root.clone()));
    let redis = start(&tls.secure_connect_string(), &configs);
    redis.wait_state("connected", SETTLE);
    let key = format!("zk:{root}/k");
    wait_until(SETTLE, "the mirror", || {
        redis.cmd(&["GET", &key]) == Value::BulkString(b"1".to_vec())
    });
    let server = redis.status()["server"].clone();
    let held = tls
        .secure_ports
        .iter()
        .position(|p| server.ends_with(&format!(":{p}")))
        .unwrap_or_else(|| panic!("the session is on {server}, not a TLS port"));
    tls.ensemble.kill(held);
    wait_until(SETTLE, "the session on another member", || {
        let status = redis.status();
        status["state"] == "connected" && status["server"] != server
    });
    let live = ZkClient::connect(&tls.ensemble.member_addr((held + 1) % 3));
    live.set(&format!("{root}/k"), b"2");
    wait_until(SETTLE, "the change mirrored", || {
        redis.cmd(&["GET", &key]) == Value::BulkString(b"2".to_vec())
    });
}
