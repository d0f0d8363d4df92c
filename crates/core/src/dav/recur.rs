//! Recurrence expansion for CalDAV (RFC 4791 §9.6.5 `expand`, §9.6.6
//! `limit-recurrence-set`, §9.9 time-range on recurring components, §7.10 free-busy).
//!
//! The rules are expanded by `calcard` (`ICalendar::expand_dates`, RFC 5545 §3.3.10 and
//! §3.8.5: RRULE, RDATE, EXDATE and RECURRENCE-ID overrides, THISANDFUTURE). calcard's
//! expansion takes a count of instances and always starts at DTSTART, so it is called
//! with a doubling count (16, 32, …) until the series ended, an instance lies past the
//! range's end, or one of the caps below stops it; the result then says `truncated`.
//!
//! Caps (THREATS.md "RRULE bombs"):
//! - [`MAX_INSTANCES`] instances generated per object (EXDATE'd ones included);
//! - [`MAX_EMPTY_ITERATIONS`] rule iterations without an instance (enforced inside
//!   calcard, its `MAX_ITER_LOOP`): `FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30` ends there;
//! - a deadline (per request, [`EXPAND_BUDGET`]): a doubling step that would overrun
//!   it is not started (the next step is predicted from the last one's duration).

pub use calcard::common::timezone::Tz;
use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarComponentType as T, ICalendarProperty as P,
    ICalendarValue,
};
use std::time::{Duration, Instant};

/// Most instances one object's expansion generates.
pub const MAX_INSTANCES: usize = 10_000;
/// Rule iterations that produce nothing before a rule is taken as ended (calcard's
/// own cap, `datecalc::MAX_ITER_LOOP`; named here for the documentation and tests).
pub const MAX_EMPTY_ITERATIONS: u32 = 100_000;
/// Time one request may spend expanding recurrences.
pub const EXPAND_BUDGET: Duration = Duration::from_secs(2);
/// Component nesting written back (VEVENT > VALARM is 1).
const MAX_DEPTH: usize = 4;

/// One occurrence, in ms since the epoch (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub start_ms: i64,
    pub end_ms: i64,
    /// Index of the component (in `ICalendar::components`) the instance comes from:
    /// the master or an overriding component.
    pub comp: usize,
    /// The instance's RECURRENCE-ID in UTC ms (`None` for a non-recurring component).
    pub rid_ms: Option<i64>,
}

/// The instances of an object that overlap a range.
#[derive(Debug, Clone, Default)]
pub struct Expansion {
    pub instances: Vec<Instance>,
    /// A cap stopped the expansion before the series ended or passed the range.
    pub truncated: bool,
    /// The start of the last instance generated (for a conservative match when
    /// truncated).
    pub last_start_ms: Option<i64>,
}

fn overlaps(s: i64, e: i64, start: Option<i64>, end: Option<i64>) -> bool {
    // RFC 4791 §9.9: an instantaneous component overlaps when start ≤ s < end.
    let e = if e <= s { s.saturating_add(1) } else { e };
    start.is_none_or(|rs| e > rs) && end.is_none_or(|re| s < re)
}

fn is_recurring(c: &ICalendarComponent) -> bool {
    c.property(&P::Rrule).is_some()
}

/// The local (wall-clock) time `wall_ms` — a floating time or a date's midnight read
/// as if it were UTC — in `zone`, as UTC ms. RFC 5545 §3.3.5: a time that occurs twice
/// (the hour clocks go back) is its first occurrence; one that does not occur (the hour
/// they skip) is read with the offset from before the gap.
pub fn wall_to_utc(zone: Tz, wall_ms: i64) -> i64 {
    use chrono::{LocalResult, Offset, TimeZone};
    if zone.is_utc() || zone.is_floating() {
        return wall_ms;
    }
    let Some(naive) = chrono::DateTime::from_timestamp_millis(wall_ms).map(|d| d.naive_utc())
    else {
        return wall_ms;
    };
    let offset_ms = |off: <Tz as TimeZone>::Offset| i64::from(off.fix().local_minus_utc()) * 1000;
    match zone.offset_from_local_datetime(&naive) {
        LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => wall_ms - offset_ms(o),
        LocalResult::None => {
            // Gaps last at most a few hours: the offset three hours earlier is the one
            // before it.
            let before = naive - chrono::Duration::hours(3);
            match zone.offset_from_local_datetime(&before) {
                LocalResult::Single(o) | LocalResult::Ambiguous(o, _) => wall_ms - offset_ms(o),
                LocalResult::None => wall_ms,
            }
        }
    }
}

/// Whether a date or date-time property of a component is read in the default zone:
/// a floating time or a date (no UTC `Z`), without a TZID the object or calcard can
/// resolve.
fn reads_in_default(ical: &ICalendar, c: &ICalendarComponent, p: &P) -> bool {
    let Some(e) = c.property(p) else {
        return false;
    };
    let Some(ICalendarValue::PartialDateTime(dt)) = e.values.first() else {
        return false;
    };
    if dt.tz_hour.is_some() {
        return false;
    }
    e.tz_id().is_none_or(|id| {
        // A known name first: the object's own VTIMEZONEs only when it is not one.
        <Tz as std::str::FromStr>::from_str(id).is_err()
            && ical.build_tz_resolver().resolve(id).is_none()
    })
}

/// The properties calcard takes an instance's start from, in its order (DTSTART, else
/// RECURRENCE-ID, DUE, COMPLETED, CREATED).
const START_PROPS: [P; 5] = [
    P::Dtstart,
    P::RecurrenceId,
    P::Due,
    P::Completed,
    P::Created,
];

