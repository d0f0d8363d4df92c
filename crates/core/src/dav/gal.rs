//! Directory views for CalDAV/CardDAV: the global address list and principal search.
//!
//! **Global address list:** a read-only address book (`gal` in every user's
//! address-book home) with one vCard 4.0 per individual, resource (room: `KIND:location`)
//! and group (`KIND:group`, its members as `MEMBER`) of the caller's own domain; shared
//! mailboxes and other domains are not in it. Cards are made from the directory on
//! each request: the UID is stable (`urn:postern:principal:<id>`), the ETag is the
//! SHA-256 of the card, and the collection's id (hence its sync token and CTag) is
//! derived from every card's ETag, so any directory change gives a new token and a
//! client holding an old one is told to sync again (valid-sync-token). Reading cards
//! is a `dav.read` ledger entry like any other contact read.
//!
//! **Principal search** (RFC 3744 §9.4 principal-property-search): a caseless substring
//! match on display names and addresses of the caller's domain only, at most
//! [`MAX_PRINCIPAL_RESULTS`] answers; each search is a `dav.principal_search` entry.

use super::share::GAL_NAME;
use crate::error::Result;
use crate::{Authenticated, Core};
use postern_store::*;
use sha2::{Digest, Sha256};

/// Most principals one principal-property-search answers.
pub const MAX_PRINCIPAL_RESULTS: usize = 50;
/// Longest search text accepted (longer text is a protocol error).
pub const MAX_SEARCH_TEXT: usize = 256;

/// What a principal-property-search term matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchField {
    /// DAV:displayname.
    DisplayName,
    /// calendar-user-address-set, email-address-set: the address.
    Address,
}

/// One principal found by a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalHit {
    pub address: String,
    pub display_name: String,
    pub kind: PrincipalKind,
}

fn vcard_text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => o.push_str("\\\\"),
            ',' => o.push_str("\\,"),
            ';' => o.push_str("\\;"),
            '\n' => o.push_str("\\n"),
            c if c.is_control() => {}
            c => o.push(c),
        }
    }
    o
}

fn card(p: &Principal, address: &str, members: &[String]) -> String {
    let kind = match p.kind {
        PrincipalKind::Resource => "location",
        PrincipalKind::Group => "group",
        _ => "individual",
    };
    let name = if p.display_name.trim().is_empty() {
        address
    } else {
        p.display_name.as_str()
    };
    let mut s = format!(
        "BEGIN:VCARD\r\nVERSION:4.0\r\nPRODID:-//Postern//GAL//EN\r\nUID:urn:postern:principal:{}\r\nKIND:{kind}\r\nFN:{}\r\nEMAIL;TYPE=work:{}\r\n",
        p.id,
        vcard_text(name),
        vcard_text(address)
    );
    for m in members {
        s.push_str(&format!("MEMBER:mailto:{}\r\n", vcard_text(m)));
    }
    s.push_str("END:VCARD\r\n");
    s
}

impl Core {
    /// The principals of the caller's domain a directory view shows, with addresses.
    async fn dav_directory(&self, who: &Authenticated) -> Result<Vec<(Principal, String)>> {
        let domain = who
            .address()
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default();
        let mut out: Vec<(Principal, String)> = self
            .store
            .principals(Some(who.principal().domain))
            .await?
            .into_iter()
            .filter(|p| p.domain == who.principal().domain)
            .filter(|p| p.kind != PrincipalKind::Shared)
            .map(|p| {
                let a = format!("{}@{domain}", p.local_part);
                (p, a)
            })
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(out)
    }

    /// The global address list's cards (data included), by resource name.
    pub(crate) async fn dav_gal_cards(
        &self,
        who: &Authenticated,
        gal: DavCollectionId,
    ) -> Result<Vec<DavResource>> {
        let mut out = Vec::new();
        for (p, addr) in self.dav_directory(who).await? {
            let members = if p.kind == PrincipalKind::Group {
                let mut m = self.store.group_members(p.id).await?;
                m.sort();
                m
            } else {
                Vec::new()
            };
            let data = card(&p, &addr, &members);
            out.push(DavResource {
                id: DavResourceId(p.id.0),
                account: who.principal().id,
                collection: gal,
                name: format!("{}.vcf", p.id),
                etag: hex::encode(Sha256::digest(data.as_bytes())),
                size: data.len() as u64,
                data,
                component: "VCARD".into(),
                uid: format!("urn:postern:principal:{}", p.id),
                start_ms: None,
                end_ms: None,
                modseq: 1,
                modified_ms: p.created_ms,
            });
        }
        Ok(out)
    }

