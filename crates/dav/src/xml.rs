//! Bounded XML for WebDAV bodies: quick-xml events into a small element tree, and an
//! escaping writer.
//!
//! **Security (THREATS.md "XML"):** any DOCTYPE is refused (so no entity can be
//! declared: billion laughs, external and parameter entities cannot start); a
//! reference to anything but the five predefined entities and character references
//! is refused; processing instructions are ignored (no XInclude or stylesheet is ever
//! acted on); nesting deeper than [`MAX_DEPTH`], more than [`MAX_ELEMENTS`] elements or
//! more than [`MAX_TEXT`] bytes of text are refused. The body size is capped by the
//! caller before parsing.

use quick_xml::XmlVersion;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

pub const DAV: &str = "DAV:";
pub const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
pub const CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";
pub const CS: &str = "http://calendarserver.org/ns/";
pub const ICAL: &str = "http://apple.com/ns/ical/";

/// Deepest element nesting accepted (DAV bodies need under ten levels).
pub const MAX_DEPTH: usize = 32;
/// Most elements in one body.
pub const MAX_ELEMENTS: usize = 20_000;
/// Most text bytes in one body.
pub const MAX_TEXT: usize = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlError {
    Doctype,
    Entity,
    TooDeep,
    TooMany,
    Malformed(String),
}

/// One element: namespace URI, local name, attributes (local name, value), children,
/// and its direct text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub ns: String,
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub text: String,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }
    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn ns_of(r: &ResolveResult<'_>) -> String {
    match r {
        ResolveResult::Bound(ns) => ns.as_ref().to_string(),
        _ => String::new(),
    }
}

fn malformed(e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed(e.to_string())
}

/// Parses a whole body into its root element.
pub fn parse(body: &[u8]) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_reader(body);
    reader.config_mut().trim_text(false);
    let mut buf = Vec::new();
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    let mut text_bytes = 0usize;
    loop {
        buf.clear();
        let (res, ev) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(malformed)?;
        match ev {
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Start(ref s) | Event::Empty(ref s) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooMany);
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                if root.is_some() && stack.is_empty() {
                    return Err(XmlError::Malformed("content after the root".into()));
                }
                let mut el = Element {
                    ns: ns_of(&res),
                    name: s.local_name().as_ref().to_string(),
                    ..Default::default()
                };
                for a in s.attributes() {
                    let a = a.map_err(malformed)?;
                    let key = a.key.as_ref();
                    if key.starts_with("xmlns") {
                        continue;
                    }
                    let v = a
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(|_| XmlError::Entity)?;
                    el.attrs
                        .push((a.key.local_name().as_ref().to_string(), v.into_owned()));
                }
                if matches!(ev, Event::Empty(_)) {
                    match stack.last_mut() {
                        Some(p) => p.children.push(el),
                        None => root = Some(el),
                    }
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(XmlError::Malformed("unbalanced end tag".into()));
                };
                match stack.last_mut() {
                    Some(p) => p.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.xml_content(XmlVersion::Implicit1_0);
                text_bytes += s.len();
                if text_bytes > MAX_TEXT {
                    return Err(XmlError::TooMany);
                }
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&s);
                } else if !s.trim().is_empty() {
                    return Err(XmlError::Malformed("text outside the root".into()));
                }
            }
            Event::CData(t) => {
                text_bytes += t.len();
                if text_bytes > MAX_TEXT {
                    return Err(XmlError::TooMany);
                }
                if let Some(p) = stack.last_mut() {
                    p.text.push_str(&t.xml_content(XmlVersion::Implicit1_0));
                }
            }
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        let name = r.xml_content(XmlVersion::Implicit1_0);
                        match name.as_ref() {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "apos" => '\'',
                            "quot" => '"',
                            _ => return Err(XmlError::Entity),
                        }
                    }
                    Err(_) => return Err(XmlError::Entity),
                };
                if let Some(p) = stack.last_mut() {
                    p.text.push(ch);
                }
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed("unclosed element".into()));
    }
    root.ok_or_else(|| XmlError::Malformed("no root element".into()))
}

