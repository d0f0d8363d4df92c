//! Who an address is: accounts, aliases, groups, plus addressing and catch-alls.

use crate::address::{Address, parse_address};
use crate::error::Result;
use crate::{Authenticated, Core};
use postern_store::{Principal, PrincipalKind};
use std::collections::BTreeSet;

/// Aliases and groups may point at aliases and groups; past this depth a chain is
/// treated as a loop and cut.
pub const MAX_EXPANSION_DEPTH: usize = 8;
/// A group expansion stops adding recipients past this many (a group of groups of
/// groups can otherwise fan one message out without bound).
pub const MAX_EXPANSION: usize = 10_000;

/// Who may send to a group (Exchange's "require that all senders are authenticated"
/// and "only members"). Groups take mail from anyone unless set otherwise: the MX
/// listener must reach lists that outside senders write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupSenders {
    Anyone,
    /// Only senders who logged in (submission), never mail from port 25.
    Authenticated,
    /// Only logged-in senders the group itself reaches (its members, expanded).
    Members,
}

impl GroupSenders {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "anyone" | "everyone" => GroupSenders::Anyone,
            "authenticated" | "internal" => GroupSenders::Authenticated,
            "members" => GroupSenders::Members,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupSenders::Anyone => "anyone",
            GroupSenders::Authenticated => "authenticated",
            GroupSenders::Members => "members",
        }
    }
}

/// A group met while resolving an address that does not take mail from anyone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictedGroup {
    /// The group's address.
    pub address: String,
    pub senders: GroupSenders,
}

/// Where mail for an address goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The domain is not one of ours.
    NotOurs,
    /// Our domain, but nobody has this address.
    Unknown,
    /// Local principals (deduplicated) and external addresses the mail is forwarded to;
    /// `restricted`: the groups on the way that limit their senders (see
    /// [`Core::group_refuses`]).
    Deliver {
        local: Vec<Principal>,
        external: Vec<String>,
        restricted: Vec<RestrictedGroup>,
    },
}

/// What an expansion has found so far.
struct Found<'a> {
    local: &'a mut Vec<Principal>,
    external: &'a mut BTreeSet<String>,
    seen: &'a mut BTreeSet<String>,
    restricted: &'a mut Vec<RestrictedGroup>,
}

impl Core {
    /// Whether any mail domain exists yet (a fresh installation has none).
    pub async fn has_domains(&self) -> Result<bool> {
        Ok(!self.store.domains().await?.is_empty())
    }

    /// The principal whose primary address this is (no aliases, no plus addressing).
    pub async fn find_principal(&self, a: &Address) -> Result<Option<Principal>> {
        let Some(d) = self.store.domain_by_name(a.domain()).await? else {
            return Ok(None);
        };
        Ok(self.store.principal_by_local(d.id, a.local()).await?)
    }

    /// Resolves a recipient address: the principal, else an alias, else the address
    /// without its `+tag`, else the domain's catch-all.
    pub async fn resolve(&self, a: &Address) -> Result<Resolution> {
        if self.store.domain_by_name(a.domain()).await?.is_none() {
            return Ok(Resolution::NotOurs);
        }
        let mut local = Vec::new();
        let mut external = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut restricted = Vec::new();
        let found = self
            .expand(
                a,
                0,
                &mut Found {
                    local: &mut local,
                    external: &mut external,
                    seen: &mut seen,
                    restricted: &mut restricted,
                },
            )
            .await?;
        if !found {
            return Ok(Resolution::Unknown);
        }
        let mut ids = BTreeSet::new();
        local.retain(|p: &Principal| ids.insert(p.id));
        if local.is_empty() && external.is_empty() {
            // An alias loop, an over-deep chain or a group of unknown members leads
            // nowhere: refusing beats accepting mail that would go nowhere.
            return Ok(Resolution::Unknown);
        }
        Ok(Resolution::Deliver {
            local,
            external: external.into_iter().collect(),
            restricted,
        })
    }

    /// Who may send to a group. A stored value this build cannot read (one written by
    /// a newer node) counts as the strictest, `members`: the setting fails closed.
    pub async fn group_senders(&self, group: &Principal) -> Result<GroupSenders> {
        Ok(match self.store.group_senders(group.id).await? {
            None => GroupSenders::Anyone,
            Some(s) => GroupSenders::parse(&s).unwrap_or(GroupSenders::Members),
        })
    }

    /// The first of `restricted` that does not take mail from `sender` (`None`: a
    /// session that did not log in, mail from port 25), with the reason; `None` when
    /// all of them do.
    pub async fn group_refuses<'a>(
        &self,
        restricted: &'a [RestrictedGroup],
        sender: Option<&Authenticated>,
    ) -> Result<Option<(&'a RestrictedGroup, &'static str)>> {
        for g in restricted {
            match (g.senders, sender) {
                (GroupSenders::Anyone, _) => {}
                (_, None) => return Ok(Some((g, "accepts mail only from authenticated senders"))),
                (GroupSenders::Authenticated, Some(_)) => {}
                (GroupSenders::Members, Some(who)) => {
                    let member = match parse_address(&g.address) {
                        Ok(ga) => match Box::pin(self.resolve(&ga)).await? {
                            Resolution::Deliver { local, .. } => {
                                local.iter().any(|p| p.id == who.principal().id)
                            }
                            _ => false,
                        },
                        Err(_) => false,
                    };
                    if !member {
                        return Ok(Some((g, "accepts mail only from its members")));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Adds what `a` leads to; false when `a` is nobody.
    async fn expand(&self, a: &Address, depth: usize, f: &mut Found<'_>) -> Result<bool> {
        let Found {
            local,
            external,
            seen,
            ..
        } = f;
        if depth > MAX_EXPANSION_DEPTH
            || !seen.insert(a.to_string())
            || local.len() + external.len() >= MAX_EXPANSION
        {
            // A loop or an over-deep chain: the address exists, it just adds nothing more.
            return Ok(true);
        }
        let Some(domain) = self.store.domain_by_name(a.domain()).await? else {
            external.insert(a.to_string());
            return Ok(true);
        };
        let mut candidates = vec![a.local().to_string()];
        if let Some((base, _tag)) = a.split_plus(self.settings.plus_separator) {
            candidates.push(base.to_string());
        }
        for cand in &candidates {
            if let Some(p) = self.store.principal_by_local(domain.id, cand).await? {
                if p.kind == PrincipalKind::Group {
                    let senders = self.group_senders(&p).await?;
                    if senders != GroupSenders::Anyone {
                        f.restricted.push(RestrictedGroup {
                            address: format!("{}@{}", p.local_part, a.domain()),
                            senders,
                        });
                    }
                    for m in self.store.group_members(p.id).await? {
                        if let Ok(ma) = parse_address(&m) {
                            Box::pin(self.expand(&ma, depth + 1, f)).await?;
                        }
                    }
                } else {
                    local.push(p);
                }
                return Ok(true);
            }
            let aliases = self.store.aliases_for(domain.id, cand).await?;
            if !aliases.is_empty() {
                for al in aliases {
                    if let Ok(t) = parse_address(&al.target) {
                        Box::pin(self.expand(&t, depth + 1, f)).await?;
                    }
                }
                return Ok(true);
            }
        }
        let catch_all = self.store.aliases_for(domain.id, "*").await?;
        if catch_all.is_empty() {
            return Ok(false);
        }
        for al in catch_all {
            if let Ok(t) = parse_address(&al.target) {
                Box::pin(self.expand(&t, depth + 1, f)).await?;
            }
        }
        Ok(true)
    }
}