    /// The global address list as a collection of the caller's: its id is negative
    /// (no store id is) and changes with any card.
    pub(crate) async fn dav_gal_collection(&self, who: &Authenticated) -> Result<DavCollection> {
        let cards = self.dav_gal_cards(who, DavCollectionId(-1)).await?;
        let mut h = Sha256::new();
        for c in &cards {
            h.update(c.name.as_bytes());
            h.update(b" ");
            h.update(c.etag.as_bytes());
            h.update(b"\n");
        }
        let d = h.finalize();
        let mut b = [0u8; 8];
        b.copy_from_slice(&d[..8]);
        let id = -((u64::from_be_bytes(b) >> 2) as i64) - 1;
        Ok(DavCollection {
            id: DavCollectionId(id),
            account: who.principal().id,
            kind: DavKind::AddressBook,
            name: GAL_NAME.into(),
            display_name: "Global Address List".into(),
            color: None,
            order: None,
            description: Some("Everyone in your organisation (read-only)".into()),
            timezone: None,
            components: Vec::new(),
            modseq: 1,
            created_ms: 0,
        })
    }

    /// RFC 3744 §9.4: principals of the caller's domain whose fields contain the texts
    /// (caseless; `all` = every term must match, else any). The second value is true
    /// when more than [`MAX_PRINCIPAL_RESULTS`] matched (the answer is cut).
    pub async fn dav_principal_search(
        &self,
        who: &Authenticated,
        terms: &[(SearchField, String)],
        all: bool,
    ) -> Result<(Vec<PrincipalHit>, bool)> {
        for (_, t) in terms {
            if t.len() > MAX_SEARCH_TEXT {
                return Err(crate::error::CoreError::invalid(
                    "match",
                    format!("at most {MAX_SEARCH_TEXT} bytes"),
                ));
            }
        }
        let terms: Vec<(SearchField, String)> = terms
            .iter()
            .map(|(f, t)| (*f, t.trim().to_lowercase()))
            .collect();
        let mut hits = Vec::new();
        let mut cut = false;
        for (p, addr) in self.dav_directory(who).await? {
            let test = |(f, t): &(SearchField, String)| match f {
                SearchField::DisplayName => p.display_name.to_lowercase().contains(t.as_str()),
                SearchField::Address => {
                    let a = addr.to_lowercase();
                    let t = t.strip_prefix("mailto:").unwrap_or(t);
                    a.contains(t)
                }
            };
            // No terms: every principal of the domain (the GAL lists them too).
            let ok = if terms.is_empty() {
                true
            } else if all {
                terms.iter().all(test)
            } else {
                terms.iter().any(test)
            };
            if !ok {
                continue;
            }
            if hits.len() == MAX_PRINCIPAL_RESULTS {
                cut = true;
                break;
            }
            hits.push(PrincipalHit {
                address: addr.clone(),
                display_name: p.display_name.clone(),
                kind: p.kind,
            });
        }
        self.record(
            who.ctx(),
            "dav.principal_search",
            Some(who.address()),
            hits.iter()
                .map(|h| format!("principal:{}", h.address))
                .collect(),
            "ok",
            None,
            Some(serde_json::json!({ "results": hits.len(), "truncated": cut })),
        )
        .await?;
        Ok((hits, cut))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_text_is_escaped() {
        let p = Principal {
            id: PrincipalId(0x2a),
            domain: DomainId(1),
            local_part: "bob".into(),
            kind: PrincipalKind::Resource,
            display_name: "Room 1, east; \\n".into(),
            quota_bytes: None,
            created_ms: 0,
        };
        let c = card(&p, "bob@x.org", &[]);
        assert!(c.contains("FN:Room 1\\, east\\; \\\\n\r\n"), "{c}");
        assert!(c.contains("KIND:location\r\n"));
        assert!(c.contains("UID:urn:postern:principal:2a\r\n"));
        assert!(calcard::vcard::VCard::parse(&c).is_ok());
    }
}
