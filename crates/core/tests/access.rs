//! ACL enforcement inside `core` (RFC 4314): a session cannot widen its access by
//! building a `MailboxAccess` itself — every operation re-reads the rights from the
//! store — and a grant removed counts at once.

use postern_core::access::{AclChange, MailboxAccess, Rights};
use postern_core::mailbox::NewMessage;
use postern_core::store::sqlite::{SqliteOptions, SqliteStore};
use postern_core::store::{FlagAction, Flags, FsBlobStore, MessageId, SessionInfo, Store};
use postern_core::{Argon2Settings, Authenticated, Core, CoreError, CoreSettings};
use std::sync::Arc;

const TOKEN: &str = "access-test-token-0123456789abcdef";

fn session() -> SessionInfo {
    SessionInfo {
        protocol: "test".into(),
        ..Default::default()
    }
}

async fn setup(dir: &std::path::Path) -> (Core, Authenticated, Authenticated) {
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
    let core = Core::new(store, Arc::new(blobs), settings).unwrap();
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
    core.import_message(
        &admin,
        "alice@example.com",
        None,
        b"Subject: hi\r\n\r\nsecret plans\r\n".to_vec(),
    )
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
    (core, alice, bob)
}

fn not_found<T: std::fmt::Debug>(r: Result<T, CoreError>) {
    assert!(matches!(r, Err(CoreError::NotFound(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_access_gets_no_rights() {
    let dir = tempfile::tempdir().unwrap();
    let (core, alice, bob) = setup(dir.path()).await;
    let inbox = core.resolve_mailbox(&alice, "INBOX").await.unwrap();
    // bob names alice's INBOX by its ids and claims every right.
    let forged = MailboxAccess {
        rights: Rights::ALL,
        ..inbox.clone()
    };
    not_found(core.open_mailbox(&bob, &forged).await);
    not_found(
        core.grant_read(
            &bob,
            &forged,
            "message.read",
            &[(1, MessageId::generate())],
            "BODY[]",
        )
        .await,
    );
    not_found(
        core.store_flags(
            &bob,
            &forged,
            vec![1],
            FlagAction::Add,
            Flags::DELETED,
            vec![],
            None,
        )
        .await,
    );
    not_found(core.expunge(&bob, &forged, vec![1]).await);
    not_found(core.expunged_since(&bob, &forged, 0).await);
    let msg = NewMessage {
        raw: b"Subject: x\r\n\r\ny\r\n".to_vec(),
        flags: Flags::default(),
        keywords: vec![],
        received_ms: None,
    };
    not_found(core.append_messages(&bob, &forged, vec![msg]).await);
    not_found(
        core.set_mailbox_acl(
            &bob,
            &forged,
            "bob@example.com",
            AclChange::Replace(Rights::ALL),
        )
        .await,
    );
    not_found(core.mailbox_acl(&bob, &forged).await);
    // Nor by claiming to be the owner of bob's own ids with alice's mailbox id.
    let own = core.resolve_mailbox(&bob, "INBOX").await.unwrap();
    let mixed = MailboxAccess {
        mailbox: inbox.mailbox.clone(),
        ..own
    };
    not_found(core.open_mailbox(&bob, &mixed).await);
    // alice's message is untouched.
    let (_, entries) = core.open_mailbox(&alice, &inbox).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].flags, Flags::default());
}

/// A read grant covers exactly the messages its ledger entry names: not another message
/// of the account, nor one of another mailbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_grant_covers_only_what_the_ledger_names() {
    let dir = tempfile::tempdir().unwrap();
    let (core, alice, _bob) = setup(dir.path()).await;
    let inbox = core.resolve_mailbox(&alice, "INBOX").await.unwrap();
    core.create_mailbox(&alice, "Other", None).await.unwrap();
    let other = core.resolve_mailbox(&alice, "Other").await.unwrap();
    let msg = |s: &str| NewMessage {
        raw: format!("Subject: {s}\r\n\r\n{s}\r\n").into_bytes(),
        flags: Flags::default(),
        keywords: vec![],
        received_ms: None,
    };
    core.append_messages(&alice, &other, vec![msg("elsewhere")])
        .await
        .unwrap();
    core.append_messages(&alice, &inbox, vec![msg("second")])
        .await
        .unwrap();
    let (_, inbox_entries) = core.open_mailbox(&alice, &inbox).await.unwrap();
    let (_, other_entries) = core.open_mailbox(&alice, &other).await.unwrap();
    assert_eq!(inbox_entries.len(), 2);
    let first = (inbox_entries[0].uid, inbox_entries[0].message);
    let grant = core
        .grant_read(&alice, &inbox, "message.read", &[first], "BODY[]")
        .await
        .unwrap();
    let records = core.granted_records(&grant, vec![first.1]).await.unwrap();
    assert_eq!(records.len(), 1);
    assert!(core.granted_blob(&grant, &records[0]).await.is_ok());
    // The INBOX's other message and the other mailbox's: not covered.
    not_found(
        core.granted_records(&grant, vec![inbox_entries[1].message])
            .await,
    );
    not_found(
        core.granted_records(&grant, vec![other_entries[0].message])
            .await,
    );
    let all = core
        .grant_read(
            &alice,
            &other,
            "message.read",
            &[(other_entries[0].uid, other_entries[0].message)],
            "BODY[]",
        )
        .await
        .unwrap();
    let elsewhere = core
        .granted_records(&all, vec![other_entries[0].message])
        .await
        .unwrap();
    not_found(core.granted_blob(&grant, &elsewhere[0]).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rights_are_read_at_each_operation() {
    let dir = tempfile::tempdir().unwrap();
    let (core, alice, bob) = setup(dir.path()).await;
    let inbox = core.resolve_mailbox(&alice, "INBOX").await.unwrap();
    core.set_mailbox_acl(
        &alice,
        &inbox,
        "bob@example.com",
        AclChange::Replace(Rights::parse("lr").unwrap()),
    )
    .await
    .unwrap();
    let view = core
        .resolve_mailbox(&bob, "Other Users/alice@example.com/INBOX")
        .await
        .unwrap();
    assert_eq!(view.rights.to_string(), "lr");
    assert!(core.open_mailbox(&bob, &view).await.is_ok());
    // l and r but not t: STORE of \Deleted changes nothing, silently.
    let (changed, _) = core
        .store_flags(
            &bob,
            &view,
            vec![1],
            FlagAction::Add,
            Flags::DELETED,
            vec![],
            None,
        )
        .await
        .unwrap();
    assert!(changed.is_empty());
    // No `e`: a permission refusal (the mailbox is visible).
    let r = core.expunge(&bob, &view, vec![1]).await;
    assert!(matches!(r, Err(CoreError::Forbidden(_))), "{r:?}");
    // Removed: the same `view` no longer opens.
    core.set_mailbox_acl(&alice, &inbox, "bob@example.com", AclChange::Delete)
        .await
        .unwrap();
    not_found(core.open_mailbox(&bob, &view).await);
    not_found(core.refresh_access(&bob, &view).await);
}
