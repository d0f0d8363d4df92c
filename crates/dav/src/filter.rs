//! The `filter` of calendar-query (RFC 4791 §9.7) and addressbook-query (RFC 6352
//! §10.5), evaluated on the stored object.
//!
//! The object is read into a small tree of components (BEGIN/END, after unfolding) by
//! a hand-written content-line parser; `calcard` is not used for text matching.
//! Malformed input never fails: an END without its BEGIN is ignored, components left
//! open are closed at the end, and components nested deeper than [`MAX_DEPTH`] are
//! skipped (they match no filter).
//!
//! - `comp-filter` (RFC 4791 §9.7.1): applies to the components of its name directly
//!   inside the component its parent matched; it matches when ANY of them satisfies all
//!   its prop-filters and nested comp-filters (`is-not-defined`: when none exists). A
//!   prop-filter sees only its own component's properties (not a nested VALARM's).
//!   The comp-filters' `time-range`s are not evaluated here: `calendar_query` applies
//!   the one on the top component (index and recurrence pass) and the one on a VALARM
//!   (alarm pass) separately, so a component and its time range are not required to
//!   be the same instance, and time ranges elsewhere are not applied.
//! - `prop-filter` (RFC 4791 §9.7.2, RFC 6352 §10.5.1): matches when some instance of
//!   the property satisfies its text-match / time-range and param-filters (CalDAV: all
//!   of them; CardDAV: per `test=`, default `anyof`); `is-not-defined`: no instance.
//!   vCard group prefixes (`item1.EMAIL`) are matched by the bare name.
//! - `param-filter` (RFC 4791 §9.7.3, RFC 6352 §10.5.2): names case-insensitive,
//!   values unquoted, comma lists split, RFC 6868 `^` escapes undone; a text-match
//!   matches when any value does (negation applies to that result). A vCard 2.1
//!   parameter without a name counts as TYPE.
//! - `time-range` in a prop-filter (RFC 4791 §9.9): a DATE-TIME value matches when it
//!   lies in `[start, end)`, a DATE when its day overlaps the range. `…Z` is UTC, a
//!   floating value or a date is read in the query's or the calendar's zone
//!   ([`CalendarFilter::with_zone`], UTC by default), a TZID value is resolved with `calcard` (IANA name
//!   or the object's VTIMEZONE); unparseable (or nonexistent local) values never match.
//! - `text-match`: values are unfolded and TEXT escapes (`\,` `\;` `\n`) undone.
//!   Collations `i;ascii-casemap` (CalDAV's default: ASCII letters folded),
//!   `i;unicode-casemap` (CardDAV's default: Unicode lower-casing, no normalization)
//!   and `i;octet`; any other is [`FilterError::Collation`] (`supported-collation`).

use crate::xml::{CALDAV, CARDDAV, Element};
use postern_core::dav::ical::parse_utc;
use std::cell::OnceCell;

/// Components nested deeper than this are skipped.
pub const MAX_DEPTH: usize = 16;

/// Why a filter was refused (a 403 precondition of the report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterError {
    /// A text-match names a collation we do not have.
    Collation,
    /// The filter's structure or an attribute is not valid.
    Invalid,
}

