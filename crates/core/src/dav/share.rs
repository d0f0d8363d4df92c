//! Sharing calendars and address books with other accounts of the owner's domain.
//!
//! **Model:** a grant is a set of RFC 4314 rights ([`Rights`], the IMAP ACL's type) on
//! one collection for one grantee, kept in the store's `dav_shares` (one row per
//! collection and grantee). Two levels are offered: [`ShareLevel::Read`] (`lr`) and
//! [`ShareLevel::Write`] (`lrwite`: create, change and remove objects). Grants go to
//! individual accounts of the owner's own domain only, as IMAP's do.
//!
//! **Names:** a collection shared with a user appears in the user's own home as
//! `shared-<collection id>` (so every client's home-set PROPFIND Depth 1 finds it),
//! with the owner's display name and address in its display name. The global address
//! list ([`GAL_NAME`], `core::dav::gal`) is an address book every user has.
//!
//! **Enforcement:** every `Core` DAV method that reads or changes a collection asks
//! [`Core::dav_access_of`], which reads the grant from the store at that moment: a
//! revoked grant counts from the next request. A collection of another account on
//! which the caller has no grant is "not found", exactly like one that does not exist
//! (no existence leak). A delegate's reads and writes are recorded in the ledger with
//! the delegate role and the owner as target.

use crate::access::Rights;
use crate::auth::AdminSession;
use crate::error::{CoreError, Result};
use crate::{Authenticated, Core, Ctx};
use postern_store::*;

/// The prefix of a shared collection's name in the grantee's home.
pub const SHARED_PREFIX: &str = "shared-";
/// The name of the global address list in every user's address-book home.
pub const GAL_NAME: &str = "gal";

/// What a grant allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareLevel {
    None,
    Read,
    Write,
}

fn read_rights() -> Rights {
    Rights::LOOKUP.union(Rights::READ)
}

fn write_rights() -> Rights {
    read_rights()
        .union(Rights::WRITE)
        .union(Rights::INSERT)
        .union(Rights::DELETE_MESSAGE)
        .union(Rights::EXPUNGE)
}

impl ShareLevel {
    /// `read`, `write` or `none`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "read" | "r" | "ro" | "read-only" => ShareLevel::Read,
            "write" | "rw" | "read-write" => ShareLevel::Write,
            "none" | "" => ShareLevel::None,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ShareLevel::None => "none",
            ShareLevel::Read => "read",
            ShareLevel::Write => "write",
        }
    }
    pub fn rights(self) -> Rights {
        match self {
            ShareLevel::None => Rights::NONE,
            ShareLevel::Read => read_rights(),
            ShareLevel::Write => write_rights(),
        }
    }
    /// The level stored rights give (anything short of reading is none).
    pub fn of(r: Rights) -> Self {
        if r.contains(write_rights()) {
            ShareLevel::Write
        } else if r.contains(Rights::READ) {
            ShareLevel::Read
        } else {
            ShareLevel::None
        }
    }
    fn of_text(r: &str) -> Self {
        Self::of(Rights::parse(r).unwrap_or(Rights::NONE))
    }
}

/// The caller's standing on a collection (DAV:current-user-privilege-set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DavAccess {
    Owner,
    Write,
    Read,
}

/// The caller's access to one collection, as read from the store now.
#[derive(Debug, Clone)]
pub(crate) struct Access {
    pub(crate) level: DavAccess,
    /// The owner's address (the ledger target).
    pub(crate) owner_address: String,
    pub(crate) own: bool,
    pub(crate) gal: bool,
}

impl Access {
    /// The ledger context: the delegate role on another account's collection.
    pub(crate) fn ctx(&self, who: &Authenticated) -> Ctx {
        let mut c = who.ctx().clone();
        if !self.own {
            c.actor.role = Role::Delegate;
        }
        c
    }
    pub(crate) fn may_write(&self) -> Result<()> {
        match self.level {
            DavAccess::Owner | DavAccess::Write => Ok(()),
            DavAccess::Read => Err(CoreError::Forbidden(
                "read-only: the owner shared this collection for reading".into(),
            )),
        }
    }
    pub(crate) fn owner_only(&self) -> Result<()> {
        if self.level == DavAccess::Owner && !self.gal {
            Ok(())
        } else {
            Err(CoreError::Forbidden(
                "only the owner may change or remove this collection".into(),
            ))
        }
    }
}

