//! Who an address is: accounts, aliases, groups, plus addressing and catch-alls.

use crate::Core;
use crate::address::{Address, parse_address};
use crate::error::Result;
use postern_store::{Principal, PrincipalKind};
use std::collections::BTreeSet;

/// Aliases and groups may point at aliases and groups; past this depth a chain is
/// treated as a loop and cut.
pub const MAX_EXPANSION_DEPTH: usize = 8;
/// A group expansion stops adding recipients past this many (a group of groups of
/// groups can otherwise fan one message out without bound).
pub const MAX_EXPANSION: usize = 10_000;

/// Where mail for an address goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The domain is not one of ours.
    NotOurs,
    /// Our domain, but nobody has this address.
    Unknown,
    /// Local principals (deduplicated) and external addresses the mail is forwarded to.
    Deliver {
        local: Vec<Principal>,
        external: Vec<String>,
    },
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
        let found = self
            .expand(a, 0, &mut local, &mut external, &mut seen)
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
        })
    }

    /// Adds what `a` leads to; false when `a` is nobody.
    async fn expand(
        &self,
        a: &Address,
        depth: usize,
        local: &mut Vec<Principal>,
        external: &mut BTreeSet<String>,
        seen: &mut BTreeSet<String>,
    ) -> Result<bool> {
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
                    for m in self.store.group_members(p.id).await? {
                        if let Ok(ma) = parse_address(&m) {
                            Box::pin(self.expand(&ma, depth + 1, local, external, seen)).await?;
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
                        Box::pin(self.expand(&t, depth + 1, local, external, seen)).await?;
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
                Box::pin(self.expand(&t, depth + 1, local, external, seen)).await?;
            }
        }
        Ok(true)
    }
}
