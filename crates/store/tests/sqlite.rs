//! The conformance suite on the embedded backend (SQLite; small blobs in it, big ones
//! as files), and the embedded store's own rules.

use postern_store::conformance as c;
use postern_store::sqlite::{SqliteBlobStore, SqliteOptions, SqliteStore};
use postern_store::{BlobStore, FsBlobStore, Store};
use std::sync::Arc;

/// The inline limit the tests use (the server's default).
const INLINE_MAX: usize = 128 * 1024;

fn fresh() -> (tempfile::TempDir, Arc<dyn Store>, Arc<dyn BlobStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("meta.sqlite"), SqliteOptions::default()).unwrap(),
    );
    let files = FsBlobStore::open(&dir.path().join("blobs")).unwrap();
    let blobs = SqliteBlobStore::new(store.clone(), files, INLINE_MAX);
    (dir, store, Arc::new(blobs))
}

/// The same store with every blob a file (as before schema 7, or `inline_blob_max = 0`).
fn fresh_files() -> (tempfile::TempDir, Arc<dyn Store>, Arc<dyn BlobStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(&dir.path().join("meta.sqlite"), SqliteOptions::default()).unwrap();
    let blobs = FsBlobStore::open(&dir.path().join("blobs")).unwrap();
    (dir, Arc::new(store), Arc::new(blobs))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_staging_rules() {
    let (_d, s, b) = fresh();
    c::blob_staging_rules(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_staging_rules_with_files_only() {
    let (_d, s, b) = fresh_files();
    c::blob_staging_rules(s, b).await;
}

/// A data directory written before schema 7 (version 6, every blob a file) opens,
/// migrates, and reads as before; new small blobs then go into the database, and both
/// kinds read, list and verify together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_blob_files_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    let blob_dir = dir.path().join("blobs");
    let (acct, inbox, old) = {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let files = FsBlobStore::open(&blob_dir).unwrap();
        let (acct, inbox) = c::account_with_mailbox(&store).await;
        let mut ops = Vec::new();
        let mut old = Vec::new();
        for i in 0..3 {
            let body = format!(
                "Subject: old {i}

{}
",
                "x".repeat(i * 100)
            );
            let m = c::put_message(&files, acct, body.as_bytes()).await;
            old.push((m.blob.hash.clone(), body.into_bytes()));
            ops.push(c::append(m, inbox));
        }
        store.write(ops).await.unwrap();
        store.close();
        (acct, inbox, old)
    };
    {
        // Back to version 6: no inline_blobs table.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(
            "DROP TABLE inline_blobs; DROP TABLE mta_sts_policies; DROP TABLE tlsrpt_counts;
             DROP TABLE tlsrpt_reports; PRAGMA user_version = 6;",
        )
        .unwrap();
    }
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let blobs = SqliteBlobStore::new(
        store.clone(),
        FsBlobStore::open(&blob_dir).unwrap(),
        INLINE_MAX,
    );
    for (hash, body) in &old {
        assert_eq!(&blobs.get(hash).await.unwrap(), body);
        assert!(blobs.exists(hash).await.unwrap());
    }
    let new = b"Subject: new\r\n\r\nsmall\r\n".to_vec();
    let (blob, ops) = blobs.stage(new.clone()).await.unwrap();
    assert_eq!(ops.len(), 1, "a small blob is staged into the database");
    let record = postern_store::MessageRecord {
        id: postern_store::MessageId::generate(),
        account: acct,
        blob: blob.clone(),
        received_ms: 0,
        thread_id: "t".into(),
        meta: Default::default(),
    };
    let mut batch = vec![c::append(record, inbox)];
    batch.extend(ops);
    store.write(batch).await.unwrap();
    assert_eq!(blobs.get(&blob.hash).await.unwrap(), new);
    let files = blobs.files().list().await.unwrap();
    assert_eq!(files.len(), 3, "the new blob is not a file");
    let mut want: Vec<String> = old.iter().map(|(h, _)| h.clone()).collect();
    want.push(blob.hash.clone());
    want.sort();
    assert_eq!(blobs.list().await.unwrap(), want);
    let report = postern_store::verify::verify_store(store.as_ref(), &blobs)
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!((report.messages, report.orphan_blobs), (4, 0));
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(v >= 7, "schema version {v}");
}

/// A blob kept in the database whose bytes were changed is refused on read and by
/// verification; names that are not hex digests never reach SQL or the file system.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_inline_blob_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    let store = Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let blobs = SqliteBlobStore::new(
        store.clone(),
        FsBlobStore::open(&dir.path().join("blobs")).unwrap(),
        INLINE_MAX,
    );
    let r = blobs.put(b"hello".to_vec()).await.unwrap();
    assert_eq!(blobs.get(&r.hash).await.unwrap(), b"hello");
    assert!(blobs.files().list().await.unwrap().is_empty());
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute(
        "UPDATE inline_blobs SET data = ?1 WHERE hash = ?2",
        rusqlite::params![&b"hellO"[..], r.hash],
    )
    .unwrap();
    assert!(matches!(
        blobs.get(&r.hash).await,
        Err(postern_store::StoreError::CorruptBlob { .. })
    ));
    for bad in ["../../etc/passwd", "AB", &"g".repeat(64), "' OR 1=1 --"] {
        assert!(matches!(
            blobs.get(bad).await,
            Err(postern_store::StoreError::NotFound(_))
        ));
        assert!(!blobs.exists(bad).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn directory_rules() {
    let (_d, s, _) = fresh();
    c::directory_rules(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mailbox_lifecycle() {
    let (_d, s, b) = fresh();
    c::mailbox_lifecycle(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mailbox_delta_rules() {
    let (_d, s, b) = fresh();
    c::mailbox_delta_rules(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers() {
    let (_d, s, b) = fresh();
    c::concurrent_writers_and_readers(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_isolation() {
    let (_d, s, _) = fresh();
    c::group_commit_isolation(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edge_rules() {
    let (_d, s, b) = fresh();
    c::edge_rules(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_chain() {
    let (_d, s, _) = fresh();
    c::ledger_chain(s).await;
}

/// Changing one stored ledger entry makes verification fail and name it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_tamper_is_detected() {
    let (dir, s, _) = fresh();
    c::ledger_chain(s.clone()).await;
    let conn = rusqlite::Connection::open(dir.path().join("meta.sqlite")).unwrap();
    conn.execute(
        "UPDATE ledger SET record = replace(record, 'message.read', 'message.list') WHERE seq = 17",
        [],
    )
    .unwrap();
    let broken = postern_store::verify::verify_ledger(&*s)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(broken.seq, 17);
    // Deleting an entry is found at the gap.
    conn.execute("DELETE FROM ledger WHERE seq = 5", [])
        .unwrap();
    let broken = postern_store::verify::verify_ledger(&*s)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(broken.seq, 6);
}

/// Removing entries from the end leaves a chain that verifies; the head row shows it,
/// and new entries do not reuse the removed numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_truncation_is_detected() {
    let (dir, s, b) = fresh();
    c::ledger_chain(s.clone()).await;
    let conn = rusqlite::Connection::open(dir.path().join("meta.sqlite")).unwrap();
    conn.execute("DELETE FROM ledger WHERE seq >= 39", [])
        .unwrap();
    assert_eq!(
        postern_store::verify::verify_ledger(&*s).await.unwrap(),
        Ok(38)
    );
    let report = postern_store::verify::verify_store(&*s, &*b).await.unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("ledger head says entry 40 but the last stored entry is 38")),
        "{:?}",
        report.problems
    );
}

/// A blob whose file was changed is refused on read and by verification.
#[tokio::test]
async fn corrupt_blob_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FsBlobStore::open(dir.path()).unwrap();
    let r = blobs.put(b"hello".to_vec()).await.unwrap();
    let again = blobs.put(b"hello".to_vec()).await.unwrap();
    assert_eq!(r, again);
    assert_eq!(blobs.list().await.unwrap(), vec![r.hash.clone()]);
    let path = dir
        .path()
        .join(&r.hash[0..2])
        .join(&r.hash[2..4])
        .join(&r.hash);
    std::fs::write(&path, b"hellO").unwrap();
    assert!(matches!(
        blobs.get(&r.hash).await,
        Err(postern_store::StoreError::CorruptBlob { .. })
    ));
    // Names that are not hex digests never reach the file system.
    for bad in ["../../etc/passwd", "AB", &"g".repeat(64)] {
        assert!(matches!(
            blobs.get(bad).await,
            Err(postern_store::StoreError::NotFound(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn journal_follows_acknowledgements() {
    let (_d, s, b) = fresh();
    c::journal_follows_acknowledgements(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acl_rules() {
    let (_d, s, _) = fresh();
    c::acl_rules(s).await;
}

/// Drops every table that schema version 2 did not have (added by later versions), so
/// that a database can be taken back to version 2 (or 1) for the migration tests.
fn drop_tables_after_schema_2(c: &rusqlite::Connection) {
    const V2: [&str; 12] = [
        "domains",
        "principals",
        "credentials",
        "aliases",
        "group_members",
        "mailboxes",
        "messages",
        "mailbox_messages",
        "journal",
        "ledger_head",
        "ledger",
        "mailbox_acl",
    ];
    let later: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|r| r.unwrap())
        .filter(|t| !V2.contains(&t.as_str()))
        .collect();
    c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    for t in later {
        c.execute_batch(&format!("DROP TABLE \"{t}\"")).unwrap();
    }
}

/// A data directory made by schema version 1 (before mailbox ACLs) is migrated on open
/// (through 2 to 3) and keeps its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_1_migrates_to_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        store
            .write(vec![postern_store::Op::CreateDomain(
                postern_store::Domain {
                    id: postern_store::DomainId::generate(),
                    name: "example.com".into(),
                    created_ms: 0,
                },
            )])
            .await
            .unwrap();
    }
    {
        // Back to what version 1 had.
        let c = rusqlite::Connection::open(&path).unwrap();
        drop_tables_after_schema_2(&c);
        c.execute_batch(
            "DROP TABLE mailbox_acl; DROP INDEX mailbox_messages_modseq;
             ALTER TABLE mailbox_messages DROP COLUMN size; PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    assert_eq!(store.domains().await.unwrap().len(), 1);
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(v >= 3, "schema version {v}");
    assert!(
        store
            .shared_with(postern_store::PrincipalId::generate())
            .await
            .unwrap()
            .is_empty()
    );
}

/// Schema 2 → 3: every mailbox entry gets its message's size (what usage counts), and
/// the entries read back as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_2_migrates_to_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.sqlite");
    let blobs = FsBlobStore::open(&dir.path().join("blobs")).unwrap();
    let (acct, inbox, before) = {
        let store = SqliteStore::open(&path, SqliteOptions::default()).unwrap();
        let (acct, inbox) = c::account_with_mailbox(&store).await;
        let mut ops = Vec::new();
        for i in 0..3 {
            let body = format!("Subject: {i}\r\n\r\n{}\r\n", "x".repeat(i * 100));
            ops.push(c::append(
                c::put_message(&blobs, acct, body.as_bytes()).await,
                inbox,
            ));
        }
        store.write(ops).await.unwrap();
        let (_, before) = store.mailbox_entries(acct, inbox).await.unwrap();
        (acct, inbox, before)
    };
    {
        // Back to what version 2 had.
        let c = rusqlite::Connection::open(&path).unwrap();
        drop_tables_after_schema_2(&c);
        c.execute_batch(
            "DROP INDEX mailbox_messages_modseq;
             ALTER TABLE mailbox_messages DROP COLUMN size; PRAGMA user_version = 2;",
        )
        .unwrap();
    }
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    let (_, after) = store.mailbox_entries(acct, inbox).await.unwrap();
    assert_eq!(after, before);
    assert!(after.iter().all(|e| e.size > 0));
    let used: u64 = after.iter().map(|e| e.size).sum();
    assert_eq!(store.usage(acct).await.unwrap().used_bytes, used);
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(v >= 3, "schema version {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_rules() {
    let (_d, s, b) = fresh();
    c::queue_rules(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dav_time_ranges() {
    let (_d, s, b) = fresh();
    c::dav_time_ranges(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dav_rules() {
    let (_d, s, b) = fresh();
    c::dav_rules(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dav_share_rules() {
    let (_d, s, _) = fresh();
    c::dav_share_rules(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expunge_only_deleted() {
    let (_d, s, b) = fresh();
    c::expunge_only_deleted(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoped_store_keeps_other_flags() {
    let (_d, s, b) = fresh();
    c::scoped_store_keeps_other_flags(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbound_tls_rules() {
    let (_d, s, _) = fresh();
    c::outbound_tls_rules(s).await;
}
