//! # postern-dav — WebDAV, CalDAV and CardDAV over HTTP
//!
//! The protocol layer of `/dav/`: it parses paths, headers and XML bodies, calls
//! `postern_core::dav` (which decides access and writes the ledger) and writes
//! multistatus answers. It knows no HTTP framework: `crates/postern/src/http.rs`
//! authenticates (HTTP Basic, `Core::authenticate` with protocol `dav`) and hands over
//! a [`DavRequest`].
//!
//! **Standards:** RFC 4918 (WebDAV: PROPFIND, PROPPATCH, MKCOL, GET/HEAD/PUT/DELETE,
//! multistatus, COPY/MOVE), RFC 4791 (CalDAV: MKCALENDAR, calendar-query with
//! comp-filter and time-range, calendar-multiget, free-busy-query), RFC 6352 (CardDAV:
//! addressbook-multiget and -query), RFC 5689 (extended MKCOL), RFC 6578
//! (sync-collection), RFC 5397 (current-user-principal), RFC 3744 (privileges,
//! principal-property-search), RFC 6638 (scheduling: inbox, outbox in [`sched`],
//! Schedule-Tag; policy in `postern_core::dav::sched`), RFC 6764 (well-known URIs, in
//! http.rs).
//!
//! **Layout:**
//! ```text
//! /dav/                                   root (current-user-principal)
//! /dav/principals/<address>/              the principal
//! /dav/calendars/<address>/               calendar home: calendars and task lists
//! /dav/calendars/<address>/<name>/<res>   a calendar object resource
//! /dav/addressbooks/<address>/<name>/<res>  a vCard
//! /dav/{calendars|addressbooks}/<address>/shared-<id>/  shared with the caller (share.rs)
//! /dav/addressbooks/<address>/gal/        the global address list (read-only)
//! ```
//!
//! **Sharing and directory:** collections shared with the caller, the GAL, their
//! privileges and the sharing POST are in [`share`] (policy in
//! `postern_core::dav::share` / `gal`); RFC 3744 principal-property-search in
//! [`principal`]; COPY/MOVE of whole collections in [`copy`].
//!
//! **Security:** each path segment is percent-decoded exactly once and must then be a
//! plain name (`postern_core::dav::valid_segment`: no `/`, `\`, `%`, `..`); anything else
//! is 400. Paths of another account answer like paths that do not exist (404, same
//! body). XML is parsed by [`xml`] (no DOCTYPE, bounded); the caller caps the body at
//! [`MAX_BODY`] (413).
//!
//! **Recurrence:** calendar-query time ranges match recurring objects by their
//! instances; `expand`, `limit-recurrence-set` and free-busy-query use
//! `postern_core::dav::recur` (capped: instances, empty iterations, a time budget per
//! request). A time range on VALARM matches by trigger times
//! (`postern_core::dav::alarm`). COPY/MOVE move resources between the caller's own
//! collections.
//!
//! **Filters** (RFC 4791 §9.7, RFC 6352 §10.5): comp-filter scoping, prop-filter,
//! param-filter, text-match and prop-filter time ranges, see [`filter`]. Floating times
//! and dates are read in the query's CALDAV:timezone / timezone-id, else the calendar's
//! calendar-timezone, else UTC.
//!
//! **Not yet:** sharing invitations/notifications, the WebDAV ACL method and
//! calendar-proxy delegation.
#![forbid(unsafe_code)]

mod copy;
pub mod filter;
mod principal;
mod sched;
mod share;
pub mod xml;

use postern_core::dav::{DavInvalid, DavWriteError, NewCollection};
use postern_core::store::{
    DavChange, DavCollection, DavCollectionProps, DavExpect, DavFilter, DavKind, DavResource,
};
use postern_core::{Authenticated, Core, CoreError, ErrorClass};
use xml::{CALDAV, CARDDAV, CS, DAV, Element, ICAL, XmlError, empty, esc, root_open, wrap};

/// Largest request body (an XML request or a resource with some room).
pub const MAX_BODY: usize = postern_core::dav::MAX_RESOURCE_BYTES + (64 << 10);

/// Prefix of our sync tokens (RFC 6578 §3.2: a URI).
const SYNC_PREFIX: &str = "https://postern.invalid/ns/sync/";

/// One request, as the HTTP layer saw it.
#[derive(Debug, Clone, Default)]
pub struct DavRequest<'a> {
    pub method: &'a str,
    /// The raw (still percent-encoded) path, starting with `/dav`.
    pub path: &'a str,
    pub depth: Option<&'a str>,
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    /// COPY/MOVE: the `Destination` and `Overwrite` headers (RFC 4918 §10.3, §10.6).
    pub destination: Option<&'a str>,
    pub overwrite: Option<&'a str>,
    /// PUT/DELETE: `If-Schedule-Tag-Match` (RFC 6638 §8.3).
    pub if_schedule_tag_match: Option<&'a str>,
    pub body: &'a [u8],
}

/// The answer: status, extra headers, body.
#[derive(Debug, Clone)]
pub struct DavResponse {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl DavResponse {
    fn new(status: u16) -> Self {
        DavResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    fn text(status: u16, s: &str) -> Self {
        DavResponse {
            status,
            headers: vec![("content-type", "text/plain; charset=utf-8".into())],
            body: s.as_bytes().to_vec(),
        }
    }
    fn xml(status: u16, s: String) -> Self {
        DavResponse {
            status,
            headers: vec![("content-type", "application/xml; charset=utf-8".into())],
            body: s.into_bytes(),
        }
    }
    fn not_found() -> Self {
        Self::text(404, "not found\n")
    }
    /// 403/409 with a precondition element (RFC 4918 §16).
    fn precondition(status: u16, ns: &str, name: &str) -> Self {
        Self::xml(
            status,
            format!("{}{}</d:error>", root_open("error"), empty(ns, name)),
        )
    }
}

/// What the DAV verbs say to an HTTP client in OPTIONS and 405 answers.
pub const ALLOW: &str = "OPTIONS, GET, HEAD, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, MKCALENDAR, REPORT, COPY, MOVE, POST";
/// The `DAV:` header of OPTIONS.
pub const DAV_CLASSES: &str =
    "1, 3, calendar-access, addressbook, extended-mkcol, sync-collection, calendar-auto-schedule";

/// Which home a path is under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Home {
    Calendars,
    AddressBooks,
}

impl Home {
    fn seg(self) -> &'static str {
        match self {
            Home::Calendars => "calendars",
            Home::AddressBooks => "addressbooks",
        }
    }
    fn holds(self, kind: DavKind) -> bool {
        kind.is_calendar() == (self == Home::Calendars)
    }
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Path {
    Root,
    Principals,
    Principal(String),
    HomeRoot(Home),
    Home(Home, String),
    Collection(Home, String, String),
    Resource(Home, String, String, String),
}

/// Decodes each segment once; `None` for a path that is not canonical.
fn parse_path(raw: &str) -> Option<Path> {
    let rest = raw.strip_prefix("/dav")?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let trimmed = rest.trim_start_matches('/');
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    if rest.starts_with("//") || trimmed.ends_with('/') {
        return None;
    }
    let mut segs = Vec::new();
    if !trimmed.is_empty() {
        for s in trimmed.split('/') {
            let d = percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .ok()?
                .into_owned();
            if !postern_core::dav::valid_segment(&d) {
                return None;
            }
            segs.push(d);
        }
    }
    let home = |s: &str| match s {
        "calendars" => Some(Home::Calendars),
        "addressbooks" => Some(Home::AddressBooks),
        _ => None,
    };
    Some(match segs.as_slice() {
        [] => Path::Root,
        [p] if p == "principals" => Path::Principals,
        [p, a] if p == "principals" => Path::Principal(a.clone()),
        [h] => Path::HomeRoot(home(h)?),
        [h, a] => Path::Home(home(h)?, a.clone()),
        [h, a, c] => Path::Collection(home(h)?, a.clone(), c.clone()),
        [h, a, c, r] => Path::Resource(home(h)?, a.clone(), c.clone(), r.clone()),
        _ => return None,
    })
}

fn enc(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'@')
        .remove(b'+');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

fn principal_href(who: &Authenticated) -> String {
    format!("/dav/principals/{}/", enc(who.address()))
}
fn home_href(who: &Authenticated, h: Home) -> String {
    format!("/dav/{}/{}/", h.seg(), enc(who.address()))
}
fn collection_href(who: &Authenticated, c: &DavCollection) -> String {
    let h = if c.kind.is_calendar() {
        Home::Calendars
    } else {
        Home::AddressBooks
    };
    format!("{}{}/", home_href(who, h), enc(&c.name))
}
fn resource_href(who: &Authenticated, c: &DavCollection, name: &str) -> String {
    format!("{}{}", collection_href(who, c), enc(name))
}

/// `<prefix><collection id>/<journal number>`: a token of a removed collection that was
/// made again under the same name is refused (valid-sync-token), so the client starts
/// over instead of missing the old collection's removals.
fn sync_token(c: &DavCollection, modseq: u64) -> String {
    format!("{SYNC_PREFIX}{}/{modseq}", c.id)
}

/// The journal number of one of our tokens for this collection.
fn parse_sync_token(c: &DavCollection, token: &str) -> Option<u64> {
    let (id, n) = token.strip_prefix(SYNC_PREFIX)?.split_once('/')?;
    if id != c.id.to_string() {
        return None;
    }
    n.parse::<u64>().ok().filter(|n| *n <= c.modseq)
}

fn content_type(kind: DavKind) -> &'static str {
    if kind.is_calendar() {
        "text/calendar; charset=utf-8"
    } else {
        "text/vcard; charset=utf-8"
    }
}

