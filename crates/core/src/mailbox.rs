//! A user's mailboxes and messages, as mail protocols (IMAP now; JMAP and POP3 later)
//! see them: list, create, rename, delete, subscribe, open, flag, expunge, copy, move,
//! append — each checked here against the caller's RFC 4314 rights on the mailbox
//! (a [`MailboxAccess`] from `core::access`, rights re-read from the store at every
//! call; the owner holds every right), never in a session.
//!
//! **Reads of content go through a [`ReadGrant`]**: the only way to obtain message
//! metadata or bytes is to first write the ledger entry naming the mailbox and the UID
//! ranges (`message.read` for FETCH, `message.search` for SEARCH/SORT/THREAD), which
//! returns the grant; the grant is tied to one account (the mailbox's owner, after the
//! `r` check), so a session cannot use it to read another account's message (DESIGN
//! invariants 2 and 10). A delegate's entries carry the delegate role and the owner as
//! target. Changes (expunge, copy,
//! move, append) carry their ledger entry in the same batch as the change.
//!
//! **Standards:** RFC 9051 §5.1 (mailbox naming: `/` hierarchy, INBOX case-insensitive),
//! §6.3.4–6.3.6 (CREATE/DELETE/RENAME, including RENAME of INBOX), RFC 6154 (special use),
//! RFC 4315 (UIDPLUS results), RFC 6851 (MOVE), RFC 7162 (UNCHANGEDSINCE).
//!
//! **Security:** names are untrusted: NFC-normalised, control and invisible format
//! characters refused, length and depth capped ([`MAX_MAILBOX_NAME_BYTES`],
//! [`MAX_MAILBOX_DEPTH`]). Another account's mailbox or message without a grant is "not
//! found", the same answer as one that does not exist.

use crate::access::{MailboxAccess, Rights};
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

/// Proof that a read was written to the ledger: the account, the mailbox and exactly
/// the messages (by UID in the entry) it covers; nothing else loads through it.
#[derive(Debug, Clone)]
pub struct ReadGrant {
    account: PrincipalId,
    mailbox: MailboxId,
    messages: std::sync::Arc<std::collections::HashSet<MessageId>>,
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

/// The last snapshot of recently opened mailboxes (entries only: UIDs, flags, sizes),
/// shared by every session of the process, so that SELECT of a mailbox another session
/// has open costs the delta since that snapshot instead of a full read. Bounded: at most
/// [`ViewCache::MAX_ENTRIES`] entries in all, and it starts over when full.
#[derive(Default)]
pub(crate) struct ViewCache {
    map: std::sync::Mutex<
        std::collections::HashMap<
            (PrincipalId, MailboxId),
            std::sync::Arc<(Mailbox, Vec<MailboxEntry>)>,
        >,
    >,
}

impl ViewCache {
    const MAX_ENTRIES: usize = 1_000_000;

    fn get(
        &self,
        owner: PrincipalId,
        id: MailboxId,
    ) -> Option<std::sync::Arc<(Mailbox, Vec<MailboxEntry>)>> {
        self.map.lock().ok()?.get(&(owner, id)).cloned()
    }

    /// Keeps this snapshot unless a newer one is kept already.
    fn put(&self, owner: PrincipalId, mb: Mailbox, entries: Vec<MailboxEntry>) {
        if entries.len() > Self::MAX_ENTRIES {
            return;
        }
        let Ok(mut m) = self.map.lock() else { return };
        if m.get(&(owner, mb.id))
            .is_some_and(|old| old.0.highest_modseq > mb.highest_modseq)
        {
            return;
        }
        m.remove(&(owner, mb.id));
        let mut held: usize = m.values().map(|v| v.1.len()).sum();
        // Past the bound, the biggest snapshots go first (each is one full read to
        // rebuild), not everything: one busy mailbox does not flush everyone's.
        while held + entries.len() > Self::MAX_ENTRIES {
            let Some(biggest) = m.iter().max_by_key(|(_, v)| v.1.len()).map(|(k, _)| *k) else {
                break;
            };
            if let Some(v) = m.remove(&biggest) {
                held -= v.1.len();
            }
        }
        m.insert((owner, mb.id), std::sync::Arc::new((mb, entries)));
    }

