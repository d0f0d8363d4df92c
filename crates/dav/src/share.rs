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
