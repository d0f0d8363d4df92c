//! Time ranges on VALARM (RFC 4791 §9.9): an alarm overlaps `[start, end)` when one of
//! its trigger times `t` has `start ≤ t < end`. The trigger times are the TRIGGER
//! (RFC 5545 §3.8.6.3) and, with REPEAT and DURATION, that many more at DURATION apart.
//! A relative TRIGGER counts from its component's start or, with `RELATED=END`, its end;
//! an absolute one (`VALUE=DATE-TIME`, UTC) is one time whatever the instance. Each
//! instance of a recurring component has its own alarms: instances come from
//! [`super::recur::expand_parsed`], over the range widened by the alarms' reach, within
//! its caps.

use super::recur::expand_parsed;
use calcard::common::timezone::Tz;
use calcard::icalendar::{
    ICalendar, ICalendarComponentType as T, ICalendarParameterName, ICalendarParameterValue,
    ICalendarProperty as P, ICalendarRelated, ICalendarValue,
};
use std::time::Instant;

/// How far before or after its component an alarm may ring and still be found (a
/// relative trigger further out is taken at this distance): bounds the widened range.
pub const MAX_ALARM_REACH_MS: i64 = 366 * 86_400_000;
/// Most repetitions of one alarm looked at (REPEAT is a plain integer).
pub const MAX_ALARM_REPEATS: i64 = 1_000;

/// One alarm's trigger, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Trigger {
    /// Milliseconds from the instance's start (or end, `from_end`).
    Relative {
        offset_ms: i64,
        from_end: bool,
    },
    Absolute(i64),
}

#[derive(Debug, Clone)]
struct Alarm {
    trigger: Trigger,
    repeat: i64,
    every_ms: i64,
}

impl Alarm {
    /// Trigger times for an instance spanning `[start, end)`.
    fn times(&self, start: i64, end: i64) -> impl Iterator<Item = i64> + '_ {
        let first = match self.trigger {
            Trigger::Relative {
                offset_ms,
                from_end,
            } => (if from_end { end } else { start }).saturating_add(offset_ms),
            Trigger::Absolute(t) => t,
        };
        (0..=self.repeat).map(move |k| first.saturating_add(k.saturating_mul(self.every_ms)))
    }

    fn reach(&self) -> i64 {
        let base = match self.trigger {
            Trigger::Relative { offset_ms, .. } => offset_ms.saturating_abs(),
            Trigger::Absolute(_) => 0,
        };
        base.saturating_add(self.repeat.saturating_mul(self.every_ms))
            .min(MAX_ALARM_REACH_MS)
    }
}

fn utc_ms(v: &ICalendarValue) -> Option<i64> {
    let ICalendarValue::PartialDateTime(dt) = v else {
        return None;
    };
    let dt = dt.to_date_time()?.to_date_time_with_tz(Tz::UTC)?;
    Some(dt.timestamp().saturating_mul(1000))
}

/// The alarms of component `idx` (its VALARM children).
fn alarms_of(ical: &ICalendar, idx: usize) -> Vec<Alarm> {
    let Some(c) = ical.components.get(idx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for &id in &c.component_ids {
        let Some(a) = ical.components.get(id as usize) else {
            continue;
        };
        if a.component_type != T::VAlarm {
            continue;
        }
        let Some(t) = a.property(&P::Trigger) else {
            continue;
        };
        let trigger = match t.values.first() {
            Some(ICalendarValue::Duration(d)) => Trigger::Relative {
                offset_ms: d
                    .as_seconds()
                    .saturating_mul(1000)
                    .clamp(-MAX_ALARM_REACH_MS, MAX_ALARM_REACH_MS),
                from_end: matches!(
                    t.parameter(&ICalendarParameterName::Related),
                    Some(ICalendarParameterValue::Related(ICalendarRelated::End))
                ),
            },
            Some(v) => match utc_ms(v) {
                Some(ms) => Trigger::Absolute(ms),
                None => continue,
            },
            None => continue,
        };
        let repeat = match a.property(&P::Repeat).and_then(|r| r.values.first()) {
            Some(ICalendarValue::Integer(n)) => (*n).clamp(0, MAX_ALARM_REPEATS),
            _ => 0,
        };
        let every_ms = match a.property(&P::Duration).and_then(|r| r.values.first()) {
            Some(ICalendarValue::Duration(d)) => d.as_seconds().saturating_mul(1000).max(0),
            _ => 0,
        };
        // RFC 5545 §3.6.6: REPEAT and DURATION go together; one alone repeats nothing.
        let (repeat, every_ms) = if every_ms > 0 {
            (repeat, every_ms)
        } else {
            (0, 0)
        };
        out.push(Alarm {
            trigger,
            repeat,
            every_ms,
        });
    }
    out
}

/// What [`alarms_ring`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmOverlap {
    /// An alarm rings in the range.
    Rings,
    /// No alarm rings in the range.
    Silent,
    /// No alarm found ringing before the expansion of the series was cut (a cap or the
    /// deadline): the answer is not known.
    Truncated,
}

