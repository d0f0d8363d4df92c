//! A small content-line model of iCalendar (RFC 5545 §3.1) for scheduling: components,
//! properties and their parameters, read and written back without interpreting values.
//! Scheduling changes parameters (PARTSTAT, SCHEDULE-STATUS) and a few properties
//! (METHOD, STATUS) of objects parsed with `calcard` elsewhere; doing that on lines keeps
//! every other property exactly as the client wrote it (only folding may change).
//!
//! **Security:** input may come from mail ([`super::imip`]): parsing is bounded by
//! [`MAX_LINES`] and [`MAX_DEPTH`]; written values never contain CR or LF (a line's
//! value is taken after unfolding and written folded).

/// Most content lines in one object.
pub const MAX_LINES: usize = 20_000;
/// Deepest nesting of components (VCALENDAR > VEVENT > VALARM is 3).
pub const MAX_DEPTH: usize = 8;

/// One property: upper-case name, parameters (upper-case names, values unquoted), value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    pub name: String,
    pub params: Vec<(String, String)>,
    pub value: String,
}

impl Prop {
    pub fn new(name: &str, value: &str) -> Prop {
        Prop {
            name: name.to_ascii_uppercase(),
            params: Vec::new(),
            value: clean(value),
        }
    }
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Sets (or adds) a parameter.
    pub fn set_param(&mut self, name: &str, value: &str) {
        let value = clean(value).replace('"', "'");
        match self
            .params
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(p) => p.1 = value,
            None => self.params.push((name.to_ascii_uppercase(), value)),
        }
    }
    pub fn remove_param(&mut self, name: &str) {
        self.params.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
    /// The calendar user address of a `mailto:` value, lower-case.
    pub fn address(&self) -> Option<String> {
        cal_address(&self.value)
    }
    fn write(&self, out: &mut String) {
        let mut line = self.name.clone();
        for (n, v) in &self.params {
            line.push(';');
            line.push_str(n);
            line.push('=');
            if v.contains([':', ';', ',']) {
                line.push('"');
                line.push_str(v);
                line.push('"');
            } else {
                line.push_str(v);
            }
        }
        line.push(':');
        line.push_str(&self.value);
        fold(&line, out);
    }
}

/// `mailto:a@b` (any case) → `a@b` lower-case; `None` for other URIs.
pub fn cal_address(v: &str) -> Option<String> {
    let v = v.trim();
    let rest = v.get(..7).filter(|p| p.eq_ignore_ascii_case("mailto:"))?;
    let a = v[rest.len()..].trim();
    (a.contains('@') && a.len() <= 320).then(|| a.to_ascii_lowercase())
}

/// No CR, LF or other control characters but TAB in a written value.
fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\t')
        .collect()
}

/// Folds at 75 octets (RFC 5545 §3.1), on character boundaries.
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        let w = c.len_utf8();
        if width + w > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += w;
    }
    out.push_str("\r\n");
}

/// A component with its properties and sub-components, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comp {
    pub name: String,
    pub props: Vec<Prop>,
    pub subs: Vec<Comp>,
}

impl Comp {
    pub fn new(name: &str) -> Comp {
        Comp {
            name: name.to_ascii_uppercase(),
            props: Vec::new(),
            subs: Vec::new(),
        }
    }
    pub fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }
    pub fn value(&self, name: &str) -> Option<&str> {
        self.prop(name).map(|p| p.value.as_str())
    }
    pub fn props_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Prop> + 'a {
        self.props.iter().filter(move |p| p.name == name)
    }
    /// Replaces the first property of that name (or adds it after the others).
    pub fn set(&mut self, name: &str, value: &str) {
        match self.props.iter_mut().find(|p| p.name == name) {
            Some(p) => {
                p.value = clean(value);
                p.params.clear();
            }
            None => self.props.push(Prop::new(name, value)),
        }
    }
    pub fn remove(&mut self, name: &str) {
        self.props.retain(|p| p.name != name);
    }
    pub fn organizer(&self) -> Option<String> {
        self.prop("ORGANIZER").and_then(Prop::address)
    }
    /// The ATTENDEE property of `address`.
    pub fn attendee(&self, address: &str) -> Option<&Prop> {
        self.props_named("ATTENDEE")
            .find(|p| p.address().as_deref() == Some(address))
    }
    pub fn attendee_mut(&mut self, address: &str) -> Option<&mut Prop> {
        self.props
            .iter_mut()
            .find(|p| p.name == "ATTENDEE" && p.address().as_deref() == Some(address))
    }
    fn write(&self, out: &mut String) {
        out.push_str("BEGIN:");
        out.push_str(&self.name);
        out.push_str("\r\n");
        for p in &self.props {
            p.write(out);
        }
        for s in &self.subs {
            s.write(out);
        }
        out.push_str("END:");
        out.push_str(&self.name);
        out.push_str("\r\n");
    }
}

/// A VCALENDAR object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cal {
    pub root: Comp,
}