/// Whether a collection value is the global address list (its id is negative: store
/// ids never are).
pub fn is_gal(c: &DavCollection) -> bool {
    c.id.0 < 0
}

/// Names a client may not give its own collections (they name shared ones, the GAL and
/// the scheduling inbox and outbox, in any case).
pub fn reserved_name(name: &str) -> bool {
    name.eq_ignore_ascii_case(GAL_NAME)
        || name.starts_with(SHARED_PREFIX)
        || name.eq_ignore_ascii_case(super::sched::INBOX)
        || name.eq_ignore_ascii_case(super::sched::OUTBOX)
}

fn alias(mut c: DavCollection, owner_name: &str, owner_address: &str) -> DavCollection {
    c.name = format!("{SHARED_PREFIX}{}", c.id);
    let who = if owner_name.is_empty() || owner_name == owner_address {
        owner_address.to_string()
    } else {
        format!("{owner_name} <{owner_address}>")
    };
    c.display_name = format!("{} ({who})", c.display_name);
    c
}

impl Core {
    /// The address and principal of an account id.
    pub(crate) async fn dav_address_of(
        &self,
        id: PrincipalId,
    ) -> Result<Option<(Principal, String)>> {
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

    /// The caller's access to `col`, re-read from the store. Another account's
    /// collection without a grant (or with one revoked) is "not found".
    pub(crate) async fn dav_access_of(
        &self,
        who: &Authenticated,
        col: &DavCollection,
    ) -> Result<Access> {
        let me = who.principal().id;
        if col.account == me {
            let gal = is_gal(col);
            return Ok(Access {
                level: if gal {
                    DavAccess::Read
                } else {
                    DavAccess::Owner
                },
                owner_address: who.address().to_string(),
                own: true,
                gal,
            });
        }
        let not_found = || CoreError::NotFound("no such collection".into());
        let level = self
            .store
            .dav_shares(col.account, col.id)
            .await?
            .into_iter()
            .find(|(g, _)| *g == me)
            .map(|(_, r)| ShareLevel::of_text(&r))
            .unwrap_or(ShareLevel::None);
        let level = match level {
            ShareLevel::None => return Err(not_found()),
            ShareLevel::Read => DavAccess::Read,
            ShareLevel::Write => DavAccess::Write,
        };
        let Some((_, owner_address)) = self.dav_address_of(col.account).await? else {
            return Err(not_found());
        };
        Ok(Access {
            level,
            owner_address,
            own: false,
            gal: false,
        })
    }

    /// The caller's privileges on a collection (for DAV:current-user-privilege-set).
    pub async fn dav_privileges(
        &self,
        who: &Authenticated,
        col: &DavCollection,
    ) -> Result<DavAccess> {
        Ok(self.dav_access_of(who, col).await?.level)
    }

    /// The owner's address of a collection the caller can reach (DAV:owner).
    pub async fn dav_owner_address(
        &self,
        who: &Authenticated,
        col: &DavCollection,
    ) -> Result<String> {
        Ok(self.dav_access_of(who, col).await?.owner_address)
    }

    /// A collection of the caller's home that is not one of their own: the GAL or a
    /// collection shared with them, by its name in the caller's home.
    pub(crate) async fn dav_shared_named(
        &self,
        who: &Authenticated,
        name: &str,
    ) -> Result<Option<DavCollection>> {
        if name == GAL_NAME {
            return Ok(Some(self.dav_gal_collection(who).await?));
        }
        let Some(hex) = name.strip_prefix(SHARED_PREFIX) else {
            return Ok(None);
        };
        // Only the canonical spelling (what `alias` writes) names the collection.
        let Ok(id) = i64::from_str_radix(hex, 16) else {
            return Ok(None);
        };
        if DavCollectionId(id).to_string() != hex {
            return Ok(None);
        }
        for (c, rights) in self.store.dav_shared_with(who.principal().id).await? {
            if c.id.0 != id || ShareLevel::of_text(&rights) == ShareLevel::None {
                continue;
            }
            let Some((p, addr)) = self.dav_address_of(c.account).await? else {
                return Ok(None);
            };
            return Ok(Some(alias(c, &p.display_name, &addr)));
        }
        Ok(None)
    }

    /// Every collection of the caller's homes: their own, those shared with them (as
    /// `shared-<id>`), and (`with_gal`: for the address-book home) the global address
    /// list.
    pub async fn dav_home_collections(
        &self,
        who: &Authenticated,
        with_gal: bool,
    ) -> Result<Vec<DavCollection>> {
        let mut out = self.dav_collections(who).await?;
        let mut owners: std::collections::HashMap<PrincipalId, Option<(Principal, String)>> =
            Default::default();
        for (c, rights) in self.store.dav_shared_with(who.principal().id).await? {
            if ShareLevel::of_text(&rights) == ShareLevel::None {
                continue;
            }
            let owner = match owners.get(&c.account) {
                Some(o) => o.clone(),
                None => {
                    let o = self.dav_address_of(c.account).await?;
                    owners.insert(c.account, o.clone());
                    o
                }
            };
            if let Some((p, addr)) = owner {
                out.push(alias(c, &p.display_name, &addr));
            }
        }
        if with_gal && !out.iter().any(|c| c.name == GAL_NAME) {
            out.push(self.dav_gal_collection(who).await?);
        }
        Ok(out)
    }

    /// The administrator shares `owner`'s collection `collection` with `grantee`
    /// (`postern dav share`); [`ShareLevel::None`] revokes. Recorded in the ledger with
    /// before/after values.
    pub async fn admin_dav_share(
        &self,
        admin: &AdminSession,
        owner: &str,
        collection: &str,
        grantee: &str,
        level: ShareLevel,
    ) -> Result<()> {
        let (op, owner_addr, col) = self.admin_dav_collection(owner, collection).await?;
        self.write_dav_share(admin.ctx(), &op, &owner_addr, &col, grantee, level)
            .await
    }

    /// The owner shares one of their collections over DAV (the CalendarServer
    /// `CS:share` / `DAV:share-resource` POST, crates/dav/src/share.rs): the same rules
    /// and ledger entry as `postern dav share`. Anyone but the owner is refused.
    pub async fn dav_share_set(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        grantee: &str,
        level: ShareLevel,
    ) -> Result<()> {
        self.dav_access_of(who, col).await?.owner_only()?;
        self.write_dav_share(
            who.ctx(),
            who.principal(),
            who.address(),
            col,
            grantee,
            level,
        )
        .await
    }

    /// The grants on one of the caller's own collections, as (grantee address, level).
    pub async fn dav_shares_of(
        &self,
        who: &Authenticated,
        col: &DavCollection,
    ) -> Result<Vec<(String, ShareLevel)>> {
        self.dav_access_of(who, col).await?.owner_only()?;
        self.shares_list(col.account, col.id).await
    }

    async fn write_dav_share(
        &self,
        ctx: &Ctx,
        op: &Principal,
        owner_addr: &str,
        col: &DavCollection,
        grantee: &str,
        level: ShareLevel,
    ) -> Result<()> {
        if !matches!(
            col.kind,
            DavKind::Calendar | DavKind::Tasks | DavKind::AddressBook
        ) {
            return Err(CoreError::Refused(format!(
                "{} is not a calendar, task list or address book",
                col.name
            )));
        }
        let grantee = grantee.strip_prefix("mailto:").unwrap_or(grantee);
        let Ok(ga) = crate::address::parse_address(grantee) else {
            return Err(CoreError::invalid("grantee", "not an address"));
        };
        let gaddr = ga.to_string();
        // As IMAP ACLs: grants stay within the owner's domain (decided on the address
        // alone, so another domain's accounts cannot be probed), to people.
        let owner_domain = owner_addr
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase());
        if owner_domain.as_deref() != Some(ga.domain()) {
            return Err(CoreError::Refused(format!(
                "{gaddr} is not in the owner's domain; grants stay within a domain"
            )));
        }
        let Some(g) = self.find_principal(&ga).await? else {
            return Err(CoreError::NotFound(format!("principal {gaddr}")));
        };
        if g.id == op.id {
            return Err(CoreError::Refused(
                "the owner's own access cannot be changed".into(),
            ));
        }
        if g.domain != op.domain {
            return Err(CoreError::Refused(format!(
                "{gaddr} is not in the owner's domain; grants stay within a domain"
            )));
        }
        if g.kind != PrincipalKind::Individual {
            return Err(CoreError::Refused(format!(
                "{gaddr} is not a person's account; grant to the people themselves"
            )));
        }
        let before = self
            .store
            .dav_shares(op.id, col.id)
            .await?
            .into_iter()
            .find(|(p, _)| *p == g.id)
            .map(|(_, r)| ShareLevel::of_text(&r))
            .unwrap_or(ShareLevel::None);
        let rights = level.rights();
        let rights = if rights.is_empty() {
            String::new()
        } else {
            rights.to_string()
        };
        let rec = Core::ledger_record(
            ctx,
            "dav.share",
            Some(owner_addr),
            vec![
                format!("collection:{}", col.name),
                format!("grantee:{gaddr}"),
            ],
            "ok",
            Some(serde_json::json!({ "level": before.as_str() })),
            Some(serde_json::json!({ "level": level.as_str() })),
        );
        self.store
            .write(vec![
                Op::SetDavShare {
                    account: op.id,
                    collection: col.id,
                    grantee: g.id,
                    rights,
                },
                Op::AppendLedger(rec),
            ])
            .await?;
        Ok(())
    }

