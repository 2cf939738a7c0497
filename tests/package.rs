//! The Debian package `scripts/package` builds: its fields, its files, no
//! maintainer script, and its module loaded into a real server that mirrors
//! a znode.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use testkit::*;

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Builds the package from the module the tests load.
fn package() -> PathBuf {
    let root = workspace_root();
    module_path();
    let script = root.join("scripts/package");
    let deb = run(script.to_str().unwrap(), &["--no-build"]);
    root.join(deb.trim())
}

#[test]
fn the_package_holds_the_module_and_docs_and_its_module_loads() {
    let deb = package();
    let deb = deb.to_str().unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let arch = run("dpkg", &["--print-architecture"]);
    assert!(
        deb.ends_with(&format!("target/debian/zksync_{version}_{}.deb", arch.trim())),
        "{deb}"
    );

    let field = |name: &str| run("dpkg-deb", &["-f", deb, name]).trim().to_string();
    assert_eq!(field("Package"), "zksync");
    assert_eq!(field("Version"), version);
    assert_eq!(field("Architecture"), arch.trim());
    let depends = field("Depends");
    assert!(depends.contains("redis-server (>= 5:7.0) | valkey-server"), "{depends}");

    let listing = run("dpkg-deb", &["-c", deb]);
    let mut files: Vec<&str> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .inspect(|l| {
            let executable = l.starts_with("-rwxr-xr-x");
            assert_eq!(
                executable,
                l.ends_with(".so"),
                "only the module is executable (Redis wants it): {l}"
            );
        })
        .filter_map(|l| l.split_whitespace().last())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "./usr/lib/redis/modules/libzksync.so",
            "./usr/share/doc/zksync/CHANGELOG.md",
            "./usr/share/doc/zksync/README.md",
            "./usr/share/doc/zksync/copyright",
            "./usr/share/doc/zksync/redis.conf.example",
        ]
    );
    assert!(listing.lines().all(|l| l.contains(" root/root ")), "{listing}");
    // No maintainer script: installing it restarts and changes nothing.
    let info = run("dpkg-deb", &["-I", deb]);
    for script in ["preinst", "postinst", "prerm", "postrm", "config", "triggers"] {
        assert!(!info.contains(&format!(" {script}")), "{script} in:\n{info}");
    }

    let dir = temp_dir("package");
    run("dpkg-deb", &["-x", deb, dir.to_str().unwrap()]);
    let module = dir.join("usr/lib/redis/modules/libzksync.so");
    let sections = run("readelf", &["-S", module.to_str().unwrap()]);
    assert!(!sections.contains(".debug_info"), "the module is stripped");

    let root = unique_root("package");
    let zk = ZkClient::connect(&shared_zk().connect_string());
    zk.create_all(&format!("{root}/k"), b"from the package");
    let redis = Redis::start_plain(&[
        ("loadmodule", module.to_str().unwrap()),
        ("zksync.servers", &shared_zk().connect_string()),
        ("zksync.mirrors", &root),
    ]);
    redis.wait_state("connected", Duration::from_secs(10));
    let key = format!("zk:{root}/k");
    wait_until(Duration::from_secs(10), "the znode mirrored", || {
        redis.cmd(&["GET", &key]) == redis::Value::BulkString(b"from the package".to_vec())
    });
    let modules = format!("{:?}", redis.cmd(&["MODULE", "LIST"]));
    assert!(modules.contains("usr/lib/redis/modules/libzksync.so"), "{modules}");
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}