impl FilterError {
    /// The precondition element's local name (CALDAV: or CARDDAV: namespace).
    pub fn condition(self) -> &'static str {
        match self {
            FilterError::Collation => "supported-collation",
            FilterError::Invalid => "valid-filter",
        }
    }

    /// The CARDDAV precondition: RFC 6352 §8.6 has no valid-filter; a filter it cannot
    /// use is `supported-filter`.
    pub fn card_condition(self) -> &'static str {
        match self {
            FilterError::Collation => "supported-collation",
            FilterError::Invalid => "supported-filter",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Contains,
    Equals,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collation {
    AsciiCasemap,
    UnicodeCasemap,
    Octet,
}

impl Collation {
    fn fold(self, s: &str) -> String {
        match self {
            Collation::AsciiCasemap => s.to_ascii_lowercase(),
            Collation::UnicodeCasemap => s.to_lowercase(),
            Collation::Octet => s.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
struct TextMatch {
    /// Already folded with `collation`.
    text: String,
    negate: bool,
    kind: MatchType,
    collation: Collation,
}

impl TextMatch {
    fn parse(e: &Element, default: Collation) -> Result<TextMatch, FilterError> {
        let collation = match e.attr("collation").map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("i;ascii-casemap") => Collation::AsciiCasemap,
            Some("i;unicode-casemap") => Collation::UnicodeCasemap,
            Some("i;octet") => Collation::Octet,
            Some(_) => return Err(FilterError::Collation),
        };
        let negate = match e.attr("negate-condition") {
            None | Some("no") => false,
            Some("yes") => true,
            Some(_) => return Err(FilterError::Invalid),
        };
        let kind = match e.attr("match-type") {
            None | Some("contains") => MatchType::Contains,
            Some("equals") => MatchType::Equals,
            Some("starts-with") => MatchType::StartsWith,
            Some("ends-with") => MatchType::EndsWith,
            Some(_) => return Err(FilterError::Invalid),
        };
        Ok(TextMatch {
            text: collation.fold(&e.text),
            negate,
            kind,
            collation,
        })
    }

    /// Whether `value` matches, before negation.
    fn hit(&self, value: &str) -> bool {
        let v = self.collation.fold(value);
        let t = self.text.as_str();
        match self.kind {
            MatchType::Contains => v.contains(t),
            MatchType::Equals => v == t,
            MatchType::StartsWith => v.starts_with(t),
            MatchType::EndsWith => v.ends_with(t),
        }
    }

    /// Whether one of `values` matches, then negated when asked.
    fn ok<'a>(&self, mut values: impl Iterator<Item = &'a str>) -> bool {
        values.any(|v| self.hit(v)) != self.negate
    }
}

/// A `time-range` (ms since the epoch; either side open).
type Range = (Option<i64>, Option<i64>);

fn time_range(e: &Element) -> Result<Range, FilterError> {
    let side = |name: &str| match e.attr(name) {
        None => Ok(None),
        Some(v) => parse_utc(v).map(Some).ok_or(FilterError::Invalid),
    };
    // RFC 4791 §9.9: at least one side, and end after start.
    match (side("start")?, side("end")?) {
        (None, None) => Err(FilterError::Invalid),
        (Some(s), Some(e)) if e <= s => Err(FilterError::Invalid),
        r => Ok(r),
    }
}

#[derive(Debug, Clone)]
struct ParamFilter {
    name: String,
    not_defined: bool,
    text: Option<TextMatch>,
}

/// One prop-filter.
#[derive(Debug, Clone)]
struct PropFilter {
    name: String,
    not_defined: bool,
    matches: Vec<TextMatch>,
    range: Option<Range>,
    params: Vec<ParamFilter>,
    /// CardDAV `test="allof"` (CalDAV: always all of).
    allof: bool,
}

fn name_attr(e: &Element) -> Result<String, FilterError> {
    match e.attr("name").map(str::trim) {
        Some(n) if !n.is_empty() => Ok(n.to_ascii_uppercase()),
        _ => Err(FilterError::Invalid),
    }
}

/// `test=` of a CardDAV filter / prop-filter: `allof` → true (default anyof).
fn test_attr(e: &Element) -> Result<bool, FilterError> {
    match e.attr("test") {
        None | Some("anyof") => Ok(false),
        Some("allof") => Ok(true),
        Some(_) => Err(FilterError::Invalid),
    }
}

impl PropFilter {
    fn parse(e: &Element, ns: &str) -> Result<PropFilter, FilterError> {
        let cal = ns == CALDAV;
        let default = if cal {
            Collation::AsciiCasemap
        } else {
            Collation::UnicodeCasemap
        };
        let mut f = PropFilter {
            name: name_attr(e)?,
            not_defined: false,
            matches: Vec::new(),
            range: None,
            params: Vec::new(),
            allof: cal || test_attr(e)?,
        };
        for c in e.children.iter().filter(|c| c.ns == ns) {
            match c.name.as_str() {
                "is-not-defined" => f.not_defined = true,
                "text-match" => f.matches.push(TextMatch::parse(c, default)?),
                "time-range" if cal => {
                    if f.range.is_some() {
                        return Err(FilterError::Invalid);
                    }
                    f.range = Some(time_range(c)?);
                }
                "param-filter" => {
                    let mut p = ParamFilter {
                        name: name_attr(c)?,
                        not_defined: false,
                        text: None,
                    };
                    for g in c.children.iter().filter(|g| g.ns == ns) {
                        match g.name.as_str() {
                            "is-not-defined" => p.not_defined = true,
                            "text-match" if p.text.is_none() => {
                                p.text = Some(TextMatch::parse(g, default)?)
                            }
                            _ => return Err(FilterError::Invalid),
                        }
                    }
                    if p.not_defined && p.text.is_some() {
                        return Err(FilterError::Invalid);
                    }
                    f.params.push(p);
                }
                _ => return Err(FilterError::Invalid),
            }
        }
        if f.not_defined && (!f.matches.is_empty() || f.range.is_some() || !f.params.is_empty()) {
            return Err(FilterError::Invalid);
        }
        if cal && f.range.is_some() && !f.matches.is_empty() {
            return Err(FilterError::Invalid);
        }
        Ok(f)
    }
}

/// One comp-filter (CalDAV).
#[derive(Debug, Clone)]
struct CompFilter {
    name: String,
    not_defined: bool,
    props: Vec<PropFilter>,
    comps: Vec<CompFilter>,
}

impl CompFilter {
    fn parse(e: &Element, depth: usize) -> Result<CompFilter, FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError::Invalid);
        }
        let mut f = CompFilter {
            name: name_attr(e)?,
            not_defined: false,
            props: Vec::new(),
            comps: Vec::new(),
        };
        let mut others = false;
        let mut ranged = false;
        for c in e.children.iter().filter(|c| c.ns == CALDAV) {
            match c.name.as_str() {
                "is-not-defined" => f.not_defined = true,
                // Applied by calendar_query, only checked here.
                "time-range" if !ranged => {
                    time_range(c)?;
                    ranged = true;
                    others = true;
                }
                "prop-filter" => {
                    f.props.push(PropFilter::parse(c, CALDAV)?);
                    others = true;
                }
                "comp-filter" => {
                    f.comps.push(CompFilter::parse(c, depth + 1)?);
                    others = true;
                }
                _ => return Err(FilterError::Invalid),
            }
        }
        if f.not_defined && others {
            return Err(FilterError::Invalid);
        }
        Ok(f)
    }

    fn has_props(&self) -> bool {
        !self.props.is_empty() || self.comps.iter().any(CompFilter::has_props)
    }
}

/// The filter of a calendar-query, as far as the stored text is concerned.
#[derive(Debug, Clone, Default)]
pub struct CalendarFilter {
    /// The VCALENDAR comp-filter (None: no filter).
    root: Option<CompFilter>,
    /// The zone floating values and dates are read in (the query's or the calendar's).
    zone: calcard::common::timezone::Tz,
}

/// Reads a CALDAV `filter` element: exactly one comp-filter, named VCALENDAR.
pub fn calendar_filter(filter: &Element) -> Result<CalendarFilter, FilterError> {
    let mut root = None;
    for c in filter.children.iter().filter(|c| c.ns == CALDAV) {
        if c.name != "comp-filter" || root.is_some() {
            return Err(FilterError::Invalid);
        }
        let f = CompFilter::parse(c, 0)?;
        if f.name != "VCALENDAR" {
            return Err(FilterError::Invalid);
        }
        root = Some(f);
    }
    match root {
        Some(r) => Ok(CalendarFilter {
            root: Some(r),
            zone: calcard::common::timezone::Tz::UTC,
        }),
        None => Err(FilterError::Invalid),
    }
}

impl CalendarFilter {
    /// Reads floating values and dates in `zone` (UTC unless set).
    pub fn with_zone(mut self, zone: calcard::common::timezone::Tz) -> Self {
        self.zone = zone;
        self
    }

    /// True when nothing here needs the object's text: no prop-filters and nothing
    /// beyond VCALENDAR > one component (name, is-not-defined, time-range), which
    /// calendar_query answers from the index.
    pub fn is_empty(&self) -> bool {
        let Some(r) = &self.root else {
            return true;
        };
        !r.not_defined
            && !r.has_props()
            && r.comps.len() <= 1
            && r.comps.iter().all(|c| c.comps.is_empty())
    }