fn core_error(e: CoreError) -> DavResponse {
    match (&e, e.class()) {
        (CoreError::NotFound(_), _) => DavResponse::not_found(),
        (CoreError::Conflict(_), _) => DavResponse::text(405, "already exists\n"),
        (CoreError::Forbidden(_), _) | (CoreError::Refused(_), _) => {
            DavResponse::text(403, &format!("{e}\n"))
        }
        (_, ErrorClass::Protocol) => DavResponse::text(400, &format!("{e}\n")),
        (_, ErrorClass::Resource) => DavResponse::text(507, "insufficient storage\n"),
        (_, ErrorClass::Auth) => DavResponse::text(401, "authentication required\n"),
        (_, ErrorClass::Policy) => DavResponse::text(403, &format!("{e}\n")),
        (_, ErrorClass::Internal) => {
            tracing::warn!(error = %e, "dav request failed");
            DavResponse::text(503, "temporarily unavailable\n")
        }
    }
}

fn xml_error(e: XmlError) -> DavResponse {
    let why = match e {
        XmlError::Doctype => "DOCTYPE is not accepted".to_string(),
        XmlError::Entity => "unknown entity reference".to_string(),
        XmlError::TooDeep => "XML nested too deeply".to_string(),
        XmlError::TooMany => "XML too large".to_string(),
        XmlError::Malformed(m) => format!("malformed XML: {m}"),
    };
    DavResponse::text(400, &format!("{why}\n"))
}

/// Parses the body when there is one.
fn body_xml(body: &[u8]) -> Result<Option<Element>, DavResponse> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    xml::parse(body).map(Some).map_err(xml_error)
}

fn strip_quotes(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_prefix("W/").unwrap_or(s);
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

fn expect_of(req: &DavRequest<'_>) -> DavExpect {
    if let Some(m) = req.if_match {
        let m = m.trim();
        if m == "*" {
            return DavExpect::Present;
        }
        // Only the first tag of a list is honoured.
        let first = m.split(',').next().unwrap_or(m);
        return DavExpect::Etag(strip_quotes(first).to_string());
    }
    if req.if_none_match.map(str::trim) == Some("*") {
        return DavExpect::Absent;
    }
    DavExpect::Any
}

/// Handles one authenticated request under `/dav`.
pub async fn handle(core: &Core, who: &Authenticated, req: DavRequest<'_>) -> DavResponse {
    let Some(path) = parse_path(req.path) else {
        return DavResponse::text(400, "not a canonical DAV path\n");
    };
    // Every path naming an account must name the caller.
    let owner = match &path {
        Path::Principal(a)
        | Path::Home(_, a)
        | Path::Collection(_, a, _)
        | Path::Resource(_, a, _, _) => Some(a.clone()),
        _ => None,
    };
    if let Some(a) = owner
        && let Err(e) = core.dav_check_owner(who, &a).await
    {
        return core_error(e);
    }
    // The scheduling outbox is not a stored collection (sched.rs).
    if sched::is_outbox(&path) {
        return sched::outbox(core, who, &path, &req).await;
    }
    let r = match req.method {
        "OPTIONS" => Ok(options()),
        "PROPFIND" => propfind(core, who, &path, &req).await,
        "PROPPATCH" => proppatch(core, who, &path, &req).await,
        "MKCALENDAR" | "MKCOL" => mkcol(core, who, &path, &req).await,
        "GET" | "HEAD" => get(core, who, &path, &req).await,
        "PUT" => put(core, who, &path, &req).await,
        "DELETE" => delete(core, who, &path, &req).await,
        "REPORT" => match principal_report(core, who, &path, &req).await {
            Some(r) => Ok(r),
            None => report(core, who, &path, &req).await,
        },
        "COPY" | "MOVE" => copy_move(core, who, &path, &req).await,
        // Sharing a collection (share.rs); the outbox's POST is answered above.
        "POST" => share::post(core, who, &path, &req).await,
        _ => {
            let mut r = DavResponse::text(405, "method not allowed\n");
            r.headers.push(("allow", ALLOW.into()));
            Ok(r)
        }
    };
    r.unwrap_or_else(|e| e)
}

/// RFC 3744 principal reports on the root, the principal collection or a principal
/// (principal.rs); `None` for every other REPORT.
async fn principal_report(
    core: &Core,
    who: &Authenticated,
    path: &Path,
    req: &DavRequest<'_>,
) -> Option<DavResponse> {
    let href = match path {
        Path::Root => "/dav/".to_string(),
        Path::Principals => "/dav/principals/".to_string(),
        Path::Principal(_) => principal_href(who),
        _ => return None,
    };
    let body = match body_xml(req.body) {
        Ok(Some(b)) => b,
        Ok(None) => return None,
        Err(r) => return Some(r),
    };
    if !principal::is_principal_report(&body) {
        return None;
    }
    Some(principal::report(core, who, &href, &body).await)
}

fn options() -> DavResponse {
    let mut r = DavResponse::new(200);
    r.headers.push(("dav", DAV_CLASSES.into()));
    r.headers.push(("allow", ALLOW.into()));
    r
}

/// Looks up the collection a path names (checking it sits under the right home).
async fn collection(
    core: &Core,
    who: &Authenticated,
    home: Home,
    name: &str,
) -> Result<DavCollection, DavResponse> {
    let c = core.dav_collection(who, name).await.map_err(core_error)?;
    if !home.holds(c.kind) {
        return Err(DavResponse::not_found());
    }
    Ok(c)
}

// ---- properties ----

/// What a PROPFIND/REPORT answers about.
enum Target<'a> {
    Root,
    Principal,
    Home(#[allow(dead_code)] Home),
    Collection(&'a DavCollection),
    Resource(&'a DavCollection, &'a DavResource),
}

fn privileges() -> String {
    [
        "read",
        "write",
        "write-properties",
        "write-content",
        "bind",
        "unbind",
        "read-current-user-privilege-set",
    ]
    .iter()
    .map(|p| format!("<d:privilege><d:{p}/></d:privilege>"))
    .collect()
}

/// The properties `allprop` lists for a target (RFC 4918 §9.1: not every live one).
fn allprop_names(t: &Target<'_>) -> Vec<(&'static str, &'static str)> {
    let mut v = vec![(DAV, "resourcetype"), (DAV, "displayname")];
    match t {
        Target::Collection(c) => {
            v.extend([(DAV, "sync-token"), (CS, "getctag")]);
            if c.kind.is_calendar() {
                v.extend([
                    (CALDAV, "supported-calendar-component-set"),
                    (ICAL, "calendar-color"),
                    (ICAL, "calendar-order"),
                    (CALDAV, "calendar-description"),
                ]);
            } else {
                v.push((CARDDAV, "addressbook-description"));
            }
        }
        Target::Resource(..) => {
            v.extend([
                (DAV, "getetag"),
                (DAV, "getcontenttype"),
                (DAV, "getcontentlength"),
                (DAV, "getlastmodified"),
            ]);
        }
        _ => {}
    }
    v
}

fn http_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&f).unwrap_or_default()
}

