//! A user's mailboxes and messages, as mail protocols (IMAP now; JMAP and POP3 later)
//! see them: list, create, rename, delete, subscribe, open, flag, expunge, copy, move,
//! append — each checked against the authenticated account here, never in a session.
//!
//! **Reads of content go through a [`ReadGrant`]**: the only way to obtain message
//! metadata or bytes is to first write the ledger entry naming the mailbox and the UID
//! ranges (`message.read` for FETCH, `message.search` for SEARCH/SORT/THREAD), which
//! returns the grant; the grant is tied to one account, so a session cannot use it to
//! read another account's message (DESIGN invariants 2 and 10). Changes (expunge, copy,
//! move, append) carry their ledger entry in the same batch as the change.
//!
//! **Standards:** RFC 9051 §5.1 (mailbox naming: `/` hierarchy, INBOX case-insensitive),
//! §6.3.4–6.3.6 (CREATE/DELETE/RENAME, including RENAME of INBOX), RFC 6154 (special use),
//! RFC 4315 (UIDPLUS results), RFC 6851 (MOVE), RFC 7162 (UNCHANGEDSINCE).
//!
//! **Security:** names are untrusted: NFC-normalised, control and invisible format
//! characters refused, length and depth capped ([`MAX_MAILBOX_NAME_BYTES`],
//! [`MAX_MAILBOX_DEPTH`]). Another account's mailbox or message is "not found", the same
//! answer as one that does not exist.

use crate::auth::Authenticated;
use crate::error::{CoreError, Result};
use crate::{Core, Ctx};
use postern_store::*;
use unicode_normalization::UnicodeNormalization;

/// Longest mailbox name, in bytes of its UTF-8 form.
pub const MAX_MAILBOX_NAME_BYTES: usize = 512;
/// Most hierarchy levels in a mailbox name.
pub const MAX_MAILBOX_DEPTH: usize = 32;
/// Most mailboxes one account may have.
pub const MAX_MAILBOXES: usize = 2_000;
/// The hierarchy separator.
pub const SEPARATOR: char = '/';

/// Proof that a read was written to the ledger: the account and mailbox it covers.
#[derive(Debug, Clone)]
pub struct ReadGrant {
    account: PrincipalId,
    mailbox: MailboxId,
}

impl ReadGrant {
    pub fn mailbox(&self) -> MailboxId {
        self.mailbox
    }
}

/// One message to append.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub raw: Vec<u8>,
    pub flags: Flags,
    pub keywords: Vec<String>,
    /// INTERNALDATE; `None` = now.
    pub received_ms: Option<i64>,
}

/// What COPY or MOVE did (RFC 4315 COPYUID): source UID → destination UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub uid_validity: u32,
    pub pairs: Vec<(u32, u32)>,
    /// MOVE: the source UIDs expunged.
    pub expunged: Vec<u32>,
}

/// What APPEND did (RFC 4315 APPENDUID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub uid_validity: u32,
    pub uids: Vec<u32>,
}

/// True when `name` is INBOX in any case (RFC 9051 §5.1).
pub fn is_inbox(name: &str) -> bool {
    name.eq_ignore_ascii_case("INBOX")
}

/// A mailbox name as stored: NFC, INBOX (and an `INBOX/` prefix) in upper case, levels
/// non-empty, no control or format characters, within the caps.
pub fn normalize_mailbox_name(name: &str) -> Result<String> {
    let name: String = name.nfc().collect();
    if name.is_empty() {
        return Err(CoreError::invalid("mailbox", "empty name"));
    }
    if name.len() > MAX_MAILBOX_NAME_BYTES {
        return Err(CoreError::invalid(
            "mailbox",
            format!("longer than {MAX_MAILBOX_NAME_BYTES} bytes"),
        ));
    }
    if crate::address::has_forbidden_chars(&name) {
        return Err(CoreError::invalid(
            "mailbox",
            "contains a control or invisible character",
        ));
    }
    if name.contains(['*', '%']) {
        return Err(CoreError::invalid(
            "mailbox",
            "contains a wildcard (* or %)",
        ));
    }
    let levels: Vec<&str> = name.split(SEPARATOR).collect();
    if levels.len() > MAX_MAILBOX_DEPTH {
        return Err(CoreError::invalid(
            "mailbox",
            format!("deeper than {MAX_MAILBOX_DEPTH} levels"),
        ));
    }
    if levels.iter().any(|l| l.is_empty()) {
        return Err(CoreError::invalid("mailbox", "empty hierarchy level"));
    }
    // The namespaces of other accounts' mailboxes (`core::access`) are not names a
    // user can give their own mailbox.
    if let Some(first) = levels.first() {
        if *first == crate::access::OTHER_USERS || *first == crate::access::SHARED {
            return Err(CoreError::invalid(
                "mailbox",
                format!("{first}/ is the namespace of other accounts' mailboxes"),
            ));
        }
    }
    let mut out = String::with_capacity(name.len());
    for (i, l) in levels.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        if i == 0 && is_inbox(l) {
            out.push_str("INBOX");
        } else {
            out.push_str(l);
        }
    }
    Ok(out)
}

