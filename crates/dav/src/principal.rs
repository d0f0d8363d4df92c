//! RFC 3744 §9.4–9.5 principal-property-search and principal-search-property-set,
//! answered on `/dav/`, `/dav/principals/` and a principal. The search itself (caller's
//! domain only, caseless substring, capped at
//! `postern_core::dav::gal::MAX_PRINCIPAL_RESULTS`, ledgered) is
//! `Core::dav_principal_search`; this file reads the request and writes the answer.
//!
//! Clients differ in where they put the properties to return: RFC 3744 puts them in
//! `DAV:prop`; python-caldav puts them beside an empty `DAV:prop`. Both are read. A
//! search without any `property-search` lists the domain's principals (capped), as
//! the GAL does. A cut answer ends with a 507 response for the request URI
//! (RFC 3744 §9.4, like RFC 5323's truncation).

use crate::xml::{CALDAV, CARDDAV, CS, DAV, Element, empty, esc, root_open, wrap};
use crate::{DavResponse, enc};
use postern_core::dav::gal::{PrincipalHit, SearchField};
use postern_core::store::PrincipalKind;
use postern_core::{Authenticated, Core, CoreError};

/// Whether a REPORT body is one this module answers.
pub(crate) fn is_principal_report(body: &Element) -> bool {
    body.is(DAV, "principal-property-search") || body.is(DAV, "principal-search-property-set")
}

/// The searchable properties: (namespace, name, what they match, description).
const SEARCHABLE: [(&str, &str, SearchField, &str); 5] = [
    (DAV, "displayname", SearchField::DisplayName, "Display name"),
    (
        CALDAV,
        "calendar-user-address-set",
        SearchField::Address,
        "Calendar user address",
    ),
    (
        CS,
        "email-address-set",
        SearchField::Address,
        "Email address",
    ),
    (CS, "first-name", SearchField::DisplayName, "First name"),
    (CS, "last-name", SearchField::DisplayName, "Last name"),
];

fn field_of(ns: &str, name: &str) -> Option<SearchField> {
    SEARCHABLE
        .iter()
        .find(|(n, m, _, _)| *n == ns && *m == name)
        .map(|(_, _, f, _)| *f)
}

pub(crate) async fn report(
    core: &Core,
    who: &Authenticated,
    href: &str,
    body: &Element,
) -> DavResponse {
    if body.is(DAV, "principal-search-property-set") {
        let mut s = root_open("principal-search-property-set");
        for (ns, name, _, desc) in SEARCHABLE {
            s.push_str(&format!(
                "<d:principal-search-property><d:prop>{}</d:prop><d:description xml:lang=\"en\">{}</d:description></d:principal-search-property>",
                empty(ns, name),
                esc(desc)
            ));
        }
        s.push_str("</d:principal-search-property-set>");
        return DavResponse::xml(200, s);
    }
    let all = !matches!(body.attr("test"), Some(t) if t.eq_ignore_ascii_case("anyof"));
    let mut terms = Vec::new();
    let mut searched_unknown = false;
    for ps in body.children_named(DAV, "property-search") {
        let text = ps
            .child(DAV, "match")
            .map(|m| m.text.clone())
            .unwrap_or_default();
        let Some(prop) = ps.child(DAV, "prop") else {
            return DavResponse::text(400, "property-search needs DAV:prop\n");
        };
        for p in &prop.children {
            match field_of(&p.ns, &p.name) {
                Some(f) => terms.push((f, text.clone())),
                None => searched_unknown = true,
            }
        }
    }
    // The properties to return: DAV:prop's children, and (python-caldav) the root's own
    // property children.
    let mut wanted: Vec<(String, String)> = Vec::new();
    if let Some(p) = body.child(DAV, "prop") {
        wanted.extend(p.children.iter().map(|c| (c.ns.clone(), c.name.clone())));
    }
    for c in &body.children {
        let structural = c.ns == DAV
            && matches!(
                c.name.as_str(),
                "property-search" | "prop" | "apply-to-principal-collection-set"
            );
        if !structural {
            wanted.push((c.ns.clone(), c.name.clone()));
        }
    }
    if wanted.is_empty() {
        wanted = vec![
            (DAV.into(), "displayname".into()),
            (CALDAV.into(), "calendar-home-set".into()),
            (CALDAV.into(), "calendar-user-address-set".into()),
        ];
    }
    let (hits, cut) = if searched_unknown && terms.is_empty() {
        // Only properties we cannot search: nothing matches.
        (Vec::new(), false)
    } else if terms.is_empty() {
        match core.dav_principal_search(who, &[], false).await {
            Ok(v) => v,
            Err(e) => return crate::core_error(e),
        }
    } else {
        match core.dav_principal_search(who, &terms, all).await {
            Ok(v) => v,
            Err(e @ CoreError::Invalid { .. }) => {
                return DavResponse::text(400, &format!("{e}\n"));
            }
            Err(e) => return crate::core_error(e),
        }
    };
    let mut s = root_open("multistatus");
    for h in &hits {
        s.push_str(&hit_response(h, &wanted));
    }
    if cut {
        s.push_str(&format!(
            "<d:response><d:href>{}</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status><d:error><d:number-of-matches-within-limits/></d:error><d:responsedescription>Only the first {} matches are returned</d:responsedescription></d:response>",
            esc(href),
            postern_core::dav::gal::MAX_PRINCIPAL_RESULTS
        ));
    }
    s.push_str("</d:multistatus>");
    DavResponse::xml(207, s)
}

fn hit_response(h: &PrincipalHit, wanted: &[(String, String)]) -> String {
    let a = enc(&h.address);
    let href = |p: String| format!("<d:href>{}</d:href>", esc(&p));
    let principal = format!("/dav/principals/{a}/");
    let mut ok = String::new();
    let mut missing = String::new();
    for (ns, name) in wanted {
        let v = match (ns.as_str(), name.as_str()) {
            (DAV, "displayname") => Some(esc(if h.display_name.is_empty() {
                &h.address
            } else {
                &h.display_name
            })),
            (DAV, "resourcetype") => Some("<d:principal/>".into()),
            (DAV, "principal-URL") => Some(href(principal.clone())),
            (CALDAV, "calendar-home-set") => Some(href(format!("/dav/calendars/{a}/"))),
            (CARDDAV, "addressbook-home-set") => Some(href(format!("/dav/addressbooks/{a}/"))),
            (CALDAV, "calendar-user-address-set") => {
                Some(href(format!("mailto:{}", h.address)) + &href(principal.clone()))
            }
            (CALDAV, "calendar-user-type") => Some(
                match h.kind {
                    PrincipalKind::Resource => "ROOM",
                    PrincipalKind::Group => "GROUP",
                    _ => "INDIVIDUAL",
                }
                .into(),
            ),
            (CS, "email-address-set") => Some(format!(
                "<cs:email-address>{}</cs:email-address>",
                esc(&h.address)
            )),
            _ => None,
        };
        match v {
            Some(v) if crate::xml::prefix(ns).is_some() => ok.push_str(&wrap(ns, name, &v)),
            _ => missing.push_str(&empty(ns, name)),
        }
    }
    let mut out = format!("<d:response><d:href>{}</d:href>", esc(&principal));
    out.push_str(&format!(
        "<d:propstat><d:prop>{ok}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
    ));
    if !missing.is_empty() {
        out.push_str(&format!(
            "<d:propstat><d:prop>{missing}</d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>"
        ));
    }
    out.push_str("</d:response>");
    out
}
