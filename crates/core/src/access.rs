//! Who may do what on a mailbox (RFC 4314 ACL): the rights, the names other accounts'
//! mailboxes have in a user's view, and resolving a name to a mailbox with the caller's
//! rights. Every mail protocol reaches a mailbox only through [`Core::resolve_mailbox`]
//! or [`Core::visible_mailboxes`], so the check cannot be forgotten in a session.
//!
//! **Names:** the owner's own mailboxes by name; another individual's shared mailbox
//! as `Other Users/<address>/<name>`; a shared principal's (`postern account add
//! --kind shared`) as `Shared/<address>/<name>` (RFC 2342 namespaces).
//!
//! **Security:** a mailbox the caller has no right to look up (`l`) or read (`r`) is
//! "not found", the same answer as one that does not exist (RFC 4314 §4: no existence
//! leak). Rights are granted per mailbox to principals only (no `anyone`): a grant
//! names who gets it. Granting is the owner's, or a holder of `a`'s, and is recorded in
//! the ledger with before/after values (DESIGN invariant 10).

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

/// The rights in canonical order (RFC 4314 §2.1).
const LETTERS: &[u8; 11] = b"lrswipkxtea";

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
    pub const ALL: Rights = Rights((1 << 11) - 1);
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

impl MailboxAccess {
    /// True for the caller's own mailbox.
    pub fn is_own(&self, who: &Authenticated) -> bool {
        self.owner == who.principal().id
    }

    /// Refuses unless the caller holds `needed`: "not found" without lookup or read
    /// rights (no existence leak), otherwise a permission refusal.
    pub fn require(&self, needed: Rights) -> Result<()> {
        if self.rights.contains(needed) {
            return Ok(());
        }
        if !self.rights.contains(Rights::LOOKUP) && !self.rights.contains(Rights::READ) {
            return Err(CoreError::NotFound(format!("mailbox {}", self.name)));
        }
        Err(CoreError::Forbidden(format!(
            "missing right {needed} on {}",
            self.name
        )))
    }
}

impl Core {
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
            let (address, inner) = rest
                .split_once(crate::mailbox::SEPARATOR)
                .ok_or_else(not_found)?;
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
            if !rights.contains(Rights::LOOKUP) && !rights.contains(Rights::READ) {
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
        access.require(Rights::ADMIN)?;
        let mut out = vec![(access.owner_address.clone(), Rights::ALL)];
        for (g, r) in self
            .store
            .mailbox_acl(access.owner, access.mailbox.id)
            .await?
        {
            if let Some((_, addr)) = self.address_of(g).await? {
                out.push((addr, Rights::parse(&r).unwrap_or(Rights::NONE)));
            }
        }
        let _ = who;
        Ok(out)
    }

    /// SETACL/DELETEACL: sets (or with `None` removes) `grantee`'s rights. The owner's
    /// own rights cannot be changed; the grantee must be a principal that exists.
    pub async fn set_mailbox_acl(
        &self,
        who: &Authenticated,
        access: &MailboxAccess,
        grantee: &str,
        rights: Option<Rights>,
    ) -> Result<()> {
        access.require(Rights::ADMIN)?;
        let Some((g, addr)) = self.principal_named(grantee).await? else {
            return Err(CoreError::NotFound(format!("principal {grantee}")));
        };
        if g.id == access.owner {
            return Err(CoreError::Refused(
                "the owner's rights cannot be changed".into(),
            ));
        }
        let before = self
            .store
            .mailbox_acl(access.owner, access.mailbox.id)
            .await?
            .into_iter()
            .find(|(p, _)| *p == g.id)
            .map(|(_, r)| r);
        let after = rights.map(|r| r.to_string()).unwrap_or_default();
        let ops = vec![
            Op::SetMailboxAcl {
                account: access.owner,
                mailbox: access.mailbox.id,
                grantee: g.id,
                rights: after.clone(),
            },
            Op::AppendLedger(Core::ledger_record(
                who.ctx(),
                "mailbox.acl",
                Some(&access.owner_address),
                vec![
                    format!("mailbox:{}", access.mailbox.id),
                    format!("grantee:{addr}"),
                ],
                "ok",
                Some(serde_json::json!({ "rights": before })),
                Some(serde_json::json!({ "rights": after })),
            )),
        ];
        self.store.write(ops).await?;
        Ok(())
    }
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
        assert_eq!(Rights::ALL.to_string(), "lrswipkxtea");
        assert!(Rights::parse("lrz").is_err());
        assert!(Rights::parse("").unwrap().is_empty());
        let r = Rights::parse("lrs").unwrap();
        assert!(r.contains(Rights::READ));
        assert!(!r.contains(Rights::WRITE));
        assert_eq!(r.minus(Rights::SEEN).to_string(), "lr");
    }
}
