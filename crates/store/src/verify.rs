//! Integrity checks over any backend: `postern store verify` and `postern audit verify`.

use crate::ledger::{ChainBreak, ChainVerifier};
use crate::{BlobStore, LedgerEntry, Result, Store, StoreError};
use std::collections::{BTreeMap, HashSet};

/// Verifies the ledger chain from the first entry. `Ok(Err(break))` names the first
/// bad entry; `Ok(Ok(n))` is the number of entries checked.
pub async fn verify_ledger(store: &dyn Store) -> Result<Result<u64, ChainBreak>> {
    Ok(verify_ledger_head(store, None).await?.map(|(n, _)| n))
}

/// Like [`verify_ledger`], also returning the head (seq, hash), and checking that the
/// entry `expect.0` still has hash `expect.1` (an anchor kept outside the store).
pub async fn verify_ledger_head(
    store: &dyn Store,
    expect: Option<(u64, &str)>,
) -> Result<Result<(u64, Option<(u64, String)>), ChainBreak>> {
    verify_ledger_pages(|from, limit| store.ledger_raw(from, limit), expect).await
}

/// [`verify_ledger_head`] over any source of stored entries: `fetch(from_seq, limit)`
/// returns up to `limit` entries with `seq >= from_seq`, in order. `store migrate` uses
/// it to check the chain it copied inside its transaction, before committing.
pub async fn verify_ledger_pages<F, Fut>(
    mut fetch: F,
    expect: Option<(u64, &str)>,
) -> Result<Result<(u64, Option<(u64, String)>), ChainBreak>>
where
    F: FnMut(u64, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<crate::RawLedgerEntry>>>,
{
    const PAGE: usize = 1000;
    let mut v = ChainVerifier::default();
    let mut from = 1;
    loop {
        let page = fetch(from, PAGE).await?;
        if page.is_empty() {
            if let Some((seq, _)) = expect {
                if seq > v.checked {
                    return Ok(Err(ChainBreak {
                        seq,
                        reason: format!(
                            "the anchored entry {seq} is missing: the ledger ends at {}",
                            v.checked
                        ),
                    }));
                }
            }
            return Ok(Ok((v.checked, v.head())));
        }
        for raw in &page {
            let record = match serde_json::from_str(&raw.record_json) {
                Ok(r) => r,
                Err(e) => {
                    return Ok(Err(ChainBreak {
                        seq: raw.seq,
                        reason: format!("record does not decode: {e}"),
                    }));
                }
            };
            let entry = LedgerEntry {
                seq: raw.seq,
                record,
                prev_hash: raw.prev_hash.clone(),
                hash: raw.hash.clone(),
            };
            if let Err(b) = v.check(&entry, raw.record_json.as_bytes()) {
                return Ok(Err(b));
            }
            if let Some((seq, hash)) = expect {
                if seq == raw.seq && hash != raw.hash {
                    return Ok(Err(ChainBreak {
                        seq,
                        reason: "hash differs from the anchor: the ledger was rewritten from here or before".into(),
                    }));
                }
            }
            from = raw.seq + 1;
        }
    }
}

/// What `store verify` found.
#[derive(Debug, Default)]
pub struct IntegrityReport {
    pub accounts: u64,
    pub mailboxes: u64,
    pub messages: u64,
    pub blobs_checked: u64,
    pub journal_entries: u64,
    pub ledger_entries: u64,
    /// Blob files no record refers to (left by a crash between blob write and commit,
    /// or by removals). Harmless; reported, not errors.
    pub orphan_blobs: u64,
    pub problems: Vec<String>,
}

impl IntegrityReport {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub async fn verify_store(store: &dyn Store, blobs: &dyn BlobStore) -> Result<IntegrityReport> {
    let mut r = IntegrityReport::default();
    r.problems.extend(store.backend_check().await?);

    // Blobs: every referenced blob exists and hashes to its name, with the recorded size.
    let referenced = store.referenced_blobs().await?;
    let mut names = HashSet::new();
    for b in &referenced {
        names.insert(b.hash.clone());
        match blobs.get(&b.hash).await {
            Ok(data) if data.len() as u64 == b.size => r.blobs_checked += 1,
            Ok(data) => r.problems.push(format!(
                "blob {} is {} bytes, records say {}",
                b.hash,
                data.len(),
                b.size
            )),
            Err(StoreError::NotFound(_)) => r.problems.push(format!("blob {} is missing", b.hash)),
            Err(e) => r.problems.push(format!("blob {}: {e}", b.hash)),
        }
    }
    r.orphan_blobs = blobs
        .list()
        .await?
        .iter()
        .filter(|h| !names.contains(*h))
        .count() as u64;

    // Journal continuity and mailbox state, per account.
    for p in store.principals(None).await? {
        r.accounts += 1;
        let highest = store.highest_modseq(p.id).await?;
        let mut expected = 1u64;
        let mut since = 0u64;
        loop {
            let page = store.changes_since(p.id, since, 5000).await?;
            if page.is_empty() {
                break;
            }
            for c in &page {
                if c.modseq != expected {
                    r.problems.push(format!(
                        "account {}: journal has modseq {} where {} was expected",
                        p.id, c.modseq, expected
                    ));
                    expected = c.modseq;
                }
                expected += 1;
                since = c.modseq;
                r.journal_entries += 1;
            }
        }
        if expected - 1 != highest {
            r.problems.push(format!(
                "account {}: journal ends at {} but highest modseq is {}",
                p.id,
                expected - 1,
                highest
            ));
        }
        let mut used = 0u64;
        let mut count = 0u64;
        let mut per_message: BTreeMap<crate::MessageId, ()> = BTreeMap::new();
        for m in store.mailboxes(p.id).await? {
            r.mailboxes += 1;
            let (mb, entries) = store.mailbox_entries(p.id, m.id).await?;
            if mb.highest_modseq > highest {
                r.problems.push(format!(
                    "mailbox {}: highest modseq {} above the account's {}",
                    mb.id, mb.highest_modseq, highest
                ));
            }
            let mut last_uid = 0;
            for e in &entries {
                if e.uid <= last_uid || e.uid >= mb.uid_next {
                    r.problems.push(format!(
                        "mailbox {}: uid {} out of order or not below uid_next {}",
                        mb.id, e.uid, mb.uid_next
                    ));
                }
                if e.modseq > mb.highest_modseq {
                    r.problems.push(format!(
                        "mailbox {} uid {}: modseq {} above the mailbox's {}",
                        mb.id, e.uid, e.modseq, mb.highest_modseq
                    ));
                }
                last_uid = e.uid;
                used += e.size;
                count += 1;
                if per_message.insert(e.message, ()).is_none() {
                    match store.message(p.id, e.message).await? {
                        Some(_) => r.messages += 1,
                        None => r.problems.push(format!(
                            "mailbox {} uid {}: message {} has no record",
                            mb.id, e.uid, e.message
                        )),
                    }
                }
            }
        }
        let usage = store.usage(p.id).await?;
        if usage.used_bytes != used || usage.messages != count {
            r.problems.push(format!(
                "account {}: usage says {} bytes / {} messages, mailboxes hold {} / {}",
                p.id, usage.used_bytes, usage.messages, used, count
            ));
        }
    }

    match verify_ledger(store).await? {
        Ok(n) => r.ledger_entries = n,
        Err(b) => r
            .problems
            .push(format!("ledger entry {}: {}", b.seq, b.reason)),
    }
    Ok(r)
}
