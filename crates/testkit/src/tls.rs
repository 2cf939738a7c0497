//! TLS for the tests: certificates made with openssl in a temp dir, and a
//! ZooKeeper serving TLS (with client certificates required) on a second
//! port.

use crate::{free_port, Ensemble, Zk};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA, a server certificate for 127.0.0.1 and localhost, a client
/// certificate, and a CA that signed neither.
pub struct Certs {
    pub dir: PathBuf,
    pub ca: String,
    pub other_ca: String,
    /// The server's key and certificate in one file, as ZooKeeper's PEM keystore wants.
    pub server: String,
    pub client_cert: String,
    pub client_key: String,
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("run openssl: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A key and a certificate for `cn`, signed by `ca` with `extensions`.
fn issue(dir: &Path, name: &str, cn: &str, extensions: &str) {
    write(&dir.join(format!("{name}.ext")), extensions);
    let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
    let subject = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ]
        .into_iter()
        .chain(["-keyout", &key, "-out", &csr, "-subj", &subject])
        .collect::<Vec<_>>(),
    );
    let ext = format!("{name}.ext");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
        ]
        .into_iter()
        .chain(["-out", &crt, "-days", "2", "-extfile", &ext])
        .collect::<Vec<_>>(),
    );
}

fn self_signed(dir: &Path, name: &str, cn: &str) {
    let (key, pem, subject) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN={cn}"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ]
        .into_iter()
        .chain(["-keyout", &key, "-out", &pem, "-days", "2", "-subj", &subject])
        .collect::<Vec<_>>(),
    );
}

impl Certs {
    /// Into `dir`, which the caller removes.
    pub fn make(dir: &Path) -> Certs {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        self_signed(&dir, "ca", "zksync test CA");
        self_signed(&dir, "other-ca", "another CA");
        issue(
            &dir,
            "server",
            "localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        );
        issue(&dir, "client", "zksync", "extendedKeyUsage=clientAuth\n");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
        write(&dir.join("server.pem"), &(read("server.key") + &read("server.crt")));
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        Certs {
            ca: path("ca.pem"),
            other_ca: path("other-ca.pem"),
            server: path("server.pem"),
            client_cert: path("client.crt"),
            client_key: path("client.key"),
            dir,
        }
    }
}

/// A standalone ZooKeeper with a plaintext port and a TLS one that requires
/// a client certificate signed by the test CA; the certificates are made in
/// its dir, and go with it.
pub struct TlsZk {
    pub zk: Zk,
    pub secure_port: u16,
    pub certs: Certs,
}

/// The zoo.cfg lines of a TLS port that requires a client certificate.
fn secure_port_config(certs: &Certs, secure_port: u16) -> String {
    format!(
        "secureClientPort={secure_port}\nsecureClientPortAddress=127.0.0.1\n\
         serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
         ssl.keyStore.location={}\nssl.keyStore.type=PEM\n\
         ssl.trustStore.location={}\nssl.trustStore.type=PEM\nssl.clientAuth=need\n",
        certs.server, certs.ca
    )
}

impl TlsZk {
    pub fn start() -> TlsZk {
        let secure_port = free_port();
        let mut certs = None;
        let zk = Zk::start_with(free_port(), |dir| {
            let made = Certs::make(&dir.join("certs"));
            let config = secure_port_config(&made, secure_port);
            certs = Some(made);
            config
        });
        // `start_with` runs the closure before it returns.
        let Some(certs) = certs else {
            unreachable!("Zk::start_with calls its closure")
        };
        TlsZk { zk, secure_port, certs }
    }

    /// The TLS port, by IP.
    pub fn secure_connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.secure_port)
    }
}

/// A 3-node ensemble whose members also serve TLS to clients (the quorum
/// itself talks plaintext).
pub struct TlsEnsemble {
    pub ensemble: Ensemble,
    pub secure_ports: [u16; 3],
}

impl TlsEnsemble {
    /// With `certs` (a `TlsZk`'s), which must outlive it.
    pub fn start(certs: &Certs) -> TlsEnsemble {
        let secure_ports = [free_port(), free_port(), free_port()];
        let ensemble = Ensemble::start_configured(500, ["*", "*", "*"], |i| secure_port_config(certs, secure_ports[i]));
        TlsEnsemble { ensemble, secure_ports }
    }

    pub fn secure_connect_string(&self) -> String {
        self.secure_ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}
