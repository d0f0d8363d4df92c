//! The conformance suite every backend must pass. Each function takes a fresh, empty
//! store and panics on the first broken expectation; a backend's test file calls them
//! all (see `tests/sqlite.rs`). The PostgreSQL backend runs the same functions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::ops::{FlagAction, Op, OpResult};
use crate::verify::{verify_ledger, verify_store};
use crate::*;
use std::collections::HashMap;
use std::sync::Arc;

fn domain(name: &str) -> Domain {
    Domain {
        id: DomainId::generate(),
        name: name.into(),
        created_ms: now_ms(),
    }
}

fn principal(domain: DomainId, local: &str, kind: PrincipalKind) -> Principal {
    Principal {
        id: PrincipalId::generate(),
        domain,
        local_part: local.into(),
        kind,
        display_name: local.into(),
        quota_bytes: None,
        created_ms: now_ms(),
    }
}

fn mailbox(account: PrincipalId, name: &str) -> Mailbox {
    Mailbox {
        id: MailboxId::generate(),
        account,
        name: name.into(),
        special_use: None,
        uid_validity: 0,
        uid_next: 0,
        highest_modseq: 0,
        subscribed: true,
        created_ms: now_ms(),
    }
}

/// A message record over real blob bytes.
pub async fn put_message(
    blobs: &dyn BlobStore,
    account: PrincipalId,
    body: &[u8],
) -> MessageRecord {
    let blob = blobs.put(body.to_vec()).await.unwrap();
    MessageRecord {
        id: MessageId::generate(),
        account,
        blob,
        received_ms: now_ms(),
        thread_id: format!("t{}", MessageId::generate()),
        meta: MessageMeta::default(),
    }
}

pub fn append(message: MessageRecord, mailbox: MailboxId) -> Op {
    Op::AppendMessage {
        message,
        mailbox,
        flags: Flags::default(),
        keywords: vec![],
    }
}

fn record(action: &str, n: usize) -> LedgerRecord {
    LedgerRecord {
        time_ms: now_ms(),
        actor: Actor {
            account: Some(format!("user{n}@example.com")),
            role: Role::Owner,
        },
        session: SessionInfo {
            protocol: "test".into(),
            ..Default::default()
        },
        action: action.into(),
        target: Some(format!("user{n}@example.com")),
        objects: vec![format!("n:{n}")],
        result: "ok".into(),
        before: None,
        after: Some(serde_json::json!({ "n": n })),
    }
}

/// Sets up a domain with one account and one mailbox.
pub async fn account_with_mailbox(store: &dyn Store) -> (PrincipalId, MailboxId) {
    let d = domain("example.com");
    let p = principal(d.id, "alice", PrincipalKind::Individual);
    let m = mailbox(p.id, "INBOX");
    let (pid, mid) = (p.id, m.id);
    store
        .write(vec![
            Op::CreateDomain(d),
            Op::CreatePrincipal(p),
            Op::CreateMailbox(m),
        ])
        .await
        .unwrap();
    (pid, mid)
}

/// Mailbox ACLs: set, replace, list per mailbox and per grantee, remove; removed with
/// the mailbox and with either principal.
pub async fn acl_rules(store: Arc<dyn Store>) {
    let (alice, inbox) = account_with_mailbox(&*store).await;
    let domain = store.domain_by_name("example.com").await.unwrap().unwrap();
    let bob = principal(domain.id, "bob", PrincipalKind::Individual);
    let carol = principal(domain.id, "carol", PrincipalKind::Individual);
    let (bob_id, carol_id) = (bob.id, carol.id);
    let bob_box = mailbox(bob_id, "INBOX");
    let archive = mailbox(alice, "Archive");
    let archive_id = archive.id;
    store
        .write(vec![
            Op::CreatePrincipal(bob),
            Op::CreatePrincipal(carol),
            Op::CreateMailbox(bob_box),
            Op::CreateMailbox(archive),
        ])
        .await
        .unwrap();
    let set = |mailbox, grantee, rights: &str| Op::SetMailboxAcl {
        account: alice,
        mailbox,
        grantee,
        rights: rights.into(),
    };
    store
        .write(vec![
            set(inbox, bob_id, "lr"),
            set(archive_id, bob_id, "lrs"),
            set(inbox, carol_id, "lrswi"),
        ])
        .await
        .unwrap();
    // Replacing keeps one entry.
    store.write(vec![set(inbox, bob_id, "lrs")]).await.unwrap();
    let mut acl = store.mailbox_acl(alice, inbox).await.unwrap();
    acl.sort();
    let mut want = vec![(bob_id, "lrs".to_string()), (carol_id, "lrswi".to_string())];
    want.sort();
    assert_eq!(acl, want);
    // Another account asking for alice's mailbox by id sees nothing.
    assert!(store.mailbox_acl(bob_id, inbox).await.unwrap().is_empty());
    let shared = store.shared_with(bob_id).await.unwrap();
    let mut names: Vec<(String, String)> = shared
        .iter()
        .map(|(m, r)| (m.name.clone(), r.clone()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("Archive".into(), "lrs".into()),
            ("INBOX".into(), "lrs".into())
        ]
    );
    assert!(shared.iter().all(|(m, _)| m.account == alice));
    // An ACL on a mailbox that is not the account's, or for a missing grantee: refused.
    assert!(
        store
            .write(vec![Op::SetMailboxAcl {
                account: bob_id,
                mailbox: inbox,
                grantee: carol_id,
                rights: "lr".into(),
            }])
            .await
            .is_err()
    );
    assert!(
        store
            .write(vec![set(inbox, PrincipalId::generate(), "lr")])
            .await
            .is_err()
    );
    // Empty rights remove the entry.
    store.write(vec![set(inbox, carol_id, "")]).await.unwrap();
    assert_eq!(
        store.mailbox_acl(alice, inbox).await.unwrap(),
        vec![(bob_id, "lrs".to_string())]
    );
    // Deleting the mailbox removes its entries; removing the grantee removes theirs.
    store
        .write(vec![Op::DeleteMailbox {
            account: alice,
            mailbox: archive_id,
        }])
        .await
        .unwrap();
    assert_eq!(store.shared_with(bob_id).await.unwrap().len(), 1);
    store
        .write(vec![Op::RemovePrincipal(bob_id)])
        .await
        .unwrap();
    assert!(store.mailbox_acl(alice, inbox).await.unwrap().is_empty());
}