/// The value of one property (inner XML), or `None` when the target has no such
/// property (404 in its propstat).
fn prop_value(who: &Authenticated, t: &Target<'_>, ns: &str, name: &str) -> Option<String> {
    let href = |h: String| format!("<d:href>{}</d:href>", esc(&h));
    match (ns, name) {
        (DAV, "current-user-principal") => return Some(href(principal_href(who))),
        (DAV, "principal-URL") => return Some(href(principal_href(who))),
        (DAV, "principal-collection-set") => return Some(href("/dav/principals/".into())),
        (DAV, "current-user-privilege-set") => return Some(privileges()),
        (DAV, "owner") if !matches!(t, Target::Root) => return Some(href(principal_href(who))),
        (DAV, "supported-report-set") => {
            let reports: &[(&str, &str)] = match t {
                Target::Collection(c) if c.kind.is_calendar() => &[
                    (CALDAV, "calendar-multiget"),
                    (CALDAV, "calendar-query"),
                    (CALDAV, "free-busy-query"),
                    (DAV, "sync-collection"),
                ],
                Target::Collection(_) => &[
                    (CARDDAV, "addressbook-multiget"),
                    (CARDDAV, "addressbook-query"),
                    (DAV, "sync-collection"),
                ],
                // RFC 3744 §9.4–9.5 (principal.rs).
                Target::Root | Target::Principal => &[
                    (DAV, "principal-property-search"),
                    (DAV, "principal-search-property-set"),
                ],
                _ => &[],
            };
            return Some(
                reports
                    .iter()
                    .map(|(n, r)| {
                        format!(
                            "<d:supported-report><d:report>{}</d:report></d:supported-report>",
                            empty(n, r)
                        )
                    })
                    .collect(),
            );
        }
        _ => {}
    }
    match t {
        Target::Root => match (ns, name) {
            (DAV, "resourcetype") => Some("<d:collection/>".into()),
            _ => None,
        },
        Target::Principal => match (ns, name) {
            (DAV, "resourcetype") => Some("<d:collection/><d:principal/>".into()),
            (DAV, "displayname") => Some(esc(&who.principal().display_name)),
            (CALDAV, "calendar-home-set") => Some(href(home_href(who, Home::Calendars))),
            (CARDDAV, "addressbook-home-set") => Some(href(home_href(who, Home::AddressBooks))),
            (CALDAV, "calendar-user-address-set") => {
                Some(href(format!("mailto:{}", who.address())) + &href(principal_href(who)))
            }
            (CALDAV, "calendar-user-type") => Some(
                match who.principal().kind {
                    postern_core::store::PrincipalKind::Resource => "ROOM",
                    _ => "INDIVIDUAL",
                }
                .into(),
            ),
            (CALDAV, "schedule-inbox-URL") => Some(href(sched::inbox_href(who))),
            (CALDAV, "schedule-outbox-URL") => Some(href(sched::outbox_href(who))),
            _ => None,
        },
        Target::Home(_) => match (ns, name) {
            (DAV, "resourcetype") => Some("<d:collection/>".into()),
            _ => None,
        },
        Target::Collection(c) => match (ns, name) {
            (DAV, "resourcetype") if c.kind == DavKind::Inbox => {
                Some("<d:collection/><c:schedule-inbox/>".into())
            }
            (CALDAV, "schedule-default-calendar-URL") if c.kind == DavKind::Inbox => Some(href(
                format!("{}calendar/", home_href(who, Home::Calendars)),
            )),
            (CALDAV, "schedule-calendar-transp") if c.kind == DavKind::Calendar => {
                Some("<c:opaque/>".into())
            }
            (DAV, "resourcetype") => Some(if c.kind.is_calendar() {
                "<d:collection/><c:calendar/>".into()
            } else {
                "<d:collection/><card:addressbook/>".into()
            }),
            (DAV, "displayname") => Some(esc(&c.display_name)),
            (DAV, "sync-token") => Some(esc(&sync_token(c, c.modseq))),
            (CS, "getctag") => Some(esc(&sync_token(c, c.modseq))),
            (DAV, "getetag") => Some(esc(&format!("\"c{}\"", c.modseq))),
            (CALDAV, "supported-calendar-component-set") if c.kind.is_calendar() => Some(
                c.components
                    .iter()
                    .map(|n| format!("<c:comp name=\"{}\"/>", esc(n)))
                    .collect(),
            ),
            (CALDAV, "supported-calendar-data") if c.kind.is_calendar() => {
                Some("<c:calendar-data content-type=\"text/calendar\" version=\"2.0\"/>".into())
            }
            (CARDDAV, "supported-address-data") if !c.kind.is_calendar() => Some(
                "<card:address-data-type content-type=\"text/vcard\" version=\"3.0\"/><card:address-data-type content-type=\"text/vcard\" version=\"4.0\"/>".into(),
            ),
            (CALDAV, "max-resource-size") | (CARDDAV, "max-resource-size") => {
                Some(postern_core::dav::MAX_RESOURCE_BYTES.to_string())
            }
            (ICAL, "calendar-color") if c.kind.is_calendar() => c.color.as_deref().map(esc),
            (ICAL, "calendar-order") if c.kind.is_calendar() => c.order.map(|o| o.to_string()),
            (CALDAV, "calendar-description") if c.kind.is_calendar() => {
                c.description.as_deref().map(esc)
            }
            (CALDAV, "calendar-timezone") if c.kind.is_calendar() => {
                c.timezone.as_deref().map(esc)
            }
            (CARDDAV, "addressbook-description") if !c.kind.is_calendar() => {
                c.description.as_deref().map(esc)
            }
            _ => None,
        },
        Target::Resource(c, r) => match (ns, name) {
            (DAV, "resourcetype") => Some(String::new()),
            (DAV, "getetag") => Some(esc(&format!("\"{}\"", r.etag))),
            (DAV, "getcontenttype") => Some(content_type(c.kind).into()),
            (DAV, "getcontentlength") => Some(r.size.to_string()),
            (DAV, "getlastmodified") => Some(http_date(r.modified_ms)),
            (DAV, "displayname") => None,
            (CALDAV, "calendar-data") if c.kind.is_calendar() && !r.data.is_empty() => {
                Some(esc(&r.data))
            }
            (CARDDAV, "address-data") if !c.kind.is_calendar() && !r.data.is_empty() => {
                Some(esc(&r.data))
            }
            _ => None,
        },
    }
}

/// Which properties a PROPFIND or REPORT asks for.
enum PropReq {
    All,
    Names,
    Some(Vec<(String, String)>),
}

impl PropReq {
    fn from_parent(parent: Option<&Element>) -> PropReq {
        let Some(p) = parent else {
            return PropReq::All;
        };
        if p.child(DAV, "propname").is_some() {
            return PropReq::Names;
        }
        if let Some(prop) = p.child(DAV, "prop") {
            return PropReq::Some(
                prop.children
                    .iter()
                    .map(|c| (c.ns.clone(), c.name.clone()))
                    .collect(),
            );
        }
        PropReq::All
    }
    fn wants(&self, ns: &str, name: &str) -> bool {
        match self {
            PropReq::Some(v) => v.iter().any(|(n, m)| n == ns && m == name),
            _ => false,
        }
    }
}

/// One `<d:response>` with its propstats.
fn response(who: &Authenticated, href: &str, t: &Target<'_>, req: &PropReq) -> String {
    let mut ok = String::new();
    let mut missing = String::new();
    match req {
        PropReq::Names => {
            for (ns, n) in allprop_names(t) {
                ok.push_str(&empty(ns, n));
            }
        }
        PropReq::All => {
            for (ns, n) in allprop_names(t) {
                if let Some(v) = prop_value(who, t, ns, n) {
                    ok.push_str(&wrap(ns, n, &v));
                }
            }
        }
        PropReq::Some(v) => {
            for (ns, n) in v {
                match prop_value(who, t, ns, n) {
                    Some(val) if xml::prefix(ns).is_some() => ok.push_str(&wrap(ns, n, &val)),
                    _ => missing.push_str(&empty(ns, n)),
                }
            }
        }
    }
    let mut out = format!("<d:response><d:href>{}</d:href>", esc(href));
    if !ok.is_empty() || missing.is_empty() {
        out.push_str(&format!(
            "<d:propstat><d:prop>{ok}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>"
        ));
    }
    if !missing.is_empty() {
        out.push_str(&format!(
            "<d:propstat><d:prop>{missing}</d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>"
        ));
    }
    out.push_str("</d:response>");
    out
}

fn multistatus(parts: Vec<String>, extra: &str) -> DavResponse {
    let mut s = root_open("multistatus");
    for p in parts {
        s.push_str(&p);
    }
    s.push_str(extra);
    s.push_str("</d:multistatus>");
    DavResponse::xml(207, s)
}