/// Whether a component is a scheduling object's main component.
pub fn is_main(name: &str) -> bool {
    matches!(name, "VEVENT" | "VTODO" | "VJOURNAL" | "VFREEBUSY")
}

impl Cal {
    /// Parses one VCALENDAR (text after it is ignored); `None` when it is not one.
    pub fn parse(text: &str) -> Option<Cal> {
        let mut stack: Vec<Comp> = Vec::new();
        let mut lines = 0usize;
        for raw in unfold(text) {
            lines += 1;
            if lines > MAX_LINES {
                return None;
            }
            if raw.trim().is_empty() {
                continue;
            }
            let p = parse_line(&raw)?;
            if p.name == "BEGIN" {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(Comp::new(p.value.trim()));
            } else if p.name == "END" {
                let c = stack.pop()?;
                if !c.name.eq_ignore_ascii_case(p.value.trim()) {
                    return None;
                }
                match stack.last_mut() {
                    Some(parent) => parent.subs.push(c),
                    None => {
                        return (c.name == "VCALENDAR").then_some(Cal { root: c });
                    }
                }
            } else {
                stack.last_mut()?.props.push(p);
            }
        }
        None
    }
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.root.write(&mut out);
        out
    }
    pub fn method(&self) -> Option<String> {
        self.root
            .value("METHOD")
            .map(|m| m.trim().to_ascii_uppercase())
    }
    /// Sets METHOD (after VERSION/PRODID) or removes it (`None`).
    pub fn set_method(&mut self, method: Option<&str>) {
        self.root.remove("METHOD");
        if let Some(m) = method {
            let at = self
                .root
                .props
                .iter()
                .rposition(|p| p.name == "VERSION" || p.name == "PRODID")
                .map_or(0, |i| i + 1);
            self.root.props.insert(at, Prop::new("METHOD", m));
        }
    }
    pub fn mains(&self) -> impl Iterator<Item = &Comp> {
        self.root.subs.iter().filter(|c| is_main(&c.name))
    }
    pub fn mains_mut(&mut self) -> impl Iterator<Item = &mut Comp> {
        self.root.subs.iter_mut().filter(|c| is_main(&c.name))
    }
    /// The master component (no RECURRENCE-ID), else the first main one.
    pub fn master(&self) -> Option<&Comp> {
        self.mains()
            .find(|c| c.prop("RECURRENCE-ID").is_none())
            .or_else(|| self.mains().next())
    }
    pub fn uid(&self) -> Option<String> {
        self.master()
            .and_then(|c| c.value("UID"))
            .map(|u| u.trim().to_string())
    }
    pub fn organizer(&self) -> Option<String> {
        self.master().and_then(Comp::organizer)
    }
    /// Every attendee address of any main component, each once, in order.
    pub fn attendees(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in self.mains() {
            for a in c.props_named("ATTENDEE").filter_map(Prop::address) {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
    /// The first ATTENDEE property of `address` in any main component.
    pub fn attendee(&self, address: &str) -> Option<&Prop> {
        self.mains().find_map(|c| c.attendee(address))
    }
    /// PARTSTAT of `address` in the master (NEEDS-ACTION when unset).
    pub fn partstat(&self, address: &str) -> Option<String> {
        self.master()
            .and_then(|c| c.attendee(address))
            .or_else(|| self.attendee(address))
            .map(|p| {
                p.param("PARTSTAT")
                    .unwrap_or("NEEDS-ACTION")
                    .to_ascii_uppercase()
            })
    }
    /// Sets PARTSTAT of `address` wherever it is an attendee.
    pub fn set_partstat(&mut self, address: &str, partstat: &str) {
        for c in self.mains_mut() {
            if let Some(p) = c.attendee_mut(address) {
                p.set_param("PARTSTAT", partstat);
            }
        }
    }
    /// The properties that say when it happens (compared to tell a reschedule).
    pub fn timing(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in self.mains() {
            for p in &c.props {
                if matches!(
                    p.name.as_str(),
                    "DTSTART"
                        | "DTEND"
                        | "DURATION"
                        | "DUE"
                        | "RRULE"
                        | "RDATE"
                        | "EXDATE"
                        | "RECURRENCE-ID"
                ) {
                    out.push(format!("{}{:?}:{}", p.name, p.params, p.value));
                }
            }
        }
        out
    }
    /// The object as attendees see it: what an organiser's change to would be worth
    /// sending (no stamps, no per-attendee scheduling state).
    pub fn significant(&self) -> String {
        let mut c = self.clone();
        c.root.remove("METHOD");
        for m in c.mains_mut() {
            m.props.retain(|p| {
                !matches!(
                    p.name.as_str(),
                    "DTSTAMP" | "LAST-MODIFIED" | "SEQUENCE" | "CREATED"
                ) && !p.name.starts_with("X-")
            });
            for p in m.props.iter_mut().filter(|p| p.name == "ATTENDEE") {
                p.params.retain(|(n, _)| {
                    !matches!(
                        n.as_str(),
                        "PARTSTAT" | "SCHEDULE-STATUS" | "RSVP" | "SCHEDULE-FORCE-SEND"
                    )
                });
            }
            m.subs.retain(|s| s.name != "VALARM");
        }
        c.to_text()
    }
}

/// `20300101T090000Z` → ms since the epoch (UTC only; surrounding white space allowed).
pub fn parse_utc(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        num(0..4)? as i32,
        time::Month::try_from(num(4..6)? as u8).ok()?,
        num(6..8)? as u8,
    )
    .ok()?;
    let t = time::Time::from_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8).ok()?;
    Some(
        (time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp_nanos()
            / 1_000_000) as i64,
    )
}