    async fn shares_list(
        &self,
        owner: PrincipalId,
        col: DavCollectionId,
    ) -> Result<Vec<(String, ShareLevel)>> {
        let mut out = Vec::new();
        for (g, r) in self.store.dav_shares(owner, col).await? {
            if let Some((_, addr)) = self.dav_address_of(g).await? {
                out.push((addr, ShareLevel::of_text(&r)));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The grants on `owner`'s collection, as (grantee address, level).
    pub async fn admin_dav_shares(
        &self,
        _admin: &AdminSession,
        owner: &str,
        collection: &str,
    ) -> Result<Vec<(String, ShareLevel)>> {
        let (op, _, col) = self.admin_dav_collection(owner, collection).await?;
        self.shares_list(op.id, col.id).await
    }

    async fn admin_dav_collection(
        &self,
        owner: &str,
        collection: &str,
    ) -> Result<(Principal, String, DavCollection)> {
        let Ok(a) = crate::address::parse_address(owner) else {
            return Err(CoreError::invalid("owner", "not an address"));
        };
        let Some(p) = self.find_principal(&a).await? else {
            return Err(CoreError::NotFound(format!("account {owner}")));
        };
        let col = self
            .store
            .dav_collections(p.id)
            .await?
            .into_iter()
            .find(|c| c.name == collection)
            .ok_or_else(|| CoreError::NotFound(format!("collection {collection} of {a}")))?;
        Ok((p, a.to_string(), col))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_through_rights() {
        for l in [ShareLevel::None, ShareLevel::Read, ShareLevel::Write] {
            assert_eq!(ShareLevel::of(l.rights()), l);
            assert_eq!(ShareLevel::parse(l.as_str()), Some(l));
        }
        assert_eq!(ShareLevel::parse("admin"), None);
        assert_eq!(ShareLevel::of(Rights::LOOKUP), ShareLevel::None);
    }

    #[test]
    fn reserved_names() {
        assert!(reserved_name("gal"));
        assert!(reserved_name("shared-1f"));
        assert!(reserved_name("inbox") && reserved_name("Inbox"));
        assert!(reserved_name("outbox") && reserved_name("OUTBOX"));
        assert!(!reserved_name("calendar"));
    }
}