/// Uniqueness across principals and aliases, refusals, removal rules.
pub async fn directory_rules(store: Arc<dyn Store>) {
    let d = domain("example.org");
    let did = d.id;
    store.write(vec![Op::CreateDomain(d)]).await.unwrap();
    assert!(matches!(
        store
            .write(vec![Op::CreateDomain(domain("example.org"))])
            .await,
        Err(StoreError::Conflict(_))
    ));
    let bob = principal(did, "bob", PrincipalKind::Individual);
    let bob_id = bob.id;
    store.write(vec![Op::CreatePrincipal(bob)]).await.unwrap();
    assert!(matches!(
        store
            .write(vec![Op::CreatePrincipal(principal(
                did,
                "bob",
                PrincipalKind::Shared
            ))])
            .await,
        Err(StoreError::Conflict(_))
    ));
    let alias = |local: &str, target: &str| Alias {
        id: AliasId::generate(),
        domain: did,
        local_part: local.into(),
        target: target.into(),
        created_ms: now_ms(),
    };
    // An alias cannot shadow an account, and an account cannot shadow an alias.
    assert!(matches!(
        store
            .write(vec![Op::AddAlias(alias("bob", "x@example.org"))])
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .write(vec![Op::AddAlias(alias("sales", "bob@example.org"))])
        .await
        .unwrap();
    assert!(matches!(
        store
            .write(vec![Op::CreatePrincipal(principal(
                did,
                "sales",
                PrincipalKind::Individual
            ))])
            .await,
        Err(StoreError::Conflict(_))
    ));
    store
        .write(vec![Op::AddAlias(alias("*", "bob@example.org"))])
        .await
        .unwrap();
    assert_eq!(store.aliases_for(did, "*").await.unwrap().len(), 1);
    assert_eq!(
        store.aliases_for(did, "sales").await.unwrap()[0].target,
        "bob@example.org"
    );
    // A failing batch leaves nothing behind.
    let ghost = principal(did, "ghost", PrincipalKind::Individual);
    let ghost_id = ghost.id;
    assert!(
        store
            .write(vec![
                Op::CreatePrincipal(ghost),
                Op::CreateDomain(domain("example.org"))
            ])
            .await
            .is_err()
    );
    assert!(store.principal(ghost_id).await.unwrap().is_none());
    // Groups only.
    assert!(matches!(
        store
            .write(vec![Op::AddGroupMember {
                group: bob_id,
                member: "x@example.org".into()
            }])
            .await,
        Err(StoreError::Refused(_))
    ));
    let g = principal(did, "team", PrincipalKind::Group);
    let gid = g.id;
    store
        .write(vec![
            Op::CreatePrincipal(g),
            Op::AddGroupMember {
                group: gid,
                member: "bob@example.org".into(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(
        store.group_members(gid).await.unwrap(),
        vec!["bob@example.org".to_string()]
    );
    // Who may send to a group: set, replaced, removed; groups only.
    assert_eq!(store.group_senders(gid).await.unwrap(), None);
    for s in ["authenticated", "members"] {
        store
            .write(vec![Op::SetGroupSenders {
                group: gid,
                senders: Some(s.into()),
            }])
            .await
            .unwrap();
        assert_eq!(store.group_senders(gid).await.unwrap().as_deref(), Some(s));
    }
    store
        .write(vec![Op::SetGroupSenders {
            group: gid,
            senders: None,
        }])
        .await
        .unwrap();
    assert_eq!(store.group_senders(gid).await.unwrap(), None);
    assert!(matches!(
        store
            .write(vec![Op::SetGroupSenders {
                group: bob_id,
                senders: Some("members".into()),
            }])
            .await,
        Err(StoreError::Refused(_))
    ));
    // Left set: `store migrate`'s test copies a store filled by these rules.
    store
        .write(vec![Op::SetGroupSenders {
            group: gid,
            senders: Some("authenticated".into()),
        }])
        .await
        .unwrap();
    // Passwords: SetPassword replaces; app passwords add.
    let cred = |kind| Credential {
        id: CredentialId::generate(),
        principal: bob_id,
        kind,
        label: "x".into(),
        protocols: vec!["imap".into()],
        hash: "$argon2id$fake".into(),
        created_ms: now_ms(),
    };
    for _ in 0..2 {
        store
            .write(vec![Op::SetPassword {
                principal: bob_id,
                credential: cred(CredentialKind::Password),
            }])
            .await
            .unwrap();
    }
    store
        .write(vec![Op::AddCredential(cred(CredentialKind::App))])
        .await
        .unwrap();
    let creds = store.credentials(bob_id).await.unwrap();
    assert_eq!(
        creds
            .iter()
            .filter(|c| c.kind == CredentialKind::Password)
            .count(),
        1
    );
    assert_eq!(
        creds
            .iter()
            .filter(|c| c.kind == CredentialKind::App)
            .count(),
        1
    );
    // A domain with content cannot go.
    assert!(matches!(
        store.write(vec![Op::RemoveDomain(did)]).await,
        Err(StoreError::Refused(_))
    ));
    store
        .write(vec![Op::RemovePrincipal(bob_id)])
        .await
        .unwrap();
    assert!(store.credentials(bob_id).await.unwrap().is_empty());
    assert!(
        store
            .principal_by_local(did, "bob")
            .await
            .unwrap()
            .is_none()
    );
}

/// Append, read back, flags, CONDSTORE, expunge, quota, usage and the journal.
pub async fn mailbox_lifecycle(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    let (acct, inbox) = account_with_mailbox(&*store).await;
    let (mb0, _) = store.mailbox_entries(acct, inbox).await.unwrap();
    assert_eq!(mb0.uid_next, 1);
    assert!(mb0.uid_validity > 0);
    let m1 = put_message(&*blobs, acct, b"Subject: one\r\n\r\nbody one\r\n").await;
    let m2 = put_message(&*blobs, acct, b"Subject: two\r\n\r\nbody two\r\n").await;
    let (s1, s2) = (m1.blob.size, m2.blob.size);
    let m2_id = m2.id;
    let r = store
        .write(vec![append(m1.clone(), inbox), append(m2, inbox)])
        .await
        .unwrap();
    assert!(matches!(r[0], OpResult::Appended { uid: 1, .. }));
    assert!(matches!(r[1], OpResult::Appended { uid: 2, .. }));
    let got = store.message(acct, m1.id).await.unwrap().unwrap();
    assert_eq!(got, m1);
    // Bulk read: the account's own messages only; unknown ids are left out.
    let mut many = store
        .messages(acct, vec![m1.id, MessageId::generate(), m2_id])
        .await
        .unwrap();
    many.sort_by_key(|m| m.id.0);
    let mut want = vec![m1.id, m2_id];
    want.sort_by_key(|m| m.0);
    assert_eq!(many.iter().map(|m| m.id).collect::<Vec<_>>(), want);
    assert!(
        store
            .messages(PrincipalId::generate(), vec![m1.id])
            .await
            .unwrap()
            .is_empty()
    );
    // Subscription is a flag of the mailbox, not a journal change.
    let hm = store.highest_modseq(acct).await.unwrap();
    for on in [false, true] {
        store
            .write(vec![Op::SetSubscribed {
                account: acct,
                mailbox: inbox,
                subscribed: on,
            }])
            .await
            .unwrap();
        let mbs = store.mailboxes(acct).await.unwrap();
        assert_eq!(mbs.iter().find(|m| m.id == inbox).unwrap().subscribed, on);
    }
    assert_eq!(store.highest_modseq(acct).await.unwrap(), hm);
    assert_eq!(
        blobs.get(&got.blob.hash).await.unwrap(),
        b"Subject: one\r\n\r\nbody one\r\n"
    );
    let usage = store.usage(acct).await.unwrap();
    assert_eq!(
        usage,
        Usage {
            used_bytes: s1 + s2,
            messages: 2
        }
    );

    // Flags; CONDSTORE's UNCHANGEDSINCE skips a message modified after it.
    let before = store.highest_modseq(acct).await.unwrap();
    let r = store
        .write(vec![Op::StoreFlags {
            account: acct,
            mailbox: inbox,
            uids: vec![1, 2, 99],
            action: FlagAction::Add,
            flags: Flags::SEEN,
            keywords: vec!["$Important".into()],
            unchanged_since: None,
            scope: None,
        }])
        .await
        .unwrap();
    let OpResult::FlagsStored { changed, skipped } = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(changed.len(), 2);
    assert!(skipped.is_empty());
    let r = store
        .write(vec![Op::StoreFlags {
            account: acct,
            mailbox: inbox,
            uids: vec![1],
            action: FlagAction::Add,
            flags: Flags::FLAGGED,
            keywords: vec![],
            unchanged_since: Some(before),
            scope: None,
        }])
        .await
        .unwrap();
    assert_eq!(
        r[0],
        OpResult::FlagsStored {
            changed: vec![],
            skipped: vec![1]
        }
    );
    let (mb, entries) = store.mailbox_entries(acct, inbox).await.unwrap();
    assert!(entries[0].flags.contains(Flags::SEEN));
    assert_eq!(entries[0].keywords, vec!["$Important".to_string()]);
    assert_eq!(mb.highest_modseq, store.highest_modseq(acct).await.unwrap());

    // Expunge.
    let r = store
        .write(vec![Op::Expunge {
            account: acct,
            mailbox: inbox,
            uids: vec![1, 5],
            only_deleted: false,
        }])
        .await
        .unwrap();
    assert_eq!(r[0], OpResult::Expunged { uids: vec![1] });
    assert!(store.message(acct, m1.id).await.unwrap().is_none());
    assert_eq!(
        store.usage(acct).await.unwrap(),
        Usage {
            used_bytes: s2,
            messages: 1
        }
    );

    // Quota.
    store
        .write(vec![Op::SetQuota {
            principal: acct,
            quota_bytes: Some(s2 + 10),
        }])
        .await
        .unwrap();
    let big = put_message(&*blobs, acct, &[b'x'; 100]).await;
    assert!(matches!(
        store.write(vec![append(big, inbox)]).await,
        Err(StoreError::QuotaExceeded { .. })
    ));

    // The journal: every change, numbered without gaps, in order.
    let changes = store.changes_since(acct, 0, 1000).await.unwrap();
    let seqs: Vec<u64> = changes.iter().map(|c| c.modseq).collect();
    let want: Vec<u64> = (1..=store.highest_modseq(acct).await.unwrap()).collect();
    assert_eq!(seqs, want);
    assert_eq!(changes[0].kind, ChangeKind::MailboxCreated);
    assert!(
        changes
            .iter()
            .any(|c| c.kind == ChangeKind::MessageExpunged && c.uid == Some(1))
    );

    // A new mailbox with an old name gets a new UIDVALIDITY.
    store
        .write(vec![Op::DeleteMailbox {
            account: acct,
            mailbox: inbox,
        }])
        .await
        .unwrap();
    let again = mailbox(acct, "INBOX");
    let again_id = again.id;
    store.write(vec![Op::CreateMailbox(again)]).await.unwrap();
    let (mb2, entries) = store.mailbox_entries(acct, again_id).await.unwrap();
    assert!(entries.is_empty());
    assert!(mb2.uid_validity > mb0.uid_validity);
    assert_eq!(store.usage(acct).await.unwrap(), Usage::default());

    let report = verify_store(&*store, &*blobs).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

/// `mailbox_delta`: after a snapshot at modseq `m`, exactly the entries added or
/// re-flagged since and the UIDs expunged since, and the same view as a full re-read
/// once applied. Entries carry their message's size.
pub async fn mailbox_delta_rules(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    let (acct, inbox) = account_with_mailbox(&*store).await;
    let other = mailbox(acct, "Other");
    let other_id = other.id;
    store.write(vec![Op::CreateMailbox(other)]).await.unwrap();
    let mut ops = Vec::new();
    let mut sizes = Vec::new();
    for i in 0..4 {
        let m = put_message(
            &*blobs,
            acct,
            format!("Subject: {i}\r\n\r\nbody {i}\r\n").as_bytes(),
        )
        .await;
        sizes.push(m.blob.size);
        ops.push(append(m, inbox));
    }
    store.write(ops).await.unwrap();
    let (mb0, view0) = store.mailbox_entries(acct, inbox).await.unwrap();
    assert_eq!(view0.iter().map(|e| e.size).collect::<Vec<_>>(), sizes);
    // Nothing since the snapshot.
    let d = store
        .mailbox_delta(acct, inbox, mb0.highest_modseq)
        .await
        .unwrap();
    assert_eq!(d.mailbox, mb0);
    assert!(d.changed.is_empty() && d.expunged.is_empty());
    // A change in another mailbox is not this one's.
    let m = put_message(&*blobs, acct, b"Subject: elsewhere\r\n\r\nx\r\n").await;
    store.write(vec![append(m, other_id)]).await.unwrap();
    let d = store
        .mailbox_delta(acct, inbox, mb0.highest_modseq)
        .await
        .unwrap();
    assert!(d.changed.is_empty() && d.expunged.is_empty());
    // Flags on 2, expunge 3, add 5 and 6, expunge 6 again.
    store
        .write(vec![Op::StoreFlags {
            account: acct,
            mailbox: inbox,
            uids: vec![2],
            action: FlagAction::Add,
            flags: Flags::SEEN,
            keywords: vec!["$Work".into()],
            unchanged_since: None,
            scope: None,
        }])
        .await
        .unwrap();
    store
        .write(vec![Op::Expunge {
            account: acct,
            mailbox: inbox,
            uids: vec![3],
            only_deleted: false,
        }])
        .await
        .unwrap();
    let m5 = put_message(&*blobs, acct, b"Subject: five\r\n\r\n5\r\n").await;
    let m6 = put_message(&*blobs, acct, b"Subject: six\r\n\r\n6\r\n").await;
    let s5 = m5.blob.size;
    store
        .write(vec![append(m5, inbox), append(m6, inbox)])
        .await
        .unwrap();
    store
        .write(vec![Op::Expunge {
            account: acct,
            mailbox: inbox,
            uids: vec![6],
            only_deleted: false,
        }])
        .await
        .unwrap();
    let d = store
        .mailbox_delta(acct, inbox, mb0.highest_modseq)
        .await
        .unwrap();
    let (mb1, view1) = store.mailbox_entries(acct, inbox).await.unwrap();
    assert_eq!(d.mailbox, mb1);
    assert_eq!(
        d.changed.iter().map(|e| e.uid).collect::<Vec<_>>(),
        vec![2, 5]
    );
    assert!(d.changed[0].flags.contains(Flags::SEEN));
    assert_eq!(d.changed[0].keywords, vec!["$Work".to_string()]);
    assert_eq!(d.changed[1].size, s5);
    assert_eq!(d.expunged, vec![3, 6]);
    // Applying the delta to the old view gives the new one.
    let mut view: Vec<MailboxEntry> = view0
        .into_iter()
        .filter(|e| !d.expunged.contains(&e.uid))
        .collect();
    for e in &d.changed {
        match view.binary_search_by_key(&e.uid, |v| v.uid) {
            Ok(i) => view[i] = e.clone(),
            Err(i) => view.insert(i, e.clone()),
        }
    }
    assert_eq!(view, view1);
    // From an intermediate point only the later changes.
    let d2 = store
        .mailbox_delta(acct, inbox, d.changed[0].modseq)
        .await
        .unwrap();
    assert_eq!(
        d2.changed.iter().map(|e| e.uid).collect::<Vec<_>>(),
        vec![5]
    );
    assert_eq!(d2.expunged, vec![3, 6]);
    // Another account's view of this mailbox: not found.
    assert!(matches!(
        store.mailbox_delta(PrincipalId::generate(), inbox, 0).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Many writers and readers at once: every acknowledged write is visible afterwards,
/// readers always see a consistent snapshot, and the journal numbers changes in commit
/// order without gaps.
pub async fn concurrent_writers_and_readers(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 40;
    let (acct, _) = account_with_mailbox(&*store).await;
    let mut boxes = Vec::new();
    for i in 0..WRITERS {
        let m = mailbox(acct, &format!("box{i}"));
        boxes.push(m.id);
        store.write(vec![Op::CreateMailbox(m)]).await.unwrap();
    }
    let start_modseq = store.highest_modseq(acct).await.unwrap();
    let mut notices = store.subscribe();

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..3 {
        let store = store.clone();
        let boxes = boxes.clone();
        let stop = stop.clone();
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mb = boxes[(reads as usize + r) % boxes.len()];
                let (m, entries) = store.mailbox_entries(acct, mb).await.unwrap();
                // A snapshot: UIDs 1..uid_next, all present, none half-written.
                assert_eq!(entries.len() as u32, m.uid_next - 1);
                for (i, e) in entries.iter().enumerate() {
                    assert_eq!(e.uid, i as u32 + 1);
                    assert!(e.modseq <= m.highest_modseq);
                }
                if let Some(last) = entries.last() {
                    assert_eq!(last.modseq, m.highest_modseq);
                }
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        }));
    }

    let mut writers = Vec::new();
    for (w, mb) in boxes.iter().copied().enumerate() {
        let store = store.clone();
        let blobs = blobs.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..PER_WRITER {
                let body = format!("Subject: w{w} m{i}\r\n\r\n{}\r\n", "x".repeat(i));
                let m = put_message(&*blobs, acct, body.as_bytes()).await;
                let id = m.id;
                let r = store.write(vec![append(m, mb)]).await.unwrap();
                let OpResult::Appended { uid, modseq } = r[0] else {
                    panic!("{r:?}")
                };
                acked.push((id, uid, modseq, body));
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for w in writers {
        let acked = w.await.unwrap();
        // Each writer's own acknowledgements come back in increasing modseq order.
        assert!(acked.windows(2).all(|p| p[0].2 < p[1].2));
        assert!(acked.windows(2).all(|p| p[0].1 + 1 == p[1].1));
        all.extend(acked);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }

    // Every acknowledged message reads back byte-exact.
    for (id, _, _, body) in &all {
        let rec = store.message(acct, *id).await.unwrap().unwrap();
        assert_eq!(blobs.get(&rec.blob.hash).await.unwrap(), body.as_bytes());
    }
    // The modseqs handed out are exactly the next WRITERS*PER_WRITER numbers.
    let mut seqs: Vec<u64> = all.iter().map(|a| a.2).collect();
    seqs.sort_unstable();
    let want: Vec<u64> =
        (start_modseq + 1..=start_modseq + (WRITERS * PER_WRITER) as u64).collect();
    assert_eq!(seqs, want);
    // The journal agrees with what was acknowledged.
    let changes = store
        .changes_since(acct, start_modseq, 100_000)
        .await
        .unwrap();
    let by_seq: HashMap<u64, &Change> = changes.iter().map(|c| (c.modseq, c)).collect();
    for (id, uid, modseq, _) in &all {
        let c = by_seq[modseq];
        assert_eq!(c.message, Some(*id));
        assert_eq!(c.uid, Some(*uid));
    }
    // Notices arrive in commit order: strictly increasing modseqs.
    let mut last = start_modseq;
    let mut n = 0;
    while let Ok(notice) = notices.try_recv() {
        assert!(
            notice.modseq > last,
            "notice {} after {}",
            notice.modseq,
            last
        );
        last = notice.modseq;
        n += 1;
    }
    assert_eq!(n, WRITERS * PER_WRITER);
    let report = verify_store(&*store, &*blobs).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

/// Batches committed together fail alone: a conflicting batch does not take its
/// neighbours in the same group commit down with it.
pub async fn group_commit_isolation(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Every third batch collides on one name.
            let name = if i % 3 == 0 {
                "same.example".to_string()
            } else {
                format!("d{i}.example")
            };
            store
                .write(vec![Op::CreateDomain(domain(&name))])
                .await
                .is_ok()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    let unique = (0..50).filter(|i| i % 3 != 0).count() + 1;
    assert_eq!(ok, unique);
    assert_eq!(store.domains().await.unwrap().len(), unique);
}

/// The ledger chains entries appended from many tasks; changing one breaks the chain.
pub async fn ledger_chain(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for n in 0..40 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = store
                .write(vec![Op::AppendLedger(record("message.read", n))])
                .await
                .unwrap();
            let OpResult::LedgerAppended { seq, .. } = r[0] else {
                panic!()
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
    assert_eq!(verify_ledger(&*store).await.unwrap(), Ok(40));
    let q = LedgerQuery {
        account: Some("user7@example.com".into()),
        ..Default::default()
    };
    let found = store.ledger(&q).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].record.objects, vec!["n:7".to_string()]);
    let q = LedgerQuery {
        from_seq: 39,
        ..Default::default()
    };
    assert_eq!(store.ledger(&q).await.unwrap().len(), 2);
}

/// Rules at the edges: a copy counts the stored size, a UID named twice is acted on
/// once, and the main password is only ever replaced, never added.
pub async fn edge_rules(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    let (acct, inbox) = account_with_mailbox(&*store).await;
    let other = mailbox(acct, "Other");
    let other_id = other.id;
    store.write(vec![Op::CreateMailbox(other)]).await.unwrap();
    let m = put_message(&*blobs, acct, b"Subject: x\r\n\r\nhello\r\n").await;
    let real = m.blob.size;
    store.write(vec![append(m.clone(), inbox)]).await.unwrap();
    // The same record appended to a second mailbox (a copy) claiming another size.
    let mut copy = m.clone();
    copy.blob.size = 1_000_000;
    store.write(vec![append(copy, other_id)]).await.unwrap();
    assert_eq!(
        store.usage(acct).await.unwrap(),
        Usage {
            used_bytes: 2 * real,
            messages: 2
        }
    );

    let r = store
        .write(vec![Op::StoreFlags {
            account: acct,
            mailbox: inbox,
            uids: vec![1, 1, 1],
            action: FlagAction::Add,
            flags: Flags::SEEN,
            keywords: vec![],
            unchanged_since: None,
            scope: None,
        }])
        .await
        .unwrap();
    let OpResult::FlagsStored { changed, skipped } = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(changed.len(), 1);
    assert!(skipped.is_empty());
    let r = store
        .write(vec![Op::Expunge {
            account: acct,
            mailbox: inbox,
            uids: vec![1, 1],
            only_deleted: false,
        }])
        .await
        .unwrap();
    assert_eq!(r[0], OpResult::Expunged { uids: vec![1] });
    assert_eq!(
        store.usage(acct).await.unwrap(),
        Usage {
            used_bytes: real,
            messages: 1
        }
    );

    let password = Credential {
        id: CredentialId::generate(),
        principal: acct,
        kind: CredentialKind::Password,
        label: "second".into(),
        protocols: vec![],
        hash: "$argon2id$fake".into(),
        created_ms: now_ms(),
    };
    assert!(matches!(
        store.write(vec![Op::AddCredential(password)]).await,
        Err(StoreError::Refused(_))
    ));
    let report = verify_store(&*store, &*blobs).await.unwrap();
    assert!(report.ok(), "{:?}", report.problems);
}

async fn append_one(
    store: &dyn Store,
    blobs: &dyn BlobStore,
    acct: PrincipalId,
    inbox: MailboxId,
    tag: &str,
) -> u64 {
    let m = put_message(
        blobs,
        acct,
        format!("Subject: {tag}\r\n\r\n.\r\n").as_bytes(),
    )
    .await;
    let r = store.write(vec![append(m, inbox)]).await.unwrap();
    match r[0] {
        OpResult::Appended { modseq, .. } => modseq,
        ref other => panic!("{other:?}"),
    }
}

/// Happens-before: a change submitted after another was acknowledged gets a higher
/// modseq, even when the two come from different tasks (journal order = commit order).
pub async fn journal_follows_acknowledgements(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    const ROUNDS: usize = 25;
    let (acct, inbox) = account_with_mailbox(&*store).await;
    let (to_b, mut from_a) = tokio::sync::mpsc::channel::<u64>(1);
    let (to_a, mut from_b) = tokio::sync::mpsc::channel::<u64>(1);
    let (s, b) = (store.clone(), blobs.clone());
    let a = tokio::spawn(async move {
        for i in 0..ROUNDS {
            let theirs = if i == 0 {
                0
            } else {
                from_b.recv().await.unwrap()
            };
            let mine = append_one(&*s, &*b, acct, inbox, &format!("a{i}")).await;
            assert!(
                mine > theirs,
                "a: {mine} submitted after {theirs} was acknowledged"
            );
            to_b.send(mine).await.unwrap();
        }
    });
    let (s, b) = (store.clone(), blobs.clone());
    let b = tokio::spawn(async move {
        for i in 0..ROUNDS {
            let theirs = from_a.recv().await.unwrap();
            let mine = append_one(&*s, &*b, acct, inbox, &format!("b{i}")).await;
            assert!(
                mine > theirs,
                "b: {mine} submitted after {theirs} was acknowledged"
            );
            let _ = to_a.send(mine).await;
        }
    });
    a.await.unwrap();
    b.await.unwrap();
    let changes = store.changes_since(acct, 0, 10_000).await.unwrap();
    assert!(changes.windows(2).all(|w| w[0].modseq + 1 == w[1].modseq));
}

fn queued_message(blob: BlobRef, now: i64) -> QueuedMessage {
    QueuedMessage {
        id: QueueId::random(),
        blob,
        sender: "alice@example.com".into(),
        account: None,
        envid: Some("ENV+2B1".into()),
        ret: Some("HDRS".into()),
        requiretls: false,
        smtputf8: true,
        eight_bit: false,
        created_ms: now,
        expires_ms: now + 5 * 86_400_000,
    }
}

fn queued_recipient(message: QueueId, idx: u32, address: &str, due: i64) -> QueuedRecipient {
    QueuedRecipient {
        message,
        idx,
        address: address.into(),
        domain: address.rsplit('@').next().unwrap().to_ascii_lowercase(),
        orcpt: Some(format!("rfc822;{address}")),
        notify: None,
        state: RecipientState::Queued,
        attempts: 0,
        next_attempt_ms: due,
        last_status: None,
        last_error: None,
        remote_host: None,
        delay_notified: false,
        lease_owner: None,
        lease_until_ms: 0,
    }
}

fn claimed(r: &[OpResult]) -> Vec<(QueueId, u32)> {
    match r.first() {
        Some(OpResult::Claimed(c)) => c.clone(),
        other => panic!("expected Claimed, got {other:?}"),
    }
}

fn claim(owner: &str, now: i64, lease: i64, limit: u32) -> Op {
    Op::ClaimQueued {
        owner: owner.into(),
        now_ms: now,
        lease_until_ms: now + lease,
        limit,
    }
}

/// The outbound queue: enqueue, read back, claims with leases (due only, one owner at a
/// time, expired leases free again, concurrent claimers never share a recipient), updates
/// release leases, removal; queue blobs are referenced; DKIM keys per domain.
pub async fn queue_rules(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    let now = now_ms();
    let blob = blobs
        .put(b"Subject: queued\r\n\r\nbody\r\n".to_vec())
        .await
        .unwrap();
    let m1 = queued_message(blob.clone(), now);
    let m2 = queued_message(blob.clone(), now + 1);
    let later = queued_message(blob.clone(), now + 2);
    store
        .write(vec![
            Op::Enqueue {
                message: m1.clone(),
                recipients: vec![
                    queued_recipient(m1.id, 0, "bob@example.net", now),
                    queued_recipient(m1.id, 1, "carol@Example.ORG", now),
                ],
            },
            Op::Enqueue {
                message: m2.clone(),
                recipients: vec![queued_recipient(m2.id, 0, "dave@example.net", now)],
            },
            Op::Enqueue {
                message: later.clone(),
                recipients: vec![queued_recipient(
                    later.id,
                    0,
                    "erin@example.net",
                    now + 60_000,
                )],
            },
        ])
        .await
        .unwrap();
    // No recipients: refused, nothing written.
    let empty = queued_message(blob.clone(), now);
    assert!(
        store
            .write(vec![Op::Enqueue {
                message: empty.clone(),
                recipients: vec![]
            }])
            .await
            .is_err()
    );
    assert!(store.queued(empty.id).await.unwrap().is_none());

    let (m, r) = store.queued(m1.id).await.unwrap().unwrap();
    assert_eq!(m, m1);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].domain, "example.org");
    assert_eq!(r[1].orcpt.as_deref(), Some("rfc822;carol@Example.ORG"));
    let all = store.queue(10).await.unwrap();
    assert_eq!(
        all.iter().map(|(m, _)| m.id).collect::<Vec<_>>(),
        vec![m1.id, m2.id, later.id]
    );
    assert_eq!(store.queue(1).await.unwrap().len(), 1);
    let stats = store.queue_stats().await.unwrap();
    assert_eq!((stats.messages, stats.queued_recipients), (3, 4));
    assert_eq!(stats.oldest_created_ms, Some(now));
    assert_eq!(stats.next_due_ms, Some(now));
    assert!(store.referenced_blobs().await.unwrap().contains(&blob));

    // Claim one message's worth: all its due recipients.
    // Equally due messages come in no set order: claim them apart by lease owner.
    let c1 = claimed(
        &store
            .write(vec![claim("node-a", now, 60_000, 1)])
            .await
            .unwrap(),
    );
    let c2 = claimed(
        &store
            .write(vec![claim("node-b", now, 60_000, 10)])
            .await
            .unwrap(),
    );
    let (mut a, mut b) = (c1.clone(), c2.clone());
    if c1[0].0 == m2.id {
        // node-a got m2: swap the roles for the rest of the test by re-claiming after
        // updates below would complicate it; release both and claim m1 for node-a.
        store
            .write(vec![Op::UpdateQueued {
                owner: None,
                updates: c1
                    .iter()
                    .chain(c2.iter())
                    .map(|(m, i)| QueueUpdate {
                        message: *m,
                        idx: *i,
                        state: RecipientState::Queued,
                        attempts: 0,
                        next_attempt_ms: if *m == m1.id { now } else { now + 1 },
                        last_status: None,
                        last_error: None,
                        remote_host: None,
                        delay_notified: false,
                    })
                    .collect(),
            }])
            .await
            .unwrap();
        a = claimed(
            &store
                .write(vec![claim("node-a", now, 60_000, 1)])
                .await
                .unwrap(),
        );
        b = claimed(
            &store
                .write(vec![claim("node-b", now + 1, 60_000, 10)])
                .await
                .unwrap(),
        );
    }
    assert_eq!(a, vec![(m1.id, 0), (m1.id, 1)]);
    // Another node gets the next one; the future one is not due; nothing twice.
    assert_eq!(b, vec![(m2.id, 0)]);
    assert!(
        claimed(
            &store
                .write(vec![claim("node-b", now + 1, 60_000, 10)])
                .await
                .unwrap()
        )
        .is_empty()
    );
    let (_, r) = store.queued(m1.id).await.unwrap().unwrap();
    assert_eq!(r[0].lease_owner.as_deref(), Some("node-a"));

    // node-b cannot settle what node-a holds: nothing changes.
    let late = QueueUpdate {
        message: m1.id,
        idx: 0,
        state: RecipientState::Failed,
        attempts: 9,
        next_attempt_ms: now,
        last_status: Some("5.0.0".into()),
        last_error: None,
        remote_host: None,
        delay_notified: false,
    };
    let r = store
        .write(vec![Op::UpdateQueued {
            owner: Some("node-b".into()),
            updates: vec![late],
        }])
        .await
        .unwrap();
    assert_eq!(
        r[0],
        OpResult::QueueUpdated {
            changed: vec![],
            removed: false
        }
    );
    // node-a finishes one recipient and defers the other; the lease is released.
    store
        .write(vec![Op::UpdateQueued {
            owner: Some("node-a".into()),
            updates: vec![
                QueueUpdate {
                    message: m1.id,
                    idx: 0,
                    state: RecipientState::Delivered,
                    attempts: 1,
                    next_attempt_ms: now,
                    last_status: Some("2.0.0".into()),
                    last_error: None,
                    remote_host: Some("mx.example.net".into()),
                    delay_notified: false,
                },
                QueueUpdate {
                    message: m1.id,
                    idx: 1,
                    state: RecipientState::Queued,
                    attempts: 1,
                    next_attempt_ms: now + 30_000,
                    last_status: Some("4.4.1".into()),
                    last_error: Some("connection refused".into()),
                    remote_host: None,
                    delay_notified: true,
                },
            ],
        }])
        .await
        .unwrap();
    let (_, r) = store.queued(m1.id).await.unwrap().unwrap();
    assert_eq!(r[0].state, RecipientState::Delivered);
    assert_eq!(r[1].state, RecipientState::Queued);
    assert_eq!((r[1].attempts, r[1].delay_notified), (1, true));
    assert_eq!(r[1].last_error.as_deref(), Some("connection refused"));
    assert_eq!(r[1].lease_owner, None);
    assert_eq!(store.queue_stats().await.unwrap().queued_recipients, 3);

    // node-b died holding m2: after its lease runs out the recipient is free again, and
    // the deferred one comes due.
    let t = now + 61_000;
    let c3 = claimed(
        &store
            .write(vec![claim("node-a", t, 60_000, 10)])
            .await
            .unwrap(),
    );
    assert_eq!(c3.len(), 3, "{c3:?}");
    assert!(c3.contains(&(m2.id, 0)) && c3.contains(&(m1.id, 1)) && c3.contains(&(later.id, 0)));

    // Concurrent claimers on many messages never share a recipient.
    let mut ops = Vec::new();
    for i in 0..40u32 {
        let m = queued_message(blob.clone(), now + 10 + i64::from(i));
        ops.push(Op::Enqueue {
            recipients: vec![
                queued_recipient(m.id, 0, "x@example.net", now),
                queued_recipient(m.id, 1, "y@example.net", now),
            ],
            message: m,
        });
    }
    store.write(ops).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..4 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = claimed(
                    &s.write(vec![claim(&format!("n{n}"), t, 60_000, 3)])
                        .await
                        .unwrap(),
                );
                if got.is_empty() {
                    break mine;
                }
                mine.extend(got);
            }
        }));
    }
    let mut every = Vec::new();
    for task in tasks {
        every.extend(task.await.unwrap());
    }
    let total = every.len();
    every.sort();
    every.dedup();
    assert_eq!(every.len(), total, "a recipient was claimed twice");
    assert_eq!(total, 80);

    // An operator's retry makes an unleased recipient due now (leased ones stay).
    let r = store
        .write(vec![Op::RetryQueued {
            message: m1.id,
            now_ms: t + 61_000,
        }])
        .await
        .unwrap();
    assert_eq!(r[0], OpResult::Retried(1));
    let r = store
        .write(vec![Op::RetryQueued {
            message: later.id,
            now_ms: t,
        }])
        .await
        .unwrap();
    assert_eq!(r[0], OpResult::Retried(0), "still leased to node-a");

    // Settling the last queued recipient removes the message in the same batch.
    let (_, r) = store.queued(m2.id).await.unwrap().unwrap();
    assert_eq!(r.len(), 1);
    let done = store
        .write(vec![Op::UpdateQueued {
            owner: Some("node-a".into()),
            updates: vec![QueueUpdate {
                message: m2.id,
                idx: 0,
                state: RecipientState::Failed,
                attempts: 1,
                next_attempt_ms: t,
                last_status: Some("5.1.1".into()),
                last_error: Some("550 no such user".into()),
                remote_host: None,
                delay_notified: false,
            }],
        }])
        .await
        .unwrap();
    assert_eq!(
        done[0],
        OpResult::QueueUpdated {
            changed: vec![0],
            removed: true
        }
    );
    assert!(store.queued(m2.id).await.unwrap().is_none());

    // Removal.
    store.write(vec![Op::RemoveQueued(m1.id)]).await.unwrap();
    assert!(store.queued(m1.id).await.unwrap().is_none());
    assert!(store.write(vec![Op::RemoveQueued(m1.id)]).await.is_err());

    // DKIM keys: per domain, selector unique, removed with the domain.
    let d = domain("signing.example");
    let did = d.id;
    store.write(vec![Op::CreateDomain(d)]).await.unwrap();
    let key = |sel: &str, alg: &str| DkimKeyRecord {
        domain: did,
        selector: sel.into(),
        algorithm: alg.into(),
        private_der: vec![0x30, 0x82, 0, 1, 2, 3],
        created_ms: now,
    };
    store
        .write(vec![
            Op::AddDkimKey(key("s1", "ed25519")),
            Op::AddDkimKey(key("s2", "rsa")),
        ])
        .await
        .unwrap();
    assert!(
        store
            .write(vec![Op::AddDkimKey(key("s1", "rsa"))])
            .await
            .is_err()
    );
    let keys = store.dkim_keys(did).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].private_der, vec![0x30, 0x82, 0, 1, 2, 3]);
    // The private key never shows in Debug output.
    assert!(!format!("{:?}", keys[0]).contains("48, 130"));
    store
        .write(vec![Op::RemoveDkimKey {
            domain: did,
            selector: "s2".into(),
        }])
        .await
        .unwrap();
    assert_eq!(store.dkim_keys(did).await.unwrap().len(), 1);
    store.write(vec![Op::RemoveDomain(did)]).await.unwrap();
    assert!(store.dkim_keys(did).await.unwrap().is_empty());
    assert!(
        verify_store(store.as_ref(), blobs.as_ref())
            .await
            .unwrap()
            .problems
            .is_empty()
    );
}