/// RECURRENCE-ID of a component in UTC ms (a floating one read in `zone`).
fn rid_of(ical: &ICalendar, c: &ICalendarComponent, zone: Tz) -> Option<i64> {
    let e = c.property(&P::RecurrenceId)?;
    let Some(ICalendarValue::PartialDateTime(dt)) = e.values.first() else {
        return None;
    };
    let tzr = ical.build_tz_resolver().with_default(Tz::UTC);
    let dt = dt
        .to_date_time()?
        .to_date_time_with_tz(tzr.resolve_or_default(e.tz_id()))?;
    let ms = dt.timestamp().saturating_mul(1000);
    Some(if reads_in_default(ical, c, &P::RecurrenceId) {
        wall_to_utc(zone, ms)
    } else {
        ms
    })
}

/// Expands the parsed object's instances overlapping `[start, end)` (either side open).
/// Floating times and dates are read in `zone` (RFC 4791 §9.9: the calendar's or the
/// query's time zone; UTC without one).
pub fn expand_parsed(
    ical: &ICalendar,
    start: Option<i64>,
    end: Option<i64>,
    zone: Tz,
    deadline: Instant,
) -> Expansion {
    // calcard pairs an override with its instance by (SEQUENCE, RECURRENCE-ID); an
    // override usually carries a higher SEQUENCE than its master, so SEQUENCE is taken
    // out first (RFC 5545 §3.8.4.4 pairs them by UID and RECURRENCE-ID alone).
    let unsequenced;
    let ical = if ical
        .components
        .iter()
        .any(|c| c.property(&P::Sequence).is_some())
    {
        let mut c = ical.clone();
        for comp in &mut c.components {
            comp.entries.retain(|e| e.name != P::Sequence);
        }
        unsequenced = c;
        &unsequenced
    } else {
        ical
    };
    let has_rule = ical.components.iter().any(is_recurring);
    // Overrides without a rule of their own are emitted at the end when the rule never
    // reaches them; everything else before the rule's instances.
    let overrides = ical
        .components
        .iter()
        .filter(|c| {
            c.component_type.has_time_ranges()
                && c.property(&P::RecurrenceId).is_some()
                && !is_recurring(c)
        })
        .count();
    if has_rule && Instant::now() >= deadline {
        // The request's budget is spent: nothing more is expanded.
        return Expansion {
            truncated: true,
            ..Default::default()
        };
    }
    let mut limit = if has_rule { 16 } else { 1 };
    let mut prev_len = usize::MAX;
    let mut truncated = false;
    let mut events;
    let mut phase1 = 0usize;
    // Per component: is its start (the property calcard takes it from) read in the
    // default zone? Such instances come out as wall-clock times and are placed in
    // `zone` below.
    let floating: Vec<bool> = ical
        .components
        .iter()
        .map(|c| {
            START_PROPS
                .iter()
                .find(|p| c.property(p).is_some())
                .is_some_and(|p| reads_in_default(ical, c, p))
        })
        .collect();
    // The stop test compares wall-clock starts with a UTC end: a floating series needs
    // the largest offset of slack (a zone east of UTC reads later than its wall clock).
    let stop_at = end.map(|re| {
        if floating.iter().any(|f| *f) {
            re.saturating_add(MAX_ZONE_OFFSET_MS)
        } else {
            re
        }
    });
    if has_rule {
        // Floating times and dates are expanded as if in UTC (their wall clock), then
        // placed in `zone` below: calcard would drop the ones in a DST gap or overlap.
        phase1 = ical
            .expand_dates(Tz::UTC, 0)
            .events
            .len()
            .saturating_sub(overrides);
    }
    loop {
        let t0 = Instant::now();
        events = ical.expand_dates(Tz::UTC, limit).events;
        let took = t0.elapsed();
        if !has_rule || events.len() == prev_len {
            break; // no rule, or the rule ended before `limit`
        }
        prev_len = events.len();
        let ruled = events.get(phase1..).unwrap_or_default();
        if let Some(re) = stop_at
            && ruled
                .iter()
                .any(|ev| ev.start.timestamp().saturating_mul(1000) >= re)
        {
            break; // passed the range's end
        }
        let now = Instant::now();
        if limit >= MAX_INSTANCES || now + took * 3 > deadline {
            truncated = true;
            break;
        }
        limit = (limit * 2).min(MAX_INSTANCES);
    }
    let mut out = Expansion {
        truncated,
        ..Default::default()
    };
    for ev in &events {
        let (s, e) = ev.timestamps();
        let (mut s, mut e) = (s.saturating_mul(1000), e.saturating_mul(1000));
        if let Some(c) = ical.components.get(ev.comp_id as usize)
            && floating.get(ev.comp_id as usize).copied().unwrap_or(false)
        {
            let placed = wall_to_utc(zone, s);
            // A DURATION is exact time (RFC 5545 §3.3.6); an end property is a wall
            // clock of its own.
            e = if c.property(&P::Dtend).is_none() && c.property(&P::Due).is_none() {
                placed.saturating_add(e.saturating_sub(s))
            } else {
                wall_to_utc(zone, e)
            };
            s = placed;
        }
        out.last_start_ms = Some(out.last_start_ms.map_or(s, |v| v.max(s)));
        if !overlaps(s, e, start, end) {
            continue;
        }
        let comp = ev.comp_id as usize;
        let rid_ms = match ical.components.get(comp) {
            Some(c) if c.property(&P::RecurrenceId).is_some() => rid_of(ical, c, zone),
            Some(c) if has_rule && is_recurring(c) => Some(s),
            _ if has_rule => Some(s),
            _ => None,
        };
        out.instances.push(Instance {
            start_ms: s,
            end_ms: e,
            comp,
            rid_ms,
        });
    }
    out.instances.sort_by_key(|i| i.start_ms);
    out
}