impl Core {
    /// Change notices of every account; a session filters for its own.
    pub fn subscribe_changes(&self) -> tokio::sync::broadcast::Receiver<ChangeNotice> {
        self.store.subscribe()
    }

    /// The account's mailboxes, by name.
    pub async fn mailboxes_of(&self, who: &Authenticated) -> Result<Vec<Mailbox>> {
        Ok(self.store.mailboxes(who.principal().id).await?)
    }

    /// One of the account's mailboxes by name (INBOX in any case).
    pub async fn mailbox_named(&self, who: &Authenticated, name: &str) -> Result<Mailbox> {
        let name = normalize_mailbox_name(name)?;
        self.mailboxes_of(who)
            .await?
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| CoreError::NotFound(format!("mailbox {name}")))
    }

    /// The mailbox and its entries in UID order, from one snapshot.
    pub async fn open_mailbox(
        &self,
        who: &Authenticated,
        mailbox: MailboxId,
    ) -> Result<(Mailbox, Vec<MailboxEntry>)> {
        Ok(self
            .store
            .mailbox_entries(who.principal().id, mailbox)
            .await?)
    }

    /// The account's highest modseq and usage with its limit.
    pub async fn account_state(&self, who: &Authenticated) -> Result<(u64, Usage, Option<u64>)> {
        let id = who.principal().id;
        let modseq = self.store.highest_modseq(id).await?;
        let usage = self.store.usage(id).await?;
        let quota = self.store.principal(id).await?.and_then(|p| p.quota_bytes);
        Ok((modseq, usage, quota))
    }

    /// Journal entries of the account after `since`.
    pub async fn changes_of(
        &self,
        who: &Authenticated,
        since: u64,
        limit: usize,
    ) -> Result<Vec<Change>> {
        Ok(self
            .store
            .changes_since(who.principal().id, since, limit)
            .await?)
    }

    pub async fn create_mailbox(
        &self,
        who: &Authenticated,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        let name = normalize_mailbox_name(name)?;
        let account = who.principal().id;
        let existing = self.store.mailboxes(account).await?;
        if existing.iter().any(|m| m.name == name) {
            return Err(CoreError::Conflict(format!("mailbox {name}")));
        }
        if existing.len() >= MAX_MAILBOXES {
            return Err(CoreError::Refused(format!(
                "at most {MAX_MAILBOXES} mailboxes per account"
            )));
        }
        if let Some(su) = special_use {
            if su == SpecialUse::Inbox {
                return Err(CoreError::Refused("\\Inbox is not a special use".into()));
            }
            if existing.iter().any(|m| m.special_use == Some(su)) {
                return Err(CoreError::Conflict(format!(
                    "a mailbox with special use {}",
                    su.as_str()
                )));
            }
        }
        let mut ops = Vec::new();
        // Parents are created too (RFC 9051 §6.3.4: "foo/bar" creates "foo" when needed).
        let mut prefix = String::new();
        let levels: Vec<&str> = name.split(SEPARATOR).collect();
        let mut created = None;
        for (i, level) in levels.iter().enumerate() {
            if i > 0 {
                prefix.push(SEPARATOR);
            }
            prefix.push_str(level);
            if existing.iter().any(|m| m.name == prefix) {
                continue;
            }
            let mb = Mailbox {
                id: MailboxId::generate(),
                account,
                name: prefix.clone(),
                special_use: if i + 1 == levels.len() {
                    special_use
                } else {
                    None
                },
                uid_validity: 0,
                uid_next: 0,
                highest_modseq: 0,
                subscribed: false,
                created_ms: now_ms(),
            };
            created = Some(mb.id);
            ops.push(Op::CreateMailbox(mb));
        }
        ops.push(Op::AppendLedger(Core::ledger_record(
            who.ctx(),
            "mailbox.create",
            Some(who.address()),
            vec![format!("mailbox:{name}")],
            "ok",
            None,
            None,
        )));
        self.store.write(ops).await?;
        let id = created.ok_or_else(|| CoreError::Conflict(format!("mailbox {name}")))?;
        let (mb, _) = self.store.mailbox_entries(account, id).await?;
        Ok(mb)
    }

    /// Deletes a mailbox and what it holds. INBOX cannot be deleted, nor a mailbox with
    /// children: RFC 9051 §6.3.5 lets a server refuse that (Dovecot does), and the store
    /// has no `\Noselect` placeholder to keep for the children, which would otherwise be
    /// orphaned below a name `LIST "" "%"` no longer shows.
    pub async fn delete_mailbox(&self, who: &Authenticated, name: &str) -> Result<()> {
        let mb = self.mailbox_named(who, name).await?;
        if mb.special_use == Some(SpecialUse::Inbox) || is_inbox(&mb.name) {
            return Err(CoreError::Refused("INBOX cannot be deleted".into()));
        }
        let child_prefix = format!("{}{SEPARATOR}", mb.name);
        if self
            .mailboxes_of(who)
            .await?
            .iter()
            .any(|m| m.name.starts_with(&child_prefix))
        {
            return Err(CoreError::Refused(
                "mailbox has children; delete them first".into(),
            ));
        }
        let ops = vec![
            Op::DeleteMailbox {
                account: mb.account,
                mailbox: mb.id,
            },
            Op::AppendLedger(Core::ledger_record(
                who.ctx(),
                "mailbox.delete",
                Some(who.address()),
                vec![format!("mailbox:{}", mb.id), format!("name:{}", mb.name)],
                "ok",
                None,
                None,
            )),
        ];
        self.store.write(ops).await?;
        Ok(())
    }

    /// Renames a mailbox and its children. Renaming INBOX moves its messages into a new
    /// mailbox of the new name and leaves INBOX empty (RFC 9051 §6.3.6).
    pub async fn rename_mailbox(&self, who: &Authenticated, from: &str, to: &str) -> Result<()> {
        let account = who.principal().id;
        let src = self.mailbox_named(who, from).await?;
        let to = normalize_mailbox_name(to)?;
        let all = self.store.mailboxes(account).await?;
        if all.iter().any(|m| m.name == to) {
            return Err(CoreError::Conflict(format!("mailbox {to}")));
        }
        if is_inbox(&src.name) {
            if to.starts_with("INBOX/") {
                return Err(CoreError::Refused(
                    "INBOX cannot be renamed below itself".into(),
                ));
            }
            let dst = self.create_mailbox(who, &to, None).await?;
            let (_, entries) = self.store.mailbox_entries(account, src.id).await?;
            let uids: Vec<u32> = entries.iter().map(|e| e.uid).collect();
            if !uids.is_empty() {
                self.copy_messages(who, src.id, &uids, dst.id, true).await?;
            }
            return Ok(());
        }
        if to == src.name || to.starts_with(&format!("{}{SEPARATOR}", src.name)) {
            return Err(CoreError::Refused(
                "a mailbox cannot be renamed below itself".into(),
            ));
        }
        let child_prefix = format!("{}{SEPARATOR}", src.name);
        let mut ops = vec![Op::RenameMailbox {
            account,
            mailbox: src.id,
            name: to.clone(),
        }];
        for m in all.iter().filter(|m| m.name.starts_with(&child_prefix)) {
            let new = format!("{to}{}", &m.name[src.name.len()..]);
            if new.len() > MAX_MAILBOX_NAME_BYTES {
                return Err(CoreError::invalid(
                    "mailbox",
                    format!("{new}: longer than {MAX_MAILBOX_NAME_BYTES} bytes"),
                ));
            }
            if all.iter().any(|o| o.name == new) {
                return Err(CoreError::Conflict(format!("mailbox {new}")));
            }
            ops.push(Op::RenameMailbox {
                account,
                mailbox: m.id,
                name: new,
            });
        }
        // Missing parents of the new name are created, as CREATE would.
        let levels: Vec<&str> = to.split(SEPARATOR).collect();
        let mut prefix = String::new();
        for level in levels.iter().take(levels.len().saturating_sub(1)) {
            if !prefix.is_empty() {
                prefix.push(SEPARATOR);
            }
            prefix.push_str(level);
            if !all.iter().any(|m| m.name == prefix) {
                ops.push(Op::CreateMailbox(Mailbox {
                    id: MailboxId::generate(),
                    account,
                    name: prefix.clone(),
                    special_use: None,
                    uid_validity: 0,
                    uid_next: 0,
                    highest_modseq: 0,
                    subscribed: false,
                    created_ms: now_ms(),
                }));
            }
        }
        ops.push(Op::AppendLedger(Core::ledger_record(
            who.ctx(),
            "mailbox.rename",
            Some(who.address()),
            vec![format!("mailbox:{}", src.id)],
            "ok",
            Some(serde_json::json!({ "name": src.name })),
            Some(serde_json::json!({ "name": to })),
        )));
        self.store.write(ops).await?;
        Ok(())
    }

    pub async fn set_subscribed(
        &self,
        who: &Authenticated,
        name: &str,
        subscribed: bool,
    ) -> Result<()> {
        let mb = self.mailbox_named(who, name).await?;
        self.store
            .write(vec![Op::SetSubscribed {
                account: mb.account,
                mailbox: mb.id,
                subscribed,
            }])
            .await?;
        Ok(())
    }

    /// Writes the ledger entry for a read of the given UIDs of one of the account's
    /// mailboxes and returns the grant that lets the caller load their data.
    /// `action` is `message.read` or `message.search`; `detail` says what (FETCH items,
    /// search keys), for the ledger.
    pub async fn grant_read(
        &self,
        who: &Authenticated,
        mailbox: &Mailbox,
        action: &'static str,
        uids: &[u32],
        detail: &str,
    ) -> Result<ReadGrant> {
        if mailbox.account != who.principal().id {
            return Err(CoreError::NotFound(format!("mailbox {}", mailbox.id)));
        }
        let mut objects = vec![format!("mailbox:{}", mailbox.id)];
        objects.push(format!("uid:{}", uid_ranges(uids)));
        self.record(
            who.ctx(),
            action,
            Some(who.address()),
            objects,
            "ok",
            None,
            Some(serde_json::json!({ "what": detail, "count": uids.len() })),
        )
        .await?;
        Ok(ReadGrant {
            account: mailbox.account,
            mailbox: mailbox.id,
        })
    }

    /// Metadata of messages covered by a grant.
    pub async fn granted_records(
        &self,
        grant: &ReadGrant,
        ids: Vec<MessageId>,
    ) -> Result<Vec<MessageRecord>> {
        Ok(self.store.messages(grant.account, ids).await?)
    }

    /// The bytes of a message covered by a grant.
    pub async fn granted_blob(&self, grant: &ReadGrant, record: &MessageRecord) -> Result<Vec<u8>> {
        if record.account != grant.account {
            return Err(CoreError::NotFound(format!("message {}", record.id)));
        }
        Ok(self.blobs.get(&record.blob.hash).await?)
    }

    /// STORE: changes flags of the UIDs; returns (changed (uid, modseq), skipped by
    /// UNCHANGEDSINCE).
    #[allow(clippy::too_many_arguments)]
    pub async fn store_flags(
        &self,
        who: &Authenticated,
        mailbox: MailboxId,
        uids: Vec<u32>,
        action: FlagAction,
        flags: Flags,
        keywords: Vec<String>,
        unchanged_since: Option<u64>,
    ) -> Result<(Vec<(u32, u64)>, Vec<u32>)> {
        check_keywords(&keywords)?;
        let r = self
            .store
            .write(vec![Op::StoreFlags {
                account: who.principal().id,
                mailbox,
                uids,
                action,
                flags,
                keywords,
                unchanged_since,
            }])
            .await?;
        match r.into_iter().next() {
            Some(OpResult::FlagsStored { changed, skipped }) => Ok((changed, skipped)),
            other => Err(CoreError::Internal(format!(
                "unexpected store result {other:?}"
            ))),
        }
    }

    /// Removes the UIDs from the mailbox, with the ledger entry in the same batch.
    pub async fn expunge(
        &self,
        who: &Authenticated,
        mailbox: MailboxId,
        uids: Vec<u32>,
    ) -> Result<Vec<u32>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let objects = vec![
            format!("mailbox:{mailbox}"),
            format!("uid:{}", uid_ranges(&uids)),
        ];
        let r = self
            .store
            .write(vec![
                Op::Expunge {
                    account: who.principal().id,
                    mailbox,
                    uids,
                },
                Op::AppendLedger(Core::ledger_record(
                    who.ctx(),
                    "message.expunge",
                    Some(who.address()),
                    objects,
                    "ok",
                    None,
                    None,
                )),
            ])
            .await?;
        match r.into_iter().next() {
            Some(OpResult::Expunged { uids }) => Ok(uids),
            other => Err(CoreError::Internal(format!(
                "unexpected store result {other:?}"
            ))),
        }
    }

    /// COPY (or MOVE when `remove`) of the UIDs that exist, in UID order, in one batch
    /// with its ledger entry. Nothing is done when none exist.
    pub async fn copy_messages(
        &self,
        who: &Authenticated,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove: bool,
    ) -> Result<Copied> {
        let account = who.principal().id;
        let (_, entries) = self.store.mailbox_entries(account, from).await?;
        let (dst, _) = self.store.mailbox_entries(account, to).await?;
        let wanted: std::collections::HashSet<u32> = uids.iter().copied().collect();
        let chosen: Vec<&MailboxEntry> =
            entries.iter().filter(|e| wanted.contains(&e.uid)).collect();
        if chosen.is_empty() {
            return Ok(Copied {
                uid_validity: dst.uid_validity,
                pairs: Vec::new(),
                expunged: Vec::new(),
            });
        }
        let records = self
            .store
            .messages(account, chosen.iter().map(|e| e.message).collect())
            .await?;
        let by_id: std::collections::HashMap<MessageId, &MessageRecord> =
            records.iter().map(|r| (r.id, r)).collect();
        let mut ops = Vec::with_capacity(chosen.len() + 2);
        let mut appends = Vec::with_capacity(chosen.len());
        let mut sources = Vec::with_capacity(chosen.len());
        for e in &chosen {
            let Some(rec) = by_id.get(&e.message) else {
                continue;
            };
            sources.push(e.uid);
            appends.push(Op::AppendMessage {
                message: (*rec).clone(),
                mailbox: to,
                flags: e.flags,
                keywords: e.keywords.clone(),
            });
        }
        let n = sources.len();
        // MOVE expunges first, in the same batch (all or nothing): the usage the
        // sources free is there for the appends, so a MOVE at full quota works (it adds
        // nothing), and a MOVE into the same mailbox gives new UIDs and expunges the old
        // ones (RFC 6851 §3.3). An append of a record the expunge just dropped stores it
        // again from the full record we pass.
        if remove {
            ops.push(Op::Expunge {
                account,
                mailbox: from,
                uids: sources.clone(),
            });
        }
        ops.extend(appends);
        ops.push(Op::AppendLedger(Core::ledger_record(
            who.ctx(),
            if remove {
                "message.move"
            } else {
                "message.copy"
            },
            Some(who.address()),
            vec![
                format!("mailbox:{from}"),
                format!("uid:{}", uid_ranges(&sources)),
                format!("to-mailbox:{to}"),
            ],
            "ok",
            None,
            None,
        )));
        let results = self.store.write(ops).await?;
        let mut pairs = Vec::with_capacity(n);
        let mut expunged = Vec::new();
        // The appends answer in the order of `sources`, after the expunge's result.
        let mut src = sources.iter();
        for r in results {
            match r {
                OpResult::Appended { uid, .. } => {
                    if let Some(s) = src.next() {
                        pairs.push((*s, uid));
                    }
                }
                OpResult::Expunged { uids } => expunged = uids,
                _ => {}
            }
        }
        Ok(Copied {
            uid_validity: dst.uid_validity,
            pairs,
            expunged,
        })
    }

    /// APPEND (MULTIAPPEND: all or none) into one of the account's mailboxes; returns
    /// once the messages are durable.
    pub async fn append_messages(
        &self,
        who: &Authenticated,
        mailbox: MailboxId,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        let account = who.principal().id;
        let (mb, _) = self.store.mailbox_entries(account, mailbox).await?;
        let total: u64 = messages.iter().map(|m| m.raw.len() as u64).sum();
        // Checked before any blob is written, so a refused append leaves no file (the
        // store checks again, atomically, at commit).
        if let Some(limit) = self
            .store
            .principal(account)
            .await?
            .and_then(|p| p.quota_bytes)
        {
            let used = self.store.usage(account).await?.used_bytes;
            if used.saturating_add(total) > limit {
                return Err(CoreError::QuotaExceeded);
            }
        }
        let mut ops = Vec::with_capacity(messages.len() + 1);
        let mut ids = Vec::with_capacity(messages.len());
        for m in messages {
            check_keywords(&m.keywords)?;
            let received = m.received_ms.unwrap_or_else(now_ms);
            let record = self.prepare_message(account, m.raw, received).await?;
            ids.push(format!("message:{}", record.id));
            ops.push(Op::AppendMessage {
                message: record,
                mailbox,
                flags: m.flags,
                keywords: m.keywords,
            });
        }
        let mut objects = vec![format!("mailbox:{mailbox}")];
        objects.extend(ids);
        ops.push(Op::AppendLedger(Core::ledger_record(
            who.ctx(),
            "message.append",
            Some(who.address()),
            objects,
            "ok",
            None,
            Some(serde_json::json!({ "bytes": total })),
        )));
        let results = self.store.write(ops).await?;
        let uids = results
            .into_iter()
            .filter_map(|r| match r {
                OpResult::Appended { uid, .. } => Some(uid),
                _ => None,
            })
            .collect();
        metrics::counter!("postern_messages_stored_total").increment(1);
        Ok(Appended {
            uid_validity: mb.uid_validity,
            uids,
        })
    }

    /// Writes a ledger entry for something a session did that is not a change (e.g. a
    /// refused attempt); for protocol crates that hold only an `Authenticated`.
    pub async fn record_for(
        &self,
        who: &Authenticated,
        action: &str,
        objects: Vec<String>,
        result: &str,
    ) -> Result<()> {
        let ctx: &Ctx = who.ctx();
        self.record(
            ctx,
            action,
            Some(who.address()),
            objects,
            result,
            None,
            None,
        )
        .await
    }
}

