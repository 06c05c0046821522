//! Client credentials and the acceptor's account store.

use std::collections::HashMap;
use std::sync::Arc;

use crate::crypto::NtHash;

/// An account's domain, user name and password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The account's domain; empty for a UPN or a name the server resolves itself.
    pub domain: String,
    /// The account's user name (or UPN).
    pub username: String,
    password: String,
}

impl Credentials {
    /// Credentials from a domain, a user name and a password given separately.
    pub fn new(
        domain: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        Credentials {
            domain: domain.into(),
            username: username.into(),
            password: password.into(),
        }
    }

    /// Splits an account written as `DOMAIN\user`; a UPN (`user@example.com`) or a bare name
    /// is kept whole with an empty domain, which Windows accepts for UPNs.
    pub fn from_account(account: &str, password: impl Into<String>) -> Self {
        match account.split_once('\\') {
            Some((domain, user)) => Credentials::new(domain, user, password),
            None => Credentials::new("", account, password),
        }
    }

    /// The NT hash the NTLMv2 proof is derived from, so the password itself is used only here.
    pub fn nt_hash(&self) -> NtHash {
        NtHash::from_password(&self.password)
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("domain", &self.domain)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where an acceptor finds the NT hash of the account a client names.
pub trait CredentialStore {
    /// `domain` and `username` are as the client sent them; matching is up to the store.
    fn nt_hash(&self, domain: &str, username: &str) -> Option<NtHash>;
}

impl<T: CredentialStore + ?Sized> CredentialStore for &T {
    fn nt_hash(&self, domain: &str, username: &str) -> Option<NtHash> {
        (**self).nt_hash(domain, username)
    }
}

impl<T: CredentialStore + ?Sized> CredentialStore for Arc<T> {
    fn nt_hash(&self, domain: &str, username: &str) -> Option<NtHash> {
        (**self).nt_hash(domain, username)
    }
}

/// Adapts a closure into a [`CredentialStore`].
pub struct FnStore<F>(pub F);

impl<F: Fn(&str, &str) -> Option<NtHash>> CredentialStore for FnStore<F> {
    fn nt_hash(&self, domain: &str, username: &str) -> Option<NtHash> {
        (self.0)(domain, username)
    }
}

/// An in-memory account table, matched like Windows does: case-insensitively; an entry with an
/// empty domain matches any domain the client names.
#[derive(Default, Clone)]
pub struct UserTable {
    entries: HashMap<(String, String), NtHash>,
}

impl UserTable {
    /// An empty table: every logon fails until accounts are added.
    pub fn new() -> Self {
        UserTable::default()
    }

    /// Adds (or replaces) an account by its password; only the NT hash is kept.
    pub fn insert_password(&mut self, domain: &str, username: &str, password: &str) {
        self.insert_hash(domain, username, NtHash::from_password(password));
    }

    /// Adds (or replaces) an account by its NT hash, for stores that never see the password.
    pub fn insert_hash(&mut self, domain: &str, username: &str, hash: NtHash) {
        self.entries
            .insert((domain.to_uppercase(), username.to_uppercase()), hash);
    }

    /// Builder form of [`UserTable::insert_password`], for setting a table up in one expression.
    pub fn with_password(mut self, domain: &str, username: &str, password: &str) -> Self {
        self.insert_password(domain, username, password);
        self
    }
}

impl CredentialStore for UserTable {
    fn nt_hash(&self, domain: &str, username: &str) -> Option<NtHash> {
        let user = username.to_uppercase();
        self.entries
            .get(&(domain.to_uppercase(), user.clone()))
            .or_else(|| self.entries.get(&(String::new(), user)))
            .cloned()
    }
}

impl std::fmt::Debug for UserTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<String> = self
            .entries
            .keys()
            .map(|(domain, user)| format!("{domain}\\{user}"))
            .collect();
        names.sort();
        f.debug_struct("UserTable")
            .field("accounts", &names)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn debug_never_shows_the_password_or_hash() {
        let creds = Credentials::new("CONTOSO", "svc-sync", "Passw0rd!");
        let shown = format!("{creds:?} {:?} {:?}", creds.nt_hash(), creds);
        assert!(!shown.contains("Passw0rd!"), "{shown}");
        assert!(shown.contains("svc-sync") && shown.contains("<redacted>"));
        let hash_hex = hex::encode(creds.nt_hash().0);
        assert!(!shown.contains(&hash_hex));
        let table = UserTable::new().with_password("CONTOSO", "svc-sync", "Passw0rd!");
        let shown = format!("{table:?}");
        assert!(
            !shown.contains("Passw0rd!") && !shown.contains(&hash_hex),
            "{shown}"
        );
    }

    #[test]
    fn account_forms_are_split() {
        let c = Credentials::from_account("CONTOSO\\svc", "x");
        assert_eq!((c.domain.as_str(), c.username.as_str()), ("CONTOSO", "svc"));
        let c = Credentials::from_account("svc@contoso.com", "x");
        assert_eq!(
            (c.domain.as_str(), c.username.as_str()),
            ("", "svc@contoso.com")
        );
    }

    #[test]
    fn table_matches_case_insensitively_and_domainless_entries_match_any_domain() {
        let table = UserTable::new()
            .with_password("CONTOSO", "Svc-Sync", "a")
            .with_password("", "anywhere", "b");
        assert!(table.nt_hash("contoso", "SVC-SYNC").is_some());
        assert!(table.nt_hash("OTHER", "svc-sync").is_none());
        assert!(table.nt_hash("OTHER", "Anywhere").is_some());
        assert!(table.nt_hash("CONTOSO", "nobody").is_none());
    }
}
