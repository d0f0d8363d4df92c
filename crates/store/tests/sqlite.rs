//! The conformance suite on the embedded backend (SQLite + blob files).

use postern_store::conformance as c;
use postern_store::sqlite::{SqliteOptions, SqliteStore};
use postern_store::{BlobStore, FsBlobStore, Store};
use std::sync::Arc;

fn fresh() -> (tempfile::TempDir, Arc<dyn Store>, Arc<dyn BlobStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store =
        SqliteStore::open(&dir.path().join("meta.sqlite"), SqliteOptions::default()).unwrap();
    let blobs = FsBlobStore::open(&dir.path().join("blobs")).unwrap();
    (dir, Arc::new(store), Arc::new(blobs))
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

/// A data directory made by schema version 1 (before mailbox ACLs) is migrated on open
/// and keeps its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_1_migrates_to_2() {
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
        c.execute_batch("DROP TABLE mailbox_acl; PRAGMA user_version = 1;")
            .unwrap();
    }
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&path, SqliteOptions::default()).unwrap());
    assert_eq!(store.domains().await.unwrap().len(), 1);
    let c = rusqlite::Connection::open(&path).unwrap();
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
    assert!(
        store
            .shared_with(postern_store::PrincipalId::generate())
            .await
            .unwrap()
            .is_empty()
    );
}