    /// Forgets a mailbox (deleted, or its snapshot can no longer be trusted).
    fn forget(&self, owner: PrincipalId, id: MailboxId) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(&(owner, id));
        }
    }

    /// `old` with the expunged UIDs removed and the changed entries put in (replacing
    /// those with the same UID), in UID order.
    pub(crate) fn apply(
        old: &[MailboxEntry],
        changed: Vec<MailboxEntry>,
        expunged: &[u32],
    ) -> Vec<MailboxEntry> {
        let gone: std::collections::HashSet<u32> = expunged.iter().copied().collect();
        let mut out: Vec<MailboxEntry> = Vec::with_capacity(old.len() + changed.len());
        out.extend(old.iter().filter(|e| !gone.contains(&e.uid)).cloned());
        for e in changed {
            match out.binary_search_by_key(&e.uid, |x| x.uid) {
                Ok(i) => out[i] = e,
                Err(i) if i == out.len() => out.push(e),
                Err(i) => out.insert(i, e),
            }
        }
        out
    }
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

    /// The mailbox and its entries in UID order, from one snapshot. Needs `r`.
    ///
    /// The last snapshot of each recently opened mailbox is kept ([`ViewCache`]): the
    /// next open reads only the store's delta since it and applies it, which gives the
    /// same entries as a full read of the newer snapshot, without reading the
    /// unchanged ones.
    pub async fn open_mailbox(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
    ) -> Result<(Mailbox, Vec<MailboxEntry>)> {
        self.check_rights(who, access, Rights::READ).await?;
        let (owner, id) = (access.owner, access.mailbox.id);
        if let Some(old) = self.views.get(owner, id) {
            let d = match self
                .store
                .mailbox_delta(owner, id, old.0.highest_modseq)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    self.views.forget(owner, id);
                    return Err(e.into());
                }
            };
            // The delta is only good on the snapshot it continues: same UIDVALIDITY, and
            // a store that has not gone back in time (a restore); the journal is never
            // pruned, so every change since the snapshot is in it.
            if d.mailbox.uid_validity == old.0.uid_validity
                && d.mailbox.highest_modseq >= old.0.highest_modseq
            {
                if d.changed.is_empty() && d.expunged.is_empty() {
                    let entries = old.1.clone();
                    if d.mailbox != old.0 {
                        self.views.put(owner, d.mailbox.clone(), entries.clone());
                    }
                    return Ok((d.mailbox, entries));
                }
                let entries = ViewCache::apply(&old.1, d.changed, &d.expunged);
                self.views.put(owner, d.mailbox.clone(), entries.clone());
                return Ok((d.mailbox, entries));
            }
        }
        let (mb, entries) = self.store.mailbox_entries(owner, id).await?;
        self.views.put(owner, mb.clone(), entries.clone());
        Ok((mb, entries))
    }

    /// What changed in the mailbox after `since` (the `highest_modseq` of the caller's
    /// last snapshot of it), from one snapshot: entries added or re-flagged, UIDs
    /// expunged. Reads only the changed rows, so catching up costs what changed.
    pub async fn mailbox_delta(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
        since: u64,
    ) -> Result<MailboxDelta> {
        self.check_rights(who, access, Rights::READ).await?;
        Ok(self
            .store
            .mailbox_delta(access.owner, access.mailbox.id, since)
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

    /// UIDs of the mailbox expunged after `since` (QRESYNC VANISHED), from the owner's
    /// journal. Needs `r`.
    pub async fn expunged_since(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
        since: u64,
    ) -> Result<Vec<u32>> {
        self.check_rights(who, access, Rights::READ).await?;
        const PAGE: usize = 10_000;
        let mut out = Vec::new();
        let mut from = since;
        loop {
            let page = self.store.changes_since(access.owner, from, PAGE).await?;
            let Some(last) = page.last().map(|c| c.modseq) else {
                break;
            };
            for c in &page {
                if c.kind == ChangeKind::MessageExpunged && c.mailbox == Some(access.mailbox.id) {
                    if let Some(u) = c.uid {
                        out.push(u);
                    }
                }
            }
            from = last;
            if page.len() < PAGE {
                break;
            }
        }
        Ok(out)
    }

    pub async fn create_mailbox(
        &self,
        who: &Authenticated,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        if crate::access::split_shared(name).is_some() {
            if special_use.is_some() {
                return Err(CoreError::Refused(
                    "special use is only for one's own mailboxes".into(),
                ));
            }
            return self.create_delegated(who, name).await;
        }
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
        let mut new_ids = Vec::new();
        // The nearest existing ancestor: new levels inherit its ACL (as a delegate's
        // CREATE does), without send-as, which belongs to the INBOX only.
        let mut ancestor: Option<&Mailbox> = None;
        for (i, level) in levels.iter().enumerate() {
            if i > 0 {
                prefix.push(SEPARATOR);
            }
            prefix.push_str(level);
            if let Some(m) = existing.iter().find(|m| m.name == prefix) {
                ancestor = Some(m);
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
            new_ids.push(mb.id);
            ops.push(Op::CreateMailbox(mb));
        }
        let mut inherited = Vec::new();
        if let Some(parent) = ancestor {
            for (grantee, rights) in self.store.mailbox_acl(account, parent.id).await? {
                let rights = Rights::parse(&rights)
                    .unwrap_or(Rights::NONE)
                    .minus(Rights::SEND_AS);
                if rights.is_empty() {
                    continue;
                }
                for id in &new_ids {
                    ops.push(Op::SetMailboxAcl {
                        account,
                        mailbox: *id,
                        grantee,
                        rights: rights.to_string(),
                    });
                }
                inherited
                    .push(serde_json::json!({"grantee": grantee.0, "rights": rights.to_string()}));
            }
        }
        ops.push(Op::AppendLedger(Core::ledger_record(
            who.ctx(),
            "mailbox.create",
            Some(who.address()),
            vec![format!("mailbox:{name}")],
            "ok",
            None,
            (!inherited.is_empty()).then(|| serde_json::json!({ "inherited_acl": inherited })),
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
    /// Another account's mailbox needs `x` on it (RFC 4314 §4).
    pub async fn delete_mailbox(&self, who: &Authenticated, name: &str) -> Result<()> {
        let access = self.resolve_mailbox(who, name).await?;
        self.check_rights(who, &access, Rights::DELETE_MAILBOX)
            .await?;
        let mb = access.mailbox.clone();
        if mb.special_use == Some(SpecialUse::Inbox) || is_inbox(&mb.name) {
            return Err(CoreError::Refused("INBOX cannot be deleted".into()));
        }
        let child_prefix = format!("{}{SEPARATOR}", mb.name);
        if self
            .store
            .mailboxes(access.owner)
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
                &access.ctx(who),
                "mailbox.delete",
                Some(&access.owner_address),
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
    /// Within another account: `x` on the mailbox and `k` on the new parent, which must
    /// exist (RFC 4314 §4); never from one account to another.
    pub async fn rename_mailbox(&self, who: &Authenticated, from: &str, to: &str) -> Result<()> {
        let access = self.resolve_mailbox(who, from).await?;
        self.check_rights(who, &access, Rights::DELETE_MAILBOX)
            .await?;
        let account = access.owner;
        let src = access.mailbox.clone();
        let to = if access.is_own(who) {
            normalize_mailbox_name(to)?
        } else {
            self.delegated_target(who, &access, to).await?
        };
        if !access.is_own(who) && is_inbox(&src.name) {
            return Err(CoreError::Refused(
                "another account's INBOX cannot be renamed".into(),
            ));
        }
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
                let (from, to) = (MailboxAccess::own(who, src), MailboxAccess::own(who, dst));
                self.copy_messages(who, &from, &uids, &to, true).await?;
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
            &access.ctx(who),
            "mailbox.rename",
            Some(&access.owner_address),
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
        let access = self.resolve_mailbox(who, name).await?;
        if !access.is_own(who) {
            // Subscriptions are a flag on the owner's mailbox, so another account's
            // mailbox cannot carry ours: those are always listed as subscribed.
            return if subscribed {
                Ok(())
            } else {
                Err(CoreError::Refused(
                    "other accounts' mailboxes are always subscribed".into(),
                ))
            };
        }
        let mb = access.mailbox;
        self.store
            .write(vec![Op::SetSubscribed {
                account: mb.account,
                mailbox: mb.id,
                subscribed,
            }])
            .await?;
        Ok(())
    }

    /// Writes the ledger entry for a read of the given messages (UID and message id, as
    /// the caller's view of the mailbox has them) of one of the account's mailboxes and
    /// returns the grant that lets the caller load their data, and only theirs.
    /// `action` is `message.read` or `message.search`; `detail` says what (FETCH items,
    /// search keys), for the ledger.
    /// Needs `r`; the entry names the reader (the session) and the owner (the target),
    /// so a delegate's reads show as theirs, of the owner's mail.
    pub async fn grant_read(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
        action: &'static str,
        messages: &[(u32, MessageId)],
        detail: &str,
    ) -> Result<ReadGrant> {
        self.check_rights(who, access, Rights::READ).await?;
        let uids: Vec<u32> = messages.iter().map(|m| m.0).collect();
        let uids = &uids[..];
        let mailbox = &access.mailbox;
        let mut objects = vec![format!("mailbox:{}", mailbox.id)];
        objects.push(format!("uid:{}", uid_ranges(uids)));
        self.record(
            &access.ctx(who),
            action,
            Some(&access.owner_address),
            objects,
            "ok",
            None,
            Some(serde_json::json!({ "what": detail, "count": uids.len() })),
        )
        .await?;
        Ok(ReadGrant {
            account: access.owner,
            mailbox: mailbox.id,
            messages: std::sync::Arc::new(messages.iter().map(|m| m.1).collect()),
        })
    }

    /// Metadata of messages covered by a grant; an id it does not cover is not found.
    pub async fn granted_records(
        &self,
        grant: &ReadGrant,
        ids: Vec<MessageId>,
    ) -> Result<Vec<MessageRecord>> {
        if let Some(id) = ids.iter().find(|id| !grant.messages.contains(id)) {
            return Err(CoreError::NotFound(format!("message {id}")));
        }
        Ok(self.store.messages(grant.account, ids).await?)
    }

    /// The bytes of a message covered by a grant.
    pub async fn granted_blob(&self, grant: &ReadGrant, record: &MessageRecord) -> Result<Vec<u8>> {
        if record.account != grant.account || !grant.messages.contains(&record.id) {
            return Err(CoreError::NotFound(format!("message {}", record.id)));
        }
        Ok(self.blobs.get(&record.blob.hash).await?)
    }

    /// STORE: changes flags of the UIDs; returns (changed (uid, modseq), skipped by
    /// UNCHANGEDSINCE). Flags the caller has no right to change (`s` for `\Seen`, `t`
    /// for `\Deleted`, `w` for the others and keywords) are left as they are, silently
    /// (RFC 4314 §4: clients handle a NO to STORE badly).
    #[allow(clippy::too_many_arguments)]
    pub async fn store_flags(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
        uids: Vec<u32>,
        action: FlagAction,
        flags: Flags,
        keywords: Vec<String>,
        unchanged_since: Option<u64>,
    ) -> Result<(Vec<(u32, u64)>, Vec<u32>)> {
        check_keywords(&keywords)?;
        let rights = self.check_rights(who, access, Rights::READ).await?;
        let (account, mailbox) = (access.owner, access.mailbox.id);
        // Without every flag right, the store changes only what the rights allow, at
        // commit time (RFC 4314 §4: the rest is ignored silently): a concurrent change
        // to a flag this user may not touch is never reverted.
        let scope = (!rights.all_flags()).then(|| postern_store::ops::FlagScope {
            flags: rights.settable_flags(),
            keywords: rights.contains(Rights::WRITE),
        });
        if let Some(sc) = scope
            && sc.flags == Flags::default()
            && !sc.keywords
        {
            return Ok((Vec::new(), Vec::new()));
        }
        // A delegate's changes to someone else's mail are in the ledger (the owner's own
        // flag changes are not: they read or expose nothing).
        let note = (!access.is_own(who)).then(|| {
            Op::AppendLedger(Core::ledger_record(
                &access.ctx(who),
                "message.flags",
                Some(&access.owner_address),
                vec![
                    format!("mailbox:{mailbox}"),
                    format!("uid:{}", uid_ranges(&uids)),
                ],
                "ok",
                None,
                Some(serde_json::json!({
                    "action": format!("{action:?}"),
                    "flags": flags.0,
                    "keywords": keywords,
                })),
            ))
        });
        let mut ops = vec![Op::StoreFlags {
            account,
            mailbox,
            uids,
            action,
            flags,
            keywords,
            unchanged_since,
            scope,
        }];
        ops.extend(note);
        let r = self.store.write(ops).await?;
        let (mut changed, mut skipped) = (Vec::new(), Vec::new());
        for x in r {
            match x {
                OpResult::FlagsStored {
                    changed: c,
                    skipped: s,
                } => {
                    changed.extend(c);
                    skipped.extend(s);
                }
                OpResult::LedgerAppended { .. } => {}
                other => {
                    return Err(CoreError::Internal(format!(
                        "unexpected store result {other:?}"
                    )));
                }
            }
        }
        changed.sort_unstable();
        skipped.sort_unstable();
        Ok((changed, skipped))
    }

    /// Removes the UIDs from the mailbox, with the ledger entry in the same batch.
    /// Needs `e` (RFC 4314 §4).
    pub async fn expunge(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
        uids: Vec<u32>,
    ) -> Result<Vec<u32>> {
        self.check_rights(who, access, Rights::EXPUNGE).await?;
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mailbox = access.mailbox.id;
        let objects = vec![
            format!("mailbox:{mailbox}"),
            format!("uid:{}", uid_ranges(&uids)),
        ];
        let r = self
            .store
            .write(vec![
                Op::Expunge {
                    account: access.owner,
                    mailbox,
                    uids,
                    only_deleted: true,
                },
                Op::AppendLedger(Core::ledger_record(
                    &access.ctx(who),
                    "message.expunge",
                    Some(&access.owner_address),
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
    /// with its ledger entry. Nothing is done when none exist. Needs `r` on the source
    /// (MOVE: `t` and `e` too) and `i` on the target, whose `s`/`w`/`t` decide which
    /// flags come along (RFC 4314 §4, RFC 6851 §3.3). Between accounts the message is
    /// stored again for the target's owner (same blob).
    pub async fn copy_messages(
        &self,
        who: &Authenticated,
        from_access: &MailboxAccess,
        uids: &[u32],
        to_access: &MailboxAccess,
        remove: bool,
    ) -> Result<Copied> {
        let need = if remove {
            Rights::READ
                .union(Rights::DELETE_MESSAGE)
                .union(Rights::EXPUNGE)
        } else {
            Rights::READ
        };
        self.check_rights(who, from_access, need).await?;
        let to_rights = self.check_rights(who, to_access, Rights::INSERT).await?;
        let account = from_access.owner;
        let to_account = to_access.owner;
        let (from, to) = (from_access.mailbox.id, to_access.mailbox.id);
        let (_, entries) = self.store.mailbox_entries(account, from).await?;
        let (dst, _) = self.store.mailbox_entries(to_account, to).await?;
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
            let mut message = (*rec).clone();
            if to_account != account {
                let refs = crate::message::thread_references(&message.meta);
                message.id = MessageId::generate();
                message.account = to_account;
                message.thread_id = match self.store.thread_of(to_account, &refs).await? {
                    Some(t) => t,
                    None => message.id.to_string(),
                };
            }
            let (flags, keywords) = if to_rights.all_flags() {
                (e.flags, e.keywords.clone())
            } else {
                to_rights.filter_flags(e.flags, e.keywords.clone())
            };
            appends.push(Op::AppendMessage {
                message,
                mailbox: to,
                flags,
                keywords,
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
                only_deleted: false,
            });
        }
        ops.extend(appends);
        ops.push(Op::AppendLedger(Core::ledger_record(
            &from_access.ctx(who),
            if remove {
                "message.move"
            } else {
                "message.copy"
            },
            Some(&from_access.owner_address),
            {
                let mut o = vec![
                    format!("mailbox:{from}"),
                    format!("uid:{}", uid_ranges(&sources)),
                    format!("to-mailbox:{to}"),
                ];
                if to_account != account {
                    o.push(format!("to-account:{}", to_access.owner_address));
                }
                o
            },
            "ok",
            None,
            None,
        )));
        if to_account != account {
            // The other account's side: what arrived in it, and from whom.
            ops.push(Op::AppendLedger(Core::ledger_record(
                &to_access.ctx(who),
                "message.copy_in",
                Some(&to_access.owner_address),
                vec![
                    format!("mailbox:{to}"),
                    format!("from-account:{}", from_access.owner_address),
                    format!("from-mailbox:{from}"),
                    format!("uid:{}", uid_ranges(&sources)),
                ],
                "ok",
                None,
                None,
            )));
        }
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
    /// Needs `i`; flags without `s`/`w`/`t` are dropped (RFC 4314 §4). The owner's
    /// quota counts.
    pub async fn append_messages(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
        messages: Vec<NewMessage>,
    ) -> Result<Appended> {
        let rights = self.check_rights(who, access, Rights::INSERT).await?;
        let account = access.owner;
        let mailbox = access.mailbox.id;
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
        let mut blob_ops = Vec::new();
        let mut ids = Vec::with_capacity(messages.len());
        for m in messages {
            check_keywords(&m.keywords)?;
            let received = m.received_ms.unwrap_or_else(now_ms);
            let (record, staged) = self.prepare_message(account, m.raw, received).await?;
            blob_ops.extend(staged);
            ids.push(format!("message:{}", record.id));
            let (flags, keywords) = if rights.all_flags() {
                (m.flags, m.keywords)
            } else {
                rights.filter_flags(m.flags, m.keywords)
            };
            ops.push(Op::AppendMessage {
                message: record,
                mailbox,
                flags,
                keywords,
            });
        }
        let mut objects = vec![format!("mailbox:{mailbox}")];
        objects.extend(ids);
        ops.push(Op::AppendLedger(Core::ledger_record(
            &access.ctx(who),
            "message.append",
            Some(&access.owner_address),
            objects,
            "ok",
            None,
            Some(serde_json::json!({ "bytes": total })),
        )));
        // The blobs commit with the records that refer to them.
        ops.extend(blob_ops);
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

    fn e(uid: u32, flags: Flags) -> MailboxEntry {
        MailboxEntry {
            uid,
            message: MessageId(i64::from(uid)),
            size: 10,
            flags,
            keywords: Vec::new(),
            modseq: 1,
            saved_ms: 0,
        }
    }

    /// A kept snapshot plus a delta: expunged gone, changed replaced, new appended, in
    /// UID order (what a full read of the newer snapshot gives).
    #[test]
    fn view_cache_applies_a_delta() {
        let old = vec![
            e(1, Flags::default()),
            e(2, Flags::default()),
            e(4, Flags::default()),
        ];
        let got = ViewCache::apply(
            &old,
            vec![
                e(2, Flags::SEEN),
                e(3, Flags::DRAFT),
                e(7, Flags::default()),
            ],
            &[1, 6],
        );
        let uids: Vec<u32> = got.iter().map(|x| x.uid).collect();
        assert_eq!(uids, vec![2, 3, 4, 7]);
        assert_eq!(got[0].flags, Flags::SEEN);
        assert_eq!(got[1].flags, Flags::DRAFT);
        assert!(ViewCache::apply(&[], vec![], &[1]).is_empty());
    }

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
