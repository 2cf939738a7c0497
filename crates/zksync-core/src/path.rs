//! Absolute znode paths: validation and the few relations the mirror needs.

use std::fmt;
use std::ops::Deref;

/// An absolute znode path ZooKeeper accepts (`validate`): a command's path
/// argument, made only by `parse`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZnodePath(String);

impl ZnodePath {
    pub fn parse(text: &str) -> Result<ZnodePath, String> {
        validate(text)?;
        Ok(ZnodePath(text.to_string()))
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl Deref for ZnodePath {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ZnodePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that `path` is an absolute znode path ZooKeeper accepts: `/` or
/// `/seg/seg...` with no empty, `.` or `..` segment, no trailing slash, and
/// none of the characters ZooKeeper refuses (control characters, the
/// private-use area, U+FFF0 and above).
pub fn validate(path: &str) -> Result<(), String> {
    if path == "/" {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(format!("'{path}' is not an absolute znode path"));
    }
    if path.ends_with('/') {
        return Err(format!("znode path '{path}' must not end with '/'"));
    }
    if path.chars().any(refused_by_zookeeper) {
        return Err("a znode path must not contain control or private-use characters".to_string());
    }
    for segment in path[1..].split('/') {
        match segment {
            "" => return Err(format!("znode path '{path}' has an empty segment")),
            "." | ".." => return Err(format!("znode path '{path}' has a relative segment")),
            _ => {}
        }
    }
    Ok(())
}

fn refused_by_zookeeper(c: char) -> bool {
    c.is_control() || ('\u{e000}'..='\u{f8ff}').contains(&c) || ('\u{fff0}'..='\u{ffff}').contains(&c)
}

/// Whether `path` is `root` itself or lies below it.
pub fn is_within(path: &str, root: &str) -> bool {
    if root == "/" {
        return path.starts_with('/');
    }
    path == root || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

/// The path of a child named `name` of `parent`.
pub fn child(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// The parent of `path`; `None` for the root `/`.
pub fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

/// Every proper ancestor of `path`, nearest first (`/a/b/c` → `/a/b`, `/a`, `/`).
pub fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(parent(path), |p| parent(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_znode_path_is_made_only_of_a_valid_path() {
        let path = ZnodePath::parse("/a/b").unwrap();
        assert_eq!((&*path, path.to_string()), ("/a/b", "/a/b".to_string()));
        assert!(is_within(&path, "/a"));
        assert_eq!(path.into_string(), "/a/b");
        for bad in ["a", "/a/", "/a//b", "/a/..", ""] {
            assert_eq!(ZnodePath::parse(bad).err(), validate(bad).err(), "{bad}");
            assert!(ZnodePath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn validates_paths() {
        for good in ["/", "/a", "/a/b c/ü/*?[]", "/a:b"] {
            assert!(validate(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "foo",
            "/a/",
            "/a//b",
            "a/b",
            "/a/./b",
            "/..",
            "/a\0",
            "/a\nb",
            "/\u{7f}",
            "/\u{85}",
            "/\u{e000}",
            "/\u{fffe}",
        ] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn relations() {
        assert!(is_within("/app/x", "/app"));
        assert!(is_within("/app", "/app"));
        assert!(!is_within("/apple", "/app"));
        assert!(is_within("/anything", "/"));
        assert_eq!(child("/", "a"), "/a");
        assert_eq!(child("/a", "b"), "/a/b");
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a/b", "/a", "/"]);
    }
}
