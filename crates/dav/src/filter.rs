//! `prop-filter` / `text-match` of calendar-query (RFC 4791 §9.7) and addressbook-query
//! (RFC 6352 §10.5), evaluated on the stored object's content lines.
//!
//! This is a line-level approximation: a property matches wherever it appears in the
//! object (a prop-filter inside a VEVENT comp-filter also sees the properties of a
//! VALARM in it), parameters (`param-filter`) are not examined, and a prop-filter with a
//! time-range is not applied. Values are unfolded and TEXT escapes (`\,` `\;` `\n`)
//! undone before matching. Collations: `i;ascii-casemap` (the default) and
//! `i;unicode-casemap` compare case-insensitively, `i;octet` exactly.

use crate::xml::Element;

#[derive(Debug, Clone, PartialEq, Eq)]
enum MatchType {
    Contains,
    Equals,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone)]
struct TextMatch {
    text: String,
    negate: bool,
    kind: MatchType,
    exact_case: bool,
}

/// One prop-filter.
#[derive(Debug, Clone)]
pub struct PropFilter {
    name: String,
    not_defined: bool,
    matches: Vec<TextMatch>,
    /// CardDAV `test="allof"` (CalDAV's text-matches are always all of).
    allof: bool,
}

/// Reads the prop-filters directly under `parent` (namespace `ns`).
pub fn prop_filters(parent: &Element, ns: &str) -> Vec<PropFilter> {
    parent
        .children_named(ns, "prop-filter")
        .map(|p| PropFilter {
            name: p.attr("name").unwrap_or_default().to_ascii_uppercase(),
            not_defined: p.child(ns, "is-not-defined").is_some(),
            matches: p
                .children_named(ns, "text-match")
                .map(|t| TextMatch {
                    text: t.text.clone(),
                    negate: t.attr("negate-condition") == Some("yes"),
                    kind: match t.attr("match-type") {
                        Some("equals") => MatchType::Equals,
                        Some("starts-with") => MatchType::StartsWith,
                        Some("ends-with") => MatchType::EndsWith,
                        _ => MatchType::Contains,
                    },
                    exact_case: t.attr("collation") == Some("i;octet"),
                })
                .collect(),
            allof: p.attr("test") == Some("allof") || ns == crate::xml::CALDAV,
        })
        .collect()
}

/// (NAME, value) of each unfolded content line; a vCard group prefix (`item1.`) and
/// parameters are cut from the name.
fn lines(data: &str) -> Vec<(String, String)> {
    let mut unfolded: Vec<String> = Vec::new();
    for raw in data.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(cont) = raw.strip_prefix([' ', '\t'])
            && let Some(last) = unfolded.last_mut()
        {
            last.push_str(cont);
            continue;
        }
        unfolded.push(raw.to_string());
    }
    unfolded
        .into_iter()
        .filter_map(|l| {
            // The name ends at the first ';' or ':' outside quotes (names have neither).
            let end = l.find([';', ':'])?;
            let colon = value_start(&l)?;
            let name = &l[..end];
            let name = name.rsplit('.').next().unwrap_or(name).to_ascii_uppercase();
            Some((name, unescape(&l[colon + 1..])))
        })
        .collect()
}

/// The ':' that starts the value (parameter values may be quoted and hold ':').
fn value_start(l: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in l.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ':' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn text_ok(m: &TextMatch, value: &str) -> bool {
    let (v, t) = if m.exact_case {
        (value.to_string(), m.text.clone())
    } else {
        (value.to_lowercase(), m.text.to_lowercase())
    };
    let hit = match m.kind {
        MatchType::Contains => v.contains(&t),
        MatchType::Equals => v == t,
        MatchType::StartsWith => v.starts_with(&t),
        MatchType::EndsWith => v.ends_with(&t),
    };
    hit != m.negate
}

fn one_ok(f: &PropFilter, lines: &[(String, String)]) -> bool {
    let values: Vec<&str> = lines
        .iter()
        .filter(|(n, _)| *n == f.name)
        .map(|(_, v)| v.as_str())
        .collect();
    if f.not_defined {
        return values.is_empty();
    }
    if values.is_empty() {
        return false;
    }
    if f.matches.is_empty() {
        return true;
    }
    let per = |m: &TextMatch| values.iter().any(|v| text_ok(m, v));
    if f.allof {
        f.matches.iter().all(per)
    } else {
        f.matches.iter().any(per)
    }
}

/// Whether `data` passes the filters (`allof`: every one, else any one; none = pass).
pub fn passes(data: &str, filters: &[PropFilter], allof: bool) -> bool {
    if filters.is_empty() {
        return true;
    }
    let l = lines(data);
    if allof {
        filters.iter().all(|f| one_ok(f, &l))
    } else {
        filters.iter().any(|f| one_ok(f, &l))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{CALDAV, CARDDAV, parse};

    const EV: &str = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u1\r\nSUMMARY;LANGUAGE=en:Team\r\n  meeting\\, weekly\r\nCATEGORIES:Work\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn f(xml: &str, ns: &str) -> Vec<PropFilter> {
        prop_filters(&parse(xml.as_bytes()).unwrap(), ns)
    }

    #[test]
    fn calendar_text_match() {
        let c = |x: &str| {
            f(
                &format!(
                    "<c:comp-filter xmlns:c=\"urn:ietf:params:xml:ns:caldav\" name=\"VEVENT\">{x}</c:comp-filter>"
                ),
                CALDAV,
            )
        };
        assert!(passes(
            EV,
            &c(
                "<c:prop-filter name=\"SUMMARY\"><c:text-match>MEETING, week</c:text-match></c:prop-filter>"
            ),
            true
        ));
        assert!(!passes(
            EV,
            &c(
                "<c:prop-filter name=\"SUMMARY\"><c:text-match collation=\"i;octet\">MEETING</c:text-match></c:prop-filter>"
            ),
            true
        ));
        assert!(!passes(
            EV,
            &c(
                "<c:prop-filter name=\"SUMMARY\"><c:text-match negate-condition=\"yes\">team</c:text-match></c:prop-filter>"
            ),
            true
        ));
        assert!(passes(
            EV,
            &c("<c:prop-filter name=\"LOCATION\"><c:is-not-defined/></c:prop-filter>"),
            true
        ));
        assert!(!passes(
            EV,
            &c("<c:prop-filter name=\"CATEGORIES\"><c:is-not-defined/></c:prop-filter>"),
            true
        ));
        assert!(passes(
            EV,
            &c("<c:prop-filter name=\"UID\"><c:text-match>u1</c:text-match></c:prop-filter>"),
            true
        ));
    }

    #[test]
    fn card_text_match() {
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Carol Example\r\nitem1.EMAIL;TYPE=\"work:x\":carol@example.org\r\nEND:VCARD\r\n";
        let x = |test: &str, body: &str| {
            f(
                &format!(
                    "<card:filter xmlns:card=\"urn:ietf:params:xml:ns:carddav\" test=\"{test}\">{body}</card:filter>"
                ),
                CARDDAV,
            )
        };
        let fl = x(
            "anyof",
            "<card:prop-filter name=\"EMAIL\"><card:text-match match-type=\"starts-with\">carol@</card:text-match></card:prop-filter>",
        );
        assert!(passes(card, &fl, false));
        let fl = x(
            "allof",
            "<card:prop-filter name=\"FN\"><card:text-match match-type=\"equals\">carol</card:text-match></card:prop-filter><card:prop-filter name=\"EMAIL\"/>",
        );
        assert!(!passes(card, &fl, true));
        assert!(passes(card, &fl, false));
    }
}