    /// Whether the iCalendar object `data` passes (always when [`Self::is_empty`]).
    pub fn passes(&self, data: &str) -> bool {
        let Some(r) = &self.root else {
            return true;
        };
        if self.is_empty() {
            return true;
        }
        let tree = parse_tree(data);
        let ctx = Ctx {
            data,
            tree: &tree,
            tz: OnceCell::new(),
            floating: self.zone,
        };
        comp_ok(r, &tree, &ctx)
    }
}

/// The filter of an addressbook-query.
#[derive(Debug, Clone, Default)]
pub struct CardFilter {
    props: Vec<PropFilter>,
    allof: bool,
}

/// Reads a CARDDAV `filter` element (`test=` anyof/allof, prop-filters).
pub fn card_filter(filter: &Element) -> Result<CardFilter, FilterError> {
    let mut f = CardFilter {
        props: Vec::new(),
        allof: test_attr(filter)?,
    };
    for c in filter.children.iter().filter(|c| c.ns == CARDDAV) {
        if c.name != "prop-filter" {
            return Err(FilterError::Invalid);
        }
        f.props.push(PropFilter::parse(c, CARDDAV)?);
    }
    Ok(f)
}

impl CardFilter {
    /// No prop-filters: every card passes.
    pub fn is_empty(&self) -> bool {
        self.props.is_empty()
    }

    /// Whether the vCard `data` passes.
    pub fn passes(&self, data: &str) -> bool {
        if self.props.is_empty() {
            return true;
        }
        let tree = parse_tree(data);
        let ctx = Ctx {
            data,
            tree: &tree,
            tz: OnceCell::new(),
            floating: calcard::common::timezone::Tz::UTC,
        };
        tree.children
            .iter()
            .filter(|c| c.name == "VCARD")
            .any(|card| {
                let one = |p: &PropFilter| prop_ok(p, &card.props, &ctx);
                if self.allof {
                    self.props.iter().all(one)
                } else {
                    self.props.iter().any(one)
                }
            })
    }
}

// ---- the object -------------------------------------------------------------------

#[derive(Debug, Default)]
struct Prop {
    /// Upper case, without a vCard group.
    name: String,
    /// The parameter section (after the name, without the leading ';').
    params: String,
    /// The raw value (escapes kept).
    value: String,
}

#[derive(Debug, Default)]
struct Comp {
    name: String,
    props: Vec<Prop>,
    children: Vec<Comp>,
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

fn parse_line(l: &str) -> Option<Prop> {
    let colon = value_start(l)?;
    let head = &l[..colon];
    let (name, params) = match head.find(';') {
        Some(i) => (&head[..i], &head[i + 1..]),
        None => (head, ""),
    };
    let name = name.trim();
    let name = name.rsplit('.').next().unwrap_or(name);
    if name.is_empty() {
        return None;
    }
    Some(Prop {
        name: name.to_ascii_uppercase(),
        params: params.to_string(),
        value: l[colon + 1..].to_string(),
    })
}

/// Reads `data` into a tree; the root (no name) holds the top-level components.
fn parse_tree(data: &str) -> Comp {
    let mut stack: Vec<Comp> = vec![Comp::default()];
    // BEGINs beyond MAX_DEPTH not yet closed; their content is skipped.
    let mut skipped = 0usize;
    for line in postern_core::dav::ical::unfold(data)
        .into_iter()
        .filter(|l| !l.is_empty())
    {
        let Some(p) = parse_line(&line) else {
            continue;
        };
        match p.name.as_str() {
            "BEGIN" => {
                if skipped > 0 || stack.len() > MAX_DEPTH {
                    skipped += 1;
                } else {
                    stack.push(Comp {
                        name: p.value.trim().to_ascii_uppercase(),
                        ..Comp::default()
                    });
                }
            }
            "END" => {
                if skipped > 0 {
                    skipped -= 1;
                    continue;
                }
                let name = p.value.trim().to_ascii_uppercase();
                // Close up to the matching BEGIN; an END without one is ignored.
                let Some(at) = stack.iter().skip(1).rposition(|c| c.name == name) else {
                    continue;
                };
                while stack.len() > at + 1 {
                    close(&mut stack);
                }
            }
            _ => {
                if skipped == 0
                    && let Some(top) = stack.last_mut()
                {
                    top.props.push(p);
                }
            }
        }
    }
    while stack.len() > 1 {
        close(&mut stack);
    }
    stack.pop().unwrap_or_default()
}

fn close(stack: &mut Vec<Comp>) {
    if let Some(c) = stack.pop()
        && let Some(parent) = stack.last_mut()
    {
        parent.children.push(c);
    }
}

// ---- evaluation -------------------------------------------------------------------

struct Ctx<'a> {
    data: &'a str,
    tree: &'a Comp,
    /// The object's VTIMEZONEs (parsed by calcard), only for TZIDs that are no known
    /// zone name.
    tz: OnceCell<Option<calcard::icalendar::timezone::TzResolver<String>>>,
    /// The zone floating values and dates are read in (RFC 4791 §9.9).
    floating: calcard::common::timezone::Tz,
}

impl Ctx<'_> {
    fn zone(&self, tzid: &str) -> Option<calcard::common::timezone::Tz> {
        use std::str::FromStr;
        let tzid = tzid.trim();
        if let Ok(tz) = calcard::common::timezone::Tz::from_str(tzid) {
            return Some(tz);
        }
        // The object's own VTIMEZONEs, resolved once per object.
        self.tz
            .get_or_init(|| {
                calcard::icalendar::ICalendar::parse(self.data)
                    .ok()
                    .map(|ical| ical.build_owned_tz_resolver())
            })
            .as_ref()?
            .resolve(tzid)
    }

    /// The UTC offset (seconds) of the object's VTIMEZONE `tzid` when all its
    /// observances have the same TZOFFSETTO (a zone without rules calcard can name).
    fn fixed_offset(&self, tzid: &str) -> Option<i64> {
        let tzid = tzid.trim();
        let vtz = self
            .tree
            .children
            .iter()
            .filter(|c| c.name == "VCALENDAR")
            .flat_map(|c| c.children.iter())
            .find(|c| {
                c.name == "VTIMEZONE"
                    && c.props
                        .iter()
                        .any(|p| p.name == "TZID" && unescape(&p.value).trim() == tzid)
            })?;
        let mut offsets = vtz
            .children
            .iter()
            .flat_map(|o| o.props.iter().filter(|p| p.name == "TZOFFSETTO"))
            .map(|p| utc_offset(&p.value));
        let first = offsets.next()??;
        offsets.all(|o| o == Some(first)).then_some(first)
    }
}

