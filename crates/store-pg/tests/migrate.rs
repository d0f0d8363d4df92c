//! `migrate::from_embedded`: an embedded store filled through the `Store` trait (the
//! conformance scripts plus NUL in the columns PostgreSQL maps, ACLs, an orphan blob)
//! reads the same through PostgreSQL after the migration — blobs kept in the database
//! (`inline_blobs`) and blob files alike; a non-empty target, a corrupt blob (file or
//! row) and a held SQLite write lock are refused and leave nothing behind.
//!
//! Needs PostgreSQL (`POSTERN_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`); fails, never skips, without it. Each test
//! works in its own schemas `postern_t_<random hex>`, dropped at the end.

use postern_store::conformance as c;
use postern_store::sqlite::{SqliteBlobStore, SqliteOptions, SqliteStore};
use postern_store::verify::{verify_ledger_head, verify_store};
use postern_store::*;
use postern_store_pg::migrate::from_embedded;
use postern_store_pg::{PgOptions, PgStore};
use std::sync::Arc;

fn url() -> String {
    std::env::var("POSTERN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Drops the schema when the test ends, however it ends.
struct Schema {
    name: String,
}

impl Schema {
    fn new() -> Self {
        Schema {
            name: format!("postern_t_{:016x}", rand::random::<u64>()),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let url = url();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

async fn raw() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not usable at {} ({e}); these tests never skip",
                url()
            )
        });
    tokio::spawn(conn);
    client
}

async fn schema_exists(name: &str) -> bool {
    raw()
        .await
        .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

fn record(n: usize, target: Option<&str>) -> LedgerRecord {
    LedgerRecord {
        time_ms: 1_700_000_000_000 + n as i64,
        actor: Actor {
            account: Some(format!("x\0{n}@example.net")),
            role: Role::Owner,
        },
        session: SessionInfo {
            protocol: "test".into(),
            ..Default::default()
        },
        action: "message.read".into(),
        target: target.map(str::to_string),
        objects: vec![format!("n:{n}")],
        result: "ok".into(),
        before: None,
        after: None,
    }
}

/// Everything the `Store` trait can read, in a stable order.
async fn snapshot(s: &dyn Store) -> String {
    let mut out = format!("{:?}\n", s.domains().await.unwrap());
    out += &format!("{:?}\n", s.aliases(None).await.unwrap());
    for p in s.principals(None).await.unwrap() {
        out += &format!("{p:?}\n");
        out += &format!("{:?}\n", s.group_members(p.id).await.unwrap());
        out += &format!("{:?}\n", s.group_senders(p.id).await.unwrap());
        out += &format!("{:?}\n", s.credentials(p.id).await.unwrap());
        out += &format!("{:?}\n", s.usage(p.id).await.unwrap());
        out += &format!("{:?}\n", s.highest_modseq(p.id).await.unwrap());
        out += &format!("{:?}\n", s.changes_since(p.id, 0, 100_000).await.unwrap());
        out += &format!("{:?}\n", s.shared_with(p.id).await.unwrap());
        for m in s.mailboxes(p.id).await.unwrap() {
            let (mb, entries) = s.mailbox_entries(p.id, m.id).await.unwrap();
            out += &format!("{mb:?}\n{entries:?}\n");
            out += &format!("{:?}\n", s.mailbox_acl(p.id, m.id).await.unwrap());
            for e in &entries {
                out += &format!("{:?}\n", s.message(p.id, e.message).await.unwrap());
            }
        }
    }
    for e in s.ledger_raw(1, 100_000).await.unwrap() {
        out += &format!("{} {} {} {}\n", e.seq, e.record_json, e.prev_hash, e.hash);
    }
    out += &format!("{:?}\n", s.referenced_blobs().await.unwrap());
    out
}

/// The embedded store's inline limit in these tests: small enough that the conformance
/// scripts leave blobs of both kinds.
const INLINE_MAX: usize = 64;

/// Every blob of the embedded store in `dir`: database rows and files.
fn lite_blobs(dir: &std::path::Path, lite: Arc<SqliteStore>) -> SqliteBlobStore {
    SqliteBlobStore::new(
        lite,
        FsBlobStore::open(&dir.join("blobs")).unwrap(),
        INLINE_MAX,
    )
}

/// An embedded store in `dir` with a bit of everything.
async fn fill(dir: &std::path::Path) -> (PrincipalId, String) {
    let lite =
        Arc::new(SqliteStore::open(&dir.join("meta.sqlite"), SqliteOptions::default()).unwrap());
    // Blobs up to 64 bytes in the database, bigger ones as files: both kinds migrate.
    let blobs: Arc<dyn BlobStore> = Arc::new(SqliteBlobStore::new(
        lite.clone(),
        FsBlobStore::open(&dir.join("blobs")).unwrap(),
        INLINE_MAX,
    ));
    let s: Arc<dyn Store> = lite.clone();
    c::mailbox_lifecycle(s.clone(), blobs.clone()).await;
    c::directory_rules(s.clone()).await;
    c::ledger_chain(s.clone()).await;

    // An account with a mailbox shared to another, a message whose Message-ID holds NUL.
    let d = Domain {
        id: DomainId::generate(),
        name: "nul.example".into(),
        created_ms: 1,
    };
    let person = |local: &str| Principal {
        id: PrincipalId::generate(),
        domain: d.id,
        local_part: local.into(),
        kind: PrincipalKind::Individual,
        display_name: format!("{local} Ünïcode"),
        quota_bytes: Some(1 << 30),
        created_ms: 2,
    };
    let (a, b) = (person("ann"), person("ben"));
    let (aid, bid) = (a.id, b.id);
    let mb = Mailbox {
        id: MailboxId::generate(),
        account: aid,
        name: "Shared/Team".into(),
        special_use: Some(SpecialUse::Archive),
        uid_validity: 0,
        uid_next: 0,
        highest_modseq: 0,
        subscribed: false,
        created_ms: 3,
    };
    let mid = mb.id;
    s.write(vec![
        Op::CreateDomain(d),
        Op::CreatePrincipal(a),
        Op::CreatePrincipal(b),
        Op::CreateMailbox(mb),
        Op::SetMailboxAcl {
            account: aid,
            mailbox: mid,
            grantee: bid,
            rights: "lrs".into(),
        },
    ])
    .await
    .unwrap();
    let mut m = c::put_message(&*blobs, aid, b"Subject: nul\r\n\r\nbody\r\n").await;
    m.meta.envelope.message_id = Some("<a\0b@nul.example>".into());
    s.write(vec![
        Op::AppendMessage {
            message: m,
            mailbox: mid,
            flags: Flags::SEEN,
            keywords: vec!["$Label1".into()],
        },
        Op::AppendLedger(record(1, Some("ann\0@nul.example"))),
    ])
    .await
    .unwrap();
    // Blobs no message refers to (a crash between blob write and commit) are copied too:
    // one in the database, one a file.
    blobs.put(b"orphan".to_vec()).await.unwrap();
    blobs.put(vec![b'o'; INLINE_MAX + 1]).await.unwrap();
    // Not blobs: left alone.
    std::fs::write(dir.join("blobs/tmp/0123456789abcdef"), b"in flight").unwrap();
    std::fs::write(dir.join("blobs/README"), b"x").unwrap();

    let snap = snapshot(&*s).await;
    lite.close();
    (aid, snap)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_migrates_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let (ann, before) = fill(dir.path()).await;
    let lite = Arc::new(
        SqliteStore::open(&dir.path().join("meta.sqlite"), SqliteOptions::default()).unwrap(),
    );
    let lite_blobs = lite_blobs(dir.path(), lite.clone());
    let files = lite_blobs.list().await.unwrap();
    let in_files = lite_blobs.files().list().await.unwrap();
    assert!(
        !in_files.is_empty() && in_files.len() < files.len(),
        "{} of {} blobs are files",
        in_files.len(),
        files.len()
    );
    let source = verify_store(&*lite, &lite_blobs).await.unwrap();
    assert!(source.ok(), "{source:?}");
    let mut originals = Vec::new();
    for h in &files {
        originals.push(lite_blobs.get(h).await.unwrap());
    }
    lite.close();
    drop(lite_blobs);
    drop(lite);

    let g = Schema::new();
    let r = from_embedded(
        &dir.path().join("meta.sqlite"),
        &dir.path().join("blobs"),
        &url(),
        &g.name,
    )
    .await
    .unwrap();
    assert!(r.ok(), "{r:#?}");
    assert_eq!(r.tables.len(), postern_store_pg::migrate::TABLES.len());
    for t in &r.tables {
        assert!(t.equal(), "{t:?}");
    }
    let rows = |name: &str| {
        r.tables
            .iter()
            .find(|t| t.table == name)
            .unwrap()
            .target_rows
    };
    assert_eq!(rows("ledger"), 41);
    assert_eq!(rows("ledger_head"), 1);
    assert_eq!(rows("mailbox_acl"), 1);
    assert!(rows("journal") > 0 && rows("mailbox_messages") > 0 && rows("group_members") > 0);
    assert!(rows("group_settings") > 0);
    assert_eq!(r.source_blobs, files.len() as u64);
    assert_eq!(
        (r.target_blobs, r.target_blob_bytes),
        (r.source_blobs, r.source_blob_bytes)
    );
    assert_eq!(
        r.ignored_files,
        vec!["README".to_string(), "tmp/0123456789abcdef".into()]
    );
    assert_eq!(r.ledger_entries, 41);

    let pg = PgStore::connect(
        &url(),
        &g.name,
        PgOptions {
            pool_size: 4,
            blobs_in_database: true,
            ..PgOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(snapshot(&pg).await, before);
    let pg_blobs = pg.blob_store();
    assert_eq!(pg_blobs.list().await.unwrap(), files);
    for (h, data) in files.iter().zip(&originals) {
        assert_eq!(&pg_blobs.get(h).await.unwrap(), data);
    }
    let v = verify_store(&pg, &pg_blobs).await.unwrap();
    assert!(v.ok(), "{v:?}");
    assert_eq!(format!("{v:?}"), format!("{source:?}"));
    assert!(v.orphan_blobs >= 1);
    let head = r.ledger_head.clone().unwrap();
    assert_eq!(
        verify_ledger_head(&pg, Some((head.0, &head.1)))
            .await
            .unwrap(),
        Ok((41, Some(head.clone())))
    );
    // NUL in the lookup columns is U+FFFD, as the backend writes it; lookups still find.
    let ids = vec!["<a\0b@nul.example>".to_string()];
    assert!(pg.thread_of(ann, &ids).await.unwrap().is_some());
    let q = LedgerQuery {
        account: Some("ann\0@nul.example".into()),
        ..Default::default()
    };
    assert_eq!(pg.ledger(&q).await.unwrap().len(), 1);
    // The migrated store goes on where the embedded one stopped.
    let appended = pg
        .write(vec![Op::AppendLedger(record(2, None))])
        .await
        .unwrap();
    assert!(matches!(
        appended[0],
        OpResult::LedgerAppended { seq: 42, .. }
    ));
    pg.close();

    // Into the same schema again: refused, nothing touched.
    let e = from_embedded(
        &dir.path().join("meta.sqlite"),
        &dir.path().join("blobs"),
        &url(),
        &g.name,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, StoreError::Refused(m) if m.contains("not empty")),
        "{e}"
    );
    let pg = PgStore::connect(&url(), &g.name, PgOptions::default())
        .await
        .unwrap();
    assert_eq!(verify_ledger_head(&pg, None).await.unwrap().unwrap().0, 42);
    pg.close();
}

/// A schema holding something else is refused and left as it was; so is an embedded
/// store whose write lock is held (a running server), and a corrupt blob stops the copy
/// with nothing committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    fill(dir.path()).await;
    let (db, blobs) = (dir.path().join("meta.sqlite"), dir.path().join("blobs"));

    let foreign = Schema::new();
    let client = raw().await;
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {0}; CREATE TABLE {0}.other (x INT); INSERT INTO {0}.other VALUES (7);",
            foreign.name
        ))
        .await
        .unwrap();
    let e = from_embedded(&db, &blobs, &url(), &foreign.name)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Refused(m) if m.contains("not empty") && m.contains("other")),
        "{e}"
    );
    let n: i64 = client
        .query_one(&format!("SELECT count(*) FROM {}.other", foreign.name), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    // An empty schema that exists is fine to fill (an operator may create it with grants).
    let empty = Schema::new();
    client
        .batch_execute(&format!("CREATE SCHEMA {}", empty.name))
        .await
        .unwrap();
    assert!(
        from_embedded(&db, &blobs, &url(), &empty.name)
            .await
            .unwrap()
            .ok()
    );

    // SQLite's write lock held elsewhere: the server is running.
    let held = Schema::new();
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let e = from_embedded(&db, &blobs, &url(), &held.name)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("stop the server"), "{e}");
    other.execute_batch("ROLLBACK").unwrap();
    drop(other);
    assert!(!schema_exists(&held.name).await);

    // A blob whose bytes no longer match its name: found, nothing committed.
    let corrupt = Schema::new();
    let victim = FsBlobStore::open(&blobs).unwrap().list().await.unwrap()[0].clone();
    let path = blobs.join(&victim[0..2]).join(&victim[2..4]).join(&victim);
    let good = std::fs::read(&path).unwrap();
    std::fs::write(&path, b"rotten").unwrap();
    let e = from_embedded(&db, &blobs, &url(), &corrupt.name)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::CorruptBlob { hash, .. } if *hash == victim),
        "{e}"
    );
    assert!(!schema_exists(&corrupt.name).await);
    std::fs::write(&path, good).unwrap();
    // The same for a blob kept in the database.
    let row: String = {
        let c = rusqlite::Connection::open(&db).unwrap();
        let h: String = c
            .query_row(
                "SELECT hash FROM inline_blobs ORDER BY hash LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        c.execute(
            "UPDATE inline_blobs SET data = ?1 WHERE hash = ?2",
            rusqlite::params![&b"rotten"[..], h],
        )
        .unwrap();
        h
    };
    let e = from_embedded(&db, &blobs, &url(), &corrupt.name)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::CorruptBlob { hash, .. } if *hash == row),
        "{e}"
    );
    assert!(!schema_exists(&corrupt.name).await);

    // A name that is no schema name never reaches SQL.
    let e = from_embedded(&db, &blobs, &url(), "Bad; DROP")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
}
