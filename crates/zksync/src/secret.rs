//! Secrets: kept out of what Redis records of commands, and read from a file.
//!
//! Redis redacts the values of its own sensitive configs in SLOWLOG, but
//! not those of a module's: it drops the module's "sensitive" flag when it
//! registers the config. So the command filter swaps the secret of a
//! `CONFIG SET zksync.auth <secret>` for a one-shot placeholder before the
//! command runs (SLOWLOG and MONITOR record the rewritten command), and the
//! config's setter turns the placeholder back into the secret.

use crate::config;
use std::borrow::Cow;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use zksync_core::settings::{self, Auth};

/// Secrets swapped out and not yet set: a placeholder is taken once. A
/// CONFIG SET that never reaches the setter (a MULTI discarded, another
/// argument refused first) leaves its secret here, until pushed out.
static HELD: Mutex<VecDeque<(String, Vec<u8>)>> = Mutex::new(VecDeque::new());
const HELD_MAX: usize = 64;
static SERIAL: AtomicU64 = AtomicU64::new(0);

const PLACEHOLDER: &str = "(zksync: hidden secret ";

/// What the command filter does for secrets.
pub fn hooks() -> crate::ffi::filter::Secrets {
    crate::ffi::filter::Secrets {
        min_args: SET_ARGS,
        may_hold,
        positions: secret_positions,
        hide,
    }
}

/// `CONFIG SET name value`: a command with fewer arguments carries no secret.
const SET_ARGS: usize = 4;

/// Whether a command named `name` may carry a secret (on every command).
pub fn may_hold(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"config")
}

/// The positions of the arguments of `CONFIG SET name value [name value ...]`
/// that are values of a sensitive zksync config.
pub fn secret_positions(args: &[&[u8]]) -> Vec<usize> {
    let is_set = args.len() >= SET_ARGS && may_hold(args[0]) && args[1].eq_ignore_ascii_case(b"set");
    if !is_set {
        return Vec::new();
    }
    (2..args.len() - 1)
        .step_by(2)
        .filter(|&i| config::is_sensitive(args[i]))
        .map(|i| i + 1)
        .collect()
}

/// Keeps `secret` for the setter and returns the placeholder that stands
/// for it: `(zksync: hidden secret N-R)`, `R` random per process.
pub fn hide(secret: &[u8]) -> String {
    let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
    let placeholder = format!("{PLACEHOLDER}{serial}-{:016x})", nonce());
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    if held.len() >= HELD_MAX {
        held.pop_front();
    }
    held.push_back((placeholder.clone(), secret.to_vec()));
    placeholder
}

/// The value a sensitive config is set to: the secret a placeholder stands
/// for (once), or `text` itself. The reason never holds the secret.
pub fn reveal(text: &str) -> Result<Cow<'_, str>, String> {
    if !text.starts_with(PLACEHOLDER) {
        return Ok(Cow::Borrowed(text));
    }
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    let at = held
        .iter()
        .position(|(placeholder, _)| placeholder == text)
        .ok_or("the secret of this placeholder is no longer held: set the value again")?;
    let (_, secret) = held.remove(at).unwrap_or_default();
    String::from_utf8(secret)
        .map(Cow::Owned)
        .map_err(|_| "value must be valid UTF-8".to_string())
}

fn nonce() -> u64 {
    static NONCE: once_cell::sync::Lazy<u64> =
        once_cell::sync::Lazy::new(|| std::collections::hash_map::RandomState::new().build_hasher().finish());
    *NONCE
}

/// File permission bits that let the group or others at the file.
const SHARED_BITS: u32 = 0o077;

/// Refuses a file the group or others may read, write or search.
pub fn private_mode(mode: u32) -> Result<(), String> {
    match mode & SHARED_BITS {
        0 => Ok(()),
        shared => Err(format!(
            "it is open to its group or others (mode {:04o}, shared bits {shared:03o}): chmod 600 it",
            mode & 0o7777
        )),
    }
}

