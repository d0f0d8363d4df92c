//! Who may do what on a mailbox (RFC 4314 ACL): the rights, the names other accounts'
//! mailboxes have in a user's view, and resolving a name to a mailbox with the caller's
//! rights. Every mail protocol reaches a mailbox only through [`Core::resolve_mailbox`]
//! or [`Core::visible_mailboxes`], so the check cannot be forgotten in a session.
//!
//! **Names:** the owner's own mailboxes by name; another individual's shared mailbox
//! as `Other Users/<address>/<name>`; a shared principal's (`postern account add
//! --kind shared`) as `Shared/<address>/<name>` (RFC 2342 namespaces).
//!
//! **Enforcement:** every `Core` method that touches a mailbox (open, delta, read
//! grant, STORE, EXPUNGE, COPY/MOVE, APPEND, CREATE/DELETE/RENAME, SETACL) takes a
//! [`MailboxAccess`] or a name, and re-reads the caller's rights from the store
//! ([`Core::rights_now`]) before acting: a session only asks, and a grant removed by
//! the owner counts from the next command. The rights a session holds in its
//! `MailboxAccess` are a display copy (MYRIGHTS, SELECT's read-only state).
//!
//! **Security:** a mailbox of another account on which the caller has no right at all
//! is "not found", the same answer as one that does not exist (RFC 4314 §6: no
//! existence leak); an operation needing `r` (or `l`) that the caller lacks both of is
//! "not found" too, and other missing rights are NO [NOPERM]. Rights are granted per
//! mailbox to principals only (no `anyone`, no negative rights): a grant names who gets
//! it. Granting is the owner's, or a holder of `a`'s (or the administrator's, `postern
//! mailbox acl`), and is recorded in the ledger with before/after values (DESIGN
//! invariant 10). A delegate's reads and changes are recorded with the delegate role,
//! the reader's session and the owner as target.

use crate::Core;
use crate::auth::Authenticated;
use crate::error::{CoreError, Result};
use postern_store::*;

/// The namespace prefix of other individuals' mailboxes (RFC 2342 "other users").
pub const OTHER_USERS: &str = "Other Users";
/// The namespace prefix of shared principals' mailboxes (RFC 2342 "shared").
pub const SHARED: &str = "Shared";

/// A set of RFC 4314 rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rights(u16);

/// The rights in canonical order (RFC 4314 §2.1), then ours: RFC 4314 §2.1 leaves the
/// digits to implementations, and `0` is "send as": on an account's INBOX it lets the
/// grantee submit mail with that account's addresses as sender (Exchange's Send As).
const LETTERS: &[u8; 12] = b"lrswipkxtea0";

impl Rights {
    pub const LOOKUP: Rights = Rights(1);
    pub const READ: Rights = Rights(1 << 1);
    pub const SEEN: Rights = Rights(1 << 2);
    pub const WRITE: Rights = Rights(1 << 3);
    pub const INSERT: Rights = Rights(1 << 4);
    pub const POST: Rights = Rights(1 << 5);
    pub const CREATE: Rights = Rights(1 << 6);
    pub const DELETE_MAILBOX: Rights = Rights(1 << 7);
    pub const DELETE_MESSAGE: Rights = Rights(1 << 8);
    pub const EXPUNGE: Rights = Rights(1 << 9);
    pub const ADMIN: Rights = Rights(1 << 10);
    /// `0`: send as the INBOX's owner (submission's From/Sender/MAIL FROM).
    pub const SEND_AS: Rights = Rights(1 << 11);
    pub const ALL: Rights = Rights((1 << 12) - 1);
    pub const NONE: Rights = Rights(0);

    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }
    pub fn minus(self, other: Rights) -> Rights {
        Rights(self.0 & !other.0)
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Parses rights letters; the obsolete `c` means `kx` and `d` means `te` (RFC 4314
    /// §2.1.1, as we advertise `RIGHTS=texk`). Unknown letters are refused.
    pub fn parse(s: &str) -> Result<Rights> {
        let mut r = Rights::NONE;
        for ch in s.bytes() {
            r = r.union(match ch {
                b'c' => Rights::CREATE.union(Rights::DELETE_MAILBOX),
                b'd' => Rights::DELETE_MESSAGE.union(Rights::EXPUNGE),
                _ => match LETTERS.iter().position(|l| *l == ch) {
                    Some(i) => Rights(1 << i),
                    None => {
                        return Err(CoreError::invalid(
                            "rights",
                            format!("unknown right {:?}", ch as char),
                        ));
                    }
                },
            });
        }
        Ok(r)
    }
}

impl Rights {
    /// The rights as ACL, MYRIGHTS and LISTRIGHTS responses write them: RFC 4314 §2.1.1
    /// (with RIGHTS=texk) requires the obsolete `c` when `k` or `x` is held and `d` when
    /// `t` or `e` is, for clients that only know RFC 2086.
    pub fn to_wire(self) -> String {
        let mut s = self.to_string();
        if self.0 & (Rights::CREATE.0 | Rights::DELETE_MAILBOX.0) != 0 {
            s.push('c');
        }
        if self.0 & (Rights::DELETE_MESSAGE.0 | Rights::EXPUNGE.0) != 0 {
            s.push('d');
        }
        s
    }
}

impl std::fmt::Display for Rights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, l) in LETTERS.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                write!(f, "{}", *l as char)?;
            }
        }
        Ok(())
    }
}

