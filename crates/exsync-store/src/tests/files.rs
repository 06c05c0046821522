//! The database holds every synced contact and event: its file, and the `-wal` and `-shm`
//! files SQLite keeps beside it, are readable by their owner only.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn a_new_database_and_its_wal_and_shm_are_private() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("exsync.db");
    let store = SqliteStore::open(&path).unwrap();
    let mut commit = PassCommit::new(user("ann"), t(0), t(1));
    commit.upserts = vec![contact("003A", "AAMkA", "Lovelace")];
    store.commit_pass(&commit).unwrap();
    for name in ["exsync.db", "exsync.db-wal", "exsync.db-shm"] {
        let file = dir.path().join(name);
        assert_eq!(mode(&file) & 0o077, 0, "{name} is {:o}", mode(&file));
    }
}

#[test]
fn an_existing_database_keeps_its_mode() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("exsync.db");
    drop(SqliteStore::open(&path).unwrap());
    // An admin's choice (a group that backs the file up, say) is theirs to make.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let store = SqliteStore::open(&path).unwrap();
    store.ensure_user(&user("ann")).unwrap();
    assert_eq!(mode(&path), 0o640);
}
