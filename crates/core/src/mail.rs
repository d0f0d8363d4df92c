//! Storing messages: the blob (staged: a small one commits in the same batch, a big one
//! is fsynced first), the record, its mailbox entry and the ledger entry in one batch.
//! The caller acknowledges only after this returns.

use crate::auth::{AdminSession, Authenticated};
use crate::error::{CoreError, Result};
use crate::{Core, Ctx};
use postern_store::*;

/// What a stored message became.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stored {
    pub message: MessageId,
    pub mailbox: MailboxId,
    pub uid: u32,
    pub modseq: u64,
    pub blob: String,
}

impl Core {
    /// Parses the bytes once, stages the blob and builds the record. Threads join the
    /// conversation of a message they reference, when the account has it. The ops
    /// returned must go into the same `Store::write` as the record (after the ops whose
    /// results the caller reads by position): they make the blob durable with it
    /// ([`BlobStore::stage`]).
    pub async fn prepare_message(
        &self,
        account: PrincipalId,
        raw: Vec<u8>,
        received_ms: i64,
    ) -> Result<(MessageRecord, Vec<Op>)> {
        let (meta, raw) = self.extract_meta(raw).await?;
        let refs = crate::message::thread_references(&meta);
        let id = MessageId::generate();
        let thread_id = match self.store.thread_of(account, &refs).await? {
            Some(t) => t,
            None => id.to_string(),
        };
        let (blob, blob_ops) = self.blobs.stage(raw).await?;
        let record = MessageRecord {
            id,
            account,
            blob,
            received_ms,
            thread_id,
            meta,
        };
        Ok((record, blob_ops))
    }

    /// The mailbox of `account` with this special use.
    pub async fn special_mailbox(&self, account: PrincipalId, use_: SpecialUse) -> Result<Mailbox> {
        self.store
            .mailboxes(account)
            .await?
            .into_iter()
            .find(|m| m.special_use == Some(use_))
            .ok_or_else(|| CoreError::NotFound(format!("{} mailbox", use_.as_str())))
    }

    /// Stores one message into a mailbox, with the ledger entry in the same commit.
    pub(crate) async fn store_message(
        &self,
        ctx: &Ctx,
        action: &str,
        target: &str,
        mailbox: &Mailbox,
        raw: Vec<u8>,
        flags: Flags,
    ) -> Result<Stored> {
        let (record, blob_ops) = self.prepare_message(mailbox.account, raw, now_ms()).await?;
        let (message, blob, size) = (record.id, record.blob.hash.clone(), record.blob.size);
        let ledger = Core::ledger_record(
            ctx,
            action,
            Some(target),
            vec![
                format!("mailbox:{}", mailbox.id),
                format!("message:{message}"),
            ],
            "ok",
            None,
            Some(serde_json::json!({"size": size, "blob": blob})),
        );
        let mut ops = vec![
            Op::AppendMessage {
                message: record,
                mailbox: mailbox.id,
                flags,
                keywords: vec![],
            },
            Op::AppendLedger(ledger),
        ];
        // Last: the result read below is the first op's.
        ops.extend(blob_ops);
        let r = self.store.write(ops).await?;
        match r.first() {
            Some(OpResult::Appended { uid, modseq }) => {
                metrics::counter!("postern_messages_stored_total").increment(1);
                Ok(Stored {
                    message,
                    mailbox: mailbox.id,
                    uid: *uid,
                    modseq: *modseq,
                    blob,
                })
            }
            other => Err(CoreError::Internal(format!(
                "unexpected store result {other:?}"
            ))),
        }
    }

    /// Administrative import of one message into an account's mailbox (by name; INBOX
    /// when none). Returns once the message is durable.
    pub async fn import_message(
        &self,
        admin: &AdminSession,
        address: &str,
        mailbox: Option<&str>,
        raw: Vec<u8>,
    ) -> Result<Stored> {
        let a = crate::address::parse_address(address)?;
        let p = self
            .find_principal(&a)
            .await?
            .ok_or_else(|| CoreError::NotFound(format!("account {a}")))?;
        let mb = match mailbox {
            None => self.special_mailbox(p.id, SpecialUse::Inbox).await?,
            Some(name) => self
                .store
                .mailboxes(p.id)
                .await?
                .into_iter()
                .find(|m| m.name == name)
                .ok_or_else(|| CoreError::NotFound(format!("mailbox {name}")))?,
        };
        // Checked before the blob is written, so a refused message leaves no file behind
        // (the store checks again, atomically, at commit).
        if let Some(limit) = p.quota_bytes {
            let used = self.store.usage(p.id).await?.used_bytes;
            if used.saturating_add(raw.len() as u64) > limit {
                return Err(CoreError::QuotaExceeded);
            }
        }
        self.store_message(
            admin.ctx(),
            "message.import",
            &a.to_string(),
            &mb,
            raw,
            Flags::default(),
        )
        .await
    }

    /// The bytes of one of the user's own messages. Recorded in the ledger before the
    /// bytes are returned (DESIGN invariant 10); another account's message is "not
    /// found", the same answer as a message that does not exist, and the attempt is
    /// recorded too.
    pub async fn read_message(&self, who: &Authenticated, id: MessageId) -> Result<Vec<u8>> {
        let account = who.principal().id;
        let target = who.address().to_string();
        let objects = vec![format!("message:{id}")];
        let Some(record) = self.store.message(account, id).await? else {
            self.record(
                who.ctx(),
                "message.read",
                Some(&target),
                objects,
                "not_found",
                None,
                None,
            )
            .await?;
            return Err(CoreError::NotFound(format!("message {id}")));
        };
        self.record(
            who.ctx(),
            "message.read",
            Some(&target),
            objects,
            "ok",
            None,
            None,
        )
        .await?;
        Ok(self.blobs.get(&record.blob.hash).await?)
    }
}