/// A mailbox as one user reaches it: whose it is, its name in the user's view, and the
/// user's rights on it.
#[derive(Debug, Clone)]
pub struct MailboxAccess {
    /// The owning account (the store's `account` for every op on this mailbox).
    pub owner: PrincipalId,
    /// The owner's address (for the ledger's target).
    pub owner_address: String,
    pub mailbox: Mailbox,
    /// The name in the caller's view (`Other Users/bob@example.com/INBOX`).
    pub name: String,
    pub rights: Rights,
}

impl Rights {
    /// The rights that make a SELECT read-write (as Dovecot: insert, expunge, or any
    /// flag right); with `r` alone or with only `l`/`k`/`x`/`a`/`p` the mailbox is
    /// read-only (RFC 4314 §4).
    pub const WRITABLE: Rights = Rights(
        Rights::SEEN.0
            | Rights::WRITE.0
            | Rights::INSERT.0
            | Rights::DELETE_MESSAGE.0
            | Rights::EXPUNGE.0,
    );

    /// True when any of `other` is held.
    pub fn intersects(self, other: Rights) -> bool {
        self.0 & other.0 != 0
    }

    /// The system flags a holder of these rights may change (RFC 4314 §4 STORE):
    /// `\Seen` with `s`, `\Deleted` with `t`, the others with `w`.
    pub fn settable_flags(self) -> Flags {
        let mut f = Flags::default();
        if self.contains(Rights::SEEN) {
            f = f.union(Flags::SEEN);
        }
        if self.contains(Rights::DELETE_MESSAGE) {
            f = f.union(Flags::DELETED);
        }
        if self.contains(Rights::WRITE) {
            f = f
                .union(Flags::ANSWERED)
                .union(Flags::FLAGGED)
                .union(Flags::DRAFT);
        }
        f
    }

    /// True when every flag and keyword may be changed (`s`, `w` and `t`).
    pub fn all_flags(self) -> bool {
        self.contains(
            Rights::SEEN
                .union(Rights::WRITE)
                .union(Rights::DELETE_MESSAGE),
        )
    }

    /// Keeps of `flags`/`keywords` what these rights may set (APPEND, COPY: RFC 4314 §4
    /// "?" columns; flags without the right are dropped silently).
    pub fn filter_flags(self, flags: Flags, keywords: Vec<String>) -> (Flags, Vec<String>) {
        let f = Flags(flags.0 & self.settable_flags().0);
        let k = if self.contains(Rights::WRITE) {
            keywords
        } else {
            Vec::new()
        };
        (f, k)
    }
}

/// The rights every RFC 4314 server grants the owner, and which LISTRIGHTS reports as
/// always granted to them.
pub const OWNER_RIGHTS: Rights = Rights::ALL;