async fn propfind(
    core: &Core,
    who: &Authenticated,
    path: &Path,
    req: &DavRequest<'_>,
) -> Result<DavResponse, DavResponse> {
    let body = body_xml(req.body)?;
    if let Some(b) = &body
        && !b.is(DAV, "propfind")
    {
        return Err(DavResponse::text(400, "expected DAV:propfind\n"));
    }
    let preq = PropReq::from_parent(body.as_ref());
    // Depth infinity is answered as 1 (RFC 4918 §9.1 lets a server refuse it).
    let depth1 = !matches!(req.depth.map(str::trim), Some("0"));
    let mut out = Vec::new();
    match path {
        Path::Root | Path::Principals => {
            let href = if matches!(path, Path::Root) {
                "/dav/"
            } else {
                "/dav/principals/"
            };
            out.push(response(who, href, &Target::Root, &preq));
            if depth1 {
                out.push(response(
                    who,
                    &principal_href(who),
                    &Target::Principal,
                    &preq,
                ));
            }
        }
        Path::HomeRoot(h) => {
            out.push(response(
                who,
                &format!("/dav/{}/", h.seg()),
                &Target::Root,
                &preq,
            ));
            if depth1 {
                out.push(response(who, &home_href(who, *h), &Target::Home(*h), &preq));
            }
        }
        Path::Principal(_) => {
            out.push(response(
                who,
                &principal_href(who),
                &Target::Principal,
                &preq,
            ));
        }
        Path::Home(h, _) => {
            out.push(response(who, &home_href(who, *h), &Target::Home(*h), &preq));
            if depth1 {
                // Own collections, those shared with the caller, the GAL (share.rs).
                let cols = core
                    .dav_home_collections(who, *h == Home::AddressBooks)
                    .await
                    .map_err(core_error)?;
                for c in cols.iter().filter(|c| h.holds(c.kind)) {
                    out.push(
                        share::collection_response(core, who, &collection_href(who, c), c, &preq)
                            .await,
                    );
                }
            }
        }
        Path::Collection(h, _, name) => {
            let c = collection(core, who, *h, name).await?;
            out.push(
                share::collection_response(core, who, &collection_href(who, &c), &c, &preq).await,
            );
            if depth1 {
                let with_data =
                    preq.wants(CALDAV, "calendar-data") || preq.wants(CARDDAV, "address-data");
                let list = core
                    .dav_list(
                        who,
                        &c,
                        DavFilter {
                            with_data,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(core_error)?;
                for r in &list {
                    out.push(response(
                        who,
                        &resource_href(who, &c, &r.name),
                        &Target::Resource(&c, r),
                        &preq,
                    ));
                }
                share::member_privileges(core, who, &c, &mut out).await;
            }
        }
        Path::Resource(h, _, col, name) => {
            let c = collection(core, who, *h, col).await?;
            let wants_data =
                preq.wants(CALDAV, "calendar-data") || preq.wants(CARDDAV, "address-data");
            let found = if wants_data {
                core.dav_get(who, &c, vec![name.clone()]).await
            } else {
                core.dav_list(who, &c, DavFilter::default())
                    .await
                    .map(|v| v.into_iter().filter(|r| &r.name == name).collect())
            }
            .map_err(core_error)?;
            let Some(r) = found.first() else {
                return Err(DavResponse::not_found());
            };
            out.push(response(
                who,
                &resource_href(who, &c, name),
                &Target::Resource(&c, r),
                &preq,
            ));
            share::member_privileges(core, who, &c, &mut out).await;
        }
    }
    Ok(multistatus(out, ""))
}

async fn proppatch(
    core: &Core,
    who: &Authenticated,
    path: &Path,
    req: &DavRequest<'_>,
) -> Result<DavResponse, DavResponse> {
    let Path::Collection(h, _, name) = path else {
        return Err(DavResponse::text(
            403,
            "properties of this resource cannot be changed\n",
        ));
    };
    let c = collection(core, who, *h, name).await?;
    let Some(body) = body_xml(req.body)? else {
        return Err(DavResponse::text(400, "expected DAV:propertyupdate\n"));
    };
    if !body.is(DAV, "propertyupdate") {
        return Err(DavResponse::text(400, "expected DAV:propertyupdate\n"));
    }
    let mut props = DavCollectionProps::default();
    let mut names: Vec<(String, String)> = Vec::new();
    let mut unknown: Vec<(String, String)> = Vec::new();
    let mut bad_tz: Vec<(String, String)> = Vec::new();
    for op in &body.children {
        let set = op.is(DAV, "set");
        if !set && !op.is(DAV, "remove") {
            continue;
        }
        for prop in op.children_named(DAV, "prop") {
            for p in &prop.children {
                let text = p.text.trim().to_string();
                let known = match (p.ns.as_str(), p.name.as_str()) {
                    (DAV, "displayname") => {
                        props.display_name = Some(if set { text } else { c.name.clone() });
                        true
                    }
                    (ICAL, "calendar-color") => {
                        props.color = Some(set.then_some(text));
                        true
                    }
                    (ICAL, "calendar-order") => {
                        let v = if set {
                            match text.parse::<i64>() {
                                Ok(v) => Some(v),
                                Err(_) => {
                                    return Err(DavResponse::text(
                                        400,
                                        "calendar-order: a number\n",
                                    ));
                                }
                            }
                        } else {
                            None
                        };
                        props.order = Some(v);
                        true
                    }
                    (CALDAV, "calendar-description") | (CARDDAV, "addressbook-description") => {
                        props.description = Some(set.then_some(text));
                        true
                    }
                    (CALDAV, "calendar-timezone") if c.kind.is_calendar() => {
                        // RFC 4791 §5.2.2: one VTIMEZONE in an iCalendar object.
                        if set && !postern_core::dav::timezone_ok(&text) {
                            bad_tz.push((p.ns.clone(), p.name.clone()));
                            continue;
                        }
                        props.timezone = Some(set.then_some(text));
                        true
                    }
                    _ => false,
                };
                if known {
                    names.push((p.ns.clone(), p.name.clone()));
                } else {
                    unknown.push((p.ns.clone(), p.name.clone()));
                }
            }
        }
    }
    let href = collection_href(who, &c);
    let stat = |list: &[(String, String)], status: &str| {
        if list.is_empty() {
            return String::new();
        }
        let inner: String = list.iter().map(|(n, m)| empty(n, m)).collect();
        format!(
            "<d:propstat><d:prop>{inner}</d:prop><d:status>HTTP/1.1 {status}</d:status></d:propstat>"
        )
    };
    if !unknown.is_empty() || !bad_tz.is_empty() {
        // All or nothing (RFC 4918 §9.2). A time zone that is not one VTIMEZONE says
        // why (RFC 4791 §5.2.2, CALDAV:valid-calendar-data in the propstat's error).
        let tz_stat = if bad_tz.is_empty() {
            String::new()
        } else {
            let inner: String = bad_tz.iter().map(|(n, m)| empty(n, m)).collect();
            format!(
                "<d:propstat><d:prop>{inner}</d:prop><d:status>HTTP/1.1 403 Forbidden</d:status><d:error><c:valid-calendar-data/></d:error></d:propstat>"
            )
        };
        let body = format!(
            "<d:response><d:href>{}</d:href>{}{}{}</d:response>",
            esc(&href),
            stat(&unknown, "403 Forbidden"),
            tz_stat,
            stat(&names, "424 Failed Dependency")
        );
        return Ok(multistatus(vec![body], ""));
    }
    core.dav_update_collection(who, &c, props)
        .await
        .map_err(core_error)?;
    let body = format!(
        "<d:response><d:href>{}</d:href>{}</d:response>",
        esc(&href),
        stat(&names, "200 OK")
    );
    Ok(multistatus(vec![body], ""))
}

async fn mkcol(
    core: &Core,
    who: &Authenticated,
    path: &Path,
    req: &DavRequest<'_>,
) -> Result<DavResponse, DavResponse> {
    let Path::Collection(h, _, name) = path else {
        return Err(DavResponse::text(403, "collections are made in a home\n"));
    };
    let body = body_xml(req.body)?;
    let calendar = req.method == "MKCALENDAR";
    if calendar && *h != Home::Calendars {
        return Err(DavResponse::text(
            403,
            "calendars live under /dav/calendars/\n",
        ));
    }
    let mut new = NewCollection::default();
    let mut kind = if calendar {
        Some(DavKind::Calendar)
    } else {
        None
    };
    if let Some(b) = &body {
        let root_ok = if calendar {
            b.is(CALDAV, "mkcalendar")
        } else {
            b.is(DAV, "mkcol")
        };
        if !root_ok {
            return Err(DavResponse::text(400, "unexpected request body\n"));
        }
        for set in b.children_named(DAV, "set") {
            for prop in set.children_named(DAV, "prop") {
                for p in &prop.children {
                    let text = p.text.trim().to_string();
                    match (p.ns.as_str(), p.name.as_str()) {
                        (DAV, "resourcetype") => {
                            if p.child(CALDAV, "calendar").is_some() {
                                kind = Some(DavKind::Calendar);
                            } else if p.child(CARDDAV, "addressbook").is_some() {
                                kind = Some(DavKind::AddressBook);
                            }
                        }
                        (DAV, "displayname") => new.display_name = Some(text),
                        (ICAL, "calendar-color") => new.color = Some(text),
                        (ICAL, "calendar-order") => new.order = text.parse().ok(),
                        (CALDAV, "calendar-description") | (CARDDAV, "addressbook-description") => {
                            new.description = Some(text)
                        }
                        (CALDAV, "calendar-timezone") => {
                            if !postern_core::dav::timezone_ok(&text) {
                                return Err(DavResponse::precondition(
                                    403,
                                    CALDAV,
                                    "valid-calendar-data",
                                ));
                            }
                            new.timezone = Some(text)
                        }
                        (CALDAV, "supported-calendar-component-set") => {
                            new.components = p
                                .children_named(CALDAV, "comp")
                                .filter_map(|c| c.attr("name"))
                                .map(|n| n.to_ascii_uppercase())
                                .collect();
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    let Some(mut kind) = kind else {
        return Err(DavResponse::precondition(403, DAV, "valid-resourcetype"));
    };
    if !h.holds(kind) {
        return Err(DavResponse::precondition(403, DAV, "valid-resourcetype"));
    }
    if !kind.is_calendar() {
        // calendar-timezone belongs to calendars only.
        new.timezone = None;
    }
    if kind == DavKind::Calendar && new.components == ["VTODO"] {
        kind = DavKind::Tasks;
    }
    match core.dav_create_collection(who, name, kind, new).await {
        Ok(_) => {
            let mut r = DavResponse::new(201);
            r.headers.push(("cache-control", "no-cache".into()));
            Ok(r)
        }
        Err(CoreError::Conflict(_)) => Err(DavResponse::text(405, "the collection exists\n")),
        Err(CoreError::Invalid {
            field: "supported-calendar-component-set",
            ..
        }) => Err(DavResponse::precondition(
            403,
            CALDAV,
            "supported-calendar-component",
        )),
        Err(e) => Err(core_error(e)),
    }
}

async fn get(
    core: &Core,
    who: &Authenticated,
    path: &Path,
    req: &DavRequest<'_>,
) -> Result<DavResponse, DavResponse> {
    let Path::Resource(h, _, col, name) = path else {
        let mut r = DavResponse::text(405, "GET is served for calendar objects and vCards\n");
        r.headers.push(("allow", ALLOW.into()));
        return Ok(r);
    };
    let c = collection(core, who, *h, col).await?;
    let found = core
        .dav_get(who, &c, vec![name.clone()])
        .await
        .map_err(core_error)?;
    let Some(r) = found.into_iter().next() else {
        return Err(DavResponse::not_found());
    };
    let etag = format!("\"{}\"", r.etag);
    if let Some(inm) = req.if_none_match
        && (inm.trim() == "*" || inm.split(',').any(|t| strip_quotes(t) == r.etag))
    {
        let mut resp = DavResponse::new(304);
        resp.headers.push(("etag", etag));
        return Ok(resp);
    }
    let mut resp = DavResponse::new(200);
    resp.headers
        .push(("content-type", content_type(c.kind).into()));
    resp.headers.push(("etag", etag));
    resp.headers
        .push(("last-modified", http_date(r.modified_ms)));
    // RFC 6638 §3.2.10: scheduling objects carry their Schedule-Tag.
    if matches!(c.kind, DavKind::Calendar | DavKind::Tasks)
        && let Some(t) = postern_core::dav::sched::schedule_tag(&r.data)
    {
        resp.headers.push(("schedule-tag", format!("\"{t}\"")));
    }
    if req.method != "HEAD" {
        resp.body = r.data.into_bytes();
    }
    Ok(resp)
}

async fn put(
    core: &Core,
    who: &Authenticated,
    path: &Path,
    req: &DavRequest<'_>,
) -> Result<DavResponse, DavResponse> {
    let Path::Resource(h, _, col, name) = path else {
        return Err(DavResponse::text(
            405,
            "PUT is for calendar objects and vCards\n",
        ));
    };
    let c = match collection(core, who, *h, col).await {
        Ok(c) => c,
        // RFC 4918 §9.7.1: no intermediate collection.
        Err(r) if r.status == 404 => return Err(DavResponse::text(409, "no such collection\n")),
        Err(r) => return Err(r),
    };
    // Implicit scheduling (RFC 6638 §3.2) is core's: a stored object the server changed
    // (SCHEDULE-STATUS, kept PARTSTATs) is answered without an ETag (RFC 4791 §5.3.4).
    match core
        .dav_put_scheduled(
            who,
            &c,
            name,
            req.body,
            expect_of(req),
            req.if_schedule_tag_match.map(strip_quotes),
        )
        .await
    {
        Ok(out) => {
            let mut r = DavResponse::new(if out.created { 201 } else { 204 });
            if !out.rewritten {
                r.headers.push(("etag", format!("\"{}\"", out.etag)));
            }
            if let Some(t) = out.schedule_tag {
                r.headers.push(("schedule-tag", format!("\"{t}\"")));
            }
            Ok(r)
        }
        // A read-only share (share.rs).
        Err(DavWriteError::Core(CoreError::Forbidden(_))) => Err(share::need_privileges(
            &resource_href(who, &c, name),
            "write-content",
        )),
        Err(e) => Err(write_error(&c, e)),
    }
}

/// A failed write's answer (PUT, and COPY/MOVE's write at the destination).
fn write_error(c: &DavCollection, e: DavWriteError) -> DavResponse {
    let (cal_ns, data_pre) = if c.kind.is_calendar() {
        (CALDAV, "valid-calendar-data")
    } else {
        (CARDDAV, "valid-address-data")
    };
    let r: Result<DavResponse, DavResponse> = match e {
        DavWriteError::Precondition => Err(DavResponse::text(412, "precondition failed\n")),
        DavWriteError::UidConflict => {
            Err(DavResponse::precondition(403, cal_ns, "no-uid-conflict"))
        }
        DavWriteError::Invalid(DavInvalid::Data(_)) => {
            Err(DavResponse::precondition(403, cal_ns, data_pre))
        }
        DavWriteError::Invalid(DavInvalid::Component(_)) => Err(DavResponse::precondition(
            403,
            CALDAV,
            "supported-calendar-component",
        )),
        DavWriteError::Invalid(DavInvalid::Size) => {
            Err(DavResponse::precondition(403, cal_ns, "max-resource-size"))
        }
        DavWriteError::Core(e) => Err(core_error(e)),
    };
    r.unwrap_or_else(|e| e)
}

/// RFC 4918 §9.8/§9.9: COPY and MOVE of one resource to a resource path in the
/// caller's own collections of the same home (Destination header, Overwrite T/F: 201
/// created, 204 replaced, 412 when `Overwrite: F` meets an existing resource). The
/// destination is written with `dav_put` (validation, the collection's UID rule, a
/// `dav.put` ledger entry and journal change) and a MOVE's source removed with
/// `dav_delete` (`dav.delete`, a tombstone): sync-collection reports both sides.
/// A MOVE inside one collection removes the source first (the UID moves with it) and
/// puts it back if the write fails.
async fn copy_move(
    core: &Core,
    who: &Authenticated,
    path: &Path,
    req: &DavRequest<'_>,
) -> Result<DavResponse, DavResponse> {
    let is_move = req.method == "MOVE";
    // Whole collections: copy.rs.
    if let Path::Collection(h, _, scol) = path {
        return copy::copy_move_collection(core, who, *h, scol, req).await;
    }
    let Path::Resource(h, _, scol, sname) = path else {
        return Err(DavResponse::text(
            403,
            "COPY and MOVE are for calendar objects and vCards\n",
        ));
    };
    let Some(dest) = req.destination.map(str::trim).filter(|d| !d.is_empty()) else {
        return Err(DavResponse::text(400, "Destination header required\n"));
    };
    let overwrite = match req.overwrite.map(str::trim) {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("T") => true,
        Some(v) if v.eq_ignore_ascii_case("F") => false,
        Some(_) => return Err(DavResponse::text(400, "Overwrite must be T or F\n")),
    };
    // An absolute URI is cut to its path (RFC 4918 §10.3); the host is not checked.
    let dpath = match dest.find("://") {
        Some(i) => dest[i + 3..]
            .find('/')
            .map(|j| &dest[i + 3 + j..])
            .unwrap_or("/"),
        None => dest,
    };
    let Some(Path::Resource(dh, da, dcol, dname)) = parse_path(dpath) else {
        return Err(DavResponse::text(
            403,
            "the Destination must be a resource path under /dav/\n",
        ));
    };
    // Another account's path answers as one that does not exist (and is in the ledger).
    core.dav_check_owner(who, &da).await.map_err(core_error)?;
    if dh != *h {
        return Err(DavResponse::text(
            403,
            "the Destination is in another kind of home\n",
        ));
    }
    if dcol == *scol && dname == *sname {
        return Err(DavResponse::text(
            403,
            "source and destination are the same\n",
        ));
    }
    let sc = collection(core, who, *h, scol).await?;
    // A MOVE out of a read-only share would copy and then fail (share.rs).
    if is_move {
        share::may_unbind(core, who, &sc, &resource_href(who, &sc, sname)).await?;
    }
    let dc = match collection(core, who, dh, &dcol).await {
        Ok(c) => c,
        Err(r) if r.status == 404 => {
            return Err(DavResponse::text(409, "no such destination collection\n"));
        }
        Err(r) => return Err(r),
    };
    let src = core
        .dav_get(who, &sc, vec![sname.clone()])
        .await
        .map_err(core_error)?;
    let Some(src) = src.into_iter().find(|r| &r.name == sname) else {
        return Err(DavResponse::not_found());
    };
    // RFC 4918 §9.8.3: If-Match applies to the source.
    if let Some(im) = req.if_match
        && im.trim() != "*"
        && !im.split(',').any(|t| strip_quotes(t.trim()) == src.etag)
    {
        return Err(DavResponse::text(412, "precondition failed\n"));
    }
    let expect = if overwrite {
        DavExpect::Any
    } else {
        DavExpect::Absent
    };
    let same = sc.id == dc.id;
    if is_move && same {
        if !overwrite
            && !core
                .dav_get(who, &dc, vec![dname.clone()])
                .await
                .map_err(core_error)?
                .is_empty()
        {
            return Err(DavResponse::text(412, "the destination exists\n"));
        }
        core.dav_delete(who, &sc, sname, DavExpect::Etag(src.etag.clone()))
            .await
            .map_err(|e| write_error(&sc, e))?;
        return match core
            .dav_put(who, &dc, &dname, src.data.as_bytes(), expect)
            .await
        {
            Ok((created, etag)) => {
                let mut r = DavResponse::new(if created { 201 } else { 204 });
                r.headers.push(("etag", format!("\"{etag}\"")));
                Ok(r)
            }
            Err(e) => {
                // Put the source back as it was.
                let _ = core
                    .dav_put(who, &sc, sname, src.data.as_bytes(), DavExpect::Absent)
                    .await;
                Err(write_error(&dc, e))
            }
        };
    }
    let (created, etag) = core
        .dav_put(who, &dc, &dname, src.data.as_bytes(), expect)
        .await
        .map_err(|e| write_error(&dc, e))?;
    if is_move {
        core.dav_delete(who, &sc, sname, DavExpect::Etag(src.etag.clone()))
            .await
            .map_err(|e| write_error(&sc, e))?;
    }
    let mut r = DavResponse::new(if created { 201 } else { 204 });
    r.headers.push(("etag", format!("\"{etag}\"")));
    Ok(r)
}

async fn delete(
    core: &Core,
    who: &Authenticated,
    path: &Path,
    req: &DavRequest<'_>,
) -> Result<DavResponse, DavResponse> {
    match path {
        Path::Collection(h, _, name) => {
            let c = collection(core, who, *h, name).await?;
            if let Some(m) = req.if_match
                && m.trim() != "*"
                && strip_quotes(m) != format!("c{}", c.modseq)
            {
                return Err(DavResponse::text(412, "precondition failed\n"));
            }
            core.dav_delete_collection(who, &c)
                .await
                .map_err(core_error)?;
            Ok(DavResponse::new(204))
        }
        Path::Resource(h, _, col, name) => {
            let c = collection(core, who, *h, col).await?;
            match core
                .dav_delete_scheduled(who, &c, name, expect_of(req))
                .await
            {
                Ok(()) => Ok(DavResponse::new(204)),
                Err(DavWriteError::Precondition) => {
                    Err(DavResponse::text(412, "precondition failed\n"))
                }
                Err(DavWriteError::Core(CoreError::Forbidden(_))) => Err(share::need_privileges(
                    &resource_href(who, &c, name),
                    "unbind",
                )),
                Err(DavWriteError::Core(e)) => Err(core_error(e)),
                Err(_) => Err(DavResponse::text(403, "refused\n")),
            }
        }
        _ => Err(DavResponse::text(403, "this resource cannot be deleted\n")),
    }
}

// ---- REPORT ----

// `20300101T000000Z` → ms since the epoch (UTC only, as RFC 4791 §9.9 requires).
use postern_core::dav::ical::parse_utc;

async fn report(
    core: &Core,
    who: &Authenticated,
    path: &Path,
    req: &DavRequest<'_>,
) -> Result<DavResponse, DavResponse> {
    let Some(body) = body_xml(req.body)? else {
        return Err(DavResponse::text(400, "REPORT needs a body\n"));
    };
    let (h, colname) = match path {
        Path::Collection(h, _, c) => (*h, c.clone()),
        // A multiget may be sent to a resource's collection through a resource path.
        Path::Resource(h, _, c, _) => (*h, c.clone()),
        _ => {
            return Err(DavResponse::precondition(403, DAV, "supported-report"));
        }
    };
    let c = collection(core, who, h, &colname).await?;
    let preq = PropReq::from_parent(Some(&body));
    let cal = c.kind.is_calendar();
    if (cal && body.is(CALDAV, "calendar-multiget"))
        || (!cal && body.is(CARDDAV, "addressbook-multiget"))
    {
        return multiget(core, who, &c, &body, &preq).await;
    }
    if cal && body.is(CALDAV, "calendar-query") {
        return calendar_query(core, who, &c, &body, &preq).await;
    }
    if cal && body.is(CALDAV, "free-busy-query") {
        return free_busy_query(core, who, &c, &body).await;
    }
    if !cal && body.is(CARDDAV, "addressbook-query") {
        let wants_data = preq.wants(CARDDAV, "address-data");
        let props = match body.child(CARDDAV, "filter") {
            Some(f) => filter::card_filter(f)
                .map_err(|e| DavResponse::precondition(403, CARDDAV, e.card_condition()))?,
            None => filter::CardFilter::default(),
        };
        let mut list = core
            .dav_list(
                who,
                &c,
                DavFilter {
                    with_data: wants_data || !props.is_empty(),
                    ..Default::default()
                },
            )
            .await
            .map_err(core_error)?;
        list.retain(|r| props.passes(&r.data));
        if !wants_data {
            for r in &mut list {
                r.data.clear();
            }
        }
        let parts = list
            .iter()
            .map(|r| {
                response(
                    who,
                    &resource_href(who, &c, &r.name),
                    &Target::Resource(&c, r),
                    &preq,
                )
            })
            .collect();
        return Ok(multistatus(parts, ""));
    }
    if body.is(DAV, "sync-collection") {
        return sync_collection(core, who, &c, &body, &preq).await;
    }
    Err(DavResponse::precondition(403, DAV, "supported-report"))
}

async fn multiget(
    core: &Core,
    who: &Authenticated,
    c: &DavCollection,
    body: &Element,
    preq: &PropReq,
) -> Result<DavResponse, DavResponse> {
    let base = collection_href(who, c);
    let mut names = Vec::new();
    let mut missing = Vec::new();
    for href in body.children_named(DAV, "href") {
        let raw = href.text.trim();
        // Absolute URLs are cut to their path.
        let p = match raw.find("://") {
            Some(i) => raw[i + 3..]
                .find('/')
                .map(|j| &raw[i + 3 + j..])
                .unwrap_or("/"),
            None => raw,
        };
        match parse_path(p) {
            Some(Path::Resource(_, a, col, name))
                if a.eq_ignore_ascii_case(who.address()) && col == c.name =>
            {
                names.push(name)
            }
            _ => missing.push(raw.to_string()),
        }
    }
    let shape = if preq.wants(CALDAV, "calendar-data") {
        data_shape(body)?
    } else {
        DataShape::Whole
    };
    let found = if names.is_empty() {
        Vec::new()
    } else {
        core.dav_get(who, c, names.clone())
            .await
            .map_err(core_error)?
    };
    let found = recurrence_pass(found, None, shape, postern_core::dav::collection_zone(c)).await?;
    let mut parts = Vec::new();
    for n in &names {
        match found.iter().find(|r| &r.name == n) {
            Some(r) => parts.push(response(
                who,
                &format!("{base}{}", enc(n)),
                &Target::Resource(c, r),
                preq,
            )),
            None => missing.push(format!("{base}{}", enc(n))),
        }
    }
    for m in missing {
        parts.push(format!(
            "<d:response><d:href>{}</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>",
            esc(&m)
        ));
    }
    Ok(multistatus(parts, ""))
}

/// How calendar-data is returned (RFC 4791 §9.6.5 `expand`, §9.6.6
/// `limit-recurrence-set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataShape {
    Whole,
    Expand(i64, i64),
    Limit(i64, i64),
}

fn data_shape(body: &Element) -> Result<DataShape, DavResponse> {
    let Some(cd) = body
        .child(DAV, "prop")
        .and_then(|p| p.child(CALDAV, "calendar-data"))
    else {
        return Ok(DataShape::Whole);
    };
    let range = |e: &Element| -> Result<(i64, i64), DavResponse> {
        let s = e.attr("start").and_then(parse_utc);
        let en = e.attr("end").and_then(parse_utc);
        match (s, en) {
            (Some(s), Some(en)) if s < en => Ok((s, en)),
            _ => Err(DavResponse::precondition(403, CALDAV, "valid-filter")),
        }
    };
    if let Some(e) = cd.child(CALDAV, "expand") {
        let (s, e) = range(e)?;
        return Ok(DataShape::Expand(s, e));
    }
    if let Some(e) = cd.child(CALDAV, "limit-recurrence-set") {
        let (s, e) = range(e)?;
        return Ok(DataShape::Limit(s, e));
    }
    Ok(DataShape::Whole)
}

/// Applies the time range to recurring objects (by their instances) and the
/// calendar-data shape, off the async workers and within one expansion budget for the
/// request. An `expand` whose budget ran out answers 503 with Retry-After rather than
/// a silently partial expansion; a time range alone counts a capped series as matching.
/// Keeps the objects with an alarm ringing in `[start, end)` (`core::dav::alarm`), off
/// the async workers and within the expansion budget. A series cut by a cap counts as
/// matching (as for a time range); one cut by the budget answers 503 with Retry-After
/// rather than silently leaving objects out.
async fn alarm_pass(
    list: Vec<DavResource>,
    start: Option<i64>,
    end: Option<i64>,
    zone: postern_core::dav::recur::Tz,
) -> Result<Vec<DavResource>, DavResponse> {
    use postern_core::dav::alarm::{AlarmOverlap, alarms_ring};
    use postern_core::dav::recur;
    let out = recur::blocking(move || {
        let deadline = std::time::Instant::now() + recur::EXPAND_BUDGET;
        let mut out = Vec::new();
        for r in list {
            match alarms_ring(&r.data, start, end, zone, deadline) {
                Some(AlarmOverlap::Rings) => out.push(r),
                Some(AlarmOverlap::Truncated) if std::time::Instant::now() > deadline => {
                    return None;
                }
                Some(AlarmOverlap::Truncated) => out.push(r),
                Some(AlarmOverlap::Silent) | None => {}
            }
        }
        Some(out)
    })
    .await
    .ok_or_else(|| DavResponse::text(500, "internal error\n"))?;
    out.ok_or_else(|| {
        let mut r = DavResponse::text(503, "recurrence expansion budget exceeded\n");
        r.headers.push(("Retry-After", "5".into()));
        r
    })
}

async fn recurrence_pass(
    list: Vec<DavResource>,
    range: Option<(Option<i64>, Option<i64>)>,
    shape: DataShape,
    zone: postern_core::dav::recur::Tz,
) -> Result<Vec<DavResource>, DavResponse> {
    use postern_core::dav::recur;
    // Series, and floating times or dates (indexed widened, read in `zone`), are
    // checked against the range exactly; the index alone matched the others.
    let exact = |d: &str| recur::may_recur(d) || recur::may_float(d);
    // Nothing to expand or reshape: no thread hop.
    if shape == DataShape::Whole && (range.is_none() || !list.iter().any(|r| exact(&r.data))) {
        return Ok(list);
    }
    let busy = || {
        let mut r = DavResponse::text(503, "recurrence expansion budget exceeded\n");
        r.headers.push(("Retry-After", "5".into()));
        r
    };
    let out = recur::blocking(move || {
        let deadline = std::time::Instant::now() + recur::EXPAND_BUDGET;
        let mut out = Vec::with_capacity(list.len());
        for mut r in list {
            if let Some((s, e)) = range
                && exact(&r.data)
            {
                let Ok(ical) = calcard_parse(&r.data) else {
                    continue;
                };
                if !recur::matches_range(&ical, s, e, zone, deadline) {
                    continue;
                }
            }
            match shape {
                DataShape::Whole => {}
                DataShape::Expand(s, e) => {
                    if let Some((text, _truncated)) =
                        recur::expand_to_ical(&r.data, Some(s), Some(e), zone, deadline)
                    {
                        r.data = text;
                    }
                }
                DataShape::Limit(s, e) => {
                    if recur::may_recur(&r.data)
                        && let Some(text) =
                            recur::limit_recurrence_set(&r.data, Some(s), Some(e), zone)
                    {
                        r.data = text;
                    }
                }
            }
            out.push(r);
        }
        // A time range alone answers: a capped series counts as matching. An expansion
        // cut by the budget would be silently partial.
        let over = matches!(shape, DataShape::Expand(..)) && std::time::Instant::now() > deadline;
        (out, over)
    })
    .await;
    match out {
        Some((out, false)) => Ok(out),
        _ => Err(busy()),
    }
}

/// The zone of a query (RFC 4791 §9.8 CALDAV:timezone, RFC 7809 CALDAV:timezone-id),
/// else the calendar's. An element that names no zone is a 403 valid-calendar-data.
fn query_zone(
    body: &Element,
    c: &DavCollection,
) -> Result<postern_core::dav::recur::Tz, DavResponse> {
    use postern_core::dav::recur;
    if body.child(CALDAV, "timezone").is_some() && body.child(CALDAV, "timezone-id").is_some() {
        // RFC 7809 §5.2: one or the other.
        return Err(DavResponse::text(
            400,
            "CALDAV:timezone and CALDAV:timezone-id together\n",
        ));
    }
    if let Some(t) = body.child(CALDAV, "timezone") {
        return postern_core::dav::checked_zone(t.text.trim())
            .ok_or_else(|| DavResponse::precondition(403, CALDAV, "valid-calendar-data"));
    }
    if let Some(t) = body.child(CALDAV, "timezone-id") {
        return recur::zone_named(&t.text)
            .ok_or_else(|| DavResponse::precondition(403, CALDAV, "valid-timezone"));
    }
    Ok(postern_core::dav::collection_zone(c))
}

fn calcard_parse(text: &str) -> Result<postern_core::dav::recur::Calendar, ()> {
    postern_core::dav::recur::parse(text).ok_or(())
}

/// RFC 4791 §7.10: one VFREEBUSY over the range from the collection's events
/// (TRANSP:TRANSPARENT and STATUS:CANCELLED left out, recurring events expanded with
/// the caps of `core::dav::recur`), as text/calendar. Reading the events for it is a
/// `dav.read` like any other data read.
async fn free_busy_query(
    core: &Core,
    who: &Authenticated,
    c: &DavCollection,
    body: &Element,
) -> Result<DavResponse, DavResponse> {
    use postern_core::dav::recur;
    let Some(tr) = body.child(CALDAV, "time-range") else {
        return Err(DavResponse::text(
            400,
            "free-busy-query needs a time-range\n",
        ));
    };
    let (Some(start), Some(end)) = (
        tr.attr("start").and_then(parse_utc),
        tr.attr("end").and_then(parse_utc),
    ) else {
        return Err(DavResponse::text(
            400,
            "time-range needs a UTC start and end\n",
        ));
    };
    if start >= end {
        return Err(DavResponse::text(400, "time-range end before its start\n"));
    }
    let list = core
        .dav_list(
            who,
            c,
            DavFilter {
                component: Some("VEVENT".into()),
                start_ms: Some(start),
                end_ms: Some(end),
                with_data: true,
            },
        )
        .await
        .map_err(core_error)?;
    let zone = postern_core::dav::collection_zone(c);
    let out = recur::blocking(move || {
        let deadline = std::time::Instant::now() + recur::EXPAND_BUDGET;
        let mut periods = Vec::new();
        for r in &list {
            periods.extend(recur::busy_periods(&r.data, start, end, zone, deadline));
        }
        (
            recur::freebusy_ical(start, end, periods),
            std::time::Instant::now() > deadline,
        )
    })
    .await;
    match out {
        Some((text, false)) => Ok(DavResponse {
            status: 200,
            headers: vec![("content-type", "text/calendar; charset=utf-8".into())],
            body: text.into_bytes(),
        }),
        _ => {
            let mut r = DavResponse::text(503, "recurrence expansion budget exceeded\n");
            r.headers.push(("Retry-After", "5".into()));
            Err(r)
        }
    }
}

async fn calendar_query(
    core: &Core,
    who: &Authenticated,
    c: &DavCollection,
    body: &Element,
    preq: &PropReq,
) -> Result<DavResponse, DavResponse> {
    let wants_data = preq.wants(CALDAV, "calendar-data");
    let zone = query_zone(body, c)?;
    let mut filter = DavFilter {
        with_data: wants_data,
        ..Default::default()
    };
    let mut props = filter::CalendarFilter::default();
    let mut alarm_range: Option<(Option<i64>, Option<i64>)> = None;
    if let Some(f) = body.child(CALDAV, "filter") {
        props = filter::calendar_filter(f)
            .map_err(|e| DavResponse::precondition(403, CALDAV, e.condition()))?
            .with_zone(zone);
        let Some(vcal) = f.child(CALDAV, "comp-filter") else {
            return Err(DavResponse::precondition(403, CALDAV, "valid-filter"));
        };
        if !vcal
            .attr("name")
            .is_some_and(|n| n.eq_ignore_ascii_case("VCALENDAR"))
        {
            return Err(DavResponse::precondition(403, CALDAV, "valid-filter"));
        }
        if let Some(comp) = vcal.child(CALDAV, "comp-filter") {
            let name = comp.attr("name").unwrap_or_default().to_ascii_uppercase();
            if comp.child(CALDAV, "is-not-defined").is_some() {
                // No object of the component: our objects hold exactly one type.
                filter.component = Some(format!("!{name}"));
            } else {
                filter.component = Some(name);
            }
            // RFC 4791 §9.9: a time range on the component's alarms.
            if let Some(tr) = comp
                .children_named(CALDAV, "comp-filter")
                .find(|a| {
                    a.attr("name")
                        .is_some_and(|n| n.eq_ignore_ascii_case("VALARM"))
                })
                .and_then(|a| a.child(CALDAV, "time-range"))
            {
                let start = tr.attr("start").map(parse_utc);
                let end = tr.attr("end").map(parse_utc);
                if matches!(start, Some(None)) || matches!(end, Some(None)) {
                    return Err(DavResponse::precondition(403, CALDAV, "valid-filter"));
                }
                alarm_range = Some((start.flatten(), end.flatten()));
            }
            if let Some(tr) = comp.child(CALDAV, "time-range") {
                let start = tr.attr("start").map(parse_utc);
                let end = tr.attr("end").map(parse_utc);
                if matches!(start, Some(None)) || matches!(end, Some(None)) {
                    return Err(DavResponse::precondition(403, CALDAV, "valid-filter"));
                }
                filter.start_ms = start.flatten();
                filter.end_ms = end.flatten();
            }
        }
    }
    let negated = filter
        .component
        .as_ref()
        .and_then(|c| c.strip_prefix('!').map(str::to_string));
    if negated.is_some() {
        filter.component = None;
    }
    let shape = if wants_data {
        data_shape(body)?
    } else {
        DataShape::Whole
    };
    let range = (filter.start_ms.is_some() || filter.end_ms.is_some())
        .then_some((filter.start_ms, filter.end_ms));
    // Text filters and recurring objects read the objects (a `dav.read` entry names
    // every object returned).
    filter.with_data |= !props.is_empty() || range.is_some() || alarm_range.is_some();
    let mut list = core.dav_list(who, c, filter).await.map_err(core_error)?;
    list.retain(|r| props.passes(&r.data));
    if let Some((s, e)) = alarm_range {
        list = alarm_pass(list, s, e, zone).await?;
    }
    let mut list = recurrence_pass(list, range, shape, zone).await?;
    if !wants_data {
        for r in &mut list {
            r.data.clear();
        }
    }
    let parts = list
        .iter()
        .filter(|r| negated.as_ref().is_none_or(|n| &r.component != n))
        .map(|r| {
            response(
                who,
                &resource_href(who, c, &r.name),
                &Target::Resource(c, r),
                preq,
            )
        })
        .collect();
    Ok(multistatus(parts, ""))
}

async fn sync_collection(
    core: &Core,
    who: &Authenticated,
    c: &DavCollection,
    body: &Element,
    preq: &PropReq,
) -> Result<DavResponse, DavResponse> {
    let token = body
        .child(DAV, "sync-token")
        .map(|t| t.text.trim().to_string())
        .unwrap_or_default();
    let since = if token.is_empty() {
        0
    } else {
        match parse_sync_token(c, &token) {
            Some(n) => n,
            None => return Err(DavResponse::precondition(403, DAV, "valid-sync-token")),
        }
    };
    if let Some(level) = body.child(DAV, "sync-level")
        && level.text.trim() != "1"
    {
        return Err(DavResponse::precondition(403, DAV, "supported-report"));
    }
    let Some(mut changes) = core.dav_changes(who, c, since).await.map_err(core_error)? else {
        return Err(DavResponse::precondition(
            403,
            DAV,
            "number-of-matches-within-limits",
        ));
    };
    // DAV:limit (RFC 6578 §3.6), and MAX_SYNC_CHANGES without one: the first N changes
    // (oldest first), a token at the last of them, and 507 on the collection so the
    // client asks again.
    let limit = body
        .child(DAV, "limit")
        .and_then(|l| l.child(DAV, "nresults"))
        .map(|n| n.text.trim().parse::<usize>());
    let cap = match limit {
        Some(Ok(n)) => n.min(postern_core::dav::MAX_SYNC_CHANGES),
        Some(Err(_)) => return Err(DavResponse::text(400, "DAV:nresults: a number\n")),
        None => postern_core::dav::MAX_SYNC_CHANGES,
    };
    let truncated = changes.len() > cap;
    changes.truncate(cap);
    // The token answered: the collection's number when we read it, or a later change's;
    // when truncated, the last change reported.
    let last = changes.iter().map(|ch| ch.modseq).max().unwrap_or(since);
    let new_token = if truncated { last } else { last.max(c.modseq) };
    let wants_data = preq.wants(CALDAV, "calendar-data") || preq.wants(CARDDAV, "address-data");
    let live: Vec<&DavChange> = changes.iter().filter(|ch| ch.etag.is_some()).collect();
    let data: Vec<DavResource> = if wants_data && !live.is_empty() {
        core.dav_get(who, c, live.iter().map(|ch| ch.name.clone()).collect())
            .await
            .map_err(core_error)?
    } else {
        Vec::new()
    };
    let by_name: std::collections::HashMap<&str, &DavResource> =
        data.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut parts = Vec::new();
    for ch in &changes {
        let href = resource_href(who, c, &ch.name);
        match &ch.etag {
            None if since > 0 => parts.push(format!(
                "<d:response><d:href>{}</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response>",
                esc(&href)
            )),
            None => {}
            Some(etag) => {
                let r = by_name.get(ch.name.as_str()).map(|r| (*r).clone()).unwrap_or(DavResource {
                    id: postern_core::store::DavResourceId(0),
                    account: who.principal().id,
                    collection: c.id,
                    name: ch.name.clone(),
                    etag: etag.clone(),
                    data: String::new(),
                    size: 0,
                    component: String::new(),
                    uid: String::new(),
                    start_ms: None,
                    end_ms: None,
                    modseq: ch.modseq,
                    modified_ms: 0,
                });
                parts.push(response(who, &href, &Target::Resource(c, &r), preq));
            }
        }
    }
    if truncated {
        parts.push(format!(
            "<d:response><d:href>{}</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status><d:error><d:number-of-matches-within-limits/></d:error></d:response>",
            esc(&collection_href(who, c))
        ));
    }
    Ok(multistatus(
        parts,
        &format!(
            "<d:sync-token>{}</d:sync-token>",
            esc(&sync_token(c, new_token))
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_canonical() {
        assert_eq!(parse_path("/dav"), Some(Path::Root));
        assert_eq!(parse_path("/dav/"), Some(Path::Root));
        assert_eq!(
            parse_path("/dav/calendars/a%40x.org/calendar/e1.ics"),
            Some(Path::Resource(
                Home::Calendars,
                "a@x.org".into(),
                "calendar".into(),
                "e1.ics".into()
            ))
        );
        for bad in [
            "/davx",
            "/dav//calendars",
            "/dav/calendars/a/../b/",
            "/dav/calendars/a/%2e%2e/b",
            "/dav/calendars/a/..%2fb",
            "/dav/calendars/a/%252e%252e/",
            "/dav/calendars/a/x%00/",
            "/dav/calendars/a/%c0%ae%c0%ae/",
            "/dav/calendars/a/b\\c/",
            "/dav/other/a/",
            "/dav/calendars/a/b/c/d/",
        ] {
            assert_eq!(parse_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn utc_times() {
        assert_eq!(parse_utc("19700101T000001Z"), Some(1000));
        assert_eq!(parse_utc("20300101T090000Z"), Some(1_893_488_400_000));
        assert_eq!(parse_utc("20300101T090000"), None);
        assert_eq!(parse_utc("2030-01-01"), None);
    }

    #[test]
    fn etag_conditions() {
        let r = DavRequest {
            if_match: Some("\"abc\""),
            ..Default::default()
        };
        assert_eq!(expect_of(&r), DavExpect::Etag("abc".into()));
        let r = DavRequest {
            if_none_match: Some("*"),
            ..Default::default()
        };
        assert_eq!(expect_of(&r), DavExpect::Absent);
        assert_eq!(expect_of(&DavRequest::default()), DavExpect::Any);
    }
}
