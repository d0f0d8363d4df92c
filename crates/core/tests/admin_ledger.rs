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
    (Core::new(store.clone(), Arc::new(blobs), settings).unwrap(), store)
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
    assert!(core.admin_session("wrong-token-0123456789abcdef", "x", session()).is_none());
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
    assert!(matches!(missing, Err(CoreError::NotFound(_))), "{missing:?}");

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
    assert_eq!(postern_core::store::verify::verify_ledger(&*store).await.unwrap(), Ok(2));
}