/// `<address>/<rest>` → (address, rest), split at the first separator after the `@`: a
/// local part may hold a `/` (`dev/ops@example.com`), a domain cannot.
fn split_address(s: &str) -> Option<(&str, &str)> {
    let from = s.find('@').unwrap_or(0);
    let i = from + s[from..].find(crate::mailbox::SEPARATOR)?;
    Some((&s[..i], &s[i + crate::mailbox::SEPARATOR.len_utf8()..]))
}

/// A name in another account's namespace: (prefix, address, rest) for
/// `Other Users/<address>/<rest>` or `Shared/<address>/<rest>`; `rest` may be empty
/// (`Other Users/<address>`). `None` for the caller's own names.
pub fn split_shared(name: &str) -> Option<(&'static str, &str, &str)> {
    for prefix in [OTHER_USERS, SHARED] {
        let Some(rest) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix(crate::mailbox::SEPARATOR))
        else {
            continue;
        };
        return Some(match split_address(rest) {
            Some((a, inner)) => (prefix, a, inner),
            None => (prefix, rest, ""),
        });
    }
    if name == OTHER_USERS || name == SHARED {
        return Some((if name == SHARED { SHARED } else { OTHER_USERS }, "", ""));
    }
    None
}

/// Refuses unless `rights` hold `needed`: "not found" without lookup or read rights
/// (no existence leak), otherwise a permission refusal naming the missing rights.
fn require_rights(rights: Rights, needed: Rights, name: &str) -> Result<()> {
    if rights.contains(needed) {
        return Ok(());
    }
    if !rights.contains(Rights::LOOKUP) && !rights.contains(Rights::READ) {
        return Err(CoreError::NotFound(format!("mailbox {name}")));
    }
    Err(CoreError::Forbidden(format!(
        "missing right {} on {name}",
        needed.minus(rights)
    )))
}

impl MailboxAccess {
    /// The caller's own mailbox (every right).
    pub(crate) fn own(who: &Authenticated, mailbox: Mailbox) -> MailboxAccess {
        MailboxAccess {
            owner: who.principal().id,
            owner_address: who.address().to_string(),
            name: mailbox.name.clone(),
            mailbox,
            rights: OWNER_RIGHTS,
        }
    }

    /// The name another mailbox of the same owner has in the caller's view.
    pub(crate) fn view_name(&self, inner: &str) -> String {
        match self.name.strip_suffix(self.mailbox.name.as_str()) {
            Some(prefix) if !prefix.is_empty() => format!("{prefix}{inner}"),
            _ => inner.to_string(),
        }
    }

    /// The ledger context of `who` acting on this mailbox: the delegate role when it is
    /// another account's, so the entry says whose mail a delegate read or changed.
    pub(crate) fn ctx(&self, who: &Authenticated) -> crate::Ctx {
        let mut c = who.ctx().clone();
        if !self.is_own(who) {
            c.actor.role = Role::Delegate;
        }
        c
    }

    /// True for the caller's own mailbox.
    pub fn is_own(&self, who: &Authenticated) -> bool {
        self.owner == who.principal().id
    }

    /// Refuses unless the caller holds `needed`: "not found" without lookup or read
    /// rights (no existence leak), otherwise a permission refusal.
    pub fn require(&self, needed: Rights) -> Result<()> {
        require_rights(self.rights, needed, &self.name)
    }
}

impl Core {
    /// The caller's rights on the mailbox `access` names, read from the store now (a
    /// grant removed by another session counts at once). Only the owner and the ids in
    /// `access` are used, never its `rights`: a session cannot widen its own access by
    /// building a `MailboxAccess`; ids that do not belong together have no ACL entry,
    /// so they give no rights.
    pub async fn rights_now(&self, who: &Authenticated, access: &MailboxAccess) -> Result<Rights> {
        let me = who.principal().id;
        if access.owner == me {
            return Ok(OWNER_RIGHTS);
        }
        Ok(self
            .store
            .mailbox_acl(access.owner, access.mailbox.id)
            .await?
            .into_iter()
            .find(|(g, _)| *g == me)
            .map(|(_, r)| Rights::parse(&r).unwrap_or(Rights::NONE))
            .unwrap_or(Rights::NONE))
    }

    /// Checks `needed` against the caller's current rights (see [`Core::rights_now`]);
    /// returns them.
    pub(crate) async fn check_rights(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
        needed: Rights,
    ) -> Result<Rights> {
        let rights = self.rights_now(who, access).await?;
        require_rights(rights, needed, &access.name)?;
        Ok(rights)
    }