/// Time-range filters against the plain overlap rule, over resources of every span
/// around the embedded backend's short-span index bound (31 days), open-ended, undated
/// and half-dated ones, and ranges with and without either side: the index changes
/// how resources are found, never which.
pub async fn dav_time_ranges(store: Arc<dyn Store>, _blobs: Arc<dyn BlobStore>) {
    let d = domain("example.com");
    let alice = principal(d.id, "alice", PrincipalKind::Individual);
    let a = alice.id;
    store
        .write(vec![Op::CreateDomain(d), Op::CreatePrincipal(alice)])
        .await
        .unwrap();
    let cal = dav_collection(a, "calendar", DavKind::Calendar);
    let cal_id = cal.id;
    store
        .write(vec![Op::CreateDavCollection(cal)])
        .await
        .unwrap();
    const DAY: i64 = 24 * 3600 * 1000;
    let t0: i64 = 1_893_456_000_000; // 2030-01-01
    let bound = 31 * DAY;
    let mut spans: Vec<(Option<i64>, Option<i64>)> = Vec::new();
    for (i, len) in [
        1,
        3600 * 1000,
        DAY,
        bound - 1,
        bound,
        bound + 1,
        2 * bound,
        400 * DAY,
    ]
    .into_iter()
    .enumerate()
    {
        for start in [t0 - 40 * DAY, t0 - bound, t0, t0 + (i as i64) * 7 * DAY] {
            spans.push((Some(start), Some(start + len)));
        }
    }
    spans.extend([
        (Some(t0 + 3 * DAY), Some(i64::MAX)),
        (Some(i64::MIN / 2), Some(i64::MAX)),
        (Some(-5 * DAY), Some(-4 * DAY)),
        (None, None),
        (Some(t0 + DAY), None),
        (None, Some(t0 + DAY)),
    ]);
    let mut ops = Vec::new();
    for (i, (s, e)) in spans.iter().enumerate() {
        let mut r = dav_resource(
            a,
            cal_id,
            &format!("r{i:03}.ics"),
            &format!("u{i}"),
            "x",
            None,
        );
        (r.start_ms, r.end_ms) = (*s, *e);
        ops.push(Op::PutDavResource {
            resource: r,
            expect: DavExpect::Any,
        });
    }
    store.write(ops).await.unwrap();
    let mut queries: Vec<(Option<i64>, Option<i64>)> = vec![(None, None)];
    for start in [
        t0 - 60 * DAY,
        t0 - bound - 1,
        t0 - bound,
        t0 - DAY,
        t0,
        t0 + 1,
        t0 + 10 * DAY,
        t0 + 45 * DAY,
        t0 + 500 * DAY,
    ] {
        for len in [1, DAY, bound, 3 * bound] {
            queries.push((Some(start), Some(start + len)));
        }
        queries.push((Some(start), None));
        queries.push((None, Some(start)));
    }
    for (qs, qe) in queries {
        let mut want: Vec<String> = spans
            .iter()
            .enumerate()
            .filter(|(_, (s, e))| {
                qs.is_none_or(|q| e.is_none_or(|e| e > q))
                    && qe.is_none_or(|q| s.is_none_or(|s| s < q))
            })
            .map(|(i, _)| format!("r{i:03}.ics"))
            .collect();
        want.sort();
        for with_data in [false, true] {
            let got: Vec<String> = store
                .dav_resources(
                    a,
                    cal_id,
                    DavFilter {
                        component: Some("VEVENT".into()),
                        start_ms: qs,
                        end_ms: qe,
                        with_data,
                    },
                )
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.name)
                .collect();
            assert_eq!(got, want, "range {qs:?}..{qe:?}");
        }
    }
}

