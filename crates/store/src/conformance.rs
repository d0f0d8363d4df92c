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

fn append(message: MessageRecord, mailbox: MailboxId) -> Op {
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
async fn account_with_mailbox(store: &dyn Store) -> (PrincipalId, MailboxId) {
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
