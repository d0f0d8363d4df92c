//! Shared collections and the global address list on the wire: the privileges a
//! caller holds (RFC 3744 DAV:current-user-privilege-set, DAV:owner) and the
//! DAV:need-privileges answer to a refused write. Who may do what is decided in
//! `postern_core::dav::share`; this file only reports it.

use crate::xml::esc;
use crate::{DavResponse, PropReq, Target, enc, response};
use postern_core::dav::share::DavAccess;
use postern_core::store::DavCollection;
use postern_core::{Authenticated, Core};

const OWNER_PRIVILEGES: [&str; 7] = [
    "read",
    "write",
    "write-properties",
    "write-content",
    "bind",
    "unbind",
    "read-current-user-privilege-set",
];
const WRITE_PRIVILEGES: [&str; 5] = [
    "read",
    "write-content",
    "bind",
    "unbind",
    "read-current-user-privilege-set",
];
const READ_PRIVILEGES: [&str; 2] = ["read", "read-current-user-privilege-set"];

/// The inner XML of DAV:current-user-privilege-set for an access level.
pub(crate) fn privileges(level: DavAccess) -> String {
    let list: &[&str] = match level {
        DavAccess::Owner => &OWNER_PRIVILEGES,
        DavAccess::Write => &WRITE_PRIVILEGES,
        DavAccess::Read => &READ_PRIVILEGES,
    };
    list.iter()
        .map(|p| format!("<d:privilege><d:{p}/></d:privilege>"))
        .collect()
}

/// One collection's `<d:response>`, with the caller's real privileges and the real
/// owner when it is shared with them or is the GAL.
pub(crate) async fn collection_response(
    core: &Core,
    who: &Authenticated,
    href: &str,
    c: &DavCollection,
    preq: &PropReq,
) -> String {
    let out = response(who, href, &Target::Collection(c), preq);
    if c.account == who.principal().id && !postern_core::dav::share::is_gal(c) {
        return out;
    }
    // The generic writer reports the caller as owner with every privilege; a shared
    // collection and the GAL say what the caller really holds. Unknown access (revoked
    // in between) reports read only.
    let level = core.dav_privileges(who, c).await.unwrap_or(DavAccess::Read);
    let mut out = out.replace(&privileges(DavAccess::Owner), &privileges(level));
    if !postern_core::dav::share::is_gal(c)
        && let Ok(owner) = core.dav_owner_address(who, c).await
    {
        out = out.replace(
            &format!(
                "<d:owner><d:href>{}</d:href></d:owner>",
                esc(&crate::principal_href(who))
            ),
            &format!(
                "<d:owner><d:href>{}</d:href></d:owner>",
                esc(&format!("/dav/principals/{}/", enc(&owner)))
            ),
        );
    }
    out
}

/// 403 with DAV:need-privileges (RFC 3744 §7.1.1) for a write the caller may not do.
pub(crate) fn need_privileges(href: &str, privilege: &str) -> DavResponse {
    DavResponse::xml(
        403,
        format!(
            "{}<d:need-privileges><d:resource><d:href>{}</d:href><d:privilege><d:{privilege}/></d:privilege></d:resource></d:need-privileges></d:error>",
            crate::xml::root_open("error"),
            esc(href)
        ),
    )
}

/// Refuses (403 need-privileges) unless the caller may remove resources of `c`.
pub(crate) async fn may_unbind(
    core: &Core,
    who: &Authenticated,
    c: &DavCollection,
    href: &str,
) -> Result<(), DavResponse> {
    match core.dav_privileges(who, c).await {
        Ok(DavAccess::Owner | DavAccess::Write) => Ok(()),
        Ok(DavAccess::Read) => Err(need_privileges(href, "unbind")),
        Err(e) => Err(crate::core_error(e)),
    }
}

/// POST to one of the caller's own collections: CalendarServer sharing (`CS:share`
/// with `CS:set` (`CS:read` / `CS:read-write`) and `CS:remove`) or the WebDAV
/// resource-sharing draft (`DAV:share-resource` with `DAV:sharee` and
/// `DAV:share-access`: `read`, `read-write`, `no-access`). Sharees are named by
/// `mailto:` or plain addresses; the rules are `Core::dav_share_set`'s. No invitation
/// is sent: the collection appears in the sharee's home at once. Entries are applied
/// in order; the first refused one stops the request with its error.
pub(crate) async fn post(
    core: &Core,
    who: &Authenticated,
    path: &crate::Path,
    req: &crate::DavRequest<'_>,
) -> Result<DavResponse, DavResponse> {
    use crate::xml::{CS, DAV};
    use postern_core::dav::share::ShareLevel;
    let crate::Path::Collection(h, _, name) = path else {
        let mut r = DavResponse::text(405, "POST is for sharing a collection\n");
        r.headers.push(("allow", crate::ALLOW.into()));
        return Ok(r);
    };
    let c = crate::collection(core, who, *h, name).await?;
    let Some(body) = crate::body_xml(req.body)? else {
        return Err(DavResponse::text(
            400,
            "expected CS:share or DAV:share-resource\n",
        ));
    };
    let mut changes: Vec<(String, ShareLevel)> = Vec::new();
    let href = |e: &crate::xml::Element| e.child(DAV, "href").map(|h| h.text.trim().to_string());
    if body.is(CS, "share") {
        for e in &body.children {
            let Some(who) = href(e) else {
                return Err(DavResponse::text(400, "a sharee needs DAV:href\n"));
            };
            if e.is(CS, "set") {
                let level = if e.child(CS, "read-write").is_some() {
                    ShareLevel::Write
                } else {
                    ShareLevel::Read
                };
                changes.push((who, level));
            } else if e.is(CS, "remove") {
                changes.push((who, ShareLevel::None));
            }
        }
    } else if body.is(DAV, "share-resource") {
        for e in body.children_named(DAV, "sharee") {
            let Some(who) = href(e) else {
                return Err(DavResponse::text(400, "a sharee needs DAV:href\n"));
            };
            let Some(access) = e.child(DAV, "share-access") else {
                return Err(DavResponse::text(400, "a sharee needs DAV:share-access\n"));
            };
            let level = if access.child(DAV, "read-write").is_some() {
                ShareLevel::Write
            } else if access.child(DAV, "read").is_some() {
                ShareLevel::Read
            } else if access.child(DAV, "no-access").is_some() {
                ShareLevel::None
            } else {
                return Err(DavResponse::text(400, "unknown DAV:share-access\n"));
            };
            changes.push((who, level));
        }
    } else {
        return Err(DavResponse::text(
            400,
            "expected CS:share or DAV:share-resource\n",
        ));
    }
    for (grantee, level) in changes {
        core.dav_share_set(who, &c, &grantee, level)
            .await
            .map_err(crate::core_error)?;
    }
    Ok(DavResponse::new(200))
}

/// The members of a shared collection (or the GAL) in a PROPFIND answer report the
/// caller's privileges, not the owner's.
pub(crate) async fn member_privileges(
    core: &Core,
    who: &Authenticated,
    c: &DavCollection,
    parts: &mut [String],
) {
    if c.account == who.principal().id && !postern_core::dav::share::is_gal(c) {
        return;
    }
    let owner = privileges(DavAccess::Owner);
    if !parts.iter().any(|p| p.contains(&owner)) {
        return;
    }
    let level = core.dav_privileges(who, c).await.unwrap_or(DavAccess::Read);
    let mine = privileges(level);
    for p in parts.iter_mut() {
        *p = p.replace(&owner, &mine);
    }
}