fn dav_collection(account: PrincipalId, name: &str, kind: DavKind) -> DavCollection {
    DavCollection {
        id: DavCollectionId::generate(),
        account,
        kind,
        name: name.into(),
        display_name: name.into(),
        color: None,
        order: None,
        description: None,
        timezone: None,
        components: if kind.is_calendar() {
            vec!["VEVENT".into(), "VTODO".into()]
        } else {
            vec![]
        },
        modseq: 0,
        created_ms: now_ms(),
    }
}

fn dav_resource(
    account: PrincipalId,
    collection: DavCollectionId,
    name: &str,
    uid: &str,
    data: &str,
    range: Option<(i64, i64)>,
) -> DavResource {
    DavResource {
        id: DavResourceId::generate(),
        account,
        collection,
        name: name.into(),
        etag: format!("etag-{uid}-{}", data.len()),
        data: data.into(),
        size: data.len() as u64,
        component: "VEVENT".into(),
        uid: uid.into(),
        start_ms: range.map(|r| r.0),
        end_ms: range.map(|r| r.1),
        modseq: 0,
        modified_ms: now_ms(),
    }
}

/// DAV collections and resources: create (unique names per account), properties,
/// conditional put/delete (If-Match / If-None-Match), one UID per collection, time-range
/// and component filters on the index, multiget by name, sync changes with tombstones
/// from journal numbers, isolation between accounts, removal with the collection and
/// the principal; the journal stays continuous.
pub async fn dav_rules(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    let d = domain("example.com");
    let alice = principal(d.id, "alice", PrincipalKind::Individual);
    let bob = principal(d.id, "bob", PrincipalKind::Individual);
    let (a, b) = (alice.id, bob.id);
    store
        .write(vec![
            Op::CreateDomain(d),
            Op::CreatePrincipal(alice),
            Op::CreatePrincipal(bob),
        ])
        .await
        .unwrap();

    let cal = dav_collection(a, "calendar", DavKind::Calendar);
    let book = dav_collection(a, "contacts", DavKind::AddressBook);
    let (cal_id, book_id) = (cal.id, book.id);
    store
        .write(vec![
            Op::CreateDavCollection(cal.clone()),
            Op::CreateDavCollection(book),
        ])
        .await
        .unwrap();
    // Same name for the same account: refused; for another account: fine.
    let dup = dav_collection(a, "calendar", DavKind::Tasks);
    assert!(matches!(
        store.write(vec![Op::CreateDavCollection(dup)]).await,
        Err(StoreError::Conflict(_))
    ));
    let bob_cal = dav_collection(b, "calendar", DavKind::Calendar);
    let bob_cal_id = bob_cal.id;
    store
        .write(vec![Op::CreateDavCollection(bob_cal)])
        .await
        .unwrap();

    let cols = store.dav_collections(a).await.unwrap();
    assert_eq!(
        cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["calendar", "contacts"]
    );
    assert_eq!(cols[0].kind, DavKind::Calendar);
    assert_eq!(cols[0].components, ["VEVENT", "VTODO"]);
    assert_eq!(cols[1].kind, DavKind::AddressBook);
    assert!(cols[1].components.is_empty());
    let created_modseq = cols[0].modseq;
    assert!(created_modseq > 0);

    // Properties: set, leave, remove.
    store
        .write(vec![Op::UpdateDavCollection {
            account: a,
            collection: cal_id,
            props: DavCollectionProps {
                display_name: Some("Work".into()),
                color: Some(Some("#FF0000FF".into())),
                order: Some(Some(3)),
                description: Some(Some("desc".into())),
                timezone: Some(Some("BEGIN:VCALENDAR tz".into())),
            },
        }])
        .await
        .unwrap();
    store
        .write(vec![Op::UpdateDavCollection {
            account: a,
            collection: cal_id,
            props: DavCollectionProps {
                description: Some(None),
                ..Default::default()
            },
        }])
        .await
        .unwrap();
    let c0 = store.dav_collections(a).await.unwrap().remove(0);
    assert_eq!(c0.display_name, "Work");
    assert_eq!(c0.color.as_deref(), Some("#FF0000FF"));
    assert_eq!(c0.order, Some(3));
    assert_eq!(c0.description, None);
    assert_eq!(c0.timezone.as_deref(), Some("BEGIN:VCALENDAR tz"));
    assert!(c0.modseq > created_modseq);
    // Another account cannot touch it.
    assert!(matches!(
        store
            .write(vec![Op::UpdateDavCollection {
                account: b,
                collection: cal_id,
                props: DavCollectionProps::default(),
            }])
            .await,
        Err(StoreError::NotFound(_))
    ));

    // Conditional puts.
    let r1 = dav_resource(
        a,
        cal_id,
        "one.ics",
        "u1",
        "BEGIN:VCALENDAR one",
        Some((1000, 2000)),
    );
    let res = store
        .write(vec![Op::PutDavResource {
            resource: r1.clone(),
            expect: DavExpect::Absent,
        }])
        .await
        .unwrap();
    let OpResult::DavWritten {
        created,
        modseq: m1,
    } = res[0]
    else {
        panic!("{res:?}")
    };
    assert!(created);
    assert!(matches!(
        store
            .write(vec![Op::PutDavResource {
                resource: r1.clone(),
                expect: DavExpect::Absent,
            }])
            .await,
        Err(StoreError::Modified(_))
    ));
    assert!(matches!(
        store
            .write(vec![Op::PutDavResource {
                resource: dav_resource(a, cal_id, "new.ics", "u9", "x", None),
                expect: DavExpect::Present,
            }])
            .await,
        Err(StoreError::Modified(_))
    ));
    let mut r1b = dav_resource(
        a,
        cal_id,
        "one.ics",
        "u1",
        "BEGIN:VCALENDAR one v2",
        Some((1000, 3000)),
    );
    assert!(matches!(
        store
            .write(vec![Op::PutDavResource {
                resource: r1b.clone(),
                expect: DavExpect::Etag("nope".into()),
            }])
            .await,
        Err(StoreError::Modified(_))
    ));
    let res = store
        .write(vec![Op::PutDavResource {
            resource: r1b.clone(),
            expect: DavExpect::Etag(r1.etag.clone()),
        }])
        .await
        .unwrap();
    let OpResult::DavWritten {
        created,
        modseq: m2,
    } = res[0]
    else {
        panic!("{res:?}")
    };
    assert!(!created && m2 > m1);
    r1b.modseq = m2;
    // One UID per collection.
    assert!(matches!(
        store
            .write(vec![Op::PutDavResource {
                resource: dav_resource(a, cal_id, "other.ics", "u1", "dup", None),
                expect: DavExpect::Any,
            }])
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Bob cannot write into Alice's collection, nor read it.
    assert!(matches!(
        store
            .write(vec![Op::PutDavResource {
                resource: dav_resource(b, cal_id, "evil.ics", "ue", "x", None),
                expect: DavExpect::Any,
            }])
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        store
            .dav_resources(b, cal_id, DavFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .dav_resources_named(b, cal_id, vec!["one.ics".into()])
            .await
            .unwrap()
            .is_empty()
    );

    let r2 = dav_resource(a, cal_id, "two.ics", "u2", "two", Some((5000, 6000)));
    let r3 = dav_resource(a, cal_id, "three.ics", "u3", "three", None);
    let mut r4 = dav_resource(a, cal_id, "four.ics", "u4", "four", Some((500, i64::MAX)));
    r4.component = "VTODO".into();
    store
        .write(vec![
            Op::PutDavResource {
                resource: r2,
                expect: DavExpect::Any,
            },
            Op::PutDavResource {
                resource: r3,
                expect: DavExpect::Any,
            },
            Op::PutDavResource {
                resource: r4,
                expect: DavExpect::Any,
            },
        ])
        .await
        .unwrap();

    // Listing without data, filters on the index.
    let names = |v: Vec<DavResource>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
    let all = store
        .dav_resources(a, cal_id, DavFilter::default())
        .await
        .unwrap();
    assert!(all.iter().all(|r| r.data.is_empty()));
    assert_eq!(
        names(all.clone()),
        ["four.ics", "one.ics", "three.ics", "two.ics"]
    );
    let one = all.iter().find(|r| r.name == "one.ics").unwrap();
    assert_eq!(one.etag, r1b.etag);
    assert_eq!(one.size, r1b.data.len() as u64);
    assert_eq!((one.start_ms, one.end_ms), (Some(1000), Some(3000)));
    assert_eq!(one.modseq, m2);
    let range = |s: Option<i64>, e: Option<i64>, comp: Option<&str>| DavFilter {
        component: comp.map(str::to_string),
        start_ms: s,
        end_ms: e,
        with_data: true,
    };
    let got = store
        .dav_resources(a, cal_id, range(Some(2500), Some(5500), Some("VEVENT")))
        .await
        .unwrap();
    assert_eq!(names(got.clone()), ["one.ics", "three.ics", "two.ics"]);
    assert_eq!(got[0].data, "BEGIN:VCALENDAR one v2");
    // End is exclusive on both sides.
    assert_eq!(
        names(
            store
                .dav_resources(a, cal_id, range(Some(3000), Some(5000), Some("VEVENT")))
                .await
                .unwrap()
        ),
        ["three.ics"]
    );
    assert_eq!(
        names(
            store
                .dav_resources(a, cal_id, range(Some(1_000_000), None, Some("VTODO")))
                .await
                .unwrap()
        ),
        ["four.ics"]
    );

    // Multiget by name: unknown names left out, duplicates once.
    let got = store
        .dav_resources_named(
            a,
            cal_id,
            vec![
                "two.ics".into(),
                "nope.ics".into(),
                "one.ics".into(),
                "two.ics".into(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(names(got.clone()), ["one.ics", "two.ics"]);
    assert_eq!(got[1].data, "two");

    // Sync: changes after a journal number, tombstones included.
    let changes = store.dav_changes(a, cal_id, m1, 100).await.unwrap();
    assert_eq!(
        changes.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["one.ics", "two.ics", "three.ics", "four.ics"]
    );
    assert!(matches!(
        store
            .write(vec![Op::DeleteDavResource {
                account: a,
                collection: cal_id,
                name: "two.ics".into(),
                expect: DavExpect::Etag("wrong".into()),
            }])
            .await,
        Err(StoreError::Modified(_))
    ));
    assert!(matches!(
        store
            .write(vec![Op::DeleteDavResource {
                account: b,
                collection: cal_id,
                name: "two.ics".into(),
                expect: DavExpect::Any,
            }])
            .await,
        Err(StoreError::NotFound(_))
    ));
    let before_delete = store.dav_collections(a).await.unwrap()[0].modseq;
    store
        .write(vec![Op::DeleteDavResource {
            account: a,
            collection: cal_id,
            name: "two.ics".into(),
            expect: DavExpect::Any,
        }])
        .await
        .unwrap();
    assert!(matches!(
        store
            .write(vec![Op::DeleteDavResource {
                account: a,
                collection: cal_id,
                name: "two.ics".into(),
                expect: DavExpect::Any,
            }])
            .await,
        Err(StoreError::NotFound(_))
    ));
    let after = store
        .dav_changes(a, cal_id, before_delete, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].name, "two.ics");
    assert_eq!(after[0].etag, None);
    assert_eq!(
        store.dav_collections(a).await.unwrap()[0].modseq,
        after[0].modseq
    );
    assert_eq!(store.highest_modseq(a).await.unwrap(), after[0].modseq);
    assert!(
        store
            .dav_resources_named(a, cal_id, vec!["two.ics".into()])
            .await
            .unwrap()
            .is_empty()
    );
    // The tombstone's name is free again (and reported as changed, not removed).
    store
        .write(vec![Op::PutDavResource {
            resource: dav_resource(a, cal_id, "two.ics", "u2", "two again", None),
            expect: DavExpect::Absent,
        }])
        .await
        .unwrap();
    let after = store
        .dav_changes(a, cal_id, before_delete, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert!(after[0].etag.is_some());
    // Limit.
    assert_eq!(store.dav_changes(a, cal_id, 0, 2).await.unwrap().len(), 2);
    // Bob sees nothing of Alice's changes.
    assert!(
        store
            .dav_changes(b, cal_id, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // The journal has an entry for every DAV change, continuous.
    let changes = store.changes_since(a, 0, 10_000).await.unwrap();
    assert!(
        changes
            .iter()
            .any(|c| c.kind == ChangeKind::DavResourceRemoved
                && c.mailbox.map(|m| m.0) == Some(cal_id.0))
    );
    for (i, c) in changes.iter().enumerate() {
        assert_eq!(c.modseq, i as u64 + 1);
    }

    // Deleting the collection removes its resources; Bob's is untouched.
    store
        .write(vec![Op::DeleteDavCollection {
            account: a,
            collection: cal_id,
        }])
        .await
        .unwrap();
    assert_eq!(
        store
            .dav_collections(a)
            .await
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect::<Vec<_>>(),
        [book_id]
    );
    assert!(
        store
            .dav_resources(a, cal_id, DavFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.dav_collections(b).await.unwrap()[0].id, bob_cal_id);

    // Removing the principal removes its collections.
    store
        .write(vec![Op::PutDavResource {
            resource: DavResource {
                component: "VCARD".into(),
                ..dav_resource(a, book_id, "c.vcf", "c1", "BEGIN:VCARD", None)
            },
            expect: DavExpect::Any,
        }])
        .await
        .unwrap();
    store.write(vec![Op::RemovePrincipal(a)]).await.unwrap();
    assert!(store.dav_collections(a).await.unwrap().is_empty());
    assert_eq!(store.dav_collections(b).await.unwrap().len(), 1);
    let report = verify_store(&*store, &*blobs).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// IMAP EXPUNGE removes only what is `\Deleted` when it commits (`only_deleted`): a UID
/// another session undeleted since the caller looked stays; MOVE's expunge (`false`)
/// removes what it names.
pub async fn expunge_only_deleted(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    let (account, mailbox) = account_with_mailbox(store.as_ref()).await;
    for i in 0..3 {
        let m = put_message(blobs.as_ref(), account, format!("m{i}").as_bytes()).await;
        store.write(vec![append(m, mailbox)]).await.unwrap();
    }
    store
        .write(vec![Op::StoreFlags {
            account,
            mailbox,
            uids: vec![1, 2],
            action: FlagAction::Add,
            flags: Flags::DELETED,
            keywords: vec![],
            unchanged_since: None,
            scope: None,
        }])
        .await
        .unwrap();
    let r = store
        .write(vec![Op::Expunge {
            account,
            mailbox,
            uids: vec![1, 2, 3],
            only_deleted: true,
        }])
        .await
        .unwrap();
    assert_eq!(r[0], OpResult::Expunged { uids: vec![1, 2] });
    let r = store
        .write(vec![Op::Expunge {
            account,
            mailbox,
            uids: vec![3],
            only_deleted: false,
        }])
        .await
        .unwrap();
    assert_eq!(r[0], OpResult::Expunged { uids: vec![3] });
}

/// A scoped STORE (a delegate's rights) changes only the flags in its scope, as they are
/// at commit: a `\Deleted` set by someone else since is kept by a `\Seen`-only FLAGS set.
pub async fn scoped_store_keeps_other_flags(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    let (account, mailbox) = account_with_mailbox(store.as_ref()).await;
    let m = put_message(blobs.as_ref(), account, b"scoped").await;
    store.write(vec![append(m, mailbox)]).await.unwrap();
    let store_op = |action, flags, scope| Op::StoreFlags {
        account,
        mailbox,
        uids: vec![1],
        action,
        flags,
        keywords: vec!["$Label".into()],
        unchanged_since: None,
        scope,
    };
    store
        .write(vec![store_op(FlagAction::Add, Flags::DELETED, None)])
        .await
        .unwrap();
    let seen_only = Some(crate::ops::FlagScope {
        flags: Flags::SEEN,
        keywords: false,
    });
    store
        .write(vec![store_op(FlagAction::Set, Flags::SEEN, seen_only)])
        .await
        .unwrap();
    let (_, entries) = store.mailbox_entries(account, mailbox).await.unwrap();
    assert_eq!(entries[0].flags, Flags::SEEN.union(Flags::DELETED));
    assert_eq!(entries[0].keywords, vec!["$Label".to_string()]);
    // Nothing in scope to change: the message is untouched.
    store
        .write(vec![store_op(
            FlagAction::Remove,
            Flags::DELETED,
            seen_only,
        )])
        .await
        .unwrap();
    let (_, entries) = store.mailbox_entries(account, mailbox).await.unwrap();
    assert!(entries[0].flags.contains(Flags::DELETED));
}

/// Blobs staged with the batch that refers to them ([`BlobStore::stage`]): a staged
/// blob exists exactly when its batch committed, with the same bytes; staging the same
/// bytes twice keeps one copy; an `Op::PutBlob` whose bytes do not match its name fails
/// its batch; big blobs and plain `put` work alongside; `verify_store` is clean.
pub async fn blob_staging_rules(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    let (account, mailbox) = account_with_mailbox(store.as_ref()).await;
    let record = |blob: BlobRef| MessageRecord {
        id: MessageId::generate(),
        account,
        blob,
        received_ms: now_ms(),
        thread_id: format!("t{}", MessageId::generate()),
        meta: MessageMeta::default(),
    };
    let small = b"Subject: staged\r\n\r\nsmall body\r\n".to_vec();
    let (blob, ops) = blobs.stage(small.clone()).await.unwrap();
    assert_eq!(blob.hash, blob::hash_bytes(&small));
    assert_eq!(blob.size, small.len() as u64);
    let staged = !ops.is_empty();
    if staged {
        // Not there before its batch commits.
        assert!(!blobs.exists(&blob.hash).await.unwrap());
        assert!(matches!(
            blobs.get(&blob.hash).await,
            Err(StoreError::NotFound(_))
        ));
        // A batch that fails leaves no blob.
        let mut failing = vec![append(record(blob.clone()), MailboxId::generate())];
        failing.extend(ops.iter().cloned());
        assert!(store.write(failing).await.is_err());
        assert!(!blobs.exists(&blob.hash).await.unwrap());
    }
    let mut batch = vec![append(record(blob.clone()), mailbox)];
    batch.extend(ops);
    let results = store.write(batch).await.unwrap();
    assert!(matches!(results[0], OpResult::Appended { uid: 1, .. }));
    assert!(blobs.exists(&blob.hash).await.unwrap());
    assert_eq!(blobs.get(&blob.hash).await.unwrap(), small);

    // The same bytes again (another recipient's delivery): one copy.
    let (again, ops) = blobs.stage(small.clone()).await.unwrap();
    assert_eq!(again, blob);
    let mut batch = vec![append(record(again), mailbox)];
    batch.extend(ops);
    store.write(batch).await.unwrap();
    let listed = blobs.list().await.unwrap();
    assert_eq!(listed.iter().filter(|h| **h == blob.hash).count(), 1);

    // Two batches staging the same new bytes in one group commit.
    let twin = b"Subject: twin\r\n\r\nsame bytes\r\n".to_vec();
    let mut writes = Vec::new();
    for _ in 0..2 {
        let (b, ops) = blobs.stage(twin.clone()).await.unwrap();
        let mut batch = vec![append(record(b), mailbox)];
        batch.extend(ops);
        let store = store.clone();
        writes.push(tokio::spawn(async move { store.write(batch).await }));
    }
    for w in writes {
        w.await.unwrap().unwrap();
    }
    assert_eq!(blobs.get(&blob::hash_bytes(&twin)).await.unwrap(), twin);

    // Bytes that do not match their name: the whole batch fails.
    let bad = Op::PutBlob {
        hash: blob::hash_bytes(b"other bytes"),
        data: BlobBytes(Arc::new(b"these bytes".to_vec())),
    };
    let (_, before) = store.mailbox_entries(account, mailbox).await.unwrap();
    let lonely = put_message(blobs.as_ref(), account, b"Subject: lonely\r\n\r\n").await;
    assert!(
        store
            .write(vec![append(lonely, mailbox), bad])
            .await
            .is_err()
    );
    let (_, after) = store.mailbox_entries(account, mailbox).await.unwrap();
    assert_eq!(after.len(), before.len());
    assert!(
        !blobs
            .exists(&blob::hash_bytes(b"other bytes"))
            .await
            .unwrap()
    );

    // A big blob (over any backend's inline limit) and an empty one.
    let big: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
    for data in [big, Vec::new()] {
        let (b, ops) = blobs.stage(data.clone()).await.unwrap();
        let mut batch = vec![append(record(b.clone()), mailbox)];
        batch.extend(ops);
        store.write(batch).await.unwrap();
        assert_eq!(blobs.get(&b.hash).await.unwrap(), data);
    }

    let report = verify_store(store.as_ref(), blobs.as_ref()).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.orphan_blobs, 1, "the lonely message's blob only");

    // Delete removes a staged blob (an unreferenced one here).
    let (orphan, ops) = blobs.stage(b"orphan".to_vec()).await.unwrap();
    store.write(ops).await.unwrap();
    assert!(blobs.exists(&orphan.hash).await.unwrap());
    blobs.delete(&orphan.hash).await.unwrap();
    assert!(!blobs.exists(&orphan.hash).await.unwrap());
    blobs.delete(&orphan.hash).await.unwrap();
}

/// Calendar and address-book sharing grants (`dav_shares`): set, change, list from
/// both sides, remove; refused for a collection of another account or an unknown
/// grantee; gone with the collection and with either account.
pub async fn dav_share_rules(store: Arc<dyn Store>) {
    let d = domain("example.com");
    let alice = principal(d.id, "alice", PrincipalKind::Individual);
    let bob = principal(d.id, "bob", PrincipalKind::Individual);
    let carol = principal(d.id, "carol", PrincipalKind::Individual);
    let (a, b, c) = (alice.id, bob.id, carol.id);
    store
        .write(vec![
            Op::CreateDomain(d),
            Op::CreatePrincipal(alice),
            Op::CreatePrincipal(bob),
            Op::CreatePrincipal(carol.clone()),
        ])
        .await
        .unwrap();
    let cal = dav_collection(a, "calendar", DavKind::Calendar);
    let book = dav_collection(a, "contacts", DavKind::AddressBook);
    let (cal_id, book_id) = (cal.id, book.id);
    store
        .write(vec![
            Op::CreateDavCollection(cal),
            Op::CreateDavCollection(book),
        ])
        .await
        .unwrap();
    let share = |coll: DavCollectionId, grantee: PrincipalId, rights: &str| Op::SetDavShare {
        account: a,
        collection: coll,
        grantee,
        rights: rights.into(),
    };
    store
        .write(vec![share(cal_id, b, "lr"), share(book_id, b, "lrwite")])
        .await
        .unwrap();
    assert_eq!(
        store.dav_shares(a, cal_id).await.unwrap(),
        vec![(b, "lr".to_string())]
    );
    // Another account's id pair has no grants.
    assert!(store.dav_shares(b, cal_id).await.unwrap().is_empty());
    let mine = store.dav_shared_with(b).await.unwrap();
    assert_eq!(
        mine.iter()
            .map(|(col, r)| (col.name.as_str(), r.as_str()))
            .collect::<Vec<_>>(),
        [("calendar", "lr"), ("contacts", "lrwite")]
    );
    assert!(mine.iter().all(|(col, _)| col.account == a));
    assert!(store.dav_shared_with(c).await.unwrap().is_empty());
    // Changing replaces; empty rights remove.
    store.write(vec![share(cal_id, b, "lrwite")]).await.unwrap();
    assert_eq!(
        store.dav_shares(a, cal_id).await.unwrap(),
        vec![(b, "lrwite".to_string())]
    );
    store.write(vec![share(book_id, b, "")]).await.unwrap();
    assert_eq!(store.dav_shared_with(b).await.unwrap().len(), 1);
    // A collection that is not the account's, or an unknown grantee: NotFound.
    let bad = Op::SetDavShare {
        account: b,
        collection: cal_id,
        grantee: c,
        rights: "lr".into(),
    };
    assert!(matches!(
        store.write(vec![bad]).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store
            .write(vec![share(cal_id, PrincipalId::generate(), "lr")])
            .await,
        Err(StoreError::NotFound(_))
    ));
    // Removing the collection removes its grants; removing a grantee removes theirs.
    store
        .write(vec![share(cal_id, c, "lr"), share(book_id, c, "lr")])
        .await
        .unwrap();
    store
        .write(vec![Op::DeleteDavCollection {
            account: a,
            collection: cal_id,
        }])
        .await
        .unwrap();
    assert!(store.dav_shared_with(b).await.unwrap().is_empty());
    assert_eq!(store.dav_shared_with(c).await.unwrap().len(), 1);
    store
        .write(vec![Op::RemovePrincipal(carol.id)])
        .await
        .unwrap();
    assert!(store.dav_shares(a, book_id).await.unwrap().is_empty());
}

/// Cached MTA-STS policies are replaced and removed; TLS report counters add up, a
/// (domain, day) report is claimed by one owner at a time, only once its day is over,
/// and once finished its counters are gone and late counts for that day are dropped.
pub async fn outbound_tls_rules(store: Arc<dyn Store>) {
    assert_eq!(store.sts_policy("example.net").await.unwrap(), None);
    let mut p = StsPolicyRecord {
        domain: "example.net".into(),
        policy_id: "abc1".into(),
        mode: "enforce".into(),
        mx: vec!["mx1.example.net".into(), "*.example.net".into()],
        max_age_secs: 86_400,
        fetched_ms: 1_000,
    };
    store
        .write(vec![Op::PutStsPolicy(p.clone())])
        .await
        .unwrap();
    assert_eq!(
        store.sts_policy("example.net").await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(p.expires_ms(), 86_401_000);
    p.policy_id = "abc2".into();
    p.mode = "testing".into();
    p.mx = vec!["mx2.example.net".into()];
    store
        .write(vec![Op::PutStsPolicy(p.clone())])
        .await
        .unwrap();
    assert_eq!(
        store.sts_policy("example.net").await.unwrap(),
        Some(p.clone())
    );
    assert_eq!(store.sts_policy("other.net").await.unwrap(), None);
    store
        .write(vec![Op::RemoveStsPolicy("example.net".into())])
        .await
        .unwrap();
    assert_eq!(store.sts_policy("example.net").await.unwrap(), None);

    let count = |domain: &str, day: &str, result: &str, n: u64| TlsRptCount {
        domain: domain.into(),
        day: day.into(),
        policy_type: "sts".into(),
        policy_strings: vec!["version: STSv1".into(), "mode: enforce".into()],
        mx_host: "mx1.example.net".into(),
        result_type: result.into(),
        receiving_ip: "192.0.2.1".into(),
        count: n,
    };
    store
        .write(vec![Op::AddTlsRpt(vec![
            count("example.net", "2026-01-01", "", 2),
            count("example.net", "2026-01-01", "certificate-expired", 1),
            count("example.org", "2026-01-01", "", 1),
            count("example.net", "2026-01-02", "", 1),
        ])])
        .await
        .unwrap();
    // Another node adds to the same counters.
    store
        .write(vec![Op::AddTlsRpt(vec![count(
            "example.net",
            "2026-01-01",
            "",
            3,
        )])])
        .await
        .unwrap();
    let rows = store
        .tlsrpt_counts("example.net", "2026-01-01")
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            count("example.net", "2026-01-01", "", 5),
            count("example.net", "2026-01-01", "certificate-expired", 1),
        ]
    );
    let claim = |owner: &str, before: &str, now: i64| Op::ClaimTlsRpt {
        owner: owner.into(),
        before_day: before.into(),
        now_ms: now,
        lease_until_ms: now + 1_000,
        limit: 10,
    };
    let claimed = |r: Vec<OpResult>| match r.into_iter().next() {
        Some(OpResult::TlsRptClaimed(v)) => v,
        other => panic!("{other:?}"),
    };
    // Only days before `before_day`.
    let a = claimed(
        store
            .write(vec![claim("a", "2026-01-02", 10)])
            .await
            .unwrap(),
    );
    assert_eq!(
        a,
        vec![
            ("example.net".to_string(), "2026-01-01".to_string()),
            ("example.org".to_string(), "2026-01-01".to_string()),
        ]
    );
    // Leased: another node gets nothing until the lease runs out.
    let b = claimed(
        store
            .write(vec![claim("b", "2026-01-02", 20)])
            .await
            .unwrap(),
    );
    assert!(b.is_empty(), "{b:?}");
    let b = claimed(
        store
            .write(vec![claim("b", "2026-01-02", 2_000)])
            .await
            .unwrap(),
    );
    assert_eq!(b.len(), 2, "{b:?}");
    // The first owner lost its lease: its finish is refused and changes nothing.
    assert!(
        store
            .write(vec![Op::FinishTlsRpt {
                owner: "a".into(),
                domain: "example.net".into(),
                day: "2026-01-01".into(),
                now_ms: 2_100,
            }])
            .await
            .is_err()
    );
    assert_eq!(
        store
            .tlsrpt_counts("example.net", "2026-01-01")
            .await
            .unwrap()
            .len(),
        2
    );
    store
        .write(vec![Op::FinishTlsRpt {
            owner: "b".into(),
            domain: "example.net".into(),
            day: "2026-01-01".into(),
            now_ms: 2_200,
        }])
        .await
        .unwrap();
    assert!(
        store
            .tlsrpt_counts("example.net", "2026-01-01")
            .await
            .unwrap()
            .is_empty()
    );
    // A late count for a day already reported is dropped; other days still count.
    store
        .write(vec![Op::AddTlsRpt(vec![
            count("example.net", "2026-01-01", "", 1),
            count("example.net", "2026-01-02", "", 1),
        ])])
        .await
        .unwrap();
    assert!(
        store
            .tlsrpt_counts("example.net", "2026-01-01")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .tlsrpt_counts("example.net", "2026-01-02")
            .await
            .unwrap()[0]
            .count,
        2
    );
    // Sent: never claimed again, even after every lease ran out.
    let c = claimed(
        store
            .write(vec![claim("c", "2026-01-03", 100_000)])
            .await
            .unwrap(),
    );
    assert_eq!(
        c,
        vec![
            ("example.org".to_string(), "2026-01-01".to_string()),
            ("example.net".to_string(), "2026-01-02".to_string()),
        ]
    );
    // Nodes claiming at once: each (domain, day) goes to one of them.
    let rows: Vec<TlsRptCount> = (0..20)
        .map(|i| count(&format!("d{i}.example"), "2026-02-01", "", 1))
        .collect();
    store.write(vec![Op::AddTlsRpt(rows)]).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = store
                .write(vec![Op::ClaimTlsRpt {
                    owner: format!("node{n}"),
                    before_day: "2026-02-02".into(),
                    now_ms: 200_000,
                    lease_until_ms: 300_000,
                    limit: 7,
                }])
                .await
                .unwrap();
            match r.into_iter().next() {
                Some(OpResult::TlsRptClaimed(v)) => v,
                other => panic!("{other:?}"),
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(n, all.len(), "a report claimed twice");
    assert!(n >= 7, "{n}");
}