/// Now as an iCalendar UTC date-time.
pub fn utc_now() -> String {
    utc_stamp_of(time::OffsetDateTime::now_utc())
}

/// `ms` since the epoch as an iCalendar UTC date-time (`20300101T090000Z`); out of
/// range → the epoch.
pub fn utc_stamp(ms: i64) -> String {
    utc_stamp_of(
        time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

fn utc_stamp_of(t: time::OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Unfolds content lines (CRLF or LF, then one space or tab).
pub fn unfold(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in text.split('\n') {
        let l = l.strip_suffix('\r').unwrap_or(l);
        if let Some(rest) = l.strip_prefix([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.push_str(rest);
            continue;
        }
        out.push(l.to_string());
    }
    out
}

/// `NAME;P=V;Q="a:b":value`.
pub fn parse_line(line: &str) -> Option<Prop> {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let name = line[..i].to_ascii_uppercase();
    let mut params = Vec::new();
    while i < b.len() && b[i] == b';' {
        i += 1;
        let ns = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'-') {
            i += 1;
        }
        let pname = line[ns..i].to_ascii_uppercase();
        if pname.is_empty() || i >= b.len() || b[i] != b'=' {
            return None;
        }
        i += 1;
        let mut value = String::new();
        loop {
            if i < b.len() && b[i] == b'"' {
                let end = line[i + 1..].find('"')? + i + 1;
                value.push_str(&line[i + 1..end]);
                i = end + 1;
            } else {
                let vs = i;
                while i < b.len() && !matches!(b[i], b';' | b':' | b',') {
                    i += 1;
                }
                value.push_str(&line[vs..i]);
            }
            if i < b.len() && b[i] == b',' {
                value.push(',');
                i += 1;
                continue;
            }
            break;
        }
        params.push((pname, value));
    }
    if i >= b.len() || b[i] != b':' {
        return None;
    }
    Some(Prop {
        name,
        params,
        value: line[i + 1..].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EV: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:abc\r\nDTSTART:20300101T090000Z\r\nORGANIZER;CN=\"A, B\":mailto:Alice@X.org\r\nATTENDEE;PARTSTAT=NEEDS-ACTION;CN=Bob:mailto:bob@x.org\r\nSUMMARY:a very long summary that goes on and on and on and on and on and on an\r\n d on\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn round_trip_and_params() {
        let mut c = Cal::parse(EV).unwrap();
        assert_eq!(c.organizer().as_deref(), Some("alice@x.org"));
        assert_eq!(c.attendees(), vec!["bob@x.org".to_string()]);
        assert_eq!(c.partstat("bob@x.org").as_deref(), Some("NEEDS-ACTION"));
        c.set_partstat("bob@x.org", "ACCEPTED");
        let t = c.to_text();
        let again = Cal::parse(&t).unwrap();
        assert_eq!(again.partstat("bob@x.org").as_deref(), Some("ACCEPTED"));
        assert!(t.contains("CN=\"A, B\""));
        assert!(t.lines().all(|l| l.len() <= 76));
        assert!(
            again
                .master()
                .unwrap()
                .value("SUMMARY")
                .unwrap()
                .ends_with("and on")
        );
    }

    #[test]
    fn values_never_carry_line_breaks() {
        let mut c = Cal::parse(EV).unwrap();
        c.root.subs[0].set("SUMMARY", "x\r\nATTENDEE:mailto:evil@x.org");
        c.root.subs[0]
            .attendee_mut("bob@x.org")
            .unwrap()
            .set_param("X", "a\r\nB:c");
        let again = Cal::parse(&c.to_text()).unwrap();
        assert_eq!(again.attendees(), vec!["bob@x.org".to_string()]);
    }

    #[test]
    fn at_most_max_lines() {
        let body = |n: usize| {
            format!(
                "BEGIN:VCALENDAR\r\n{}END:VCALENDAR\r\n",
                "X-A:b\r\n".repeat(n)
            )
        };
        assert!(Cal::parse(&body(MAX_LINES - 2)).is_some());
        assert!(Cal::parse(&body(MAX_LINES - 1)).is_none());
    }

    #[test]
    fn refuses_unbalanced_and_deep() {
        assert!(Cal::parse("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n").is_none());
        let deep = "BEGIN:VCALENDAR\r\n".repeat(MAX_DEPTH + 1);
        assert!(Cal::parse(&deep).is_none());
        assert!(Cal::parse("hello").is_none());
    }
}
