//! Scheduling over HTTP (RFC 6638): the outbox, a collection nothing is stored in —
//! PROPFIND describes it, POST of a VFREEBUSY request answers a
//! `CALDAV:schedule-response` (§5, computed by `postern_core::dav::sched`). Implicit
//! scheduling on PUT and DELETE and the inbox are ordinary paths (`core` decides).

use super::*;

/// Whether a path is the caller's outbox (or something under it).
pub(crate) fn is_outbox(path: &Path) -> bool {
    use postern_core::dav::sched::OUTBOX;
    match path {
        Path::Collection(Home::Calendars, _, c) | Path::Resource(Home::Calendars, _, c, _) => {
            c == OUTBOX
        }
        _ => false,
    }
}

pub(crate) fn outbox_href(who: &Authenticated) -> String {
    format!(
        "{}{}/",
        home_href(who, Home::Calendars),
        postern_core::dav::sched::OUTBOX
    )
}

pub(crate) fn inbox_href(who: &Authenticated) -> String {
    format!(
        "{}{}/",
        home_href(who, Home::Calendars),
        postern_core::dav::sched::INBOX
    )
}

fn outbox_prop(who: &Authenticated, ns: &str, name: &str) -> Option<String> {
    let href = |h: String| format!("<d:href>{}</d:href>", esc(&h));
    match (ns, name) {
        (DAV, "resourcetype") => Some("<d:collection/><c:schedule-outbox/>".into()),
        (DAV, "displayname") => Some("Scheduling outbox".into()),
        (DAV, "owner") => Some(href(principal_href(who))),
        (DAV, "current-user-principal") => Some(href(principal_href(who))),
        (DAV, "current-user-privilege-set") => Some(format!(
            "{}<d:privilege><c:schedule-send/></d:privilege>",
            privileges()
        )),
        (DAV, "supported-report-set") => Some(String::new()),
        _ => None,
    }
}

/// A request to the outbox.
pub(crate) async fn outbox(
    core: &Core,
    who: &Authenticated,
    path: &Path,
    req: &DavRequest<'_>,
) -> DavResponse {
    if matches!(path, Path::Resource(..)) {
        return DavResponse::not_found();
    }
    match req.method {
        "OPTIONS" => options(),
        "PROPFIND" => {
            let body = match body_xml(req.body) {
                Ok(b) => b,
                Err(r) => return r,
            };
            let preq = PropReq::from_parent(body.as_ref());
            let names: Vec<(String, String)> = match &preq {
                PropReq::Some(v) => v.clone(),
                _ => vec![
                    (DAV.into(), "resourcetype".into()),
                    (DAV.into(), "displayname".into()),
                ],
            };
            let (mut ok, mut missing) = (String::new(), String::new());
            for (ns, n) in &names {
                match outbox_prop(who, ns, n) {
                    Some(v) if !matches!(preq, PropReq::Names) && xml::prefix(ns).is_some() => {
                        ok.push_str(&wrap(ns, n, &v))
                    }
                    Some(_) => ok.push_str(&empty(ns, n)),
                    None => missing.push_str(&empty(ns, n)),
                }
            }
            let mut out = format!(
                "<d:response><d:href>{}</d:href><d:propstat><d:prop>{ok}</d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>",
                esc(&outbox_href(who))
            );
            if !missing.is_empty() {
                out.push_str(&format!(
                    "<d:propstat><d:prop>{missing}</d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>"
                ));
            }
            out.push_str("</d:response>");
            multistatus(vec![out], "")
        }
        "POST" => match core.sched_freebusy(who, req.body).await {
            Ok(answers) => {
                let mut s = format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<c:schedule-response xmlns:d=\"DAV:\" xmlns:c=\"{CALDAV}\">"
                );
                for a in answers {
                    s.push_str(&format!(
                        "<c:response><c:recipient><d:href>mailto:{}</d:href></c:recipient><c:request-status>{}</c:request-status>",
                        esc(&a.recipient),
                        esc(&a.status)
                    ));
                    if let Some(d) = a.data {
                        s.push_str(&format!("<c:calendar-data>{}</c:calendar-data>", esc(&d)));
                    }
                    s.push_str("</c:response>");
                }
                s.push_str("</c:schedule-response>");
                DavResponse::xml(200, s)
            }
            Err(CoreError::Invalid { .. }) => {
                DavResponse::precondition(400, CALDAV, "valid-calendar-data")
            }
            Err(CoreError::Forbidden(_)) => {
                DavResponse::precondition(403, CALDAV, "organizer-allowed")
            }
            Err(e) => core_error(e),
        },
        _ => {
            let mut r = DavResponse::text(405, "the outbox takes POST and PROPFIND\n");
            r.headers.push(("allow", "OPTIONS, PROPFIND, POST".into()));
            r
        }
    }
}
