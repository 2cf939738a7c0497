//! The credentials members call each other with: this server's own
//! `masteruser`/`masterauth`, which its replication uses to reach the
//! master. Every member of a group reaches every other as a replica may, so
//! they hold for failsafe's grants too.

use super::config;
use redis_module::Context;
use std::cell::RefCell;

/// `masteruser` (if set) and `masterauth`. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: Option<String>,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:<redacted>", self.user.as_deref().unwrap_or("default"))
    }
}

impl Credentials {
    /// `AUTH [user] password`.
    pub fn auth_command(&self) -> Vec<String> {
        let mut command = vec!["AUTH".to_string()];
        command.extend(self.user.clone());
        command.push(self.password.clone());
        command
    }
}

/// `None` without `masterauth` (replication then authenticates with nothing).
pub fn read(ctx: &Context) -> Option<Credentials> {
    let password = config(ctx, "masterauth").filter(|p| !p.is_empty())?;
    let user = config(ctx, "masteruser").filter(|u| !u.is_empty());
    Some(Credentials { user, password })
}

/// The credentials if they changed since the last call (main thread):
/// the session thread is told only then.
pub fn if_changed(ctx: &Context) -> Option<Option<Credentials>> {
    thread_local!(static TOLD: RefCell<Option<Option<Credentials>>> = const { RefCell::new(None) });
    let now = read(ctx);
    TOLD.with(|told| {
        let mut told = told.borrow_mut();
        (told.as_ref() != Some(&now)).then(|| {
            *told = Some(now.clone());
            now
        })
    })
}

/// The user allowed to ask this member for grants: the one replicas
/// authenticate as (`masteruser`), else the default user.
pub fn grant_user(ctx: &Context) -> String {
    config(ctx, "masteruser")
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticates_as_replication_does_and_never_prints_the_password() {
        let with_user = Credentials {
            user: Some("repl".into()),
            password: "s3cret".into(),
        };
        assert_eq!(with_user.auth_command(), ["AUTH", "repl", "s3cret"]);
        assert_eq!(format!("{with_user:?}"), "repl:<redacted>");
        let without = Credentials {
            user: None,
            password: "s3cret".into(),
        };
        assert_eq!(without.auth_command(), ["AUTH", "s3cret"]);
        assert!(!format!("{without:?}").contains("s3cret"));
    }
}