/// `+0300`, `-0530`, `+013045` → seconds east of UTC.
fn utc_offset(v: &str) -> Option<i64> {
    postern_core::dav::recur::utc_offset_secs(v).map(i64::from)
}

fn comp_ok(f: &CompFilter, parent: &Comp, ctx: &Ctx<'_>) -> bool {
    let mut named = parent.children.iter().filter(|c| c.name == f.name);
    if f.not_defined {
        return named.next().is_none();
    }
    named.any(|c| {
        f.props.iter().all(|p| prop_ok(p, &c.props, ctx))
            && f.comps.iter().all(|s| comp_ok(s, c, ctx))
    })
}

fn prop_ok(f: &PropFilter, props: &[Prop], ctx: &Ctx<'_>) -> bool {
    let mut inst = props.iter().filter(|p| p.name == f.name);
    if f.not_defined {
        return inst.next().is_none();
    }
    inst.any(|p| instance_ok(f, p, ctx))
}

fn instance_ok(f: &PropFilter, p: &Prop, ctx: &Ctx<'_>) -> bool {
    let params_cell = OnceCell::new();
    let params = || params_cell.get_or_init(|| parse_params(&p.params));
    let value_cell = OnceCell::new();
    let value = || value_cell.get_or_init(|| unescape(&p.value));
    let mut tests = f
        .matches
        .iter()
        .map(|m| m.ok(std::iter::once(value().as_str())))
        .chain(f.range.iter().map(|r| in_range(p, params(), *r, ctx)))
        .chain(f.params.iter().map(|pf| param_ok(pf, params())))
        .peekable();
    if tests.peek().is_none() {
        return true;
    }
    if f.allof {
        tests.all(|t| t)
    } else {
        tests.any(|t| t)
    }
}

/// (NAME upper case, values) of each parameter.
fn parse_params(s: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for part in split_unquoted(s, ';') {
        if part.is_empty() {
            continue;
        }
        let (name, values) = match part.find('=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            // vCard 2.1: `EMAIL;INTERNET;WORK:` — bare values are TYPEs.
            None => ("TYPE", part),
        };
        let values = split_unquoted(values, ',')
            .map(|v| caret_decode(v.trim().trim_matches('"')))
            .collect();
        out.push((name.trim().to_ascii_uppercase(), values));
    }
    out
}

/// Splits on `sep` outside double quotes.
fn split_unquoted(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut quoted = false;
    s.split(move |c: char| {
        if c == '"' {
            quoted = !quoted;
        }
        c == sep && !quoted
    })
}