/// Whether any alarm of the object `text` rings in `[start, end)` (either side open).
/// `None` when the object does not parse. A series whose expansion was cut before an
/// alarm was found counts as not ringing: [`alarms_ring`] tells that case apart.
pub fn alarms_overlap(
    text: &str,
    start: Option<i64>,
    end: Option<i64>,
    zone: Tz,
    deadline: Instant,
) -> Option<bool> {
    alarms_ring(text, start, end, zone, deadline).map(|o| o == AlarmOverlap::Rings)
}

/// As [`alarms_overlap`], saying when the expansion was cut before an answer
/// ([`AlarmOverlap::Truncated`]).
/// Relative triggers follow the instances, whose floating times are read in `zone`.
pub fn alarms_ring(
    text: &str,
    start: Option<i64>,
    end: Option<i64>,
    zone: Tz,
    deadline: Instant,
) -> Option<AlarmOverlap> {
    let ical = ICalendar::parse(text).ok()?;
    let per_comp: Vec<(usize, Vec<Alarm>)> = (0..ical.components.len())
        .filter(|&i| ical.components[i].component_type.has_time_ranges())
        .map(|i| (i, alarms_of(&ical, i)))
        .filter(|(_, a)| !a.is_empty())
        .collect();
    if per_comp.is_empty() {
        return Some(AlarmOverlap::Silent);
    }
    let inside = |t: i64| start.is_none_or(|s| t >= s) && end.is_none_or(|e| t < e);
    // An absolute trigger is one set of times whatever the instances.
    if per_comp
        .iter()
        .flat_map(|(_, a)| a)
        .any(|a| matches!(a.trigger, Trigger::Absolute(_)) && a.times(0, 0).any(inside))
    {
        return Some(AlarmOverlap::Rings);
    }
    // Only relative triggers depend on the instances.
    if !per_comp
        .iter()
        .flat_map(|(_, a)| a)
        .any(|a| matches!(a.trigger, Trigger::Relative { .. }))
    {
        return Some(AlarmOverlap::Silent);
    }
    let reach = per_comp
        .iter()
        .flat_map(|(_, a)| a.iter().map(Alarm::reach))
        .max()
        .unwrap_or(0);
    let widened = expand_parsed(
        &ical,
        start.map(|s| s.saturating_sub(reach)),
        end.map(|e| e.saturating_add(reach)),
        zone,
        deadline,
    );
    for inst in &widened.instances {
        let Some((_, alarms)) = per_comp.iter().find(|(i, _)| *i == inst.comp) else {
            continue;
        };
        if alarms
            .iter()
            .filter(|a| matches!(a.trigger, Trigger::Relative { .. }))
            .any(|a| a.times(inst.start_ms, inst.end_ms).any(inside))
        {
            return Some(AlarmOverlap::Rings);
        }
    }
    Some(if widened.truncated {
        AlarmOverlap::Truncated
    } else {
        AlarmOverlap::Silent
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(extra: &str, alarm: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:a\r\n\
             DTSTAMP:20300101T000000Z\r\nDTSTART:20300110T100000Z\r\nDTEND:20300110T110000Z\r\n\
             {extra}SUMMARY:x\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:r\r\n{alarm}\
             END:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    fn ms(s: &str) -> Option<i64> {
        super::super::ical::parse_utc(s)
    }

    fn hit(text: &str, a: &str, b: &str) -> bool {
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        alarms_overlap(text, ms(a), ms(b), Tz::UTC, deadline).unwrap()
    }

    #[test]
    fn relative_absolute_end_and_repeats() {
        // 15 minutes before the start: 09:45.
        let e = ev("", "TRIGGER:-PT15M\r\n");
        assert!(hit(&e, "20300110T094000Z", "20300110T095000Z"));
        assert!(!hit(&e, "20300110T095000Z", "20300110T120000Z"));
        // The range's end is exclusive, its start inclusive.
        assert!(!hit(&e, "20300110T093000Z", "20300110T094500Z"));
        assert!(hit(&e, "20300110T094500Z", "20300110T094600Z"));
        // Related to the end: 11:05.
        let e = ev("", "TRIGGER;RELATED=END:PT5M\r\n");
        assert!(hit(&e, "20300110T110000Z", "20300110T111000Z"));
        assert!(!hit(&e, "20300110T094000Z", "20300110T095000Z"));
        // Absolute.
        let e = ev("", "TRIGGER;VALUE=DATE-TIME:20300105T080000Z\r\n");
        assert!(hit(&e, "20300105T000000Z", "20300106T000000Z"));
        assert!(!hit(&e, "20300110T000000Z", "20300111T000000Z"));
        // Repeats: 09:45, 09:50, 09:55.
        let e = ev("", "TRIGGER:-PT15M\r\nREPEAT:2\r\nDURATION:PT5M\r\n");
        assert!(hit(&e, "20300110T095400Z", "20300110T095600Z"));
        assert!(!hit(&e, "20300110T095600Z", "20300110T100000Z"));
        // No alarm: nothing.
        let plain = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300110T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert!(!hit(plain, "20300101T000000Z", "20310101T000000Z"));
    }

    #[test]
    fn repeats_are_capped() {
        // 09:45 and then every minute, asked for far more than MAX_ALARM_REPEATS times:
        // the last one looked at is 1000 minutes later (02:25 the next day).
        assert_eq!(MAX_ALARM_REPEATS, 1_000);
        let e = ev("", "TRIGGER:-PT15M\r\nREPEAT:100000\r\nDURATION:PT1M\r\n");
        assert!(hit(&e, "20300111T022500Z", "20300111T022600Z"));
        assert!(!hit(&e, "20300111T022600Z", "20300111T030000Z"));
    }

    #[test]
    fn a_cut_expansion_is_not_an_answer() {
        let e = ev("RRULE:FREQ=DAILY\r\n", "TRIGGER:-PT15M\r\n");
        // Out of time before anything was expanded: not known, not "silent".
        let past = Instant::now() - std::time::Duration::from_millis(1);
        assert_eq!(
            alarms_ring(
                &e,
                ms("20350114T000000Z"),
                ms("20350115T000000Z"),
                Tz::UTC,
                past
            ),
            Some(AlarmOverlap::Truncated)
        );
        // Absolute triggers only: no expansion needed, so no doubt.
        let abs = ev(
            "RRULE:FREQ=DAILY\r\n",
            "TRIGGER;VALUE=DATE-TIME:20300105T080000Z\r\n",
        );
        assert_eq!(
            alarms_ring(
                &abs,
                ms("20350114T000000Z"),
                ms("20350115T000000Z"),
                Tz::UTC,
                past
            ),
            Some(AlarmOverlap::Silent)
        );
        let later = Instant::now() + std::time::Duration::from_secs(2);
        assert_eq!(
            alarms_ring(
                &e,
                ms("20300114T094000Z"),
                ms("20300114T095000Z"),
                Tz::UTC,
                later
            ),
            Some(AlarmOverlap::Rings)
        );
    }

    #[test]
    fn every_instance_of_a_series_has_its_alarm() {
        let e = ev("RRULE:FREQ=DAILY;COUNT=10\r\n", "TRIGGER:-PT15M\r\n");
        // The fifth day's alarm.
        assert!(hit(&e, "20300114T094000Z", "20300114T095000Z"));
        // After the series ended.
        assert!(!hit(&e, "20300125T094000Z", "20300125T095000Z"));
    }
}
