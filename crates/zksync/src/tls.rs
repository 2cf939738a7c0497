//! TLS to ZooKeeper: the PEM files (checked when their config is set, read
//! again at each connection, so a renewed certificate is picked up at the
//! next one), and the names the server's certificate is verified against.

use rustls_pemfile::Item;
use rustls_pki_types::ServerName;
use zksync_core::settings::TlsFiles;

/// What a PEM file must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pem {
    Certificates,
    PrivateKey,
}

/// Whether `contents` hold what `kind` needs. The reason never quotes them.
pub fn holds(contents: &[u8], kind: Pem) -> Result<(), String> {
    let (mut certificates, mut keys) = (0, 0);
    for item in rustls_pemfile::read_all(&mut &contents[..]) {
        match item.map_err(|e| format!("it is not valid PEM ({e:?})"))? {
            Item::X509Certificate(_) => certificates += 1,
            Item::Pkcs1Key(_) | Item::Pkcs8Key(_) | Item::Sec1Key(_) => keys += 1,
            _ => {}
        }
    }
    match (kind, certificates, keys) {
        (Pem::Certificates, 0, _) => Err("it holds no PEM certificate".into()),
        (Pem::PrivateKey, _, 0) => Err("it holds no PEM private key".into()),
        (Pem::PrivateKey, _, 2..) => Err("it holds more than one private key".into()),
        _ => Ok(()),
    }
}

/// Reads the file of config `name` (empty: none) and checks it holds `kind`.
pub fn read(name: &str, path: &str, kind: Pem) -> Result<String, String> {
    let why = |e: String| format!("zksync.{name} {path}: {e}");
    let contents = std::fs::read(path).map_err(|e| why(e.to_string()))?;
    holds(&contents, kind).map_err(why)?;
    String::from_utf8(contents).map_err(|_| why("it is not valid UTF-8".into()))
}

/// A config's check: an empty path, or a readable file holding `kind`.
pub fn check(name: &str, path: &str, kind: Pem) -> Result<(), String> {
    match path {
        "" => Ok(()),
        path => read(name, path, kind).map(drop),
    }
}

/// `zksync.tls yes` verifies the server against a CA: one must be set.
pub fn ca_needed(tls: bool, ca: &str) -> Result<(), String> {
    match tls && ca.is_empty() {
        false => Ok(()),
        true => Err("zksync.tls yes needs zksync.tls-ca-cert-file (the CA ZooKeeper's certificate chains to)".into()),
    }
}

/// What a connection needs, read from `TlsFiles`.
pub struct TlsPem {
    pub ca: String,
    pub identity: Option<(String, String)>,
}

/// Reads the files; the certificate and key go together.
pub fn read_files(files: &TlsFiles) -> Result<TlsPem, String> {
    let ca = read("tls-ca-cert-file", &files.ca, Pem::Certificates)?;
    let identity = match identity(&files.cert, &files.key)? {
        None => None,
        Some((cert, key)) => Some((
            read("tls-cert-file", cert, Pem::Certificates)?,
            read("tls-key-file", key, Pem::PrivateKey)?,
        )),
    };
    Ok(TlsPem { ca, identity })
}

/// The client certificate and key files: both, or neither.
fn identity<'a>(cert: &'a str, key: &'a str) -> Result<Option<(&'a str, &'a str)>, String> {
    match (cert, key) {
        ("", "") => Ok(None),
        ("", _) => Err("zksync.tls-key-file is set without zksync.tls-cert-file".into()),
        (_, "") => Err("zksync.tls-cert-file is set without zksync.tls-key-file".into()),
        (cert, key) => Ok(Some((cert, key))),
    }
}

/// The host of a connect string's `host:port`, as the server's certificate
/// must name it; `Err` if it cannot be a TLS server name (the client would
/// give up on it).
pub fn server_name(server: &str) -> Result<&str, String> {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    ServerName::try_from(host)
        .map(drop)
        .map(|()| host)
        .map_err(|_| format!("'{host}' is not a host name or IP address that TLS can verify"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(label: &str) -> String {
        format!("-----BEGIN {label}-----\nMIIBAA==\n-----END {label}-----\n")
    }

    #[test]
    fn a_pem_file_holds_what_its_config_needs() {
        let cert = block("CERTIFICATE");
        let key = block("PRIVATE KEY");
        let cases = [
            (cert.clone(), Pem::Certificates, true),
            (cert.clone() + &cert, Pem::Certificates, true),
            (key.clone() + &cert, Pem::Certificates, true),
            (key.clone(), Pem::Certificates, false),
            (key.clone(), Pem::PrivateKey, true),
            (block("RSA PRIVATE KEY"), Pem::PrivateKey, true),
            (block("EC PRIVATE KEY"), Pem::PrivateKey, true),
            (key.clone() + &key, Pem::PrivateKey, false),
            (cert.clone(), Pem::PrivateKey, false),
            (String::new(), Pem::Certificates, false),
            ("not pem at all\n".into(), Pem::Certificates, false),
            ("-----BEGIN CERTIFICATE-----\nMIIB\n".into(), Pem::Certificates, false),
        ];
        for (contents, kind, ok) in cases {
            assert_eq!(holds(contents.as_bytes(), kind).is_ok(), ok, "{kind:?} {contents}");
        }
    }

    #[test]
    fn tls_needs_a_ca() {
        assert!(ca_needed(false, "").is_ok());
        assert!(ca_needed(true, "/ca.pem").is_ok());
        assert!(ca_needed(true, "").is_err());
    }

    #[test]
    fn server_names() {
        for (server, host) in [
            ("127.0.0.1:2281", Some("127.0.0.1")),
            ("zk1.example.com:2281", Some("zk1.example.com")),
            ("localhost:1", Some("localhost")),
            ("[::1]:2281", Some("::1")),
            ("bad host:1", None),
            ("a..b:1", None),
        ] {
            assert_eq!(server_name(server).ok(), host, "{server}");
        }
    }

    #[test]
    fn the_certificate_and_key_go_together() {
        assert_eq!(identity("", ""), Ok(None));
        assert_eq!(identity("/c", "/k"), Ok(Some(("/c", "/k"))));
        assert!(identity("/c", "").is_err());
        assert!(identity("", "/k").is_err());
    }
}