/// Does the object have an instance in `[start, end)`? A truncated expansion that did
/// not reach the range counts as a match (the caps never hide an event).
pub fn matches_range(
    ical: &ICalendar,
    start: Option<i64>,
    end: Option<i64>,
    zone: Tz,
    deadline: Instant,
) -> bool {
    let x = expand_parsed(ical, start, end, zone, deadline);
    !x.instances.is_empty()
        || (x.truncated && end.is_none_or(|re| x.last_start_ms.is_none_or(|l| l < re)))
}

use super::ical::utc_stamp as utc;

fn write_entries(out: &mut String, c: &ICalendarComponent, skip: &[P]) {
    for e in &c.entries {
        if skip.contains(&e.name) {
            continue;
        }
        let _ = e.write_to(out);
    }
}

fn write_children(out: &mut String, ical: &ICalendar, c: &ICalendarComponent, depth: usize) {
    if depth >= MAX_DEPTH {
        return;
    }
    for id in &c.component_ids {
        let Some(ch) = ical.components.get(*id as usize) else {
            continue;
        };
        out.push_str(&format!("BEGIN:{}\r\n", ch.component_type.as_str()));
        write_entries(out, ch, &[]);
        write_children(out, ical, ch, depth + 1);
        out.push_str(&format!("END:{}\r\n", ch.component_type.as_str()));
    }
}

/// RFC 4791 §9.6.5: the instances overlapping the range as separate components with
/// UTC DTSTART/DTEND and RECURRENCE-ID, no RRULE/RDATE/EXDATE and no VTIMEZONE.
/// `None` when the object does not parse.
pub fn expand_to_ical(
    text: &str,
    start: Option<i64>,
    end: Option<i64>,
    zone: Tz,
    deadline: Instant,
) -> Option<(String, bool)> {
    let ical = ICalendar::parse(text).ok()?;
    let root = ical.components.first()?;
    let x = expand_parsed(&ical, start, end, zone, deadline);
    let mut out = String::from("BEGIN:VCALENDAR\r\n");
    write_entries(&mut out, root, &[]);
    // Components that carry no time (none in a valid object) and VTIMEZONE are dropped.
    const SKIP: [P; 7] = [
        P::Dtstart,
        P::Dtend,
        P::Duration,
        P::Rrule,
        P::Rdate,
        P::Exdate,
        P::RecurrenceId,
    ];
    for i in &x.instances {
        let Some(c) = ical.components.get(i.comp) else {
            continue;
        };
        let kind = c.component_type.as_str();
        out.push_str(&format!("BEGIN:{kind}\r\n"));
        write_entries(&mut out, c, &SKIP);
        out.push_str(&format!("DTSTART:{}\r\n", utc(i.start_ms)));
        if c.component_type == T::VEvent || c.property(&P::Dtend).is_some() {
            out.push_str(&format!("DTEND:{}\r\n", utc(i.end_ms.max(i.start_ms))));
        }
        if let Some(r) = i.rid_ms {
            out.push_str(&format!("RECURRENCE-ID:{}\r\n", utc(r)));
        }
        write_children(&mut out, &ical, c, 1);
        out.push_str(&format!("END:{kind}\r\n"));
    }
    out.push_str("END:VCALENDAR\r\n");
    Some((out, x.truncated))
}

/// RFC 4791 §9.6.6: the master and only the overriding components whose instance
/// overlaps the range (the object is returned unchanged when nothing is cut).
pub fn limit_recurrence_set(
    text: &str,
    start: Option<i64>,
    end: Option<i64>,
    zone: Tz,
) -> Option<String> {
    let ical = ICalendar::parse(text).ok()?;
    let tzr = ical.build_tz_resolver().with_default(Tz::UTC);
    let mut drop = Vec::new();
    for (idx, c) in ical.components.iter().enumerate() {
        if !c.component_type.has_time_ranges() || c.property(&P::RecurrenceId).is_none() {
            continue;
        }
        let when = |p: P| -> Option<i64> {
            let e = c.property(&p)?;
            let Some(ICalendarValue::PartialDateTime(dt)) = e.values.first() else {
                return None;
            };
            let dt = dt
                .to_date_time()?
                .to_date_time_with_tz(tzr.resolve_or_default(e.tz_id()))?;
            let ms = dt.timestamp().saturating_mul(1000);
            Some(if reads_in_default(&ical, c, &p) {
                wall_to_utc(zone, ms)
            } else {
                ms
            })
        };
        let s = when(P::Dtstart).or_else(|| rid_of(&ical, c, zone));
        let e = when(P::Dtend).or(s);
        let rid = rid_of(&ical, c, zone);
        let keep = s.is_some_and(|s| overlaps(s, e.unwrap_or(s), start, end))
            || rid.is_some_and(|r| overlaps(r, r, start, end));
        if !keep {
            drop.push(idx as u32);
        }
    }
    if drop.is_empty() {
        return Some(text.to_string());
    }
    let root = ical.components.first()?;
    let mut out = String::from("BEGIN:VCALENDAR\r\n");
    write_entries(&mut out, root, &[]);
    for id in &root.component_ids {
        if drop.contains(id) {
            continue;
        }
        let Some(c) = ical.components.get(*id as usize) else {
            continue;
        };
        out.push_str(&format!("BEGIN:{}\r\n", c.component_type.as_str()));
        write_entries(&mut out, c, &[]);
        write_children(&mut out, &ical, c, 1);
        out.push_str(&format!("END:{}\r\n", c.component_type.as_str()));
    }
    out.push_str("END:VCALENDAR\r\n");
    Some(out)
}

