#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use exsync_store::{SqliteStore, Store};

use super::*;

fn vault() -> (tempfile::TempDir, Arc<dyn Store>, Vault) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path().join("s.db")).unwrap());
    let vault = Vault::new(store.clone(), MasterKey::generate());
    (dir, store, vault)
}

#[test]
fn a_secret_round_trips_and_is_not_stored_in_clear() {
    let (dir, store, vault) = vault();
    let value = SecretValue::new("Plaintext-P@ssw0rd-4711".to_owned());
    vault.set(EXCHANGE_PASSWORD, &value).unwrap();
    assert_eq!(vault.get(EXCHANGE_PASSWORD).unwrap().unwrap(), value);
    let stored = store.get_secret(EXCHANGE_PASSWORD).unwrap().unwrap();
    assert_eq!(stored.nonce.len(), 12);
    drop(store);
    drop(vault);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes
            .windows(value.expose().len())
            .any(|w| w == value.expose().as_bytes()));
    }
}

#[test]
fn every_encryption_uses_a_fresh_nonce() {
    let (_dir, store, vault) = vault();
    let value = SecretValue::new("same".to_owned());
    vault.set("a", &value).unwrap();
    let first = store.get_secret("a").unwrap().unwrap();
    vault.set("a", &value).unwrap();
    let second = store.get_secret("a").unwrap().unwrap();
    assert_ne!(first.nonce, second.nonce);
    assert_ne!(first.ciphertext, second.ciphertext);
}

#[test]
fn a_ciphertext_moved_to_another_name_does_not_decrypt() {
    let (_dir, store, vault) = vault();
    vault
        .set("a", &SecretValue::new("value".to_owned()))
        .unwrap();
    let mut moved = store.get_secret("a").unwrap().unwrap();
    moved.name = "b".to_owned();
    store.put_secret(&moved).unwrap();
    assert!(matches!(vault.get("b"), Err(VaultError::Decrypt { .. })));
}

#[test]
fn a_wrong_key_is_a_clear_error() {
    let (_dir, store, vault) = vault();
    vault
        .set("a", &SecretValue::new("value".to_owned()))
        .unwrap();
    let other = Vault::new(store, MasterKey::generate());
    let err = other.get("a").unwrap_err();
    assert!(err.to_string().contains("master key"), "{err}");
}

#[test]
fn rotation_moves_every_secret_to_the_new_key() {
    let (_dir, store, vault) = vault();
    vault.set("a", &SecretValue::new("one".to_owned())).unwrap();
    vault.set("b", &SecretValue::new("two".to_owned())).unwrap();
    let new_key = MasterKey::generate();
    assert_eq!(vault.rotate(&new_key).unwrap(), 2);
    assert!(vault.get("a").is_err(), "the old key no longer opens it");
    let rotated = Vault::new(store, new_key);
    assert_eq!(rotated.get("a").unwrap().unwrap().expose(), "one");
    assert_eq!(rotated.get("b").unwrap().unwrap().expose(), "two");
}

#[test]
fn bad_names_and_empty_values_are_refused() {
    let (_dir, _store, vault) = vault();
    let v = SecretValue::new("x".to_owned());
    assert!(matches!(
        vault.set("Bad Name", &v),
        Err(VaultError::InvalidName(_))
    ));
    assert!(matches!(vault.set("", &v), Err(VaultError::InvalidName(_))));
    assert!(matches!(
        vault.set("ok", &SecretValue::new(String::new())),
        Err(VaultError::Empty(_))
    ));
}

#[cfg(unix)]
#[test]
fn the_key_file_is_created_private_and_a_readable_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exsync.key");
    let (first, source) = load_master_key(None, &path).unwrap();
    assert_eq!(source, KeySource::File(path.clone()));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (again, _) = load_master_key(None, &path).unwrap();
    assert_eq!(first.bytes(), again.bytes());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let err = load_master_key(None, &path).unwrap_err().to_string();
    assert!(err.contains("chmod 600"), "{err}");
}

#[test]
fn the_env_key_wins_and_must_be_32_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("never-created.key");
    let key = MasterKey::generate();
    let (loaded, source) = load_master_key(Some(&key.to_base64()), &path).unwrap();
    assert_eq!(source, KeySource::Env);
    assert_eq!(loaded.bytes(), key.bytes());
    assert!(!path.exists());
    let err = load_master_key(Some("c2hvcnQ="), &path)
        .unwrap_err()
        .to_string();
    assert!(err.contains("32 bytes"), "{err}");
    assert!(load_master_key(Some("not base64!"), &path).is_err());
}