/// Escapes text for element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 16);
    esc_into(&mut out, s);
    out
}

/// [`esc`] appended to `out`: runs without special characters are copied whole
/// (calendar data is mostly such runs, with a CR per line).
pub fn esc_into(out: &mut String, s: &str) {
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'&' => "&amp;",
            b'"' => "&quot;",
            b'\'' => "&apos;",
            b'\r' => "&#13;",
            _ => continue,
        };
        // `i` is at an ASCII byte: a character boundary.
        out.push_str(&s[from..i]);
        out.push_str(rep);
        from = i + 1;
    }
    out.push_str(&s[from..]);
}

/// The prefix our responses bind to a namespace, when they bind one.
pub fn prefix(ns: &str) -> Option<&'static str> {
    Some(match ns {
        DAV => "d",
        CALDAV => "c",
        CARDDAV => "card",
        CS => "cs",
        ICAL => "ical",
        _ => return None,
    })
}

/// The root start tag of a response, binding every prefix of [`prefix`].
pub fn root_open(name: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<d:{name} xmlns:d=\"DAV:\" xmlns:c=\"{CALDAV}\" xmlns:card=\"{CARDDAV}\" xmlns:cs=\"{CS}\" xmlns:ical=\"{ICAL}\">"
    )
}

/// An empty element `<p:name/>` for (ns, name), declaring an unknown namespace inline.
pub fn empty(ns: &str, name: &str) -> String {
    match prefix(ns) {
        Some(p) => format!("<{p}:{}/>", esc(name)),
        None if ns.is_empty() => format!("<{}/>", esc(name)),
        None => format!("<x:{} xmlns:x=\"{}\"/>", esc(name), esc(ns)),
    }
}

/// `<p:name>inner</p:name>` for a namespace of [`prefix`] (`inner` is already XML).
pub fn wrap(ns: &str, name: &str, inner: &str) -> String {
    match prefix(ns) {
        Some(p) => format!("<{p}:{name}>{inner}</{p}:{name}>"),
        None => format!("<x:{name} xmlns:x=\"{}\">{inner}</x:{name}>", esc(ns)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_quotes_and_cr() {
        assert_eq!(esc(""), "");
        assert_eq!(esc("plain é text"), "plain é text");
        assert_eq!(
            esc("a<b>&\"c'\r\nü<"),
            "a&lt;b&gt;&amp;&quot;c&apos;&#13;\nü&lt;"
        );
        let mut out = String::from("x");
        esc_into(&mut out, "&é");
        assert_eq!(out, "x&amp;é");
    }

    #[test]
    fn parses_namespaces_and_text() {
        let x = br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:displayname/><C:calendar-data>a&amp;b&#x41;</C:calendar-data></D:prop></D:propfind>"#;
        let e = parse(x).unwrap();
        assert!(e.is(DAV, "propfind"));
        let p = e.child(DAV, "prop").unwrap();
        assert!(p.child(DAV, "displayname").is_some());
        assert_eq!(p.child(CALDAV, "calendar-data").unwrap().text, "a&bA");
    }

    #[test]
    fn refuses_doctype_entities_depth() {
        let laughs = br#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]><lolz>&lol2;</lolz>"#;
        assert_eq!(parse(laughs), Err(XmlError::Doctype));
        let xxe = br#"<!DOCTYPE x [<!ENTITY x SYSTEM "file:///etc/passwd">]><x>&x;</x>"#;
        assert_eq!(parse(xxe), Err(XmlError::Doctype));
        assert_eq!(parse(b"<x>&x;</x>"), Err(XmlError::Entity));
        assert_eq!(parse(br#"<x a="&x;"/>"#), Err(XmlError::Entity));
        let deep = "<a>".repeat(100_000) + &"</a>".repeat(100_000);
        assert_eq!(parse(deep.as_bytes()), Err(XmlError::TooDeep));
        let many = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS + 1));
        assert_eq!(parse(many.as_bytes()), Err(XmlError::TooMany));
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"<a/><b/>").is_err());
    }
}
