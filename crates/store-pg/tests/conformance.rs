//! The conformance suite on the PostgreSQL backend, plus what only a shared database
//! has: two nodes over one schema.
//!
//! Needs PostgreSQL: `POSTERN_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`. Each test works in its own schema
//! `postern_t_<random hex>`, dropped at the end (also when the test panics). An
//! unreachable database fails the tests; it never skips them.

use postern_store::conformance as c;
use postern_store::ops::{Op, OpResult};
use postern_store::verify::verify_ledger;
use postern_store::*;
use postern_store_pg::{PgOptions, PgStore};
use std::sync::Arc;
use std::time::Duration;

fn url() -> String {
    std::env::var("POSTERN_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn opts() -> PgOptions {
    PgOptions {
        pool_size: 8,
        blobs_in_database: true,
        ..PgOptions::default()
    }
}

/// Drops the test's schema when the test ends, however it ends.
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
        // Its own thread and runtime: this runs inside a test's runtime, maybe unwinding.
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

async fn store_in(schema: &Schema) -> PgStore {
    store_with(schema, opts()).await
}

async fn store_with(schema: &Schema, opts: PgOptions) -> PgStore {
    match PgStore::connect(&url(), &schema.name, opts).await {
        Ok(s) => s,
        Err(e) => panic!(
            "PostgreSQL is not usable at {} ({e}). Start it (e.g. `pg_ctlcluster 15 main start`, \
             trust auth for user postgres, database `test`) or point POSTERN_TEST_PG_URL at one. \
             These tests never skip.",
            url()
        ),
    }
}

async fn fresh() -> (Schema, Arc<PgStore>, Arc<dyn Store>, Arc<dyn BlobStore>) {
    let schema = Schema::new();
    let store = Arc::new(store_in(&schema).await);
    let blobs: Arc<dyn BlobStore> = Arc::new(store.blob_store());
    let dynstore: Arc<dyn Store> = store.clone();
    (schema, store, dynstore, blobs)
}

/// A plain connection into the test's schema, to change what the store wrote.
async fn raw(schema: &Schema) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .batch_execute(&format!("SET search_path = \"{}\"", schema.name))
        .await
        .unwrap();
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn directory_rules() {
    let (_g, _p, s, _) = fresh().await;
    c::directory_rules(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mailbox_lifecycle() {
    let (_g, p, s, b) = fresh().await;
    c::mailbox_lifecycle(s, b).await;
    assert!(p.backend_check().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_staging_rules() {
    let (_g, p, s, b) = fresh().await;
    c::blob_staging_rules(s, b).await;
    assert!(p.backend_check().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn edge_rules() {
    let (_g, _p, s, b) = fresh().await;
    c::edge_rules(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_and_readers() {
    let (_g, _p, s, b) = fresh().await;
    c::concurrent_writers_and_readers(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_isolation() {
    let (_g, _p, s, _) = fresh().await;
    c::group_commit_isolation(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ledger_chain() {
    let (_g, _p, s, _) = fresh().await;
    c::ledger_chain(s).await;
}

/// Changing one stored ledger entry makes verification fail and name it; removing one
/// is found at the gap; removing the last is found by backend_check (the head).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_tamper_is_detected() {
    let (g, p, s, _) = fresh().await;
    c::ledger_chain(s.clone()).await;
    assert!(p.backend_check().await.unwrap().is_empty());
    let db = raw(&g).await;
    db.execute(
        "UPDATE ledger SET record = replace(record, 'message.read', 'message.list') WHERE seq = 17",
        &[],
    )
    .await
    .unwrap();
    let broken = verify_ledger(&*s).await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 17);
    db.execute("DELETE FROM ledger WHERE seq = 5", &[])
        .await
        .unwrap();
    let broken = verify_ledger(&*s).await.unwrap().unwrap_err();
    assert_eq!(broken.seq, 6);
    db.execute("DELETE FROM ledger WHERE seq = 40", &[])
        .await
        .unwrap();
    let problems = p.backend_check().await.unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("ledger ends at entry 39"),
        "{problems:?}"
    );
}

/// The hashes are those of the embedded backend: the same records give the same chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_hashes_match_sqlite() {
    let (_g, _p, s, _) = fresh().await;
    let dir = std::env::temp_dir().join(format!("postern-pg-test-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let lite = postern_store::sqlite::SqliteStore::open(
        &dir.join("meta.sqlite"),
        postern_store::sqlite::SqliteOptions::default(),
    )
    .unwrap();
    for n in 0..5 {
        let record = LedgerRecord {
            time_ms: 1_700_000_000_000 + n,
            actor: Actor {
                account: Some("a@example.com".into()),
                role: Role::Admin,
            },
            session: SessionInfo {
                protocol: "admin-api".into(),
                remote: Some("192.0.2.1".into()),
                ..Default::default()
            },
            action: "account.create".into(),
            target: Some(format!("u{n}@example.com")),
            objects: vec![format!("principal:{n}")],
            result: "ok".into(),
            before: None,
            after: Some(serde_json::json!({ "z": 1, "a": [n, "ü\u{1}"] })),
        };
        let a = s
            .write(vec![Op::AppendLedger(record.clone())])
            .await
            .unwrap();
        let b = lite.write(vec![Op::AppendLedger(record)]).await.unwrap();
        assert_eq!(a, b);
    }
    let pg = s.ledger_raw(1, 100).await.unwrap();
    let sq = lite.ledger_raw(1, 100).await.unwrap();
    assert_eq!(pg.len(), 5);
    for (x, y) in pg.iter().zip(&sq) {
        assert_eq!(
            (x.seq, &x.record_json, &x.prev_hash, &x.hash),
            (y.seq, &y.record_json, &y.prev_hash, &y.hash)
        );
    }
    let q = LedgerQuery {
        account: Some("u3@example.com".into()),
        since_ms: Some(1_700_000_000_002),
        ..Default::default()
    };
    assert_eq!(s.ledger(&q).await.unwrap(), lite.ledger(&q).await.unwrap());
    assert_eq!(s.ledger(&q).await.unwrap().len(), 1);
    lite.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A chunk changed in the database is refused on read; names that are not hex digests
/// never reach a query; the same bytes twice are one copy; large blobs span chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_blob_is_detected() {
    let (g, _p, _s, blobs) = fresh().await;
    let r = blobs.put(b"hello".to_vec()).await.unwrap();
    let again = blobs.put(b"hello".to_vec()).await.unwrap();
    assert_eq!(r, again);
    assert_eq!(blobs.list().await.unwrap(), vec![r.hash.clone()]);
    assert!(blobs.exists(&r.hash).await.unwrap());
    assert_eq!(blobs.get(&r.hash).await.unwrap(), b"hello");

    let empty = blobs.put(Vec::new()).await.unwrap();
    assert_eq!(empty.size, 0);
    assert_eq!(blobs.get(&empty.hash).await.unwrap(), b"");

    let big: Vec<u8> = (0..(2 * postern_store_pg::CHUNK_SIZE + 12345))
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let br = blobs.put(big.clone()).await.unwrap();
    assert_eq!(br.size, big.len() as u64);
    assert_eq!(blobs.get(&br.hash).await.unwrap(), big);

    let db = raw(&g).await;
    let chunks: i64 = db
        .query_one(
            "SELECT count(*) FROM blob_chunks WHERE hash = $1",
            &[&br.hash],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(chunks, 3);
    db.execute(
        "UPDATE blob_chunks SET data = 'hellO'::bytea WHERE hash = $1",
        &[&r.hash],
    )
    .await
    .unwrap();
    assert!(matches!(
        blobs.get(&r.hash).await,
        Err(StoreError::CorruptBlob { .. })
    ));
    // A missing middle chunk is corruption too.
    db.execute(
        "DELETE FROM blob_chunks WHERE hash = $1 AND idx = 1",
        &[&br.hash],
    )
    .await
    .unwrap();
    assert!(matches!(
        blobs.get(&br.hash).await,
        Err(StoreError::CorruptBlob { .. })
    ));
    for bad in [
        "../../etc/passwd",
        "AB",
        &"g".repeat(64),
        &r.hash.to_uppercase(),
        "' OR 1=1 --",
    ] {
        assert!(matches!(blobs.get(bad).await, Err(StoreError::NotFound(_))));
        assert!(!blobs.exists(bad).await.unwrap());
        assert!(matches!(
            blobs.delete(bad).await,
            Err(StoreError::NotFound(_))
        ));
    }
    let missing = "0".repeat(64);
    assert!(matches!(
        blobs.get(&missing).await,
        Err(StoreError::NotFound(_))
    ));
    blobs.delete(&missing).await.unwrap();
    blobs.delete(&r.hash).await.unwrap();
    assert!(!blobs.exists(&r.hash).await.unwrap());
    let left: i64 = db
        .query_one(
            "SELECT count(*) FROM blob_chunks WHERE hash = $1",
            &[&r.hash],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

fn domain(name: &str) -> Domain {
    Domain {
        id: DomainId::generate(),
        name: name.into(),
        created_ms: now_ms(),
    }
}

fn ledger_record(n: usize) -> LedgerRecord {
    LedgerRecord {
        time_ms: now_ms(),
        actor: Actor {
            account: Some(format!("node{}@example.com", n % 2)),
            role: Role::Service,
        },
        session: SessionInfo {
            protocol: "test".into(),
            ..Default::default()
        },
        action: "message.read".into(),
        target: None,
        objects: vec![format!("n:{n}")],
        result: "ok".into(),
        before: None,
        after: None,
    }
}

/// Two nodes (two stores, two pools, two listeners) on one schema, started together.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_one_schema() {
    let g = Schema::new();
    // Started at once: the migration lock keeps them from racing on the schema.
    let (a, b) = tokio::join!(store_in(&g), store_in(&g));
    let blobs_a = a.blob_store();
    let (a, b): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::new(a), Arc::new(b));

    let d = domain("example.net");
    let p = Principal {
        id: PrincipalId::generate(),
        domain: d.id,
        local_part: "carol".into(),
        kind: PrincipalKind::Individual,
        display_name: "Carol".into(),
        quota_bytes: None,
        created_ms: now_ms(),
    };
    let inbox = Mailbox {
        id: MailboxId::generate(),
        account: p.id,
        name: "INBOX".into(),
        special_use: Some(SpecialUse::Inbox),
        uid_validity: 0,
        uid_next: 0,
        highest_modseq: 0,
        subscribed: true,
        created_ms: now_ms(),
    };
    let (acct, mb) = (p.id, inbox.id);
    let mut notices_b = b.subscribe();
    a.write(vec![
        Op::CreateDomain(d.clone()),
        Op::CreatePrincipal(p.clone()),
        Op::CreateMailbox(inbox),
    ])
    .await
    .unwrap();
    // Written through A, read through B.
    assert_eq!(b.domain_by_name("example.net").await.unwrap(), Some(d));
    assert_eq!(b.principal(acct).await.unwrap(), Some(p));
    // The same rules hold across nodes.
    assert!(matches!(
        b.write(vec![Op::CreateDomain(domain("example.net"))]).await,
        Err(StoreError::Conflict(_))
    ));

    const N: usize = 30;
    for i in 0..N {
        let msg = c::put_message(
            &blobs_a,
            acct,
            format!("Subject: {i}\r\n\r\nx\r\n").as_bytes(),
        )
        .await;
        let store = if i % 3 == 0 { &b } else { &a };
        let r = store
            .write(vec![Op::AppendMessage {
                message: msg,
                mailbox: mb,
                flags: Flags::default(),
                keywords: vec![],
            }])
            .await
            .unwrap();
        assert!(matches!(r[0], OpResult::Appended { .. }));
    }
    let highest = a.highest_modseq(acct).await.unwrap();
    assert_eq!(highest, N as u64 + 1);
    let (mbx, entries) = b.mailbox_entries(acct, mb).await.unwrap();
    assert_eq!(entries.len(), N);
    assert_eq!(mbx.uid_next, N as u32 + 1);

    // B's subscriber hears every change, A's included, in modseq order, promptly.
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while got.len() < highest as usize {
        match tokio::time::timeout_at(deadline, notices_b.recv()).await {
            Ok(Ok(n)) => {
                assert_eq!(n.account, acct);
                got.push(n.modseq);
            }
            Ok(Err(e)) => panic!("subscriber: {e}"),
            Err(_) => panic!("only {} of {highest} notices arrived: {got:?}", got.len()),
        }
    }
    assert_eq!(got, (1..=highest).collect::<Vec<u64>>());

    // Ledger appends through both nodes at once make one intact chain.
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let r = store
                .write(vec![Op::AppendLedger(ledger_record(n))])
                .await
                .unwrap();
            let OpResult::LedgerAppended { seq, .. } = r[0] else {
                panic!("{r:?}")
            };
            seq
        }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        seqs.push(t.await.unwrap());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=40).collect::<Vec<u64>>());
    assert_eq!(verify_ledger(&*a).await.unwrap(), Ok(40));
    assert_eq!(verify_ledger(&*b).await.unwrap(), Ok(40));
    let report = postern_store::verify::verify_store(&*b, &blobs_a)
        .await
        .unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

/// When the LISTEN connection drops, the store reconnects and catches up: a subscriber
/// learns about changes committed while it was away.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listener_reconnects_and_catches_up() {
    let g = Schema::new();
    let app = format!("pt{:x}", rand::random::<u32>());
    let store = store_with(
        &g,
        PgOptions {
            application_name: app.clone(),
            ..opts()
        },
    )
    .await;
    let s: Arc<dyn Store> = Arc::new(store);
    let d = domain("example.org");
    let p = Principal {
        id: PrincipalId::generate(),
        domain: d.id,
        local_part: "dave".into(),
        kind: PrincipalKind::Individual,
        display_name: String::new(),
        quota_bytes: None,
        created_ms: now_ms(),
    };
    let acct = p.id;
    let mut rx = s.subscribe();
    s.write(vec![Op::CreateDomain(d), Op::CreatePrincipal(p)])
        .await
        .unwrap();
    let db = raw(&g).await;
    // Cut the listener off (its application_name is the store's plus " listen").
    let killed: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE application_name = $1 || ' listen') t",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    // Written while the listener may be down.
    for i in 0..3 {
        let m = Mailbox {
            id: MailboxId::generate(),
            account: acct,
            name: format!("box{i}"),
            special_use: None,
            uid_validity: 0,
            uid_next: 0,
            highest_modseq: 0,
            subscribed: false,
            created_ms: now_ms(),
        };
        s.write(vec![Op::CreateMailbox(m)]).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut last = 0;
    while last < 3 {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok(n)) => {
                assert_eq!(n.account, acct);
                assert!(n.modseq > last, "{} after {last}", n.modseq);
                last = n.modseq;
            }
            Ok(Err(e)) => panic!("subscriber: {e}"),
            Err(_) => panic!("no catch-up notice after the reconnect (last {last})"),
        }
    }
    // And the listener is back for good.
    let m = Mailbox {
        id: MailboxId::generate(),
        account: acct,
        name: "after".into(),
        special_use: None,
        uid_validity: 0,
        uid_next: 0,
        highest_modseq: 0,
        subscribed: false,
        created_ms: now_ms(),
    };
    s.write(vec![Op::CreateMailbox(m)]).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("notice after reconnect")
        .unwrap();
    assert_eq!(n.modseq, 4);
}

/// Bad schema names are refused before they reach SQL; a newer schema is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_names_and_versions() {
    for bad in [
        "",
        "Public",
        "a-b",
        "x\"; DROP TABLE y; --",
        "pg_x",
        "1abc",
        &"a".repeat(48),
    ] {
        assert!(!postern_store_pg::valid_schema_name(bad), "{bad:?}");
        assert!(matches!(
            PgStore::connect(&url(), bad, opts()).await,
            Err(StoreError::Invalid(_))
        ));
    }
    let (g, _p, _s, _) = fresh().await;
    raw(&g)
        .await
        .execute("UPDATE schema_version SET version = 99", &[])
        .await
        .unwrap();
    let err = PgStore::connect(&url(), &g.name, opts())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains("version 99")),
        "{err}"
    );
}

/// Text PostgreSQL cannot store (NUL): lookups by it find nothing and writing it as a
/// name is refused (not reported as a transient failure); where it comes from mail or
/// sessions (a Message-ID, a ledger record's strings) it is stored and found as with
/// the embedded backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_text() {
    let (_g, _p, s, blobs) = fresh().await;
    assert_eq!(s.domain_by_name("a\0b").await.unwrap(), None);
    assert!(matches!(
        s.write(vec![Op::CreateDomain(domain("a\0b"))]).await,
        Err(StoreError::Refused(_))
    ));

    let mut record = ledger_record(1);
    record.actor.account = Some("evil\0@example.com".into());
    record.session.client_id = Some("client\0".into());
    record.objects = vec!["mailbox:\0".into()];
    s.write(vec![Op::AppendLedger(record.clone())])
        .await
        .unwrap();
    let q = LedgerQuery {
        account: Some("evil\0@example.com".into()),
        ..Default::default()
    };
    let found = s.ledger(&q).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].record, record);
    assert_eq!(verify_ledger(&*s).await.unwrap(), Ok(1));

    let d = domain("example.com");
    let p = Principal {
        id: PrincipalId::generate(),
        domain: d.id,
        local_part: "erin".into(),
        kind: PrincipalKind::Individual,
        display_name: String::new(),
        quota_bytes: None,
        created_ms: now_ms(),
    };
    let m = Mailbox {
        id: MailboxId::generate(),
        account: p.id,
        name: "INBOX".into(),
        special_use: None,
        uid_validity: 0,
        uid_next: 0,
        highest_modseq: 0,
        subscribed: true,
        created_ms: now_ms(),
    };
    let (acct, mb) = (p.id, m.id);
    s.write(vec![
        Op::CreateDomain(d),
        Op::CreatePrincipal(p),
        Op::CreateMailbox(m),
    ])
    .await
    .unwrap();
    let mut msg = c::put_message(&*blobs, acct, b"Message-ID: <x\0y@example.com>\r\n\r\n").await;
    msg.meta.envelope.message_id = Some("<x\0y@example.com>".into());
    msg.meta.envelope.subject = Some("nul \0 inside".into());
    s.write(vec![Op::AppendMessage {
        message: msg.clone(),
        mailbox: mb,
        flags: Flags::default(),
        keywords: vec!["$k\0".into()],
    }])
    .await
    .unwrap();
    assert_eq!(s.message(acct, msg.id).await.unwrap(), Some(msg.clone()));
    assert_eq!(
        s.thread_of(acct, &["<none>".into(), "<x\0y@example.com>".into()])
            .await
            .unwrap(),
        Some(msg.thread_id.clone())
    );
    let (_, entries) = s.mailbox_entries(acct, mb).await.unwrap();
    assert_eq!(entries[0].keywords, vec!["$k\0".to_string()]);
}