/// A busy period for free-busy (RFC 4791 §7.10): start, end, FBTYPE.
pub type BusyPeriod = (i64, i64, &'static str);

/// Busy periods of one VEVENT object within `[start, end)`: TRANSP:TRANSPARENT and
/// STATUS:CANCELLED instances are left out; STATUS:TENTATIVE is BUSY-TENTATIVE.
pub fn busy_periods(
    text: &str,
    start: i64,
    end: i64,
    zone: Tz,
    deadline: Instant,
) -> Vec<BusyPeriod> {
    let Ok(ical) = ICalendar::parse(text) else {
        return Vec::new();
    };
    let x = expand_parsed(&ical, Some(start), Some(end), zone, deadline);
    let mut out = Vec::new();
    for i in &x.instances {
        let Some(c) = ical.components.get(i.comp) else {
            continue;
        };
        if c.component_type != T::VEvent {
            continue;
        }
        let text_of = |p: P| -> String {
            c.property(&p)
                .and_then(|e| e.values.first())
                .and_then(|v| v.as_text())
                .unwrap_or_default()
                .to_ascii_uppercase()
        };
        let transp = text_of(P::Transp);
        let status = text_of(P::Status);
        if transp == "TRANSPARENT" || status == "CANCELLED" {
            continue;
        }
        let tentative = status == "TENTATIVE";
        let s = i.start_ms.max(start);
        let e = i.end_ms.min(end);
        if e > s {
            out.push((s, e, if tentative { "BUSY-TENTATIVE" } else { "BUSY" }));
        }
    }
    out
}

/// Writes a VFREEBUSY answer (RFC 4791 §7.10) for `[start, end)` from busy periods:
/// sorted, overlapping periods of one type merged.
pub fn freebusy_ical(start: i64, end: i64, mut periods: Vec<BusyPeriod>) -> String {
    periods.sort();
    let mut merged: Vec<BusyPeriod> = Vec::new();
    for p in periods {
        match merged.iter_mut().rev().find(|m| m.2 == p.2) {
            Some(m) if p.0 <= m.1 => m.1 = m.1.max(p.1),
            _ => merged.push(p),
        }
    }
    let mut out = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Postern//CalDAV//EN\r\nBEGIN:VFREEBUSY\r\n",
    );
    out.push_str(&format!(
        "DTSTAMP:{}\r\n",
        utc(time::OffsetDateTime::now_utc().unix_timestamp() * 1000)
    ));
    out.push_str(&format!("DTSTART:{}\r\nDTEND:{}\r\n", utc(start), utc(end)));
    for (s, e, t) in merged {
        out.push_str(&format!("FREEBUSY;FBTYPE={t}:{}/{}\r\n", utc(s), utc(e)));
    }
    out.push_str("END:VFREEBUSY\r\nEND:VCALENDAR\r\n");
    out
}

/// A parsed iCalendar object (calcard's), for callers outside this crate.
pub type Calendar = ICalendar;

/// Parses stored iCalendar text.
pub fn parse(text: &str) -> Option<Calendar> {
    ICalendar::parse(text).ok()
}

/// Runs expansion work off the async workers (it may take up to the budget).
pub async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Whether stored iCalendar text may recur (RRULE or RDATE present): only these are
/// expanded, the others are matched on the index alone.
pub fn may_recur(text: &str) -> bool {
    let b = text.as_bytes();
    b.windows(5)
        .any(|w| w.eq_ignore_ascii_case(b"RRULE") || w.eq_ignore_ascii_case(b"RDATE"))
}

/// The largest distance of a civil time zone from UTC (UTC+14:00, Kiribati; the
/// smallest is UTC−12:00): a floating time is within this of its UTC reading. Zones
/// beyond it are refused ([`zone_of`]).
pub const MAX_ZONE_OFFSET_MS: i64 = 14 * 3_600_000;