/// The auth in the first line of an auth file. The reason never quotes the
/// file.
pub fn auth_in(contents: &[u8]) -> Result<Auth, String> {
    let line = contents.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = std::str::from_utf8(line).map_err(|_| "its first line is not valid UTF-8".to_string())?;
    if line.chars().any(char::is_control) {
        return Err("its first line holds control characters".into());
    }
    match settings::parse_auth(line) {
        Ok(Some(auth)) => Ok(auth),
        Ok(None) => Err("its first line is empty: it must be scheme:credentials".into()),
        Err(_) => Err("its first line must be scheme:credentials, e.g. digest:user:secret".into()),
    }
}

/// Reads the auth file at `path`: a regular file, private to its owner.
pub fn read_auth_file(path: &str) -> Result<Auth, String> {
    use std::os::unix::fs::PermissionsExt;
    let why = |e: String| format!("zksync.auth-file {path}: {e}");
    let meta = std::fs::metadata(path).map_err(|e| why(e.to_string()))?;
    if !meta.is_file() {
        return Err(why("not a regular file".into()));
    }
    private_mode(meta.permissions().mode()).map_err(why)?;
    let contents = std::fs::read(path).map_err(|e| why(e.to_string()))?;
    auth_in(&contents).map_err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_values_of_sensitive_configs_are_secret() {
        let cases: [(&[&str], &[usize]); 9] = [
            (&["CONFIG", "SET", "zksync.auth", "digest:u:p"], &[3]),
            (&["config", "set", "ZKSYNC.AUTH", "digest:u:p"], &[3]),
            (&["CONFIG", "SET", "maxmemory", "1", "zksync.auth", "d:u:p"], &[5]),
            (&["CONFIG", "SET", "zksync.auth", "a:b", "zksync.auth", "c:d"], &[3, 5]),
            (&["CONFIG", "SET", "zksync.auth-file", "/etc/zk.auth"], &[]),
            (&["CONFIG", "SET", "zksync.auth"], &[]),
            (&["CONFIG", "GET", "zksync.auth", "x"], &[]),
            (&["SET", "zksync.auth", "x", "y"], &[]),
            // A dangling name: its would-be value is the last argument, none.
            (&["CONFIG", "SET", "x", "zksync.auth", "y"], &[]),
        ];
        for (args, want) in cases {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            assert_eq!(secret_positions(&args), want, "{args:?}");
        }
    }

    #[test]
    fn a_placeholder_reveals_its_secret_once() {
        let first = hide(b"digest:u:one");
        let second = hide(b"digest:u:two");
        assert!(!first.contains("one") && first != second);
        assert_eq!(reveal(&second).unwrap(), "digest:u:two");
        assert_eq!(reveal(&first).unwrap(), "digest:u:one");
        assert!(reveal(&first).is_err(), "taken once");
        assert_eq!(reveal("digest:u:p").unwrap(), "digest:u:p");
        let forged = format!("{PLACEHOLDER}1-0)");
        assert!(reveal(&forged).is_err());
        let gone = hide(b"digest:u:old");
        for _ in 0..HELD_MAX {
            hide(b"x:y");
        }
        assert!(reveal(&gone).is_err(), "the held secrets are bounded");
    }

    #[test]
    fn an_auth_file_is_private() {
        for (mode, ok) in [
            (0o100600, true),
            (0o100400, true),
            (0o100700, true),
            (0o100640, false),
            (0o100604, false),
            (0o100620, false),
            (0o100660, false),
        ] {
            assert_eq!(private_mode(mode).is_ok(), ok, "{mode:o}");
        }
    }

    #[test]
    fn an_auth_file_holds_the_auth_on_its_first_line() {
        let ok: [(&[u8], &str); 4] = [
            (b"digest:u:p", "u:p"),
            (b"digest:u:p\n", "u:p"),
            (b"digest:u:p\r\nnext line\n", "u:p"),
            (b"digest:u:p w\n", "u:p w"),
        ];
        for (contents, credentials) in ok {
            let auth = auth_in(contents).unwrap();
            assert_eq!(
                (auth.scheme.as_str(), auth.credentials.as_slice()),
                ("digest", credentials.as_bytes())
            );
        }
        for bad in [&b""[..], b"\n", b"digest", b":p\n", b"digest:u\tp", b"\xff:x"] {
            assert!(auth_in(bad).is_err(), "{bad:?}");
        }
        let why = auth_in(b"digest:u:s3cret\x01").unwrap_err();
        assert!(!why.contains("s3cret"), "{why}");
    }
}
