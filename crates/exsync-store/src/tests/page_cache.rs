//! The state database keeps its own page cache, whatever other SQLite databases of the process
//! do. A pass's scratch databases (the stage, the spool) move far more pages than the state
//! database; with one cache pool for every connection (SQLite's
//! `SQLITE_ENABLE_MEMORY_MANAGEMENT`, which the bundled build turns on unless
//! `.cargo/config.toml` turns it off) they pushed the state database's pages out, B-tree roots
//! included, and each look-up of a pass read them from the file again.

use rusqlite::Connection;

use super::*;
use exsync_core::ItemId;

/// Bytes this process has read with read(2) and pread(2) so far, from the OS's page cache or
/// the disk alike.
fn bytes_read() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|line| line.strip_prefix("rchar:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

fn compile_options(conn: &Connection) -> Vec<String> {
    let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
    let options = stmt.query_map([], |row| row.get(0)).unwrap();
    options.collect::<rusqlite::Result<_>>().unwrap()
}

#[test]
fn sqlite_is_built_with_a_page_cache_per_connection_and_no_allocation_counts() {
    let options = compile_options(&Connection::open_in_memory().unwrap());
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "{options:?}"
    );
    // Counting allocations takes a global mutex on every malloc and free of SQLite's.
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "{options:?}"
    );
}

#[test]
fn another_database_busy_in_the_process_does_not_push_the_state_databases_pages_out() {
    let dir = TempDir::new().unwrap();
    let store = SqliteStore::open(dir.path().join("exsync.db")).unwrap();
    let ann = user("ann");
    // About 500 KB of pairs and indexes: well within the state database's cache of 2 MB.
    let pairs: Vec<SyncedPair> = (0..1_000)
        .map(|i| {
            contact(
                &format!("003{i:015}"),
                &format!("AAMkAD{i:0150}"),
                "Lovelace",
            )
        })
        .collect();
    for chunk in pairs.chunks(100) {
        let mut commit = PassCommit::new(ann.clone(), t(0), t(1));
        commit.partial = true;
        commit.upserts = chunk.to_vec();
        store.commit_pass(&commit).unwrap();
    }
    let ids: Vec<ItemId> = pairs
        .iter()
        .map(|p| ItemId::Exchange(p.exchange_id.clone()))
        .collect();
    let look_up_all = || {
        let links = store.pair_links(&ann, ItemKind::Contact, &ids).unwrap();
        assert_eq!(links.len(), pairs.len());
    };
    look_up_all();

    // A scratch database as a pass makes one: 12 MB written and read back through its own
    // connection, six times its cache.
    let scratch = Connection::open(dir.path().join("scratch.db")).unwrap();
    scratch
        .execute_batch(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
             CREATE TABLE records (id INTEGER PRIMARY KEY, body BLOB NOT NULL);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO records (body) SELECT randomblob(4000) FROM n;",
        )
        .unwrap();
    let read_back: i64 = scratch
        .query_row("SELECT sum(length(body)) FROM records", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(read_back, 3000 * 4000);

    let before = bytes_read();
    look_up_all();
    let read = bytes_read() - before;
    // With one pool for both connections, every page of the look-ups came from the file
    // again: about 500 KB.
    assert!(
        read < 64 * 1024,
        "looking up 1,000 pairs made the process read {read} bytes from files: the state \
         database's pages were read again"
    );
}