/// A content line's name, parameters (names upper-cased, values unquoted) and value;
/// `None` when it has no `:` outside quotes.
/// Whether stored iCalendar text may hold a floating time or a date outside its
/// VTIMEZONEs: a DTSTART, DTEND, DUE, RECURRENCE-ID, RDATE or EXDATE whose value (a
/// period's start) does not end in `Z`, without a TZID naming a zone calcard knows by
/// name (a TZID it can only resolve through the object's own VTIMEZONE, or not at all,
/// counts too: calcard then reads it in the default zone). Its instances depend on the
/// zone it is read in. Conservative: doubt counts as floating (the object is then
/// indexed widened and checked exactly, which costs time, never a match).
pub fn may_float(text: &str) -> bool {
    use std::str::FromStr;
    const NAMES: [&str; 6] = [
        "DTSTART",
        "DTEND",
        "DUE",
        "RECURRENCE-ID",
        "RDATE",
        "EXDATE",
    ];
    let mut in_zone = 0usize;
    let mut floats = |line: &str| -> bool {
        // The name (cheap, no allocation) first: most lines are not of interest.
        let Some(end) = line.find([';', ':']) else {
            return false;
        };
        let name = &line[..end];
        let is_begin = name.eq_ignore_ascii_case("BEGIN");
        if is_begin || name.eq_ignore_ascii_case("END") {
            let value = line.get(end + 1..).unwrap_or("").trim();
            if value.eq_ignore_ascii_case("VTIMEZONE") {
                in_zone = if is_begin {
                    in_zone + 1
                } else {
                    in_zone.saturating_sub(1)
                };
            }
            return false;
        }
        if in_zone > 0 || !NAMES.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return false;
        }
        // A line that does not parse is doubt: floating.
        let Some(super::ical::Prop { params, value, .. }) = super::ical::parse_line(line) else {
            return true;
        };
        if let Some((_, tzid)) = params.iter().find(|(n, _)| n == "TZID")
            && Tz::from_str(tzid).is_ok_and(|z| !z.is_floating())
        {
            return false;
        }
        let fixed = |v: &str| {
            let start = v.split('/').next().unwrap_or(v).trim();
            start.ends_with(['Z', 'z'])
        };
        value.trim().is_empty() || !value.split(',').all(fixed)
    };
    if text.contains("\n ") || text.contains("\n\t") {
        // Folded lines: unfold first (a name may be split across them).
        super::ical::unfold(text).iter().any(|l| floats(l))
    } else {
        text.split('\n')
            .any(|l| floats(l.strip_suffix('\r').unwrap_or(l)))
    }
}

/// The zone of a calendar-timezone property or a query's CALDAV:timezone (RFC 4791
/// §5.2.2, §9.8): an iCalendar object holding exactly one VTIMEZONE and nothing else.
/// Its TZID (or X-LIC-LOCATION, or Microsoft's zone id) names an IANA or Windows zone,
/// which calcard maps to the tz database; a zone it cannot name is read at its STANDARD
/// offset (else its first TZOFFSETTO), fixed, without daylight saving. `None` when the
/// text is not such an object, or names no zone within ±14 h of UTC.
pub fn zone_of(text: &str) -> Option<Tz> {
    let ical = ICalendar::parse(text).ok()?;
    let root = ical.components.first()?;
    if root.component_type != T::VCalendar {
        return None;
    }
    // The root's only sub-component is the VTIMEZONE (RFC 4791 §5.2.2).
    if root.component_ids.len() != 1 {
        return None;
    }
    let mut zones = ical.timezones();
    let vtz = zones.next()?;
    if zones.next().is_some() {
        return None;
    }
    vtz.property(&P::Tzid)?;
    if let Some((_, tz)) = vtz.timezone() {
        return Some(tz);
    }
    fixed_offset(text)
}

/// The STANDARD observance's `TZOFFSETTO` (else the first one) as a fixed zone
/// (`+HHMM[SS]` / `-HHMM[SS]`, at most ±14 h).
fn fixed_offset(text: &str) -> Option<Tz> {
    let lines = super::ical::unfold(text);
    fn offset_of(l: &str) -> Option<&str> {
        l.get(..11)
            .is_some_and(|p| p.eq_ignore_ascii_case("TZOFFSETTO:"))
            .then(|| l.get(11..))
            .flatten()
    }
    let mut standard = false;
    let mut first = None;
    let mut chosen = None;
    for l in &lines {
        if l.eq_ignore_ascii_case("BEGIN:STANDARD") {
            standard = true;
        } else if l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("END:")) {
            standard = false;
        } else if let Some(v) = offset_of(l) {
            first.get_or_insert(v);
            if standard {
                chosen.get_or_insert(v);
            }
        }
    }
    let secs = utc_offset_secs(chosen.or(first)?)?;
    if i64::from(secs.abs()) * 1000 > MAX_ZONE_OFFSET_MS {
        return None;
    }
    Some(Tz::Fixed(chrono::FixedOffset::east_opt(secs)?))
}

/// A UTC-OFFSET value (RFC 5545 §3.3.14: `+0300`, `-0530`, `+013045`) in seconds east
/// of UTC; `None` unless well formed and under 24 hours.
pub fn utc_offset_secs(v: &str) -> Option<i32> {
    let v = v.trim();
    let (sign, digits) = match v.as_bytes().first()? {
        b'+' => (1, v.get(1..)?),
        b'-' => (-1, v.get(1..)?),
        _ => return None,
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).and_then(|s| s.parse::<i32>().ok());
    let secs = n(0..2)? * 3600 + n(2..4)? * 60 + if digits.len() == 6 { n(4..6)? } else { 0 };
    (secs < 24 * 3600).then_some(sign * secs)
}

/// A zone by its IANA name or a Windows zone name (RFC 7809 CALDAV:timezone-id).
pub fn zone_named(name: &str) -> Option<Tz> {
    use std::str::FromStr;
    Tz::from_str(name.trim()).ok().filter(|z| !z.is_floating())
}