/// Most keywords one STORE or APPEND may set on a message.
pub const MAX_KEYWORDS: usize = 64;

fn check_keywords(keywords: &[String]) -> Result<()> {
    if keywords.len() > MAX_KEYWORDS {
        return Err(CoreError::invalid(
            "keyword",
            format!("at most {MAX_KEYWORDS} keywords at once"),
        ));
    }
    keywords.iter().try_for_each(|k| check_keyword(k))
}

/// A keyword (RFC 9051 `flag-keyword`): an atom without `\`, at most 128 bytes.
fn check_keyword(k: &str) -> Result<()> {
    let ok = !k.is_empty()
        && k.len() <= 128
        && k.bytes().all(|b| {
            b > b' '
                && b < 0x7f
                && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
        });
    if ok {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "keyword",
            format!("not a valid keyword: {k:?}"),
        ))
    }
}

/// UIDs as compact ranges for the ledger: `1:3,7,9:12`.
pub fn uid_ranges(uids: &[u32]) -> String {
    let mut v: Vec<u32> = uids.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < v.len() {
        let start = v[i];
        let mut end = start;
        while i + 1 < v.len() && v[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = v[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_mailbox_name("inbox").unwrap(), "INBOX");
        assert_eq!(normalize_mailbox_name("Inbox/Sub").unwrap(), "INBOX/Sub");
        assert_eq!(normalize_mailbox_name("Inboxes").unwrap(), "Inboxes");
        assert_eq!(normalize_mailbox_name("a/inbox").unwrap(), "a/inbox");
        for bad in [
            "",
            "/",
            "a//b",
            "a/",
            "/a",
            "a*",
            "a%b",
            "a\u{202e}b",
            "a\rb",
        ] {
            assert!(normalize_mailbox_name(bad).is_err(), "{bad:?}");
        }
        let deep = vec!["x"; MAX_MAILBOX_DEPTH + 1].join("/");
        assert!(normalize_mailbox_name(&deep).is_err());
        let long = "x".repeat(MAX_MAILBOX_NAME_BYTES + 1);
        assert!(normalize_mailbox_name(&long).is_err());
        // NFC: the decomposed and composed forms are one name.
        assert_eq!(
            normalize_mailbox_name("Re\u{301}sume\u{301}").unwrap(),
            "R\u{e9}sum\u{e9}"
        );
    }

    #[test]
    fn ranges() {
        assert_eq!(uid_ranges(&[5, 1, 2, 3, 9, 10, 3]), "1:3,5,9:10");
        assert_eq!(uid_ranges(&[]), "");
        assert_eq!(
            uid_ranges(&[u32::MAX, u32::MAX - 1]),
            "4294967294:4294967295"
        );
    }

    #[test]
    fn keywords() {
        assert!(check_keyword("$Forwarded").is_ok());
        assert!(check_keyword("Junk").is_ok());
        for bad in ["", "a b", "\\Seen", "a]", "a\u{e9}"] {
            assert!(check_keyword(bad).is_err(), "{bad:?}");
        }
    }
}