/// RFC 6868 parameter value escapes: `^n` newline, `^'` quote, `^^` caret.
fn caret_decode(v: &str) -> String {
    if !v.contains('^') {
        return v.to_string();
    }
    let mut out = String::with_capacity(v.len());
    let mut it = v.chars().peekable();
    while let Some(c) = it.next() {
        if c == '^' {
            match it.peek() {
                Some('n') | Some('N') => {
                    out.push('\n');
                    it.next();
                }
                Some('\'') => {
                    out.push('"');
                    it.next();
                }
                Some('^') => {
                    out.push('^');
                    it.next();
                }
                _ => out.push('^'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn param_ok(f: &ParamFilter, params: &[(String, Vec<String>)]) -> bool {
    let mut named = params.iter().filter(|(n, _)| *n == f.name).peekable();
    if f.not_defined {
        return named.peek().is_none();
    }
    if named.peek().is_none() {
        return false;
    }
    match &f.text {
        None => true,
        Some(m) => m.ok(named.flat_map(|(_, v)| v.iter().map(String::as_str))),
    }
}

fn unescape(v: &str) -> String {
    if !v.contains('\\') {
        return v.to_string();
    }
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

const DAY_MS: i64 = 86_400_000;

/// Whether a date or date-time property's value (any of a comma list) is in `r`.
fn in_range(p: &Prop, params: &[(String, Vec<String>)], r: Range, ctx: &Ctx<'_>) -> bool {
    let tzid = params
        .iter()
        .find(|(n, _)| n == "TZID")
        .and_then(|(_, v)| v.first());
    p.value.split(',').any(|v| {
        // A PERIOD counts by its start.
        let v = v.split('/').next().unwrap_or(v).trim();
        match instant(v, tzid.map(String::as_str), ctx) {
            Some((t, None)) => r.0.is_none_or(|s| s <= t) && r.1.is_none_or(|e| t < e),
            Some((t, Some(day_end))) => {
                r.0.is_none_or(|s| s < day_end) && r.1.is_none_or(|e| t < e)
            }
            None => false,
        }
    })
}

/// `YYYYMMDD[THHMMSS[Z]]` → the instant in UTC ms, and for a date the end of its day
/// (both in the zone floating values are read in: a DST day is 23 or 25 hours).
fn instant(v: &str, tzid: Option<&str>, ctx: &Ctx<'_>) -> Option<(i64, Option<i64>)> {
    use postern_core::dav::recur::wall_to_utc;
    let b = v.as_bytes();
    if !(b.len() == 8 || b.len() == 15 || b.len() == 16) || !b[..8].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = v.get(r)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let date = time::Date::from_calendar_date(
        y as i32,
        time::Month::try_from(u8::try_from(mo).ok()?).ok()?,
        u8::try_from(d).ok()?,
    )
    .ok()?;
    // The wall-clock reading as if in UTC; placed in a zone by `wall_to_utc` (RFC 5545
    // §3.3.5: a repeated time is its first occurrence, a skipped one takes the offset
    // from before the gap).
    let utc_ms = |t: time::Time| {
        (time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp_nanos()
            / 1_000_000) as i64
    };
    if b.len() == 8 {
        let midnight = utc_ms(time::Time::MIDNIGHT);
        return Some((
            wall_to_utc(ctx.floating, midnight),
            Some(wall_to_utc(ctx.floating, midnight.saturating_add(DAY_MS))),
        ));
    }
    if b[8] != b'T' {
        return None;
    }
    let (h, mi, s) = (num(9..11)?, num(11..13)?, num(13..15)?);
    // A leap second (60) reads as 59.
    let t = time::Time::from_hms(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(s.min(59)).ok()?,
    )
    .ok()?;
    let wall = utc_ms(t);
    if b.len() == 16 {
        return (b[15] == b'Z').then_some((wall, None));
    }
    let Some(tzid) = tzid else {
        return Some((wall_to_utc(ctx.floating, wall), None));
    };
    let Some(tz) = ctx.zone(tzid) else {
        let offset = ctx.fixed_offset(tzid)?;
        return Some((wall - offset * 1000, None));
    };
    Some((wall_to_utc(tz, wall), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::parse;

    const EV: &str = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u1\r\nSUMMARY;LANGUAGE=en:Team\r\n  meeting\\, weekly\r\nCATEGORIES:Work\r\nATTENDEE;PARTSTAT=ACCEPTED;CN=\"Doe, J: x\":mailto:j@example.org\r\nATTENDEE;PARTSTAT=NEEDS-ACTION;ROLE=OPT-PARTICIPANT:mailto:k@example.org\r\nDTSTAMP:20300101T120000Z\r\nDTSTART;TZID=Europe/Berlin:20300601T100000\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Ring ring\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    const NS: &str = "xmlns:c=\"urn:ietf:params:xml:ns:caldav\"";

    fn cal(xml: &str) -> Result<CalendarFilter, FilterError> {
        calendar_filter(&parse(format!("<c:filter {NS}>{xml}</c:filter>").as_bytes()).unwrap())
    }

    /// A filter VCALENDAR > VEVENT > `inner`.
    fn ev(inner: &str) -> CalendarFilter {
        cal(&format!(
            "<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VEVENT\">{inner}</c:comp-filter></c:comp-filter>"
        ))
        .unwrap()
    }

    fn card(test: &str, body: &str) -> Result<CardFilter, FilterError> {
        card_filter(
            &parse(
                format!("<card:filter xmlns:card=\"urn:ietf:params:xml:ns:carddav\" {test}>{body}</card:filter>")
                    .as_bytes(),
            )
            .unwrap(),
        )
    }

    #[test]
    fn calendar_text_match() {
        let p = |x: &str| ev(x).passes(EV);
        assert!(p(
            "<c:prop-filter name=\"SUMMARY\"><c:text-match>MEETING, week</c:text-match></c:prop-filter>"
        ));
        assert!(!p(
            "<c:prop-filter name=\"SUMMARY\"><c:text-match collation=\"i;octet\">MEETING</c:text-match></c:prop-filter>"
        ));
        assert!(!p(
            "<c:prop-filter name=\"SUMMARY\"><c:text-match negate-condition=\"yes\">team</c:text-match></c:prop-filter>"
        ));
        assert!(p(
            "<c:prop-filter name=\"SUMMARY\"><c:text-match negate-condition=\"yes\">lunch</c:text-match></c:prop-filter>"
        ));
        assert!(p(
            "<c:prop-filter name=\"LOCATION\"><c:is-not-defined/></c:prop-filter>"
        ));
        assert!(!p(
            "<c:prop-filter name=\"CATEGORIES\"><c:is-not-defined/></c:prop-filter>"
        ));
        assert!(p(
            "<c:prop-filter name=\"uid\"><c:text-match>u1</c:text-match></c:prop-filter>"
        ));
        assert!(p("<c:prop-filter name=\"CATEGORIES\"/>"));
        assert!(!p("<c:prop-filter name=\"LOCATION\"/>"));
        // Negated on a missing property: no instance, no match.
        assert!(!p(
            "<c:prop-filter name=\"LOCATION\"><c:text-match negate-condition=\"yes\">x</c:text-match></c:prop-filter>"
        ));
    }

    #[test]
    fn collations() {
        let p = |coll: &str, text: &str| {
            ev(&format!(
                "<c:prop-filter name=\"SUMMARY\"><c:text-match collation=\"{coll}\">{text}</c:text-match></c:prop-filter>"
            ))
            .passes("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Grüße ÄRGER\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        };
        assert!(p("i;unicode-casemap", "äRGER"));
        assert!(!p("i;ascii-casemap", "äRGER"));
        assert!(p("i;ascii-casemap", "ÄrGeR"));
        assert!(p("i;octet", "Grüße"));
        assert!(!p("i;octet", "grüße"));
        let bad = cal(
            "<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VEVENT\"><c:prop-filter name=\"SUMMARY\"><c:text-match collation=\"i;klingon\">x</c:text-match></c:prop-filter></c:comp-filter></c:comp-filter>",
        );
        assert_eq!(bad.unwrap_err(), FilterError::Collation);
        assert_eq!(FilterError::Collation.condition(), "supported-collation");
        let bad = card(
            "",
            "<card:prop-filter name=\"FN\"><card:param-filter name=\"X\"><card:text-match collation=\"en;foo\">x</card:text-match></card:param-filter></card:prop-filter>",
        );
        assert_eq!(bad.unwrap_err(), FilterError::Collation);
    }

    #[test]
    fn component_scoping() {
        // ACTION is a VALARM property: not seen by a VEVENT prop-filter.
        assert!(!ev("<c:prop-filter name=\"ACTION\"/>").passes(EV));
        assert!(!ev(
            "<c:prop-filter name=\"DESCRIPTION\"><c:text-match>ring</c:text-match></c:prop-filter>"
        )
        .passes(EV));
        assert!(
            ev("<c:prop-filter name=\"DESCRIPTION\"><c:is-not-defined/></c:prop-filter>")
                .passes(EV)
        );
        // ...but by a VALARM comp-filter.
        assert!(ev(
            "<c:comp-filter name=\"VALARM\"><c:prop-filter name=\"ACTION\"><c:text-match>display</c:text-match></c:prop-filter></c:comp-filter>"
        )
        .passes(EV));
        assert!(!ev(
            "<c:comp-filter name=\"VALARM\"><c:prop-filter name=\"ACTION\"><c:text-match>email</c:text-match></c:prop-filter></c:comp-filter>"
        )
        .passes(EV));
        // A VALARM's property is not a VCALENDAR-level one either.
        let top =
            cal("<c:comp-filter name=\"VCALENDAR\"><c:prop-filter name=\"UID\"/></c:comp-filter>")
                .unwrap();
        assert!(!top.passes(EV));
        // is-not-defined on components.
        assert!(
            !ev("<c:comp-filter name=\"VALARM\"><c:is-not-defined/></c:comp-filter>").passes(EV)
        );
        assert!(ev("<c:comp-filter name=\"VTODO\"><c:is-not-defined/></c:comp-filter>").passes(EV));
        // VCALENDAR > VTODO alone is answered from the index (no evaluation here)...
        let todo = cal(
            "<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VTODO\"/></c:comp-filter>",
        )
        .unwrap();
        assert!(todo.is_empty());
        // ...with a prop-filter it is evaluated.
        let todo = cal(
            "<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VTODO\"><c:prop-filter name=\"UID\"/></c:comp-filter></c:comp-filter>",
        )
        .unwrap();
        assert!(!todo.passes(EV));
        let not_ev = cal(
            "<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VEVENT\"><c:is-not-defined/></c:comp-filter><c:comp-filter name=\"VTODO\"><c:is-not-defined/></c:comp-filter></c:comp-filter>",
        )
        .unwrap();
        assert!(!not_ev.passes(EV));
        // ANY component of the name: one VEVENT with both properties is needed.
        let two = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:a\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nRECURRENCE-ID:20300101T000000Z\r\nSUMMARY:b\r\nLOCATION:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let both = |s: &str| {
            ev(&format!(
                "<c:prop-filter name=\"SUMMARY\"><c:text-match>{s}</c:text-match></c:prop-filter><c:prop-filter name=\"LOCATION\"/>"
            ))
            .passes(two)
        };
        assert!(both("b"));
        assert!(!both("a"));
        // Only the first comp level with a time-range: answered from the index.
        assert!(
            cal("<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VEVENT\"><c:time-range start=\"20300101T000000Z\"/></c:comp-filter></c:comp-filter>")
                .unwrap()
                .is_empty()
        );
        assert!(!ev("<c:comp-filter name=\"VALARM\"/>").is_empty());
        assert!(!ev("<c:prop-filter name=\"UID\"/>").is_empty());
    }

    #[test]
    fn param_filters() {
        let p = |x: &str| ev(x).passes(EV);
        let att = |inner: &str| format!("<c:prop-filter name=\"ATTENDEE\">{inner}</c:prop-filter>");
        assert!(p(&att(
            "<c:param-filter name=\"partstat\"><c:text-match>NEEDS-ACTION</c:text-match></c:param-filter>"
        )));
        assert!(!p(&att(
            "<c:param-filter name=\"PARTSTAT\"><c:text-match>DECLINED</c:text-match></c:param-filter>"
        )));
        // Text and parameters on the same instance.
        assert!(p(&att(
            "<c:text-match>k@example</c:text-match><c:param-filter name=\"PARTSTAT\"><c:text-match>needs-action</c:text-match></c:param-filter>"
        )));
        assert!(!p(&att(
            "<c:text-match>j@example</c:text-match><c:param-filter name=\"PARTSTAT\"><c:text-match>needs-action</c:text-match></c:param-filter>"
        )));
        // Quoted value holding ':' and ','.
        assert!(p(&att(
            "<c:param-filter name=\"CN\"><c:text-match>doe, j: x</c:text-match></c:param-filter>"
        )));
        // is-not-defined / defined.
        assert!(p(&att(
            "<c:param-filter name=\"ROLE\"><c:is-not-defined/></c:param-filter>"
        )));
        assert!(p(&att("<c:param-filter name=\"ROLE\"/>")));
        assert!(!p(&att("<c:param-filter name=\"RSVP\"/>")));
        assert!(!p(&att(
            "<c:param-filter name=\"PARTSTAT\"><c:is-not-defined/></c:param-filter>"
        )));
        // Two param-filters: all of them, on one instance.
        assert!(!p(&att(
            "<c:param-filter name=\"PARTSTAT\"><c:text-match>ACCEPTED</c:text-match></c:param-filter><c:param-filter name=\"ROLE\"/>"
        )));
        // Comma lists and RFC 6868.
        let multi = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nATTENDEE;DELEGATED-TO=\"mailto:a@x\",\"mailto:b@x\";CN=A^'B^':mailto:c@x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let m = |x: &str| ev(&att(x)).passes(multi);
        assert!(m(
            "<c:param-filter name=\"DELEGATED-TO\"><c:text-match match-type=\"equals\">mailto:b@x</c:text-match></c:param-filter>"
        ));
        assert!(m(
            "<c:param-filter name=\"CN\"><c:text-match match-type=\"equals\">a\"b\"</c:text-match></c:param-filter>"
        ));
    }

    #[test]
    fn floating_values_follow_the_zone() {
        use std::str::FromStr;
        let todo = "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t\r\nDUE:20300105T230000\r\nDTSTART;VALUE=DATE:20300110\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
        let f = |prop: &str, s: &str, e: &str| {
            cal(&format!(
                "<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VTODO\"><c:prop-filter name=\"{prop}\"><c:time-range start=\"{s}\" end=\"{e}\"/></c:prop-filter></c:comp-filter></c:comp-filter>"
            ))
            .unwrap()
        };
        let ny = calcard::common::timezone::Tz::from_str("America/New_York").unwrap();
        // 23:00 floating on the 5th is 04:00Z on the 6th in New York.
        let due = f("DUE", "20300106T000000Z", "20300106T120000Z");
        assert!(!due.clone().passes(todo));
        assert!(due.with_zone(ny).passes(todo));
        // The 10th in New York ends at 05:00Z on the 11th.
        let day = f("DTSTART", "20300111T020000Z", "20300111T030000Z");
        assert!(!day.clone().passes(todo));
        assert!(day.with_zone(ny).passes(todo));
    }

    #[test]
    fn prop_time_range() {
        let todo = "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:t\r\nDTSTAMP:20300105T100000Z\r\nCOMPLETED:20300110T080000Z\r\nDUE;VALUE=DATE:20300120\r\nCREATED:20300101T090000\r\nLAST-MODIFIED;TZID=America/New_York:20300101T090000\r\nX-BAD:2030-01-01\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
        let p = |prop: &str, s: &str, e: &str| {
            let mut attrs = String::new();
            if !s.is_empty() {
                attrs.push_str(&format!(" start=\"{s}\""));
            }
            if !e.is_empty() {
                attrs.push_str(&format!(" end=\"{e}\""));
            }
            cal(&format!(
                "<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VTODO\"><c:prop-filter name=\"{prop}\"><c:time-range{attrs}/></c:prop-filter></c:comp-filter></c:comp-filter>"
            ))
            .unwrap()
            .passes(todo)
        };
        assert!(p("DTSTAMP", "20300105T000000Z", "20300106T000000Z"));
        assert!(
            p("DTSTAMP", "20300105T100000Z", "20300105T100001Z"),
            "start inclusive"
        );
        assert!(
            !p("DTSTAMP", "20300105T000000Z", "20300105T100000Z"),
            "end exclusive"
        );
        assert!(p("COMPLETED", "20300110T000000Z", ""));
        assert!(!p("COMPLETED", "", "20300110T080000Z"));
        // DATE: the whole day.
        assert!(p("DUE", "20300120T230000Z", "20300121T000000Z"));
        assert!(!p("DUE", "20300121T000000Z", "20300122T000000Z"));
        // Floating as UTC.
        assert!(p("CREATED", "20300101T090000Z", "20300101T090001Z"));
        // TZID: 09:00 New York = 14:00 UTC.
        assert!(p("LAST-MODIFIED", "20300101T140000Z", "20300101T140001Z"));
        assert!(!p("LAST-MODIFIED", "20300101T090000Z", "20300101T100000Z"));
        // Unparseable / missing never match.
        assert!(!p("X-BAD", "", "20400101T000000Z"));
        assert!(!p("DTSTART", "", "20400101T000000Z"));
        // Bad time-range attributes are an invalid filter.
        for attrs in ["", " start=\"20300102T000000Z\" end=\"20300101T000000Z\""] {
            assert_eq!(
                cal(&format!("<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VTODO\"><c:prop-filter name=\"DUE\"><c:time-range{attrs}/></c:prop-filter></c:comp-filter></c:comp-filter>")).unwrap_err(),
                FilterError::Invalid
            );
        }
        assert_eq!(
            cal("<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VTODO\"><c:prop-filter name=\"DUE\"><c:time-range start=\"tomorrow\"/></c:prop-filter></c:comp-filter></c:comp-filter>").unwrap_err(),
            FilterError::Invalid
        );
        // A VTIMEZONE of the object, under a name no zone database knows.
        let custom = "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:My Own Zone\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0300\r\nTZOFFSETTO:+0300\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nDTSTAMP;TZID=My Own Zone:20300101T090000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let f = ev(
            "<c:prop-filter name=\"DTSTAMP\"><c:time-range start=\"20300101T060000Z\" end=\"20300101T060001Z\"/></c:prop-filter>",
        );
        assert!(f.passes(custom));
        // Named by X-LIC-LOCATION (resolved by calcard): 09:00 Berlin in winter = 08:00Z.
        let lic = "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Custom Berlin\r\nX-LIC-LOCATION:Europe/Berlin\r\nEND:VTIMEZONE\r\nBEGIN:VEVENT\r\nDTSTAMP;TZID=Custom Berlin:20300101T090000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let f8 = ev(
            "<c:prop-filter name=\"DTSTAMP\"><c:time-range start=\"20300101T080000Z\" end=\"20300101T080001Z\"/></c:prop-filter>",
        );
        assert!(f8.passes(lic));
        // Rules we cannot evaluate (two offsets, no known name): no match.
        let dst = custom.replace(
            "END:STANDARD\r\n",
            "END:STANDARD\r\nBEGIN:DAYLIGHT\r\nTZOFFSETTO:+0400\r\nEND:DAYLIGHT\r\n",
        );
        assert!(!f.passes(&dst));
        assert_eq!(utc_offset("-0530"), Some(-19800));
        assert_eq!(utc_offset("+013045"), Some(5445));
        assert_eq!(utc_offset("0100"), None);
        assert_eq!(utc_offset("+9999"), None);
    }

    #[test]
    fn invalid_filters() {
        let bad = |x: &str| cal(x).unwrap_err();
        assert_eq!(bad(""), FilterError::Invalid);
        assert_eq!(
            bad("<c:comp-filter name=\"VEVENT\"/>"),
            FilterError::Invalid
        );
        assert_eq!(
            bad("<c:comp-filter name=\"VCALENDAR\"><c:comp-filter/></c:comp-filter>"),
            FilterError::Invalid
        );
        assert_eq!(
            bad("<c:comp-filter name=\"VCALENDAR\"/><c:comp-filter name=\"VCALENDAR\"/>"),
            FilterError::Invalid
        );
        assert_eq!(
            bad(
                "<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VEVENT\"><c:prop-filter/></c:comp-filter></c:comp-filter>"
            ),
            FilterError::Invalid
        );
        assert_eq!(
            bad(
                "<c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VEVENT\"><c:is-not-defined/><c:prop-filter name=\"X\"/></c:comp-filter></c:comp-filter>"
            ),
            FilterError::Invalid
        );
        assert_eq!(
            bad("<c:comp-filter name=\"VCALENDAR\"><c:bogus/></c:comp-filter>"),
            FilterError::Invalid
        );
        assert_eq!(card("test=\"some\"", "").unwrap_err(), FilterError::Invalid);
        assert_eq!(
            card("", "<card:prop-filter name=\"FN\" test=\"maybe\"/>").unwrap_err(),
            FilterError::Invalid
        );
        assert_eq!(
            card("", "<card:prop-filter name=\"FN\"><card:text-match match-type=\"regex\">x</card:text-match></card:prop-filter>").unwrap_err(),
            FilterError::Invalid
        );
        assert_eq!(
            card("", "<card:comp-filter name=\"X\"/>").unwrap_err(),
            FilterError::Invalid
        );
        assert!(card("", "").unwrap().is_empty());
    }

    #[test]
    fn card_filters() {
        let c = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Carol Example\r\nitem1.EMAIL;TYPE=\"work:x\",INTERNET:carol@example.org\r\nEMAIL;TYPE=home:carol@home.example\r\nTEL;HOME;VOICE:+1 555\r\nEND:VCARD\r\n";
        let p = |test: &str, body: &str| card(test, body).unwrap().passes(c);
        assert!(p(
            "test=\"anyof\"",
            "<card:prop-filter name=\"EMAIL\"><card:text-match match-type=\"starts-with\">carol@</card:text-match></card:prop-filter>"
        ));
        let fl = "<card:prop-filter name=\"FN\"><card:text-match match-type=\"equals\">carol</card:text-match></card:prop-filter><card:prop-filter name=\"EMAIL\"/>";
        assert!(!p("test=\"allof\"", fl));
        assert!(p("", fl), "filter default anyof");
        // param-filter on TYPE (group prefix, quoted, comma list).
        let ty = |t: &str, text: &str| {
            format!(
                "<card:prop-filter name=\"EMAIL\" test=\"{t}\"><card:text-match>{text}</card:text-match><card:param-filter name=\"type\"><card:text-match match-type=\"equals\">work:x</card:text-match></card:param-filter></card:prop-filter>"
            )
        };
        assert!(p("", &ty("allof", "example.org")));
        assert!(!p("", &ty("allof", "home.example")), "same instance");
        assert!(
            p("", &ty("anyof", "home.example")),
            "anyof: text alone suffices"
        );
        assert!(
            p("", &ty("anyof", "nowhere")),
            "anyof: param alone suffices"
        );
        assert!(p(
            "",
            "<card:prop-filter name=\"EMAIL\"><card:param-filter name=\"TYPE\"><card:text-match>internet</card:text-match></card:param-filter></card:prop-filter>"
        ));
        assert!(!p(
            "",
            "<card:prop-filter name=\"EMAIL\"><card:param-filter name=\"TYPE\"><card:text-match match-type=\"equals\">pref</card:text-match></card:param-filter></card:prop-filter>"
        ));
        // vCard 2.1 bare parameters are TYPEs.
        assert!(p(
            "",
            "<card:prop-filter name=\"TEL\"><card:param-filter name=\"TYPE\"><card:text-match>voice</card:text-match></card:param-filter></card:prop-filter>"
        ));
        // is-not-defined.
        assert!(p(
            "",
            "<card:prop-filter name=\"NICKNAME\"><card:is-not-defined/></card:prop-filter>"
        ));
        assert!(!p(
            "",
            "<card:prop-filter name=\"EMAIL\"><card:is-not-defined/></card:prop-filter>"
        ));
        assert!(p(
            "test=\"allof\"",
            "<card:prop-filter name=\"EMAIL\"><card:param-filter name=\"PREF\"><card:is-not-defined/></card:param-filter></card:prop-filter><card:prop-filter name=\"FN\"><card:text-match>EXAMPLE</card:text-match></card:prop-filter>"
        ));
        // CardDAV's default collation is i;unicode-casemap.
        let u = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:ÉLODIE\r\nEND:VCARD\r\n";
        assert!(
            card("", "<card:prop-filter name=\"FN\"><card:text-match>élodie</card:text-match></card:prop-filter>")
                .unwrap()
                .passes(u)
        );
        // Several text-matches: allof needs both.
        let two = |t: &str| {
            format!(
                "<card:prop-filter name=\"FN\" test=\"{t}\"><card:text-match>carol</card:text-match><card:text-match>zed</card:text-match></card:prop-filter>"
            )
        };
        assert!(p("", &two("anyof")));
        assert!(!p("", &two("allof")));
    }

    #[test]
    fn hostile_input() {
        let f =
            ev("<c:prop-filter name=\"SUMMARY\"><c:text-match>x</c:text-match></c:prop-filter>");
        let any = ev("<c:comp-filter name=\"VALARM\"/>");
        // Unbalanced BEGIN/END.
        for data in [
            "END:VEVENT\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:x\r\n",
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VTODO\r\nEND:VCALENDAR\r\nEND:VCALENDAR\r\n",
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VCALENDAR\r\n",
        ] {
            assert!(f.passes(data), "{data:?}");
        }
        for data in [
            "",
            "\r\n\r\n",
            ":::",
            "BEGIN\r\nEND",
            "BEGIN:\r\nEND:\r\n",
            "\u{0}:\u{1}",
            " x",
        ] {
            assert!(!f.passes(data));
            assert!(!any.passes(data));
        }
        // 10 000 nested BEGINs: depth capped, linear time.
        let t = std::time::Instant::now();
        let mut deep = String::from("BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:x\r\n");
        for _ in 0..10_000 {
            deep.push_str("BEGIN:VALARM\r\n");
        }
        assert!(f.passes(&deep));
        assert!(any.passes(&deep));
        let deep_f = cal(&format!(
            "<c:comp-filter name=\"VCALENDAR\">{}</c:comp-filter>",
            "<c:comp-filter name=\"VALARM\">".repeat(20) + &"</c:comp-filter>".repeat(20)
        ));
        assert_eq!(deep_f.unwrap_err(), FilterError::Invalid);
        let tree = parse_tree(&deep);
        let mut depth = 0;
        let mut c = &tree;
        while let Some(n) = c.children.first() {
            depth += 1;
            c = n;
        }
        assert!(depth <= MAX_DEPTH, "{depth}");
        // A 1 MB line (and a 1 MB quoted parameter without its closing quote).
        let big = format!(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:{}\r\nATTENDEE;CN=\"{}:mailto:a@b\r\nDTSTAMP:{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            "a".repeat(1 << 20),
            "b".repeat(1 << 20),
            "9".repeat(1 << 20),
        );
        assert!(!f.passes(&big));
        let pf = ev(
            "<c:prop-filter name=\"ATTENDEE\"><c:param-filter name=\"CN\"/></c:prop-filter><c:prop-filter name=\"DTSTAMP\"><c:time-range start=\"20000101T000000Z\"/></c:prop-filter>",
        );
        assert!(!pf.passes(&big));
        // Folded continuation lines everywhere.
        let folded = format!(
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:a\r\n{}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            " x".repeat(100_000)
        );
        assert!(f.passes(&folded));
        // Bad TZIDs and dates.
        let tz = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTAMP;TZID=Nowhere/Land:20300101T090000\r\nDUE:20301399T250000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let r = |n: &str| {
            ev(&format!("<c:prop-filter name=\"{n}\"><c:time-range start=\"19000101T000000Z\"/></c:prop-filter>"))
                .passes(tz)
        };
        assert!(!r("DUE"));
        let _ = r("DTSTAMP");
        // Odd TZIDs reach calcard's zone guessing: no panic.
        let long = "(".repeat(100_000);
        for tzid in [
            "",
            "(",
            ")",
            "/",
            "()",
            "(GMT+99:99)",
            "(UTC-25:00) x",
            "\"",
            long.as_str(),
        ] {
            let data = format!(
                "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTAMP;TZID={tzid}:20300101T090000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            );
            let _ = ev("<c:prop-filter name=\"DTSTAMP\"><c:time-range start=\"19000101T000000Z\"/></c:prop-filter>")
                .passes(&data);
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            t.elapsed()
        );
    }
}