    /// `access` with the caller's current rights; "not found" once none is left.
    pub async fn refresh_access(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
    ) -> Result<MailboxAccess> {
        let rights = self.rights_now(who, access).await?;
        if rights.is_empty() {
            return Err(CoreError::NotFound(format!("mailbox {}", access.name)));
        }
        let mut a = access.clone();
        a.rights = rights;
        Ok(a)
    }

    /// The principal whose address this is, as it appears in a shared name.
    async fn principal_named(&self, address: &str) -> Result<Option<(Principal, String)>> {
        let Ok(a) = crate::address::parse_address(address) else {
            return Ok(None);
        };
        Ok(self.find_principal(&a).await?.map(|p| (p, a.to_string())))
    }

    async fn address_of(&self, id: PrincipalId) -> Result<Option<(Principal, String)>> {
        let Some(p) = self.store.principal(id).await? else {
            return Ok(None);
        };
        let Some(d) = self
            .store
            .domains()
            .await?
            .into_iter()
            .find(|d| d.id == p.domain)
        else {
            return Ok(None);
        };
        let addr = format!("{}@{}", p.local_part, d.name);
        Ok(Some((p, addr)))
    }

    fn prefix_for(kind: PrincipalKind) -> &'static str {
        if kind == PrincipalKind::Shared {
            SHARED
        } else {
            OTHER_USERS
        }
    }

    /// Every mailbox the user can see: their own (all rights), then other accounts'
    /// that granted them at least `l`.
    pub async fn visible_mailboxes(&self, who: &Authenticated) -> Result<Vec<MailboxAccess>> {
        let me = who.principal().id;
        let mut out: Vec<MailboxAccess> = self
            .store
            .mailboxes(me)
            .await?
            .into_iter()
            .map(|m| MailboxAccess {
                owner: me,
                owner_address: who.address().to_string(),
                name: m.name.clone(),
                mailbox: m,
                rights: Rights::ALL,
            })
            .collect();
        let mut owners: std::collections::HashMap<PrincipalId, Option<(Principal, String)>> =
            Default::default();
        for (m, rights) in self.store.shared_with(me).await? {
            let rights = Rights::parse(&rights).unwrap_or(Rights::NONE);
            if !rights.contains(Rights::LOOKUP) {
                continue;
            }
            if !owners.contains_key(&m.account) {
                let o = self.address_of(m.account).await?;
                owners.insert(m.account, o);
            }
            let Some(Some((p, addr))) = owners.get(&m.account) else {
                continue;
            };
            out.push(MailboxAccess {
                owner: m.account,
                owner_address: addr.clone(),
                name: format!("{}/{addr}/{}", Self::prefix_for(p.kind), m.name),
                mailbox: m,
                rights,
            });
        }
        Ok(out)
    }

    /// A name in the user's view → the mailbox and the user's rights on it. Names of
    /// other accounts' mailboxes on which the user has no entry are "not found".
    pub async fn resolve_mailbox(&self, who: &Authenticated, name: &str) -> Result<MailboxAccess> {
        let not_found = || CoreError::NotFound(format!("mailbox {name}"));
        for prefix in [OTHER_USERS, SHARED] {
            let Some(rest) = name
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix(crate::mailbox::SEPARATOR))
            else {
                continue;
            };
            let (address, inner) = split_address(rest).ok_or_else(not_found)?;
            let inner = crate::mailbox::normalize_mailbox_name(inner)?;
            let Some((owner, addr)) = self.principal_named(address).await? else {
                return Err(not_found());
            };
            if owner.id == who.principal().id || Self::prefix_for(owner.kind) != prefix {
                return Err(not_found());
            }
            let Some(m) = self
                .store
                .mailboxes(owner.id)
                .await?
                .into_iter()
                .find(|m| m.name == inner)
            else {
                return Err(not_found());
            };
            let rights = self
                .store
                .mailbox_acl(owner.id, m.id)
                .await?
                .into_iter()
                .find(|(g, _)| *g == who.principal().id)
                .map(|(_, r)| Rights::parse(&r).unwrap_or(Rights::NONE))
                .unwrap_or(Rights::NONE);
            // Any right makes the name usable (RFC 4314 §4 "Any": `i` alone allows
            // APPEND); each operation then checks its own right.
            if rights.is_empty() {
                return Err(not_found());
            }
            return Ok(MailboxAccess {
                owner: owner.id,
                owner_address: addr.clone(),
                name: format!("{prefix}/{addr}/{}", m.name),
                mailbox: m,
                rights,
            });
        }
        let norm = crate::mailbox::normalize_mailbox_name(name)?;
        let me = who.principal().id;
        let m = self
            .store
            .mailboxes(me)
            .await?
            .into_iter()
            .find(|m| m.name == norm)
            .ok_or_else(not_found)?;
        Ok(MailboxAccess {
            owner: me,
            owner_address: who.address().to_string(),
            name: m.name.clone(),
            mailbox: m,
            rights: Rights::ALL,
        })
    }

    /// The ACL of a mailbox the user administers (`a`), as (address, rights); the
    /// owner is listed with every right.
    pub async fn mailbox_acl(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
    ) -> Result<Vec<(String, Rights)>> {
        self.check_rights(who, access, Rights::ADMIN).await?;
        let mut out = vec![(access.owner_address.clone(), OWNER_RIGHTS)];
        for (g, r) in self
            .store
            .mailbox_acl(access.owner, access.mailbox.id)
            .await?
        {
            if let Some((_, addr)) = self.address_of(g).await? {
                out.push((addr, Rights::parse(&r).unwrap_or(Rights::NONE)));
            }
        }
        // The owner first, then the grantees by address.
        out[1..].sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// SETACL/DELETEACL: changes `grantee`'s rights (RFC 4314 §3.1, §3.2). The owner's
    /// own rights cannot be changed; the grantee must be a principal that exists.
    /// `anyone` and negative (`-id`) entries are refused: the store keeps positive
    /// grants to principals only.
    pub async fn set_mailbox_acl(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
        grantee: &str,
        change: AclChange,
    ) -> Result<()> {
        self.check_rights(who, access, Rights::ADMIN).await?;
        // Send As (`0`) is the owner's to give: `a` lets a delegate manage who reads a
        // folder, never whom the owner's name may be lent to (Exchange keeps Send As
        // apart from Full Access too).
        let by_owner = access.is_own(who);
        let touches_send_as = match change {
            AclChange::Replace(r) | AclChange::Add(r) | AclChange::Remove(r) => {
                r.contains(Rights::SEND_AS)
            }
            AclChange::Delete => false,
        };
        if touches_send_as && !by_owner {
            return Err(CoreError::Forbidden(
                "only the owner may grant or remove send-as (0)".into(),
            ));
        }
        self.write_acl(
            &access.ctx(who),
            access.owner,
            &access.owner_address,
            &access.mailbox,
            grantee,
            change,
            by_owner,
        )
        .await
    }

    /// The administrator's SETACL on any account's mailbox (`postern mailbox acl`): how
    /// a shared principal's mailboxes, which nobody logs in to, get their grants.
    pub async fn admin_set_mailbox_acl(
        &self,
        admin: &crate::auth::AdminSession,
        owner: &str,
        mailbox: &str,
        grantee: &str,
        change: AclChange,
    ) -> Result<()> {
        let (p, addr, m) = self.admin_mailbox(owner, mailbox).await?;
        self.write_acl(admin.ctx(), p.id, &addr, &m, grantee, change, true)
            .await
    }

    /// The ACL of any account's mailbox, for the administrator.
    pub async fn admin_mailbox_acl(
        &self,
        _admin: &crate::auth::AdminSession,
        owner: &str,
        mailbox: &str,
    ) -> Result<Vec<(String, Rights)>> {
        let (p, addr, m) = self.admin_mailbox(owner, mailbox).await?;
        let mut out = vec![(addr, OWNER_RIGHTS)];
        for (g, r) in self.store.mailbox_acl(p.id, m.id).await? {
            if let Some((_, a)) = self.address_of(g).await? {
                out.push((a, Rights::parse(&r).unwrap_or(Rights::NONE)));
            }
        }
        out[1..].sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    async fn admin_mailbox(
        &self,
        owner: &str,
        mailbox: &str,
    ) -> Result<(Principal, String, Mailbox)> {
        let Some((p, addr)) = self.principal_named(owner).await? else {
            return Err(CoreError::NotFound(format!("account {owner}")));
        };
        let name = crate::mailbox::normalize_mailbox_name(mailbox)?;
        let m = self
            .store
            .mailboxes(p.id)
            .await?
            .into_iter()
            .find(|m| m.name == name)
            .ok_or_else(|| CoreError::NotFound(format!("mailbox {name} of {addr}")))?;
        Ok((p, addr, m))
    }

    /// `may_send_as`: the caller may change the send-as right (the owner or an
    /// administrator); otherwise a replace keeps whatever `0` the grantee had.
    #[allow(clippy::too_many_arguments)]
    async fn write_acl(
        &self,
        ctx: &crate::Ctx,
        owner: PrincipalId,
        owner_address: &str,
        mailbox: &Mailbox,
        grantee: &str,
        change: AclChange,
        may_send_as: bool,
    ) -> Result<()> {
        if grantee.eq_ignore_ascii_case("anyone") || grantee.eq_ignore_ascii_case("authuser") {
            return Err(CoreError::Refused(
                "grants to anyone are not supported; name an account".into(),
            ));
        }
        if grantee.starts_with('-') {
            return Err(CoreError::Refused(
                "negative rights are not supported".into(),
            ));
        }
        let Some((g, addr)) = self.principal_named(grantee).await? else {
            return Err(CoreError::NotFound(format!("principal {grantee}")));
        };
        if g.id == owner {
            return Err(CoreError::Refused(
                "the owner's rights cannot be changed".into(),
            ));
        }
        // Grants go to people of the owner's own domain: another hosted domain is
        // another organisation (and SETACL must not become a way to probe its accounts).
        // Groups, shared mailboxes and resources log in to nothing, so a grant to them
        // would do nothing.
        let owner_domain = owner_address.rsplit_once('@').map(|(_, d)| d);
        let grantee_domain = addr.rsplit_once('@').map(|(_, d)| d);
        if owner_domain != grantee_domain {
            return Err(CoreError::Refused(format!(
                "{addr} is not in the owner's domain; grants stay within a domain"
            )));
        }
        if g.kind != PrincipalKind::Individual {
            return Err(CoreError::Refused(format!(
                "{addr} is not a person's account; grant to the people themselves"
            )));
        }
        let before = self
            .store
            .mailbox_acl(owner, mailbox.id)
            .await?
            .into_iter()
            .find(|(p, _)| *p == g.id)
            .map(|(_, r)| r);
        let current = before
            .as_deref()
            .map(|r| Rights::parse(r).unwrap_or(Rights::NONE))
            .unwrap_or(Rights::NONE);
        let mut new = match change {
            AclChange::Replace(r) => r,
            AclChange::Add(r) => current.union(r),
            AclChange::Remove(r) => current.minus(r),
            AclChange::Delete => Rights::NONE,
        };
        if !may_send_as {
            // A delegate's replace or delete leaves the owner's send-as grant as it was.
            new = new
                .minus(Rights::SEND_AS)
                .union(if current.contains(Rights::SEND_AS) {
                    Rights::SEND_AS
                } else {
                    Rights::NONE
                });
        }
        if new.contains(Rights::SEND_AS) && mailbox.special_use != Some(SpecialUse::Inbox) {
            return Err(CoreError::Refused(
                "send-as (0) is granted on the INBOX only".into(),
            ));
        }
        let after = new.to_string();
        let ops = vec![
            Op::SetMailboxAcl {
                account: owner,
                mailbox: mailbox.id,
                grantee: g.id,
                rights: after.clone(),
            },
            Op::AppendLedger(Core::ledger_record(
                ctx,
                "mailbox.acl",
                Some(owner_address),
                vec![format!("mailbox:{}", mailbox.id), format!("grantee:{addr}")],
                "ok",
                Some(serde_json::json!({ "rights": before })),
                Some(serde_json::json!({ "rights": after })),
            )),
        ];
        self.store.write(ops).await?;
        Ok(())
    }
}

impl Core {
    /// CREATE of `Other Users/<address>/<parent>/<name>` (or `Shared/…`): needs `k` on
    /// the parent, which must exist; the new mailbox inherits the parent's ACL. Every
    /// refusal short of holding `k` is the same NO [NOPERM], whether or not the parent
    /// exists (no existence leak).
    pub(crate) async fn create_delegated(
        &self,
        who: &Authenticated,
        name: &str,
    ) -> Result<Mailbox> {
        let denied = || CoreError::Forbidden(format!("cannot create {name}"));
        let Some((parent_name, leaf)) = name.rsplit_once(crate::mailbox::SEPARATOR) else {
            return Err(denied());
        };
        let parent = match self.resolve_mailbox(who, parent_name).await {
            Ok(p) if !p.is_own(who) => p,
            Ok(_) | Err(CoreError::NotFound(_)) | Err(CoreError::Invalid { .. }) => {
                return Err(denied());
            }
            Err(e) => return Err(e),
        };
        match self.check_rights(who, &parent, Rights::CREATE).await {
            Ok(_) => {}
            Err(CoreError::NotFound(_)) => return Err(denied()),
            Err(e) => return Err(e),
        }
        let inner = crate::mailbox::normalize_mailbox_name(&format!(
            "{}{}{leaf}",
            parent.mailbox.name,
            crate::mailbox::SEPARATOR
        ))?;
        let existing = self.store.mailboxes(parent.owner).await?;
        if existing.iter().any(|m| m.name == inner) {
            return Err(CoreError::Conflict(format!("mailbox {name}")));
        }
        if existing.len() >= crate::mailbox::MAX_MAILBOXES {
            return Err(CoreError::Refused(format!(
                "at most {} mailboxes per account",
                crate::mailbox::MAX_MAILBOXES
            )));
        }
        let mb = Mailbox {
            id: MailboxId::generate(),
            account: parent.owner,
            name: inner,
            special_use: None,
            uid_validity: 0,
            uid_next: 0,
            highest_modseq: 0,
            subscribed: false,
            created_ms: now_ms(),
        };
        let mut ops = vec![Op::CreateMailbox(mb.clone())];
        for (grantee, rights) in self
            .store
            .mailbox_acl(parent.owner, parent.mailbox.id)
            .await?
        {
            // Send-as belongs to the INBOX, not to folders made under it.
            let rights = Rights::parse(&rights)
                .unwrap_or(Rights::NONE)
                .minus(Rights::SEND_AS);
            if rights.is_empty() {
                continue;
            }
            ops.push(Op::SetMailboxAcl {
                account: parent.owner,
                mailbox: mb.id,
                grantee,
                rights: rights.to_string(),
            });
        }
        ops.push(Op::AppendLedger(Core::ledger_record(
            &parent.ctx(who),
            "mailbox.create",
            Some(&parent.owner_address),
            vec![format!("mailbox:{}", mb.name)],
            "ok",
            None,
            None,
        )));
        self.store.write(ops).await?;
        let (m, _) = self.store.mailbox_entries(parent.owner, mb.id).await?;
        Ok(m)
    }

    /// The owner's name for RENAME's target `to` of another account's mailbox: in the
    /// same account, below an existing parent on which the caller holds `k`.
    pub(crate) async fn delegated_target(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
        to: &str,
    ) -> Result<String> {
        let denied = || CoreError::Forbidden(format!("cannot create {to}"));
        let Some((_, addr, inner)) = split_shared(to) else {
            return Err(CoreError::Refused(
                "a mailbox cannot be renamed into another account".into(),
            ));
        };
        match self.principal_named(addr).await? {
            Some((p, _)) if p.id == access.owner => {}
            _ => {
                return Err(CoreError::Refused(
                    "a mailbox cannot be renamed into another account".into(),
                ));
            }
        }
        let inner = crate::mailbox::normalize_mailbox_name(inner)?;
        let Some((parent, _)) = inner.rsplit_once(crate::mailbox::SEPARATOR) else {
            return Err(denied());
        };
        let parent = match self.resolve_mailbox(who, &access.view_name(parent)).await {
            Ok(p) => p,
            Err(CoreError::NotFound(_)) => return Err(denied()),
            Err(e) => return Err(e),
        };
        match self.check_rights(who, &parent, Rights::CREATE).await {
            Ok(_) => Ok(inner),
            Err(CoreError::NotFound(_)) => Err(denied()),
            Err(e) => Err(e),
        }
    }
}

/// What SETACL / DELETEACL do to one grantee's rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclChange {
    Replace(Rights),
    Add(Rights),
    Remove(Rights),
    Delete,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rights() {
        assert_eq!(Rights::parse("lr").unwrap().to_string(), "lr");
        assert_eq!(Rights::parse("rl").unwrap().to_string(), "lr");
        assert_eq!(Rights::parse("c").unwrap().to_string(), "kx");
        assert_eq!(Rights::parse("d").unwrap().to_string(), "te");
        assert_eq!(Rights::ALL.to_string(), "lrswipkxtea0");
        assert!(Rights::parse("0").unwrap().contains(Rights::SEND_AS));
        assert!(Rights::parse("1").is_err());
        assert_eq!(
            split_address("dev/ops@example.com/INBOX/x"),
            Some(("dev/ops@example.com", "INBOX/x"))
        );
        assert_eq!(split_address("a@b.c/INBOX"), Some(("a@b.c", "INBOX")));
        assert_eq!(split_address("a@b.c"), None);
        assert_eq!(Rights::parse("lrk").unwrap().to_wire(), "lrkc");
        assert_eq!(Rights::parse("lre").unwrap().to_wire(), "lred");
        assert_eq!(Rights::ALL.to_wire(), "lrswipkxtea0cd");
        assert_eq!(Rights::parse("lr").unwrap().to_wire(), "lr");
        assert!(Rights::parse("lrz").is_err());
        assert!(Rights::parse("").unwrap().is_empty());
        let r = Rights::parse("lrs").unwrap();
        assert!(r.contains(Rights::READ));
        assert!(!r.contains(Rights::WRITE));
        assert_eq!(r.minus(Rights::SEEN).to_string(), "lr");
    }

    #[test]
    fn flag_rights() {
        let p = |s: &str| Rights::parse(s).unwrap();
        assert_eq!(p("lr").settable_flags(), Flags::default());
        assert_eq!(p("s").settable_flags(), Flags::SEEN);
        assert_eq!(p("t").settable_flags(), Flags::DELETED);
        assert!(p("w").settable_flags().contains(Flags::FLAGGED));
        assert!(!p("w").settable_flags().contains(Flags::SEEN));
        assert!(p("lrswt").all_flags());
        assert!(!p("lrsw").all_flags());
        let all = Flags::SEEN.union(Flags::FLAGGED).union(Flags::DELETED);
        assert_eq!(
            p("s").filter_flags(all, vec!["$x".into()]),
            (Flags::SEEN, vec![])
        );
        assert_eq!(
            p("w").filter_flags(all, vec!["$x".into()]),
            (Flags::FLAGGED, vec!["$x".to_string()])
        );
        assert!(p("r").intersects(Rights::READ));
        assert!(!p("lrka").intersects(Rights::WRITABLE));
        assert!(p("lri").intersects(Rights::WRITABLE));
    }

    #[test]
    fn shared_names() {
        assert_eq!(
            split_shared("Other Users/a@b.c/INBOX/x"),
            Some((OTHER_USERS, "a@b.c", "INBOX/x"))
        );
        assert_eq!(
            split_shared("Shared/t@b.c/INBOX"),
            Some((SHARED, "t@b.c", "INBOX"))
        );
        assert_eq!(
            split_shared("Other Users/a@b.c"),
            Some((OTHER_USERS, "a@b.c", ""))
        );
        assert_eq!(split_shared("Other Users"), Some((OTHER_USERS, "", "")));
        assert_eq!(split_shared("Shared"), Some((SHARED, "", "")));
        assert_eq!(split_shared("Other Usersx/a"), None);
        assert_eq!(split_shared("Sharedx"), None);
        assert_eq!(split_shared("INBOX"), None);
        // Own names cannot take these prefixes.
        assert!(crate::mailbox::normalize_mailbox_name("Shared/x").is_err());
        assert!(crate::mailbox::normalize_mailbox_name("Other Users").is_err());
    }
}