/// Batches whose operations come in opposite orders still take their locks in one
/// order, so they queue instead of deadlocking; and where PostgreSQL does find a
/// deadlock (a lock upgrade meeting a foreign-key check), the batch is run again
/// rather than failed as unavailable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_order_and_deadlock_retry() {
    let g = Schema::new();
    // Options in the URL are kept: detect deadlocks fast so the test stays quick.
    let base = url();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20deadlock_timeout%3D20ms");
    let store = match PgStore::connect(&url, &g.name, opts()).await {
        Ok(s) => s,
        Err(e) => panic!("PostgreSQL is not usable at {url}: {e}"),
    };
    let s: Arc<dyn Store> = Arc::new(store);
    let d = domain("example.com");
    let did = d.id;
    s.write(vec![Op::CreateDomain(d)]).await.unwrap();
    let person = |local: String| Principal {
        id: PrincipalId::generate(),
        domain: did,
        local_part: local,
        kind: PrincipalKind::Individual,
        display_name: String::new(),
        quota_bytes: None,
        created_ms: now_ms(),
    };
    let mut tasks = Vec::new();
    for i in 0..24 {
        let s = s.clone();
        let p = person(format!("u{i}"));
        tasks.push(tokio::spawn(async move {
            let ops = if i % 2 == 0 {
                vec![Op::AppendLedger(ledger_record(i)), Op::CreatePrincipal(p)]
            } else {
                vec![Op::CreatePrincipal(p), Op::AppendLedger(ledger_record(i))]
            };
            s.write(ops).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.principals(Some(did)).await.unwrap().len(), 24);
    assert_eq!(verify_ledger(&*s).await.unwrap(), Ok(24));

    // Each batch adds a credential to one account (a foreign-key check: KEY SHARE on
    // it) and removes the other (FOR UPDATE): crossed, they deadlock. One wins; the
    // other, run again, finds its account gone.
    let cred = |p: PrincipalId| Credential {
        id: CredentialId::generate(),
        principal: p,
        kind: CredentialKind::App,
        label: "x".into(),
        protocols: vec![],
        hash: "$argon2id$fake".into(),
        created_ms: now_ms(),
    };
    for round in 0..5 {
        let (p, q) = (person(format!("p{round}")), person(format!("q{round}")));
        let (pid, qid) = (p.id, q.id);
        s.write(vec![Op::CreatePrincipal(p), Op::CreatePrincipal(q)])
            .await
            .unwrap();
        let (s1, s2) = (s.clone(), s.clone());
        let (c1, c2) = (cred(pid), cred(qid));
        let t1 = tokio::spawn(async move {
            s1.write(vec![Op::AddCredential(c1), Op::RemovePrincipal(qid)])
                .await
        });
        let t2 = tokio::spawn(async move {
            s2.write(vec![Op::AddCredential(c2), Op::RemovePrincipal(pid)])
                .await
        });
        let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
        for r in [&r1, &r2] {
            assert!(
                matches!(r, Ok(_) | Err(StoreError::NotFound(_))),
                "round {round}: {r:?}"
            );
        }
        assert!(r1.is_ok() || r2.is_ok(), "round {round}: {r1:?} {r2:?}");
    }
}

/// Error text that names the rule broken, comparable across backends (a raw database
/// message is backend-specific; only its kind is compared).
fn outcome(r: &Result<Vec<OpResult>>) -> String {
    match r {
        Ok(results) => format!("{:?}", normalize_results(results)),
        Err(StoreError::Conflict(m))
            if m.contains("SQLSTATE") || m.contains("constraint failed") =>
        {
            "Conflict(<database>)".to_string()
        }
        Err(e) => format!("{e:?}"),
    }
}

fn normalize_results(results: &[OpResult]) -> Vec<OpResult> {
    results
        .iter()
        .map(|r| match r {
            // Time-based: equal unless a second boundary falls between the two writes.
            OpResult::MailboxCreated { .. } => OpResult::MailboxCreated { uid_validity: 0 },
            other => other.clone(),
        })
        .collect()
}

/// Everything a client could read about the accounts, minus clock readings.
async fn snapshot(s: &dyn Store, accounts: &[PrincipalId]) -> String {
    let mut out = format!("{:?}\n", s.domains().await.unwrap());
    for p in s.principals(None).await.unwrap() {
        out += &format!("{p:?}\n{:?}\n", s.aliases(Some(p.domain)).await.unwrap());
        out += &format!("{:?}\n", s.group_members(p.id).await.unwrap());
        out += &format!("{:?}\n", s.credentials(p.id).await.unwrap());
    }
    for &a in accounts {
        out += &format!("{:?} {:?}\n", s.usage(a).await, s.highest_modseq(a).await);
        let mut changes = s.changes_since(a, 0, 10_000).await.unwrap();
        for c in &mut changes {
            c.at_ms = 0;
        }
        out += &format!("{changes:?}\n");
        for mut m in s.mailboxes(a).await.unwrap() {
            m.uid_validity = 0;
            let (_, mut entries) = s.mailbox_entries(a, m.id).await.unwrap();
            for e in &mut entries {
                e.saved_ms = 0;
            }
            out += &format!("{m:?}\n{entries:?}\n");
        }
    }
    for e in s.ledger_raw(1, 1000).await.unwrap() {
        out += &format!("{} {} {} {}\n", e.seq, e.record_json, e.prev_hash, e.hash);
    }
    out
}

/// The same batches, applied to the embedded backend and to PostgreSQL, give the same
/// results, the same errors and the same data: every rule's error path, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_as_sqlite() {
    let (_g, _p, pg, blobs) = fresh().await;
    let dir = std::env::temp_dir().join(format!("postern-pg-diff-{:016x}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let lite = postern_store::sqlite::SqliteStore::open(
        &dir.join("meta.sqlite"),
        postern_store::sqlite::SqliteOptions::default(),
    )
    .unwrap();

    let d = domain("example.org");
    let did = d.id;
    let person = |local: &str, kind| Principal {
        id: PrincipalId::generate(),
        domain: did,
        local_part: local.into(),
        kind,
        display_name: local.to_uppercase(),
        quota_bytes: None,
        created_ms: 1,
    };
    let alice = person("alice", PrincipalKind::Individual);
    let bob = person("bob", PrincipalKind::Individual);
    let team = person("team", PrincipalKind::Group);
    let (a, b, t) = (alice.id, bob.id, team.id);
    let alias = |local: &str, target: &str| Alias {
        id: AliasId::generate(),
        domain: did,
        local_part: local.into(),
        target: target.into(),
        created_ms: 1,
    };
    let cred = |p, kind| Credential {
        id: CredentialId::generate(),
        principal: p,
        kind,
        label: "l".into(),
        protocols: vec!["imap".into()],
        hash: "$argon2id$x".into(),
        created_ms: 1,
    };
    let mbox = |account, name: &str| Mailbox {
        id: MailboxId::generate(),
        account,
        name: name.into(),
        special_use: None,
        uid_validity: 0,
        uid_next: 0,
        highest_modseq: 0,
        subscribed: true,
        created_ms: 1,
    };
    let inbox = mbox(a, "INBOX");
    let archive = mbox(a, "Archive");
    let bob_inbox = mbox(b, "INBOX");
    let (inbox_id, archive_id, bob_inbox_id) = (inbox.id, archive.id, bob_inbox.id);
    let mut msgs = Vec::new();
    for i in 0..6 {
        let mut m = c::put_message(
            &*blobs,
            a,
            format!("Subject: {i}\r\n\r\n{}\r\n", "y".repeat(i)).as_bytes(),
        )
        .await;
        m.received_ms = 1;
        m.meta.envelope.message_id = Some(format!("<m{}@example.org>", i % 3));
        msgs.push(m);
    }
    let append = |m: &MessageRecord, mailbox, kw: &[&str]| Op::AppendMessage {
        message: m.clone(),
        mailbox,
        flags: Flags::default(),
        keywords: kw.iter().map(|s| s.to_string()).collect(),
    };
    let flags = |mailbox, uids: &[u32], action, f, kw: &[&str], since| Op::StoreFlags {
        account: a,
        mailbox,
        uids: uids.to_vec(),
        action,
        flags: f,
        keywords: kw.iter().map(|s| s.to_string()).collect(),
        unchanged_since: since,
        scope: None,
    };
    let mut rec = ledger_record(0);
    rec.time_ms = 5;
    let mut bobs_copy = msgs[0].clone();
    bobs_copy.account = b;

    let script: Vec<Vec<Op>> = vec![
        vec![Op::CreateDomain(d.clone())],
        vec![Op::CreateDomain(domain("example.org"))],
        vec![Op::RemoveDomain(DomainId(42))],
        vec![
            Op::CreatePrincipal(person("x", PrincipalKind::Individual)),
            Op::CreateDomain(d.clone()),
        ],
        vec![
            Op::CreatePrincipal(alice.clone()),
            Op::CreatePrincipal(bob.clone()),
            Op::CreatePrincipal(team.clone()),
        ],
        vec![Op::CreatePrincipal(person("alice", PrincipalKind::Shared))],
        vec![Op::CreatePrincipal(Principal {
            domain: DomainId(7),
            ..person("zed", PrincipalKind::Individual)
        })],
        vec![Op::AddAlias(alias("alice", "x@example.org"))],
        vec![Op::AddAlias(alias("sales", "bob@example.org"))],
        vec![Op::AddAlias(alias("sales", "bob@example.org"))],
        vec![Op::AddAlias(alias("sales", "alice@example.org"))],
        vec![Op::AddAlias(Alias {
            domain: DomainId(7),
            ..alias("q", "q@x")
        })],
        vec![Op::CreatePrincipal(person(
            "sales",
            PrincipalKind::Individual,
        ))],
        vec![Op::RemoveAlias(AliasId(99))],
        vec![Op::AddGroupMember {
            group: a,
            member: "x@y".into(),
        }],
        vec![Op::AddGroupMember {
            group: PrincipalId(5),
            member: "x@y".into(),
        }],
        vec![Op::AddGroupMember {
            group: t,
            member: "bob@example.org".into(),
        }],
        vec![Op::AddGroupMember {
            group: t,
            member: "bob@example.org".into(),
        }],
        vec![Op::RemoveGroupMember {
            group: t,
            member: "nobody@x".into(),
        }],
        vec![Op::AddCredential(cred(PrincipalId(5), CredentialKind::App))],
        vec![Op::SetPassword {
            principal: PrincipalId(5),
            credential: cred(PrincipalId(5), CredentialKind::Password),
        }],
        vec![Op::SetPassword {
            principal: a,
            credential: cred(b, CredentialKind::App),
        }],
        vec![Op::SetPassword {
            principal: a,
            credential: cred(a, CredentialKind::Password),
        }],
        vec![Op::AddCredential(cred(a, CredentialKind::App))],
        vec![Op::RemoveCredential(CredentialId(3))],
        vec![Op::SetQuota {
            principal: PrincipalId(5),
            quota_bytes: Some(1),
        }],
        vec![Op::CreateMailbox(mbox(PrincipalId(5), "INBOX"))],
        vec![
            Op::CreateMailbox(inbox.clone()),
            Op::CreateMailbox(archive.clone()),
            Op::CreateMailbox(bob_inbox.clone()),
        ],
        vec![Op::CreateMailbox(mbox(a, "INBOX"))],
        vec![Op::RenameMailbox {
            account: a,
            mailbox: archive_id,
            name: "INBOX".into(),
        }],
        vec![Op::RenameMailbox {
            account: b,
            mailbox: archive_id,
            name: "Mine".into(),
        }],
        vec![Op::RenameMailbox {
            account: a,
            mailbox: archive_id,
            name: "Archive/2026".into(),
        }],
        vec![append(&msgs[0], MailboxId(1), &[])],
        vec![append(&msgs[0], bob_inbox_id, &[])],
        vec![
            append(&msgs[0], inbox_id, &["$Seen"]),
            append(&msgs[1], inbox_id, &[]),
            append(&msgs[2], inbox_id, &["a", "B"]),
            append(&msgs[0], archive_id, &[]),
            append(&msgs[0], inbox_id, &[]),
        ],
        vec![append(&bobs_copy, bob_inbox_id, &[])],
        vec![flags(
            inbox_id,
            &[1, 1, 2, 9],
            FlagAction::Add,
            Flags::SEEN,
            &["$Important", "$important"],
            None,
        )],
        vec![flags(
            inbox_id,
            &[1, 3, 3],
            FlagAction::Set,
            Flags::FLAGGED,
            &["x"],
            Some(4),
        )],
        vec![flags(
            inbox_id,
            &[3, 1, 2],
            FlagAction::Remove,
            Flags::SEEN,
            &["A", "X"],
            None,
        )],
        vec![flags(
            inbox_id,
            &[5, 5],
            FlagAction::Set,
            Flags::DRAFT,
            &[],
            Some(100),
        )],
        vec![flags(
            MailboxId(3),
            &[1],
            FlagAction::Set,
            Flags::DRAFT,
            &[],
            None,
        )],
        vec![Op::SetQuota {
            principal: a,
            quota_bytes: Some(10),
        }],
        vec![append(&msgs[3], inbox_id, &[])],
        vec![Op::SetQuota {
            principal: a,
            quota_bytes: None,
        }],
        vec![Op::Expunge {
            account: a,
            mailbox: inbox_id,
            uids: vec![5, 1, 1, 77, 2],
            only_deleted: false,
        }],
        vec![Op::Expunge {
            account: a,
            mailbox: MailboxId(8),
            uids: vec![1],
            only_deleted: false,
        }],
        vec![
            append(&msgs[4], archive_id, &[]),
            Op::AppendLedger(rec.clone()),
            Op::CreateMailbox(mbox(a, "Archive/2026")),
        ],
        vec![
            append(&msgs[4], archive_id, &[]),
            Op::AppendLedger(rec.clone()),
            Op::AppendLedger(rec.clone()),
        ],
        vec![Op::DeleteMailbox {
            account: a,
            mailbox: archive_id,
        }],
        vec![Op::DeleteMailbox {
            account: a,
            mailbox: archive_id,
        }],
        vec![Op::CreateMailbox(mbox(a, "Archive"))],
        vec![Op::RemoveDomain(did)],
        vec![Op::RemovePrincipal(PrincipalId(5))],
        vec![Op::RemovePrincipal(b), Op::AppendLedger(rec.clone())],
    ];
    for (i, batch) in script.into_iter().enumerate() {
        let got_pg = pg.write(batch.clone()).await;
        let got_lite = lite.write(batch).await;
        assert_eq!(outcome(&got_pg), outcome(&got_lite), "batch {i}");
        assert_eq!(
            snapshot(&*pg, &[a, b, t]).await,
            snapshot(&lite, &[a, b, t]).await,
            "after batch {i}"
        );
    }
    let thread_keys = vec![
        "<none>".to_string(),
        "<m1@example.org>".into(),
        "<m2@example.org>".into(),
    ];
    assert_eq!(
        pg.thread_of(a, &thread_keys).await.unwrap(),
        lite.thread_of(a, &thread_keys).await.unwrap()
    );
    lite.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn journal_follows_acknowledgements() {
    let (_g, _p, s, b) = fresh().await;
    c::journal_follows_acknowledgements(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mailbox_delta_rules() {
    let (_g, p, s, b) = fresh().await;
    c::mailbox_delta_rules(s, b).await;
    assert!(p.backend_check().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acl_rules() {
    let (_g, p, s, _) = fresh().await;
    c::acl_rules(s).await;
    assert!(p.backend_check().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_rules() {
    let (_g, p, s, b) = fresh().await;
    c::queue_rules(s, b).await;
    assert!(p.backend_check().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dav_time_ranges() {
    let (_g, p, s, b) = fresh().await;
    c::dav_time_ranges(s, b).await;
    assert!(p.backend_check().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dav_rules() {
    let (_g, p, s, b) = fresh().await;
    c::dav_rules(s, b).await;
    assert!(p.backend_check().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dav_share_rules() {
    let (_g, p, s, _) = fresh().await;
    c::dav_share_rules(s).await;
    assert!(p.backend_check().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expunge_only_deleted() {
    let (_g, _p, s, b) = fresh().await;
    c::expunge_only_deleted(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoped_store_keeps_other_flags() {
    let (_g, _p, s, b) = fresh().await;
    c::scoped_store_keeps_other_flags(s, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbound_tls_rules() {
    let (_g, p, s, _) = fresh().await;
    c::outbound_tls_rules(s).await;
    assert!(p.backend_check().await.unwrap().is_empty());
}

/// A schema of version 6 (before the outbound TLS tables) is brought to the current
/// version on connect, keeping what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schema_6_gains_the_outbound_tls_tables() {
    let (g, p, s, _) = fresh().await;
    s.write(vec![Op::CreateDomain(domain("kept.example"))])
        .await
        .unwrap();
    drop(s);
    drop(p);
    raw(&g)
        .await
        .batch_execute(
            "DROP TABLE mta_sts_policies; DROP TABLE tlsrpt_counts; DROP TABLE tlsrpt_reports;
             UPDATE schema_version SET version = 6;",
        )
        .await
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(store_in(&g).await);
    assert!(
        store
            .domain_by_name("kept.example")
            .await
            .unwrap()
            .is_some()
    );
    c::outbound_tls_rules(store).await;
    let v: i32 = raw(&g)
        .await
        .query_one("SELECT version FROM schema_version", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, postern_store_pg::SCHEMA_VERSION);
}
