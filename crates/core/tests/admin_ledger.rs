//! Administrative actions and the ledger: a refused action still leaves an entry, and
//! an admin session can only be made with the token `Core` holds.

use postern_core::store::sqlite::{SqliteOptions, SqliteStore};
use postern_core::store::{FsBlobStore, LedgerQuery, SessionInfo, Store};
use postern_core::{Argon2Settings, Core, CoreError, CoreSettings};
use std::sync::Arc;

const TOKEN: &str = "admin-ledger-test-token-0123456789";

fn core(dir: &std::path::Path) -> (Core, Arc<dyn Store>) {
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.join("meta.sqlite"), SqliteOptions::default()).unwrap());
    let blobs = FsBlobStore::open(&dir.join("blobs")).unwrap();
    let settings = CoreSettings {
        argon2: Argon2Settings {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    (
        Core::new(store.clone(), Arc::new(blobs), settings).unwrap(),
        store,
    )
}

fn session() -> SessionInfo {
    SessionInfo {
        protocol: "test".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn no_admin_session_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (core, _) = core(dir.path());
    // No token installed: nothing opens.
    assert!(core.admin_session(TOKEN, "x", session()).is_none());
    core.set_admin_token(TOKEN);
    assert!(
        core.admin_session("wrong-token-0123456789abcdef", "x", session())
            .is_none()
    );
    assert!(core.admin_session("", "x", session()).is_none());
    let a = core.admin_session(TOKEN, "cli:test", session()).unwrap();
    assert_eq!(a.ctx().actor.account.as_deref(), Some("cli:test"));
    assert_eq!(a.ctx().session.auth_method.as_deref(), Some("token"));
}

#[tokio::test]
async fn refused_actions_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (core, store) = core(dir.path());
    core.set_admin_token(TOKEN);
    let admin = core.admin_session(TOKEN, "cli:test", session()).unwrap();
    core.domain_add(&admin, "example.com").await.unwrap();
    let again = core.domain_add(&admin, "example.com").await;
    assert!(matches!(again, Err(CoreError::Conflict(_))), "{again:?}");
    let missing = core.account_remove(&admin, "nobody@example.com").await;
    assert!(
        matches!(missing, Err(CoreError::NotFound(_))),
        "{missing:?}"
    );

    let entries = store.ledger(&LedgerQuery::default()).await.unwrap();
    let seen: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.record.action.as_str(), e.record.result.as_str()))
        .collect();
    assert_eq!(seen[0], ("domain.create", "ok"));
    assert_eq!(seen[1].0, "domain.create");
    assert!(seen[1].1.starts_with("error: already exists"), "{seen:?}");
    // account_remove fails before building its batch (no such account): nothing to
    // record beyond the error returned, and no half entry.
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        postern_core::store::verify::verify_ledger(&*store)
            .await
            .unwrap(),
        Ok(2)
    );
}

/// Reading content goes through core, which records it; another account's message is
/// "not found" and the attempt is recorded as well (IDOR, DESIGN invariant 10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_recorded_and_other_accounts_are_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (core, store) = core(dir.path());
    core.set_admin_token(TOKEN);
    let admin = core.admin_session(TOKEN, "cli:test", session()).unwrap();
    core.domain_add(&admin, "example.com").await.unwrap();
    let kind = postern_core::store::PrincipalKind::Individual;
    for who in ["alice", "bob"] {
        let addr = format!("{who}@example.com");
        let pw = format!("{who}-password-1");
        core.account_add(&admin, &addr, kind, None, Some(&pw), None)
            .await
            .unwrap();
    }
    let raw = b"Subject: hi\r\n\r\nsecret plans\r\n".to_vec();
    let stored = core
        .import_message(&admin, "alice@example.com", None, raw.clone())
        .await
        .unwrap();
    let alice = core
        .authenticate("alice@example.com", "alice-password-1", "imap", session())
        .await
        .unwrap();
    let bob = core
        .authenticate("bob@example.com", "bob-password-1", "imap", session())
        .await
        .unwrap();

    assert_eq!(
        core.read_message(&alice, stored.message).await.unwrap(),
        raw
    );
    let stolen = core.read_message(&bob, stored.message).await;
    assert!(matches!(stolen, Err(CoreError::NotFound(_))), "{stolen:?}");

    let reads: Vec<_> = store
        .ledger(&LedgerQuery::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.record.action == "message.read")
        .collect();
    assert_eq!(reads.len(), 2);
    assert_eq!(
        reads[0].record.actor.account.as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(reads[0].record.result, "ok");
    assert_eq!(
        reads[0].record.objects,
        vec![format!("message:{}", stored.message)]
    );
    assert_eq!(
        reads[1].record.actor.account.as_deref(),
        Some("bob@example.com")
    );
    assert_eq!(reads[1].record.result, "not_found");
}

/// An import over quota is refused before its blob is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_quota_import_leaves_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let (core, _store) = core(dir.path());
    core.set_admin_token(TOKEN);
    let admin = core.admin_session(TOKEN, "cli:test", session()).unwrap();
    core.domain_add(&admin, "example.com").await.unwrap();
    let kind = postern_core::store::PrincipalKind::Individual;
    core.account_add(
        &admin,
        "carol@example.com",
        kind,
        None,
        Some("carol-password-1"),
        Some(100),
    )
    .await
    .unwrap();
    let big = format!("Subject: big\r\n\r\n{}\r\n", "x".repeat(200)).into_bytes();
    let r = core
        .import_message(&admin, "carol@example.com", None, big)
        .await;
    assert!(matches!(r, Err(CoreError::QuotaExceeded)), "{r:?}");
    let files = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "tmp")
        .count();
    assert_eq!(files, 0);
}