/// The time range of a parsed object's instances when its series ends within the caps
/// (for the index); `None` when it is open-ended or capped.
pub fn finite_span(ical: &ICalendar, deadline: Instant) -> Option<(i64, i64)> {
    let x = expand_parsed(ical, None, None, Tz::UTC, deadline);
    if x.truncated || x.instances.is_empty() {
        return None;
    }
    let s = x.instances.iter().map(|i| i.start_ms).min()?;
    let e = x
        .instances
        .iter()
        .map(|i| i.end_ms.max(i.start_ms.saturating_add(1)))
        .max()?;
    Some((s, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(extra: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }
    fn ms(s: &str) -> i64 {
        let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
        time::PrimitiveDateTime::parse(s, f)
            .map(|t| t.assume_utc().unix_timestamp() * 1000)
            .unwrap_or(0)
    }
    fn deadline() -> Instant {
        Instant::now() + EXPAND_BUDGET
    }

    const NY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nBEGIN:STANDARD\r\nDTSTART:19701101T020000\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";

    fn floating(dtstart: &str, dtend: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:f1\r\nDTSTAMP:20260101T000000Z\r\n{dtstart}\r\n{dtend}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    #[test]
    fn floating_times_and_dates_are_told_apart() {
        assert!(!may_float(&ev("")));
        assert!(may_float(&floating(
            "DTSTART:20300105T230000",
            "DTEND:20300105T233000"
        )));
        assert!(may_float(&floating(
            "DTSTART;VALUE=DATE:20300110",
            "DTEND;VALUE=DATE:20300111"
        )));
        assert!(!may_float(&floating(
            "DTSTART;TZID=Europe/Berlin:20300105T230000",
            "DTEND;TZID=\"Europe/Berlin\":20300105T233000"
        )));
        // One floating EXDATE in a list is enough.
        assert!(may_float(&ev(
            "EXDATE:20260107T100000Z,20260108T100000\r\n"
        )));
        // Names are matched whole and without regard to case.
        assert!(!may_float(&ev("X-DTSTART-NOTE:20300105T230000\r\n")));
        assert!(may_float(&floating("dtstart:20300105T230000", "")));
    }

    #[test]
    fn zones_of_calendar_timezone_values() {
        use std::str::FromStr;
        let ny = zone_of(NY).unwrap();
        assert_eq!(ny, Tz::from_str("America/New_York").unwrap());
        // A Windows name (Outlook) maps to the tz database.
        let w = NY.replace("America/New_York", "Eastern Standard Time");
        assert_eq!(zone_of(&w), Some(ny));
        // A zone without a known name: its standard offset, fixed.
        let custom = NY.replace("America/New_York", "My Own Zone");
        let z = zone_of(&custom).unwrap();
        assert_eq!(
            z,
            Tz::Fixed(chrono::FixedOffset::west_opt(5 * 3600).unwrap())
        );
        // Not one VTIMEZONE: refused.
        assert!(zone_of("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").is_none());
        let two = NY.replace(
            "END:VCALENDAR",
            "BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nEND:VTIMEZONE\r\nEND:VCALENDAR",
        );
        assert!(zone_of(&two).is_none());
        assert!(zone_of("not a calendar").is_none());
        assert!(zone_of(&ev("")).is_none());
        assert_eq!(
            zone_named("Europe/Berlin"),
            Tz::from_str("Europe/Berlin").ok()
        );
        assert!(zone_named("Nowhere/Special").is_none());
        assert!(fixed_offset("TZOFFSETTO:+2500\r\n").is_none());
        assert!(fixed_offset("TZOFFSETTO:0500\r\n").is_none());
        assert!(fixed_offset("TZOFFSETTO:+05\r\n").is_none());
        // Multibyte text where the name would end: no panic.
        assert!(fixed_offset("TZOFFSETTé:+0500\r\nTZOFFSETT\u{e9}\r\n").is_none());
        assert!(fixed_offset("PRODID:-//\u{20ac}x\r\n").is_none());
        let euro = custom.replace("PRODID:-//t//t//EN", "PRODID:-//\u{20ac}x");
        assert!(zone_of(&euro).is_some());
        // Beyond ±14 h: no zone.
        assert!(zone_of(&custom.replace("TZOFFSETTO:-0500", "TZOFFSETTO:-2300")).is_none());
        // The STANDARD offset, wherever it is.
        let cet = "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Somewhere\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";
        assert_eq!(
            zone_of(cet),
            Some(Tz::Fixed(chrono::FixedOffset::east_opt(3600).unwrap()))
        );
        // Anything beside the VTIMEZONE: not a calendar-timezone.
        let with_event = NY.replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20300101T000000Z\r\nEND:VEVENT\r\nEND:VCALENDAR",
        );
        assert!(zone_of(&with_event).is_none());
        // A zone calcard cannot name and without an offset: refused.
        assert!(zone_of(&custom.replace("TZOFFSETTO:-0500\r\n", "")).is_none());
        assert!(!may_float("DTSTARTé:20300101\r\n\u{e9}\u{e9}:x\r\n"));
    }

    #[test]
    fn what_counts_as_floating() {
        let zoned = format!(
            "{}BEGIN:VEVENT\r\nUID:z\r\nDTSTART;TZID=America/New_York:20300105T230000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
            NY.replace("END:VCALENDAR\r\n", "")
        );
        // The VTIMEZONE's own (floating) DTSTART does not count.
        assert!(!may_float(&zoned));
        // A TZID calcard cannot name (nor the object define): read in the default zone.
        assert!(may_float(&floating(
            "DTSTART;TZID=My Zone:20300105T230000",
            ""
        )));
        // TZID= inside another parameter is not a TZID.
        assert!(may_float(&floating(
            "DTSTART;X-P=\"TZID=Europe/Paris\":20300105T230000",
            ""
        )));
        assert!(may_float(&floating("DTSTART;X-TZID=a:20300105T230000", "")));
        // A period whose start is floating.
        assert!(may_float(&ev(
            "RDATE;VALUE=PERIOD:20300107T230000/20300108T000000Z\r\n"
        )));
        assert!(!may_float(&ev(
            "RDATE;VALUE=PERIOD:20300107T230000Z/PT1H\r\n"
        )));
        // A name folded across lines.
        assert!(may_float(&floating("DTSTART\r\n :20300105T230000", "")));
    }

    #[test]
    fn wall_clock_times_in_gaps_and_overlaps() {
        use std::str::FromStr;
        let ny = Tz::from_str("America/New_York").unwrap();
        // 01:30 on 3 November 2030 happens twice: the first (EDT, 05:30Z).
        assert_eq!(
            wall_to_utc(ny, ms("20301103T013000Z")),
            ms("20301103T053000Z")
        );
        // 02:30 on 10 March 2030 does not happen: the offset before the gap (EST).
        assert_eq!(
            wall_to_utc(ny, ms("20300310T023000Z")),
            ms("20300310T073000Z")
        );
        assert_eq!(
            wall_to_utc(ny, ms("20300110T120000Z")),
            ms("20300110T170000Z")
        );
        assert_eq!(wall_to_utc(Tz::UTC, 1234), 1234);
        // An all-day event on a day without a local midnight (Santiago, 7 September
        // 2030) still has its instance.
        let santiago = Tz::from_str("America/Santiago").unwrap();
        let day = floating("DTSTART;VALUE=DATE:20300907", "DTEND;VALUE=DATE:20300908");
        let ical = ICalendar::parse(&day).unwrap();
        let x = expand_parsed(&ical, None, None, santiago, deadline());
        assert_eq!(x.instances.len(), 1, "{x:?}");
        let overlap = floating("DTSTART:20301103T013000", "DTEND:20301103T014500");
        let ical = ICalendar::parse(&overlap).unwrap();
        let x = expand_parsed(&ical, None, None, ny, deadline());
        assert_eq!(x.instances[0].start_ms, ms("20301103T053000Z"));
    }

    #[test]
    fn floating_series_in_zones_east_of_utc_and_other_starts() {
        use std::str::FromStr;
        let tokyo = Tz::from_str("Asia/Tokyo").unwrap();
        // Hourly from midnight Tokyo wall time: 06:00Z and 07:00Z fall in the range (the
        // stop test must not end at the wall clock's 08:00).
        let hourly = floating(
            "DTSTART:20300101T000000",
            "DTEND:20300101T003000\r\nRRULE:FREQ=HOURLY",
        );
        let ical = ICalendar::parse(&hourly).unwrap();
        let x = expand_parsed(
            &ical,
            Some(ms("20300101T060000Z")),
            Some(ms("20300101T080000Z")),
            tokyo,
            deadline(),
        );
        let starts: Vec<i64> = x.instances.iter().map(|i| i.start_ms).collect();
        assert_eq!(starts, [ms("20300101T060000Z"), ms("20300101T070000Z")]);
        // A to-do with only a floating DUE: its start is DUE, read in the zone.
        let todo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VTODO\r\nUID:t\r\nDTSTAMP:20300101T000000Z\r\nDUE:20300105T230000\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
        let ical = ICalendar::parse(todo).unwrap();
        let x = expand_parsed(&ical, None, None, tokyo, deadline());
        assert_eq!(x.instances[0].start_ms, ms("20300105T140000Z"));
        // DURATION is exact time across the spring-forward gap (New York, 10 March).
        let ny = Tz::from_str("America/New_York").unwrap();
        let d = floating("DTSTART:20300310T013000", "DURATION:PT2H");
        let ical = ICalendar::parse(&d).unwrap();
        let x = expand_parsed(&ical, None, None, ny, deadline());
        assert_eq!(
            (x.instances[0].start_ms, x.instances[0].end_ms),
            (ms("20300310T063000Z"), ms("20300310T083000Z"))
        );
    }

    #[test]
    fn floating_times_are_read_in_the_zone() {
        let ny = zone_of(NY).unwrap();
        // 23:00 floating on 5 January = 04:00Z on the 6th in New York (EST, -5).
        let text = floating("DTSTART:20300105T230000", "DTEND:20300105T233000");
        let ical = ICalendar::parse(&text).unwrap();
        let m =
            |a: &str, b: &str, z: Tz| matches_range(&ical, Some(ms(a)), Some(ms(b)), z, deadline());
        assert!(m("20300106T000000Z", "20300106T120000Z", ny));
        assert!(!m("20300105T200000Z", "20300106T000000Z", ny));
        assert!(m("20300105T200000Z", "20300106T000000Z", Tz::UTC));
        // An all-day event is the zone's day.
        let day = floating("DTSTART;VALUE=DATE:20300110", "DTEND;VALUE=DATE:20300111");
        let ical = ICalendar::parse(&day).unwrap();
        let m =
            |a: &str, b: &str, z: Tz| matches_range(&ical, Some(ms(a)), Some(ms(b)), z, deadline());
        assert!(m("20300111T020000Z", "20300111T030000Z", ny));
        assert!(!m("20300111T020000Z", "20300111T030000Z", Tz::UTC));
        assert!(!m("20300110T000000Z", "20300110T040000Z", ny));
        // expand answers in UTC.
        let (out, _) =
            expand_to_ical(&text, Some(0), Some(ms("20310101T000000Z")), ny, deadline()).unwrap();
        assert!(out.contains("DTSTART:20300106T040000Z"), "{out}");
    }

    #[test]
    fn daily_with_exdate_and_override() {
        let text = ev("SEQUENCE:1\r\nRRULE:FREQ=DAILY;COUNT=5\r\nEXDATE:20260107T100000Z\r\n").replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20260101T000000Z\r\nSEQUENCE:2\r\nRECURRENCE-ID:20260108T100000Z\r\nDTSTART:20260108T150000Z\r\nDTEND:20260108T160000Z\r\nEND:VEVENT\r\nEND:VCALENDAR",
        );
        let ical = ICalendar::parse(&text).unwrap();
        let x = expand_parsed(&ical, None, None, Tz::UTC, deadline());
        let starts: Vec<_> = x.instances.iter().map(|i| (i.start_ms, i.rid_ms)).collect();
        assert_eq!(
            starts,
            vec![
                (ms("20260105T100000Z"), Some(ms("20260105T100000Z"))),
                (ms("20260106T100000Z"), Some(ms("20260106T100000Z"))),
                (ms("20260108T150000Z"), Some(ms("20260108T100000Z"))),
                (ms("20260109T100000Z"), Some(ms("20260109T100000Z"))),
            ]
        );
        assert!(!x.truncated);
        // The excluded day matches nothing; the moved instance matches its new time.
        let d =
            |a: &str, b: &str| matches_range(&ical, Some(ms(a)), Some(ms(b)), Tz::UTC, deadline());
        assert!(!d("20260107T000000Z", "20260108T000000Z"));
        assert!(!d("20260108T090000Z", "20260108T120000Z"));
        assert!(d("20260108T140000Z", "20260108T151000Z"));
        assert!(!d("20260110T000000Z", "20300101T000000Z"));
        let (out, tr) = expand_to_ical(
            &text,
            Some(ms("20260106T000000Z")),
            Some(ms("20260109T000000Z")),
            Tz::UTC,
            deadline(),
        )
        .unwrap();
        assert!(!tr);
        assert_eq!(out.matches("BEGIN:VEVENT").count(), 2, "{out}");
        assert!(!out.contains("RRULE") && !out.contains("EXDATE"));
        assert!(out.contains("RECURRENCE-ID:20260108T100000Z"));
        // limit-recurrence-set drops the override outside the range.
        let l = limit_recurrence_set(
            &text,
            Some(ms("20260101T000000Z")),
            Some(ms("20260107T000000Z")),
            Tz::UTC,
        )
        .unwrap();
        assert_eq!(l.matches("BEGIN:VEVENT").count(), 1, "{l}");
        assert!(l.contains("RRULE"));
    }

    #[test]
    fn rdate_and_freebusy() {
        let text = ev("RDATE:20260301T100000Z\r\n");
        let ical = ICalendar::parse(&text).unwrap();
        assert!(matches_range(
            &ical,
            Some(ms("20260301T000000Z")),
            Some(ms("20260302T000000Z")),
            Tz::UTC,
            deadline()
        ));
        let p = busy_periods(
            &text,
            ms("20260101T000000Z"),
            ms("20270101T000000Z"),
            Tz::UTC,
            deadline(),
        );
        assert_eq!(p.len(), 2);
        let t = busy_periods(
            &ev("TRANSP:TRANSPARENT\r\n"),
            0,
            i64::MAX / 2,
            Tz::UTC,
            deadline(),
        );
        assert!(t.is_empty());
        let c = busy_periods(
            &ev("STATUS:CANCELLED\r\n"),
            0,
            i64::MAX / 2,
            Tz::UTC,
            deadline(),
        );
        assert!(c.is_empty());
        let fb = freebusy_ical(ms("20260101T000000Z"), ms("20270101T000000Z"), p);
        assert!(
            fb.contains("FREEBUSY;FBTYPE=BUSY:20260105T100000Z/20260105T110000Z"),
            "{fb}"
        );
    }

    /// THREATS.md RRULE bombs: each answers within the budget, capped or ended.
    #[test]
    fn hostile_rules_are_capped() {
        for rule in [
            "FREQ=SECONDLY",
            "FREQ=SECONDLY;BYHOUR=0;BYMINUTE=0;BYSECOND=0",
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
            "FREQ=MINUTELY;BYSETPOS=-1;BYMONTH=2;BYMONTHDAY=29",
            "FREQ=YEARLY;INTERVAL=65535",
            "FREQ=DAILY;COUNT=2147483647",
            "FREQ=SECONDLY;COUNT=4000000000",
            "FREQ=DAILY;BYSETPOS=1,2,3,-1,-2,-3;BYHOUR=1,2,3,4,5,6,7,8,9,10,11,12;BYMINUTE=1,2,3,4,5,6,7,8,9,10",
        ] {
            let text = ev(&format!("RRULE:{rule}\r\n"));
            let Ok(ical) = ICalendar::parse(&text) else {
                continue;
            };
            let t0 = Instant::now();
            let x = expand_parsed(
                &ical,
                Some(0),
                Some(ms("99991231T000000Z")),
                Tz::UTC,
                deadline(),
            );
            let took = t0.elapsed();
            assert!(
                took < EXPAND_BUDGET + Duration::from_millis(1500),
                "{rule}: {took:?}"
            );
            assert!(x.instances.len() <= MAX_INSTANCES, "{rule}");
            if rule.contains("BYMONTHDAY=30") {
                // Never matches: ended by the empty-iteration cap, nothing generated.
                assert!(x.instances.is_empty(), "{rule}");
            }
            if rule == "FREQ=SECONDLY" {
                assert!(x.truncated, "{rule}");
                assert_eq!(x.instances.len(), MAX_INSTANCES);
            }
            eprintln!(
                "{rule}: {} instances, truncated {}, {took:?}",
                x.instances.len(),
                x.truncated
            );
        }
    }
}
