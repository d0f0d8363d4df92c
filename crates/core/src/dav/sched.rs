//! CalDAV scheduling (RFC 6638) — the policy: implicit scheduling on PUT and DELETE of
//! scheduling objects, the scheduling inbox, free/busy for the outbox, room accounts
//! that answer by themselves; external attendees and organisers by iMIP ([`super::imip`]).
//!
//! **Organiser** (ORGANIZER is the caller's address): a PUT whose object changed in a way
//! attendees see ([`Cal::significant`]) sends an iTIP REQUEST to each attendee the server
//! schedules for (SCHEDULE-AGENT absent or SERVER): a local account gets the object in
//! its default calendar (its PARTSTAT kept unless the timing changed, else NEEDS-ACTION)
//! and a REQUEST item in its inbox; another domain's address gets a mail; an unknown
//! address of one of our domains nothing (SCHEDULE-STATUS 3.7). Attendees removed, or the
//! object deleted, get a CANCEL. The organiser's stored copy carries SCHEDULE-STATUS on
//! each scheduled ATTENDEE, and keeps the PARTSTATs the server recorded from replies
//! while the timing is unchanged (a client re-sending a stale copy does not undo them);
//! a re-timed event asks everyone again (NEEDS-ACTION in both copies).
//!
//! **Schedule-Tag** ([`schedule_tag`]): a hash of what attendees see, so replies keep it
//! and organiser changes move it; `If-Schedule-Tag-Match` on PUT is checked against the
//! stored object and the write then expects the ETag it was compared on.
//!
//! **Attendee** (the caller is an ATTENDEE, not the organiser): a PUT that changes its
//! own PARTSTAT, or a DELETE (DECLINED; not for an event already cancelled), sends a
//! REPLY: a local organiser's copy gets that one PARTSTAT changed (nothing else) and a
//! REPLY item in its inbox; another domain's organiser gets a mail. PARTSTATs are
//! compared per component, so declining one instance (an override) replies for that
//! instance; the organiser's copy gets an override for it, made from its own master,
//! only when the master has an instance at that RECURRENCE-ID.
//!
//! Scheduling is the owner's: a delegate's write into a shared calendar is stored
//! without scheduling, and COPY/MOVE do none.
//!
//! **Rooms** ([`PrincipalKind::Resource`]): invited, a room accepts when its calendars
//! have no busy time overlapping the event and declines otherwise; the answer is written
//! into the organiser's copy as it is stored. A declined event is not kept in the
//! room's calendar.
//!
//! **Ledger:** each write to another account (`dav.schedule.deliver`, `.cancel`,
//! `.reply`) is one entry in the same batch, with the acting session (the organiser's,
//! the attendee's, or SMTP's for iMIP) as actor and the account written as target; reads
//! of another account's calendars for busy time are `dav.schedule.busy`.
//!
//! **Tenants:** "local" is the acting account's own domain ([`Core::sched_classify`]):
//! accounts, rooms and unknown addresses of another hosted domain are treated as any
//! other domain's (SCHEDULE-STATUS 1.1, iMIP through the queue), so one tenant neither
//! writes into another's calendars nor learns which of its addresses exist, and another
//! tenant's room does not answer by itself.
//!
//! **Races:** a write into another account's copy (a delivery, a cancel, a reply) expects
//! the ETag it read and, when the copy changed in between, reads, merges and writes again
//! (at most [`SCHED_ATTEMPTS`] times); an organiser's PUT without a precondition does the
//! same, so a reply landing between its read and its write is not overwritten.
//!
//! **Instances:** a REQUEST or CANCEL about instances only (RECURRENCE-ID components and
//! no master, as Outlook and Exchange send for one occurrence) changes those instances
//! of the attendee's series — an override replaced or added; an EXDATE and the override
//! gone — matched by their UTC instant.
//!
//! **Inbox items** are one per object and sender (named by a hash of UID and sender):
//! the newest message replaces the one before, so a retried delivery does not duplicate
//! it and the inbox does not grow with every update. The collection is the one of kind
//! inbox; clients cannot name collections `inbox` or `outbox`.
//!
//! **Ledger, refusals:** a delivery, cancel or reply refused because the other copy has
//! another organiser (a UID collision, or an attempt at someone else's event) is a
//! `dav.schedule.*` entry with result `denied`.
//!
//! **Failures:** the caller's own write decides the answer; deliveries after it that fail
//! are logged and do not undo it.

use super::ical::{Cal, Comp, Prop};
use super::{DavWriteError, etag_of, index_icalendar};
use crate::address::parse_address;
use crate::directory::Resolution;
use crate::error::{CoreError, Result};
use crate::{Authenticated, Core, Ctx};
use postern_store::*;
use serde_json::json;

/// The inbox's collection name (`/dav/calendars/<address>/inbox/`).
pub const INBOX: &str = "inbox";
/// The outbox's name (a virtual collection: nothing is stored there).
pub const OUTBOX: &str = "outbox";
/// Most attendees the server schedules for in one object.
pub const MAX_ATTENDEES: usize = 256;
/// Most recipients of one free/busy request.
pub const MAX_FREEBUSY_RECIPIENTS: usize = 64;
/// Most components of one REPLY applied to an organiser's copy (as
/// [`super::imip::MAX_IMIP_COMPONENTS`] for mail; a local attendee's PUT may hold more).
pub const MAX_REPLY_COMPONENTS: usize = super::imip::MAX_IMIP_COMPONENTS;
/// Longest range of one free/busy request.
pub const MAX_FREEBUSY_RANGE_MS: i64 = 400 * 86_400_000;
/// How far ahead a room looks for conflicts with an open-ended series.
const ROOM_HORIZON_MS: i64 = 366 * 86_400_000;

const PARTSTATS: [&str; 5] = [
    "NEEDS-ACTION",
    "ACCEPTED",
    "DECLINED",
    "TENTATIVE",
    "DELEGATED",
];

/// What a scheduling-aware PUT did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    pub created: bool,
    pub etag: String,
    /// The server stored something else than the client sent (SCHEDULE-STATUS, kept
    /// PARTSTATs): no ETag in the answer (RFC 4791 §5.3.4), the client reads it again.
    pub rewritten: bool,
    /// RFC 6638 §3.2.10, for a scheduling object.
    pub schedule_tag: Option<String>,
}

/// One recipient's answer to a free/busy request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeBusyAnswer {
    pub recipient: String,
    /// iTIP REQUEST-STATUS (`2.0;Success`, `3.7;Invalid calendar user`).
    pub status: String,
    pub data: Option<String>,
}

/// Who a calendar user address is.
#[derive(Debug, Clone)]
pub(crate) enum Recipient {
    Local(Principal),
    External,
    /// One of our domains, nobody there (or a group).
    Unknown,
}

/// The Schedule-Tag of a scheduling object (RFC 6638 §3.2.10): a hash of what the
/// attendees see ([`Cal::significant`]), so it stays while only PARTSTATs and
/// SCHEDULE-STATUS change (replies) and moves with every organiser's change. `None` for
/// an object without ORGANIZER.
pub fn schedule_tag(data: &str) -> Option<String> {
    use sha2::{Digest, Sha256};
    if !contains_ci(data.as_bytes(), b"ORGANIZER") {
        return None;
    }
    let cal = Cal::parse(data)?;
    cal.organizer()?;
    Some(format!(
        "s{}",
        &hex::encode(Sha256::digest(cal.significant().as_bytes()))[..32]
    ))
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

fn random_name() -> String {
    format!("{}.ics", hex::encode(rand::random::<[u8; 12]>()))
}

/// The iTIP form of an object: METHOD set, the server's per-attendee parameters gone
/// (RFC 6638 §3.2: SCHEDULE-AGENT, -STATUS and -FORCE-SEND are not sent).
pub(crate) fn itip(cal: &Cal, method: &str) -> Cal {
    let mut c = cal.clone();
    c.set_method(Some(method));
    for m in c.mains_mut() {
        for p in m.props.iter_mut() {
            if p.name == "ATTENDEE" || p.name == "ORGANIZER" {
                p.remove_param("SCHEDULE-STATUS");
                p.remove_param("SCHEDULE-AGENT");
                p.remove_param("SCHEDULE-FORCE-SEND");
            }
        }
    }
    c
}

/// A REPLY from `attendee` about `cal`: per component its identity, timing, the
/// organiser and that one ATTENDEE.
pub(crate) fn reply_of(cal: &Cal, attendee: &str, partstat: &str) -> Cal {
    reply_with(cal, attendee, Some(partstat), None)
}

/// The key of a main component: its RECURRENCE-ID value (empty for the master).
fn rid_key(c: &Comp) -> String {
    c.value("RECURRENCE-ID")
        .map(|v| v.trim().to_ascii_uppercase())
        .unwrap_or_default()
}

/// `attendee`'s PARTSTAT per component it is in, by [`rid_key`].
fn instance_partstats(cal: &Cal, attendee: &str) -> Vec<(String, String)> {
    cal.mains()
        .filter_map(|c| {
            let a = c.attendee(attendee)?;
            Some((
                rid_key(c),
                a.param("PARTSTAT")
                    .unwrap_or("NEEDS-ACTION")
                    .to_ascii_uppercase(),
            ))
        })
        .collect()
}

/// The components (by [`rid_key`]) whose PARTSTAT of `me` differs from before: an
/// override new since `old` compares with the old master's.
fn changed_instances(old: Option<&Cal>, new: &Cal, me: &str) -> Vec<String> {
    let before = old.map(|o| instance_partstats(o, me)).unwrap_or_default();
    let master_before = before
        .iter()
        .find(|(k, _)| k.is_empty())
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| "NEEDS-ACTION".into());
    instance_partstats(new, me)
        .into_iter()
        .filter(|(k, ps)| match before.iter().find(|(ok, _)| ok == k) {
            Some((_, o)) => o != ps,
            None => *ps != master_before,
        })
        .map(|(k, _)| k)
        .collect()
}

/// A REPLY: `partstat` for every component, or each component's own; only the
/// components named in `only` (by [`rid_key`]) when given.
fn reply_with(cal: &Cal, attendee: &str, partstat: Option<&str>, only: Option<&[String]>) -> Cal {
    let mut out = cal.clone();
    if let Some(keys) = only {
        out.root
            .subs
            .retain(|c| !super::ical::is_main(&c.name) || keys.contains(&rid_key(c)));
    }
    out.set_method(Some("REPLY"));
    let stamp = super::ical::utc_now();
    for m in out.mains_mut() {
        m.subs.clear();
        m.props.retain(|p| {
            matches!(
                p.name.as_str(),
                "UID"
                    | "RECURRENCE-ID"
                    | "SEQUENCE"
                    | "DTSTART"
                    | "DTEND"
                    | "DURATION"
                    | "DUE"
                    | "SUMMARY"
                    | "ORGANIZER"
            ) || (p.name == "ATTENDEE" && p.address().as_deref() == Some(attendee))
        });
        m.set("DTSTAMP", &stamp);
        if let Some(p) = m.attendee_mut(attendee) {
            if let Some(ps) = partstat {
                p.set_param("PARTSTAT", ps);
            }
            p.remove_param("SCHEDULE-STATUS");
            p.remove_param("SCHEDULE-AGENT");
            p.remove_param("RSVP");
        }
    }
    out
}

/// A CANCEL for `cal`: STATUS:CANCELLED, the sequence raised.
pub(crate) fn cancel_of(cal: &Cal) -> Cal {
    let mut c = itip(cal, "CANCEL");
    for m in c.mains_mut() {
        m.set("STATUS", "CANCELLED");
        let seq = m
            .value("SEQUENCE")
            .and_then(|s| s.trim().parse::<u32>().ok())
            .unwrap_or(0);
        m.set("SEQUENCE", &(seq.saturating_add(1)).to_string());
    }
    c
}

fn server_schedules(cal: &Cal, addr: &str) -> bool {
    cal.attendee(addr).is_none_or(|p| {
        p.param("SCHEDULE-AGENT")
            .is_none_or(|a| a.eq_ignore_ascii_case("SERVER"))
    })
}

/// `iCalendar date or date-time` → (seconds, is a date), for durations between two
/// values of one kind (same TZID).
fn ical_time(v: &str) -> Option<(i64, bool)> {
    let v = v.trim().trim_end_matches('Z');
    let num = |r: std::ops::Range<usize>| v.get(r)?.parse::<u32>().ok();
    let date = time::Date::from_calendar_date(
        num(0..4)? as i32,
        time::Month::try_from(num(4..6)? as u8).ok()?,
        num(6..8)? as u8,
    )
    .ok()?;
    if v.len() == 8 {
        return Some((date.midnight().assume_utc().unix_timestamp(), true));
    }
    if v.len() != 15 || v.as_bytes()[8] != b'T' {
        return None;
    }
    let t = time::Time::from_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8).ok()?;
    Some((
        time::PrimitiveDateTime::new(date, t)
            .assume_utc()
            .unix_timestamp(),
        false,
    ))
}

/// An override of `copy`'s master for the instance `rid` (a RECURRENCE-ID property):
/// the master without its rule, starting at the instance, with the master's length.
/// `None` unless the master really has an instance there (so a REPLY cannot add an
/// occurrence at a time of its choosing). `deadline` bounds the expansion, shared by
/// every instance of one REPLY.
async fn instance_override(copy: &Cal, rid: &Prop, deadline: std::time::Instant) -> Option<Comp> {
    use super::recur;
    let master = copy.mains().find(|m| m.prop("RECURRENCE-ID").is_none())?;
    master.prop("RRULE").or_else(|| master.prop("RDATE"))?;
    let start = master.prop("DTSTART")?;
    let length = match (master.prop("DTEND"), master.prop("DURATION")) {
        (Some(end), _) => {
            let (s, sd) = ical_time(&start.value)?;
            let (e, ed) = ical_time(&end.value)?;
            if sd != ed || start.param("TZID") != end.param("TZID") || e < s {
                return None;
            }
            Some(if sd {
                format!("P{}D", (e - s) / 86_400)
            } else {
                format!("PT{}S", e - s)
            })
        }
        (None, Some(d)) => Some(d.value.clone()),
        (None, None) => None,
    };
    let mut o = master.clone();
    o.subs.clear();
    o.props.retain(|p| {
        !matches!(
            p.name.as_str(),
            "RRULE" | "RDATE" | "EXDATE" | "EXRULE" | "DTSTART" | "DTEND" | "DURATION"
        )
    });
    let mut dtstart = rid.clone();
    dtstart.name = "DTSTART".into();
    dtstart.remove_param("RANGE");
    let mut rid = rid.clone();
    rid.remove_param("RANGE");
    o.props.insert(0, rid);
    o.props.insert(0, dtstart);
    if let Some(l) = length {
        o.props.push(Prop::new("DURATION", &l));
    }
    // The instance's start, in UTC, from the override alone (time zones of the copy).
    let mut alone = copy.clone();
    alone.root.subs.retain(|c| !super::ical::is_main(&c.name));
    let mut probe = o.clone();
    probe.remove("RECURRENCE-ID");
    alone.root.subs.push(probe);
    let (alone, whole) = (alone.to_text(), copy.to_text());
    recur::blocking(move || {
        let at = index_icalendar(&alone).ok()?.start_ms?;
        let ical = recur::parse(&whole)?;
        if std::time::Instant::now() > deadline {
            return None;
        }
        let x = recur::expand_parsed(
            &ical,
            Some(at),
            Some(at.saturating_add(1)),
            recur::Tz::UTC,
            deadline,
        );
        x.instances
            .iter()
            .any(|i| i.start_ms == at && i.rid_ms.is_none_or(|r| r == at))
            .then_some(())
    })
    .await
    .flatten()?;
    Some(o)
}

/// Writes to another account's copy are tried this many times (the first and up to
/// three retries) when the copy changed between the read and the write (re-read and
/// merged again each time); so is an organiser's PUT without a precondition when a
/// reply lands between its read and its write.
const SCHED_ATTEMPTS: usize = 4;

/// The UTC instant of a RECURRENCE-ID (or any date-time property) of `cal`, with the
/// time zones `cal` carries; `None` when it does not resolve.
fn rid_instant(cal: &Cal, rid: &Prop) -> Option<i64> {
    let mut probe = cal.clone();
    probe.set_method(None);
    probe.root.subs.retain(|c| !super::ical::is_main(&c.name));
    let mut ev = Comp::new("VEVENT");
    ev.props.push(Prop::new("UID", "probe"));
    ev.props.push(Prop::new("DTSTAMP", "20000101T000000Z"));
    let mut start = rid.clone();
    start.name = "DTSTART".into();
    start.remove_param("RANGE");
    ev.props.push(start);
    probe.root.subs.push(ev);
    index_icalendar(&probe.to_text()).ok()?.start_ms
}

/// Whether a main component of `a` (in `ca`) and one of `b` (in `cb`) are the same
/// instance: both masters, or RECURRENCE-IDs at the same UTC instant (the raw values
/// when one does not resolve).
fn same_instance(ca: &Cal, a: &Comp, cb: &Cal, b: &Comp) -> bool {
    match (a.prop("RECURRENCE-ID"), b.prop("RECURRENCE-ID")) {
        (None, None) => true,
        (Some(x), Some(y)) => match (rid_instant(ca, x), rid_instant(cb, y)) {
            (Some(i), Some(j)) => i == j,
            _ => rid_key(a) == rid_key(b),
        },
        _ => false,
    }
}

/// An iTIP message about instances only (every main component has a RECURRENCE-ID),
/// as Outlook and Exchange send for one occurrence.
fn instances_only(cal: &Cal) -> bool {
    cal.mains().next().is_some() && cal.mains().all(|c| c.prop("RECURRENCE-ID").is_some())
}

fn has_master(cal: &Cal) -> bool {
    cal.mains().any(|c| c.prop("RECURRENCE-ID").is_none())
}

fn comp_sequence(c: &Comp) -> u32 {
    c.value("SEQUENCE")
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(0)
}

/// Whether `msg` is older (RFC 5546 §2.1.5) than the copy `old`: some component of it
/// has a lower SEQUENCE than the same instance in the copy.
pub(crate) fn older_than_copy(old: &Cal, msg: &Cal) -> bool {
    msg.mains().any(|m| {
        old.mains()
            .find(|o| same_instance(old, o, msg, m))
            .is_some_and(|o| comp_sequence(o) > comp_sequence(m))
    })
}

/// Time zones of `from` that `into` lacks (by TZID), added to `into`.
fn add_missing_timezones(into: &mut Cal, from: &Cal) {
    for tz in from.root.subs.iter().filter(|c| c.name == "VTIMEZONE") {
        let id = tz.value("TZID").map(str::trim);
        if !into
            .root
            .subs
            .iter()
            .any(|c| c.name == "VTIMEZONE" && c.value("TZID").map(str::trim) == id)
        {
            let at = into
                .root
                .subs
                .iter()
                .position(|c| super::ical::is_main(&c.name))
                .unwrap_or(into.root.subs.len());
            into.root.subs.insert(at, tz.clone());
        }
    }
}

/// The timing of one component (what re-asks an attendee when it changes).
fn comp_timing(c: &Comp) -> Vec<Option<String>> {
    ["DTSTART", "DTEND", "DURATION", "DUE"]
        .iter()
        .map(|n| c.value(n).map(|v| v.trim().to_string()))
        .collect()
}

/// A REQUEST about some instances merged into the copy `old` (which has a master):
/// each instance replaces the copy's override for it, or is added; the rest of the
/// series stays. `addr`'s PARTSTAT in each: `decided`, else the old override's (or the
/// master's for an instance not moved) while its timing stands, else NEEDS-ACTION.
fn merge_instances(old: &Cal, request: &Cal, addr: &str, decided: Option<&str>) -> Cal {
    let mut copy = old.clone();
    copy.set_method(None);
    add_missing_timezones(&mut copy, request);
    let master_ps = old
        .mains()
        .find(|c| c.prop("RECURRENCE-ID").is_none())
        .and_then(|m| m.attendee(addr))
        .and_then(|a| a.param("PARTSTAT"))
        .map(str::to_string);
    for inst in request.mains() {
        let mut inst = inst.clone();
        let previous = old
            .mains()
            .find(|o| o.prop("RECURRENCE-ID").is_some() && same_instance(old, o, request, &inst))
            .cloned();
        let unmoved = inst
            .prop("RECURRENCE-ID")
            .zip(inst.prop("DTSTART"))
            .is_some_and(|(r, d)| {
                rid_instant(request, r).is_some()
                    && rid_instant(request, r) == rid_instant(request, d)
            });
        let ps = match (decided, &previous) {
            (Some(d), _) => Some(d.to_string()),
            (None, Some(p)) if comp_timing(p) == comp_timing(&inst) => p
                .attendee(addr)
                .and_then(|a| a.param("PARTSTAT"))
                .map(str::to_string),
            (None, None) if unmoved => master_ps.clone(),
            _ => None,
        }
        .unwrap_or_else(|| "NEEDS-ACTION".into());
        if let Some(a) = inst.attendee_mut(addr) {
            a.set_param("PARTSTAT", &ps);
        }
        copy.root.subs.retain(|o| {
            !(super::ical::is_main(&o.name)
                && o.prop("RECURRENCE-ID").is_some()
                && same_instance(old, o, request, &inst))
        });
        copy.root.subs.push(inst);
    }
    copy
}

/// A CANCEL of some instances applied to the copy `old` (which has a master): each
/// instance's override goes and the master gets an EXDATE for it; the rest of the
/// series stays.
fn cancel_instances(old: &Cal, cancel: &Cal) -> Cal {
    let mut copy = old.clone();
    copy.set_method(None);
    let mut exdates = Vec::new();
    for inst in cancel.mains() {
        let Some(rid) = inst.prop("RECURRENCE-ID") else {
            continue;
        };
        copy.root.subs.retain(|o| {
            !(super::ical::is_main(&o.name)
                && o.prop("RECURRENCE-ID").is_some()
                && same_instance(old, o, cancel, inst))
        });
        let mut ex = rid.clone();
        ex.name = "EXDATE".into();
        ex.remove_param("RANGE");
        let is_date = rid.value.trim().len() == 8
            || rid
                .param("VALUE")
                .is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
        let tz_known = rid.param("TZID").is_none_or(|id| {
            old.root
                .subs
                .iter()
                .any(|c| c.name == "VTIMEZONE" && c.value("TZID").map(str::trim) == Some(id.trim()))
        });
        if !is_date && !tz_known {
            // The copy cannot resolve the message's zone: the instant in UTC.
            let Some(at) = rid_instant(cancel, rid) else {
                continue;
            };
            if time::OffsetDateTime::from_unix_timestamp(at.div_euclid(1000)).is_err() {
                continue;
            }
            ex = Prop::new("EXDATE", &super::ical::utc_stamp(at));
        }
        exdates.push(ex);
    }
    if let Some(m) = copy
        .root
        .subs
        .iter_mut()
        .find(|c| super::ical::is_main(&c.name) && c.prop("RECURRENCE-ID").is_none())
    {
        m.props.extend(exdates);
    }
    copy
}

/// Indexes an object off the async workers (a series may take a while).
async fn index_blocking(text: String) -> Option<super::DavIndex> {
    tokio::task::spawn_blocking(move || index_icalendar(&text).ok())
        .await
        .ok()
        .flatten()
}

impl Core {
    /// The account's collections with its inbox (made when missing: accounts made before
    /// scheduling). Only a collection of kind [`DavKind::Inbox`] is the inbox (clients
    /// cannot name one `inbox`: [`super::share::reserved_name`]).
    pub(crate) async fn sched_with_inbox(
        &self,
        account: PrincipalId,
        have: Vec<DavCollection>,
    ) -> Result<Vec<DavCollection>> {
        if have.iter().any(|c| c.kind == DavKind::Inbox) {
            return Ok(have);
        }
        let inbox = DavCollection {
            timezone: None,
            id: DavCollectionId::generate(),
            account,
            kind: DavKind::Inbox,
            name: INBOX.into(),
            display_name: "Scheduling inbox".into(),
            color: None,
            order: None,
            description: None,
            components: vec![],
            modseq: 0,
            created_ms: now_ms(),
        };
        match self.store.write(vec![Op::CreateDavCollection(inbox)]).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self.store.dav_collections(account).await?)
    }

    /// Another account's collections (the defaults made on first use), for deliveries.
    async fn sched_collections(&self, account: PrincipalId) -> Result<Vec<DavCollection>> {
        let have = self.store.dav_collections(account).await?;
        if !have.is_empty() {
            return self.sched_with_inbox(account, have).await;
        }
        let ops: Vec<Op> = super::DEFAULT_COLLECTIONS
            .iter()
            .map(|(name, kind, display)| {
                Op::CreateDavCollection(DavCollection {
                    id: DavCollectionId::generate(),
                    account,
                    kind: *kind,
                    name: (*name).into(),
                    display_name: (*display).into(),
                    color: None,
                    order: None,
                    description: None,
                    timezone: None,
                    components: super::default_components(*kind),
                    modseq: 0,
                    created_ms: now_ms(),
                })
            })
            .collect();
        match self.store.write(ops).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self.store.dav_collections(account).await?)
    }

    /// The primary address of a principal.
    pub(crate) async fn sched_address(&self, p: &Principal) -> Result<String> {
        let d = self
            .store
            .domains()
            .await?
            .into_iter()
            .find(|d| d.id == p.domain)
            .ok_or_else(|| CoreError::Internal("principal without domain".into()))?;
        Ok(format!("{}@{}", p.local_part, d.name))
    }

    /// Who a calendar user address is, seen from the domain `viewer` (the acting
    /// account's, or the recipient's of a mailed message): an account of that domain (by
    /// its primary address or an alias leading to exactly one account), another
    /// domain's, or nobody. Scheduling does not cross tenants: an account or address of
    /// another hosted domain is [`Recipient::External`] (reached by iMIP through the
    /// queue, as any other domain), so a user of one domain neither writes into another
    /// domain's calendars nor learns which of its addresses exist.
    pub(crate) async fn sched_classify(&self, addr: &str, viewer: DomainId) -> Result<Recipient> {
        let Ok(a) = parse_address(addr) else {
            return Ok(Recipient::Unknown);
        };
        let own_domain = self
            .store
            .domains()
            .await?
            .into_iter()
            .find(|d| d.id == viewer)
            .is_some_and(|d| {
                d.name
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(a.domain().trim_end_matches('.'))
            });
        let local = |p: Principal| {
            if p.domain == viewer {
                Recipient::Local(p)
            } else {
                Recipient::External
            }
        };
        if let Some(p) = self.find_principal(&a).await? {
            return Ok(match p.kind {
                PrincipalKind::Individual | PrincipalKind::Resource | PrincipalKind::Shared => {
                    local(p)
                }
                PrincipalKind::Group if own_domain => Recipient::Unknown,
                PrincipalKind::Group => Recipient::External,
            });
        }
        Ok(match self.resolve(&a).await? {
            Resolution::NotOurs => Recipient::External,
            Resolution::Deliver {
                local: l, external, ..
            } if l.len() == 1 && external.is_empty() => local(l[0].clone()),
            _ if own_domain => Recipient::Unknown,
            _ => Recipient::External,
        })
    }

    /// The object with this UID in one of the account's calendars, with its data.
    pub(crate) async fn sched_find(
        &self,
        account: PrincipalId,
        uid: &str,
    ) -> Result<Option<(DavCollection, DavResource)>> {
        for c in self.sched_collections(account).await? {
            if !matches!(c.kind, DavKind::Calendar | DavKind::Tasks) {
                continue;
            }
            let list = self
                .store
                .dav_resources(account, c.id, DavFilter::default())
                .await?;
            if let Some(r) = list.into_iter().find(|r| r.uid == uid) {
                let full = self
                    .store
                    .dav_resources_named(account, c.id, vec![r.name.clone()])
                    .await?;
                if let Some(r) = full.into_iter().next() {
                    return Ok(Some((c, r)));
                }
            }
        }
        Ok(None)
    }

    /// A `PutDavResource` for another account's copy (indexed like a PUT).
    async fn sched_put_op(
        &self,
        account: PrincipalId,
        col: &DavCollection,
        name: &str,
        text: String,
        expect: DavExpect,
    ) -> Result<Op> {
        let ix = index_blocking(text.clone())
            .await
            .ok_or_else(|| CoreError::invalid("calendar-data", "not a valid object"))?;
        Ok(Op::PutDavResource {
            resource: DavResource {
                id: DavResourceId::generate(),
                account,
                collection: col.id,
                name: name.into(),
                etag: etag_of(text.as_bytes()),
                size: text.len() as u64,
                data: text,
                component: ix.component,
                uid: ix.uid,
                start_ms: ix.start_ms,
                end_ms: ix.end_ms,
                modseq: 0,
                modified_ms: now_ms(),
            },
            expect,
        })
    }

    /// An inbox item (an iTIP message, kept as received), from `sender` (the organiser
    /// of a REQUEST or CANCEL, the attendee of a REPLY). One item per object and sender,
    /// named by a hash of the two: the newest message replaces the one before (a
    /// retried SMTP delivery does not duplicate it, and an inbox does not grow with
    /// every update of one event).
    async fn sched_inbox_op(&self, account: PrincipalId, sender: &str, itip: &Cal) -> Result<Op> {
        use sha2::{Digest, Sha256};
        let inbox = self
            .sched_collections(account)
            .await?
            .into_iter()
            .find(|c| c.kind == DavKind::Inbox)
            .ok_or_else(|| CoreError::Internal("no scheduling inbox".into()))?;
        let text = itip.to_text();
        let mut h = Sha256::new();
        h.update(itip.uid().unwrap_or_default().as_bytes());
        h.update([0]);
        h.update(sender.to_ascii_lowercase().as_bytes());
        let name = format!("{}.ics", &hex::encode(h.finalize())[..32]);
        let component = itip
            .master()
            .map(|c| c.name.clone())
            .unwrap_or_else(|| "VEVENT".into());
        Ok(Op::PutDavResource {
            resource: DavResource {
                id: DavResourceId::generate(),
                account,
                collection: inbox.id,
                name: name.clone(),
                etag: etag_of(text.as_bytes()),
                size: text.len() as u64,
                data: text,
                component,
                // Several messages about one object: the item's own name keeps the
                // collection's one-UID rule out of the way.
                uid: name,
                start_ms: None,
                end_ms: None,
                modseq: 0,
                modified_ms: now_ms(),
            },
            expect: DavExpect::Any,
        })
    }

    /// Delivers a REQUEST to a local attendee: the object in its calendar (its PARTSTAT
    /// kept when the timing did not change, else NEEDS-ACTION, or `decided` for a room)
    /// and the message in its inbox. `organizer` must be the existing copy's organiser.
    /// A REQUEST about instances only (no master) changes those instances of an existing
    /// series and leaves the rest. The copy changing in between is retried.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn sched_deliver(
        &self,
        ctx: &Ctx,
        organizer: &str,
        p: &Principal,
        addr: &str,
        request: &Cal,
        decided: Option<&str>,
    ) -> Result<()> {
        let Some(uid) = request.uid() else {
            return Err(CoreError::invalid("UID", "missing"));
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let ops = self
                .sched_deliver_ops(ctx, organizer, p, addr, request, decided, &uid)
                .await?;
            match self.store.write(ops).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Modified(_)) if attempt < SCHED_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A `denied` ledger entry for a scheduling write refused (a copy with another
    /// organiser: a UID collision, or an attempt at another's event), and the error.
    async fn sched_denied(
        &self,
        ctx: &Ctx,
        action: &str,
        addr: &str,
        uid: &str,
        why: &str,
        details: serde_json::Value,
    ) -> CoreError {
        if let Err(e) = self
            .record(
                ctx,
                action,
                Some(addr),
                vec![format!("uid:{uid}")],
                "denied",
                None,
                Some(json!({"why": why, "details": details})),
            )
            .await
        {
            tracing::warn!(error = %e, "ledger entry not written");
        }
        CoreError::Forbidden(why.to_string())
    }

    #[allow(clippy::too_many_arguments)]
    async fn sched_deliver_ops(
        &self,
        ctx: &Ctx,
        organizer: &str,
        p: &Principal,
        addr: &str,
        request: &Cal,
        decided: Option<&str>,
        uid: &str,
    ) -> Result<Vec<Op>> {
        let existing = self.sched_find(p.id, uid).await?;
        let old = existing.as_ref().and_then(|(_, r)| Cal::parse(&r.data));
        if let Some(o) = &old
            && o.organizer().as_deref() != Some(organizer)
        {
            return Err(self
                .sched_denied(
                    ctx,
                    "dav.schedule.deliver",
                    addr,
                    uid,
                    "the attendee's copy has another organiser",
                    json!({"organizer": organizer}),
                )
                .await);
        }
        let (copy, partstat) = match &old {
            Some(o) if instances_only(request) && has_master(o) => {
                let (o, r, a) = (o.clone(), request.clone(), addr.to_string());
                let d = decided.map(str::to_string);
                let copy =
                    tokio::task::spawn_blocking(move || merge_instances(&o, &r, &a, d.as_deref()))
                        .await
                        .map_err(|_| CoreError::Internal("merge failed".into()))?;
                let ps = request
                    .mains()
                    .filter_map(|m| copy.mains().find(|c| rid_key(c) == rid_key(m)))
                    .filter_map(|c| c.attendee(addr))
                    .filter_map(|a| a.param("PARTSTAT"))
                    .next()
                    .unwrap_or("NEEDS-ACTION")
                    .to_string();
                (copy, ps)
            }
            _ => {
                let mut copy = request.clone();
                copy.set_method(None);
                let partstat = match (decided, &old) {
                    (Some(d), _) => d.to_string(),
                    (None, Some(o)) if o.timing() == copy.timing() => {
                        o.partstat(addr).unwrap_or_else(|| "NEEDS-ACTION".into())
                    }
                    _ => "NEEDS-ACTION".into(),
                };
                copy.set_partstat(addr, &partstat);
                (copy, partstat)
            }
        };
        let mut ops = Vec::new();
        let room_declines = decided == Some("DECLINED")
            && p.kind == PrincipalKind::Resource
            && !instances_only(request);
        match (&existing, room_declines) {
            (Some((c, r)), true) => ops.push(Op::DeleteDavResource {
                account: p.id,
                collection: c.id,
                name: r.name.clone(),
                expect: DavExpect::Etag(r.etag.clone()),
            }),
            (None, true) => {}
            (Some((c, r)), false) => ops.push(
                self.sched_put_op(
                    p.id,
                    c,
                    &r.name,
                    copy.to_text(),
                    DavExpect::Etag(r.etag.clone()),
                )
                .await?,
            ),
            (None, false) => {
                let comp = copy
                    .master()
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| "VEVENT".into());
                let cols = self.sched_collections(p.id).await?;
                let Some(col) = cols
                    .iter()
                    .filter(|c| matches!(c.kind, DavKind::Calendar | DavKind::Tasks))
                    .filter(|c| c.components.contains(&comp))
                    .min_by_key(|c| (c.name != "calendar" && c.name != "tasks", c.created_ms))
                else {
                    return Err(CoreError::NotFound("no calendar takes it".into()));
                };
                let wanted = format!("{uid}.ics");
                let name = if super::valid_segment(&wanted)
                    && self
                        .store
                        .dav_resources_named(p.id, col.id, vec![wanted.clone()])
                        .await?
                        .is_empty()
                {
                    wanted
                } else {
                    random_name()
                };
                ops.push(
                    self.sched_put_op(p.id, col, &name, copy.to_text(), DavExpect::Absent)
                        .await?,
                );
            }
        }
        ops.push(
            self.sched_inbox_op(p.id, organizer, &itip(request, "REQUEST"))
                .await?,
        );
        ops.push(Op::AppendLedger(Core::ledger_record(
            ctx,
            "dav.schedule.deliver",
            Some(addr),
            vec![format!("uid:{uid}")],
            "ok",
            None,
            Some(json!({"method": "REQUEST", "organizer": organizer, "partstat": partstat})),
        )));
        Ok(ops)
    }

    /// A CANCEL to a local attendee: its copy (when `organizer` organises it) marked
    /// STATUS:CANCELLED, and the message in its inbox. A CANCEL of instances only (no
    /// master) removes those instances from an existing series (an EXDATE each, their
    /// overrides gone) and leaves the rest. The copy changing in between is retried.
    pub(crate) async fn sched_cancel(
        &self,
        ctx: &Ctx,
        organizer: &str,
        p: &Principal,
        addr: &str,
        cancel: &Cal,
    ) -> Result<()> {
        let Some(uid) = cancel.uid() else {
            return Ok(());
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some((c, r)) = self.sched_find(p.id, &uid).await? else {
                return Ok(());
            };
            let Some(mut copy) = Cal::parse(&r.data) else {
                return Ok(());
            };
            if copy.organizer().as_deref() != Some(organizer) {
                return Err(self
                    .sched_denied(
                        ctx,
                        "dav.schedule.cancel",
                        addr,
                        &uid,
                        "the attendee's copy has another organiser",
                        json!({"organizer": organizer}),
                    )
                    .await);
            }
            if instances_only(cancel) && has_master(&copy) {
                let (o, m) = (copy, cancel.clone());
                copy = tokio::task::spawn_blocking(move || cancel_instances(&o, &m))
                    .await
                    .map_err(|_| CoreError::Internal("merge failed".into()))?;
            } else {
                for m in copy.mains_mut() {
                    m.set("STATUS", "CANCELLED");
                }
            }
            let ops = vec![
                self.sched_put_op(p.id, &c, &r.name, copy.to_text(), DavExpect::Etag(r.etag))
                    .await?,
                self.sched_inbox_op(p.id, organizer, cancel).await?,
                Op::AppendLedger(Core::ledger_record(
                    ctx,
                    "dav.schedule.cancel",
                    Some(addr),
                    vec![format!("uid:{uid}")],
                    "ok",
                    None,
                    Some(json!({"method": "CANCEL", "organizer": organizer})),
                )),
            ];
            match self.store.write(ops).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Modified(_)) if attempt < SCHED_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Applies a REPLY from `sender` to the copy `organizer` (account `p`, address
    /// `org_addr`) holds: only that attendee's PARTSTAT changes, and only when the copy
    /// is organised by `org_addr` and lists `sender`. Returns whether anything changed.
    /// The copy changing in between (another reply, the organiser) is retried: read,
    /// merged and written again.
    pub(crate) async fn sched_apply_reply(
        &self,
        ctx: &Ctx,
        p: &Principal,
        org_addr: &str,
        sender: &str,
        reply: &Cal,
    ) -> Result<bool> {
        let Some(uid) = reply.uid() else {
            return Ok(false);
        };
        // One expansion budget for the whole REPLY (its instances' overrides).
        let deadline = std::time::Instant::now() + super::recur::EXPAND_BUDGET;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let Some((c, r)) = self.sched_find(p.id, &uid).await? else {
                return Ok(false);
            };
            let Some(mut copy) = Cal::parse(&r.data) else {
                return Ok(false);
            };
            if copy.organizer().as_deref() != Some(org_addr) || copy.attendee(sender).is_none() {
                // A UID of the organiser's that is not this attendee's event (a collision,
                // or an attempt at someone else's): refused, and on record.
                let _ = self
                    .sched_denied(
                        ctx,
                        "dav.schedule.reply",
                        org_addr,
                        &uid,
                        "the organiser's copy is not organised by it or does not list the attendee",
                        json!({"attendee": sender}),
                    )
                    .await;
                return Ok(false);
            }
            let mut changed = false;
            let mut partstats = Vec::new();
            for rc in reply.mains().take(MAX_REPLY_COMPONENTS) {
                let Some(ps) = rc
                    .attendee(sender)
                    .and_then(|a| a.param("PARTSTAT"))
                    .map(|s| s.trim().to_ascii_uppercase())
                    .filter(|s| PARTSTATS.contains(&s.as_str()))
                else {
                    continue;
                };
                let rid = rc.value("RECURRENCE-ID").map(str::trim);
                if let (Some(rid_prop), Some(r)) = (rc.prop("RECURRENCE-ID"), rid)
                    && !copy
                        .mains()
                        .any(|m| m.value("RECURRENCE-ID").map(str::trim) == Some(r))
                {
                    // An answer for one instance: the organiser's copy gets an override
                    // for it, made from its own master — only when that instance exists.
                    match instance_override(&copy, rid_prop, deadline).await {
                        Some(o) => copy.root.subs.push(o),
                        None => continue,
                    }
                }
                for m in copy.mains_mut() {
                    if rid.is_some() && m.value("RECURRENCE-ID").map(str::trim) != rid {
                        continue;
                    }
                    if let Some(a) = m.attendee_mut(sender)
                        && a.param("PARTSTAT").map(str::to_ascii_uppercase).as_deref()
                            != Some(ps.as_str())
                    {
                        a.set_param("PARTSTAT", &ps);
                        a.set_param("SCHEDULE-STATUS", "2.0");
                        changed = true;
                    }
                }
                partstats.push(ps);
            }
            if !changed {
                return Ok(false);
            }
            let ops = vec![
                self.sched_put_op(p.id, &c, &r.name, copy.to_text(), DavExpect::Etag(r.etag))
                    .await?,
                self.sched_inbox_op(p.id, sender, reply).await?,
                Op::AppendLedger(Core::ledger_record(
                    ctx,
                    "dav.schedule.reply",
                    Some(org_addr),
                    vec![format!("uid:{uid}"), format!("resource:{}", r.name)],
                    "ok",
                    None,
                    Some(json!({"method": "REPLY", "attendee": sender, "partstat": partstats})),
                )),
            ];
            match self.store.write(ops).await {
                Ok(_) => return Ok(true),
                Err(StoreError::Modified(_)) if attempt < SCHED_ATTEMPTS => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// What a room answers to `cal`: DECLINED when its calendars hold busy time (of
    /// another object, not declined by the room) overlapping the event's, else ACCEPTED.
    pub(crate) async fn sched_room_answer(
        &self,
        ctx: &Ctx,
        room: &Principal,
        room_addr: &str,
        cal: &Cal,
    ) -> Result<&'static str> {
        use super::recur;
        let uid = cal.uid().unwrap_or_default();
        let text = cal.to_text();
        let Some(ix) = index_blocking(text.clone()).await else {
            return Ok("DECLINED");
        };
        let Some(start) = ix.start_ms else {
            return Ok("ACCEPTED");
        };
        let end = ix
            .end_ms
            .unwrap_or(start.saturating_add(1))
            .min(start.saturating_add(ROOM_HORIZON_MS));
        let mut others = Vec::new();
        // Floating times are read in the room's calendar zone (its first calendar's).
        let mut room_zone = None;
        for c in self.sched_collections(room.id).await? {
            if c.kind != DavKind::Calendar {
                continue;
            }
            let zone = super::collection_zone(&c);
            room_zone.get_or_insert(zone);
            let list = self
                .store
                .dav_resources(
                    room.id,
                    c.id,
                    DavFilter {
                        component: Some("VEVENT".into()),
                        start_ms: Some(start),
                        end_ms: Some(end),
                        with_data: true,
                    },
                )
                .await?;
            others.extend(list.into_iter().filter(|r| r.uid != uid).map(|r| (zone, r)));
        }
        if !others.is_empty() {
            self.record(
                ctx,
                "dav.schedule.busy",
                Some(room_addr),
                others
                    .iter()
                    .map(|(_, r)| format!("resource:{}", r.name))
                    .collect(),
                "ok",
                None,
                None,
            )
            .await?;
        }
        let room_addr = room_addr.to_string();
        let conflict = recur::blocking(move || {
            let deadline = std::time::Instant::now() + recur::EXPAND_BUDGET;
            let room_zone = room_zone.unwrap_or(recur::Tz::UTC);
            let mine = recur::busy_periods(&text, start, end, room_zone, deadline);
            for (zone, r) in &others {
                let declined = Cal::parse(&r.data)
                    .and_then(|c| c.partstat(&room_addr))
                    .is_some_and(|p| p == "DECLINED");
                if declined {
                    continue;
                }
                for (s, e, _) in recur::busy_periods(&r.data, start, end, *zone, deadline) {
                    if mine.iter().any(|(ms, me, _)| *ms < e && s < *me) {
                        return true;
                    }
                }
            }
            // Out of time: declining is the safe answer for a room.
            std::time::Instant::now() > deadline
        })
        .await
        .unwrap_or(true);
        Ok(if conflict { "DECLINED" } else { "ACCEPTED" })
    }

    /// PUT with implicit scheduling (RFC 6638 §3.2): see the module documentation.
    pub async fn dav_put_scheduled(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        name: &str,
        data: &[u8],
        expect: DavExpect,
        schedule_tag_match: Option<&str>,
    ) -> std::result::Result<PutOutcome, DavWriteError> {
        let out = self
            .dav_put_scheduling(who, col, name, data, expect, schedule_tag_match)
            .await?;
        let tag = std::str::from_utf8(data).ok().and_then(schedule_tag);
        Ok(PutOutcome {
            schedule_tag: if out.rewritten {
                // The stored object is not the one sent; its tag is its own.
                self.store
                    .dav_resources_named(col.account, col.id, vec![name.to_string()])
                    .await?
                    .first()
                    .and_then(|r| schedule_tag(&r.data))
            } else {
                tag
            },
            ..out
        })
    }

    async fn dav_put_scheduling(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        name: &str,
        data: &[u8],
        expect: DavExpect,
        schedule_tag_match: Option<&str>,
    ) -> std::result::Result<PutOutcome, DavWriteError> {
        let mut expect = expect;
        if let Some(want) = schedule_tag_match {
            // RFC 6638 §8.3: the stored object must still have this Schedule-Tag; the
            // write then expects the ETag it was read with (no change in between).
            let now = self
                .store
                .dav_resources_named(col.account, col.id, vec![name.to_string()])
                .await?
                .into_iter()
                .next();
            match now {
                Some(r) if schedule_tag(&r.data).as_deref() == Some(want) => {
                    if expect == DavExpect::Any {
                        expect = DavExpect::Etag(r.etag);
                    }
                }
                _ => return Err(DavWriteError::Precondition),
            }
        }
        if col.kind == DavKind::Inbox {
            return Err(DavWriteError::Core(CoreError::Forbidden(
                "the scheduling inbox is written by the server".into(),
            )));
        }
        let plain = |(created, etag): (bool, String)| PutOutcome {
            created,
            etag,
            rewritten: false,
            schedule_tag: None,
        };
        // Scheduling is the owner's: a delegate's write to a shared calendar is plain.
        if !col.kind.is_calendar()
            || col.account != who.principal().id
            || !contains_ci(data, b"ORGANIZER")
        {
            return self.dav_put(who, col, name, data, expect).await.map(plain);
        }
        let parsed = std::str::from_utf8(data)
            .ok()
            .and_then(Cal::parse)
            .filter(|c| c.method().is_none());
        let me = who.address().to_ascii_lowercase();
        let Some(new) = parsed else {
            return self.dav_put(who, col, name, data, expect).await.map(plain);
        };
        let Some(org) = new.organizer() else {
            return self.dav_put(who, col, name, data, expect).await.map(plain);
        };
        let account = who.principal().id;
        let current = self
            .store
            .dav_resources_named(account, col.id, vec![name.to_string()])
            .await?
            .into_iter()
            .next();
        if org == me {
            // The merge (PARTSTATs the server recorded from replies) is of the copy read
            // here: without a condition from the client the write expects that copy, and a
            // reply landing in between makes it read and merge again, so the reply's
            // PARTSTAT is not overwritten by the client's stale one.
            let unconditional = expect == DavExpect::Any;
            let mut current = current;
            let mut attempt = 0;
            loop {
                attempt += 1;
                let old = current.as_ref().and_then(|r| Cal::parse(&r.data));
                // The last attempt is as the client asked (no condition), on a fresh read.
                let expect_now = match (&current, unconditional && attempt < SCHED_ATTEMPTS) {
                    (Some(r), true) => DavExpect::Etag(r.etag.clone()),
                    (None, true) => DavExpect::Absent,
                    (_, false) => expect.clone(),
                };
                match self
                    .sched_organizer_put(who, col, name, data, expect_now, new.clone(), old)
                    .await
                {
                    Err(DavWriteError::Precondition)
                        if unconditional && attempt < SCHED_ATTEMPTS =>
                    {
                        current = self
                            .store
                            .dav_resources_named(account, col.id, vec![name.to_string()])
                            .await?
                            .into_iter()
                            .next();
                    }
                    r => return r,
                }
            }
        }
        let old = current.and_then(|r| Cal::parse(&r.data));
        if new.attendee(&me).is_none() {
            return self.dav_put(who, col, name, data, expect).await.map(plain);
        }
        let out = self
            .dav_put(who, col, name, data, expect)
            .await
            .map(plain)?;
        // A REPLY names the components whose PARTSTAT changed (the master, or one
        // instance declined in an override).
        let changed = changed_instances(old.as_ref(), &new, &me);
        if !changed.is_empty() && server_schedules(&new, &me) {
            let reply = reply_with(&new, &me, None, Some(&changed));
            if let Err(e) = self
                .sched_send_reply(
                    who.ctx(),
                    (account, who.principal().domain),
                    &me,
                    &org,
                    &reply,
                )
                .await
            {
                tracing::warn!(error = %e, "scheduling reply not delivered");
            }
        }
        Ok(out)
    }

    /// A REPLY from `me` (account `account` of domain `domain`) to `org`: applied to a
    /// local organiser's copy, mailed to another domain's.
    pub(crate) async fn sched_send_reply(
        &self,
        ctx: &Ctx,
        (account, domain): (PrincipalId, DomainId),
        me: &str,
        org: &str,
        reply: &Cal,
    ) -> Result<()> {
        match self.sched_classify(org, domain).await? {
            Recipient::Local(p) if p.id == account => {}
            Recipient::Local(p) => {
                let org_addr = self.sched_address(&p).await?;
                self.sched_apply_reply(ctx, &p, &org_addr, me, reply)
                    .await?;
            }
            Recipient::External => {
                self.imip_send(ctx, Some(account), me, org, reply).await?;
            }
            Recipient::Unknown => {}
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn sched_organizer_put(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        name: &str,
        data: &[u8],
        expect: DavExpect,
        mut new: Cal,
        old: Option<Cal>,
    ) -> std::result::Result<PutOutcome, DavWriteError> {
        let me = who.address().to_ascii_lowercase();
        let ctx = who.ctx();
        let attendees: Vec<String> = new.attendees().into_iter().filter(|a| *a != me).collect();
        if attendees.len() > MAX_ATTENDEES {
            return Err(DavWriteError::Core(CoreError::Refused(format!(
                "at most {MAX_ATTENDEES} attendees"
            ))));
        }
        let significant = old
            .as_ref()
            .is_none_or(|o| o.significant() != new.significant());
        let retimed = old.as_ref().is_none_or(|o| o.timing() != new.timing());
        let before = Cal::parse(std::str::from_utf8(data).unwrap_or_default()).map(|c| c.to_text());
        let mut deliveries: Vec<(String, Recipient)> = Vec::new();
        for a in &attendees {
            if !server_schedules(&new, a) {
                continue;
            }
            let forced = new
                .attendee(a)
                .is_some_and(|p| p.param("SCHEDULE-FORCE-SEND").is_some());
            let was_there = old.as_ref().is_some_and(|o| o.attendee(a).is_some());
            // PARTSTATs come from replies: kept while the timing stands.
            if let Some(o) = &old
                && was_there
                && !retimed
                && let Some(ps) = o.partstat(a)
            {
                new.set_partstat(a, &ps);
            }
            let send = significant || forced || !was_there;
            // A re-timed event asks everyone again (their copies go to NEEDS-ACTION).
            if retimed && was_there && send {
                new.set_partstat(a, "NEEDS-ACTION");
            }
            let r = self.sched_classify(a, who.principal().domain).await?;
            if let Recipient::Local(p) = &r
                && p.id == who.principal().id
            {
                // Another address of the organiser's own (an alias): nothing to send.
                continue;
            }
            let status = match &r {
                Recipient::Local(_) => "1.2",
                Recipient::External => "1.1",
                Recipient::Unknown => "3.7",
            };
            if let Recipient::Local(p) = &r
                && p.kind == PrincipalKind::Resource
                && send
            {
                let answer = self.sched_room_answer(ctx, p, a, &new).await?;
                new.set_partstat(a, answer);
            }
            for m in new.mains_mut() {
                if let Some(p) = m.attendee_mut(a) {
                    p.remove_param("SCHEDULE-FORCE-SEND");
                    if send {
                        p.set_param("SCHEDULE-STATUS", status);
                    } else if let Some(s) = old
                        .as_ref()
                        .and_then(|o| o.attendee(a))
                        .and_then(|o| o.param("SCHEDULE-STATUS"))
                    {
                        p.set_param("SCHEDULE-STATUS", s);
                    }
                }
            }
            if send {
                deliveries.push((a.clone(), r));
            }
        }
        let removed: Vec<String> = old
            .as_ref()
            .map(|o| {
                o.attendees()
                    .into_iter()
                    .filter(|a| *a != me && !attendees.contains(a) && server_schedules(o, a))
                    .collect()
            })
            .unwrap_or_default();
        let text = new.to_text();
        let rewritten = before.as_deref() != Some(text.as_str());
        let bytes: &[u8] = if rewritten { text.as_bytes() } else { data };
        let (created, etag) = self.dav_put(who, col, name, bytes, expect).await?;
        let request = itip(&new, "REQUEST");
        for (a, r) in deliveries {
            let res = match r {
                Recipient::Local(p) => {
                    let decided = (p.kind == PrincipalKind::Resource)
                        .then(|| new.partstat(&a))
                        .flatten();
                    self.sched_deliver(ctx, &me, &p, &a, &request, decided.as_deref())
                        .await
                }
                Recipient::External => {
                    self.imip_send(ctx, Some(who.principal().id), &me, &a, &request)
                        .await
                }
                Recipient::Unknown => Ok(()),
            };
            if let Err(e) = res {
                tracing::warn!(error = %e, attendee = %a, "scheduling request not delivered");
            }
        }
        if let Some(o) = &old
            && !removed.is_empty()
        {
            self.sched_cancel_to(who, o, &removed).await;
        }
        Ok(PutOutcome {
            created,
            etag,
            rewritten,
            schedule_tag: None,
        })
    }

    /// CANCELs `cal` to `to` (a removed attendee, or everyone when it is deleted).
    async fn sched_cancel_to(&self, who: &Authenticated, cal: &Cal, to: &[String]) {
        let me = who.address().to_ascii_lowercase();
        for a in to {
            let mut c = cal.clone();
            // Each removed attendee hears only about itself when others stay.
            for m in c.mains_mut() {
                m.props
                    .retain(|p| p.name != "ATTENDEE" || p.address().as_deref() == Some(a.as_str()));
            }
            let cancel = cancel_of(&c);
            let res = match self.sched_classify(a, who.principal().domain).await {
                Ok(Recipient::Local(p)) => self.sched_cancel(who.ctx(), &me, &p, a, &cancel).await,
                Ok(Recipient::External) => {
                    self.imip_send(who.ctx(), Some(who.principal().id), &me, a, &cancel)
                        .await
                }
                Ok(Recipient::Unknown) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                tracing::warn!(error = %e, attendee = %a, "scheduling cancel not delivered");
            }
        }
    }

    /// DELETE with implicit scheduling: the organiser's removal cancels for every
    /// attendee, an attendee's declines.
    pub async fn dav_delete_scheduled(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        name: &str,
        expect: DavExpect,
    ) -> std::result::Result<(), DavWriteError> {
        if !matches!(col.kind, DavKind::Calendar | DavKind::Tasks)
            || col.account != who.principal().id
        {
            return self.dav_delete(who, col, name, expect).await;
        }
        let old = self
            .store
            .dav_resources_named(who.principal().id, col.id, vec![name.to_string()])
            .await?
            .into_iter()
            .next()
            .filter(|r| contains_ci(r.data.as_bytes(), b"ORGANIZER"))
            .and_then(|r| Cal::parse(&r.data));
        self.dav_delete(who, col, name, expect).await?;
        let Some(old) = old else {
            return Ok(());
        };
        let me = who.address().to_ascii_lowercase();
        let Some(org) = old.organizer() else {
            return Ok(());
        };
        if org == me {
            let to: Vec<String> = old
                .attendees()
                .into_iter()
                .filter(|a| *a != me && server_schedules(&old, a))
                .collect();
            self.sched_cancel_to(who, &old, &to).await;
        } else if old.attendee(&me).is_some()
            && server_schedules(&old, &me)
            && old
                .master()
                .and_then(|m| m.value("STATUS"))
                .is_none_or(|s| !s.trim().eq_ignore_ascii_case("CANCELLED"))
            && old.partstat(&me).as_deref() != Some("DECLINED")
        {
            let reply = reply_of(&old, &me, "DECLINED");
            if let Err(e) = self
                .sched_send_reply(
                    who.ctx(),
                    (who.principal().id, who.principal().domain),
                    &me,
                    &org,
                    &reply,
                )
                .await
            {
                tracing::warn!(error = %e, "scheduling reply not delivered");
            }
        }
        Ok(())
    }

    /// A free/busy request POSTed to the caller's outbox (RFC 6638 §5): one VFREEBUSY
    /// per ATTENDEE, for accounts of the caller's own domain; others answer 3.7. The
    /// ORGANIZER must be the caller.
    pub async fn sched_freebusy(
        &self,
        who: &Authenticated,
        body: &[u8],
    ) -> Result<Vec<FreeBusyAnswer>> {
        use super::recur;
        let bad = |s: &str| CoreError::invalid("calendar-data", s.to_string());
        let text = std::str::from_utf8(body).map_err(|_| bad("not UTF-8"))?;
        let cal = Cal::parse(text).ok_or_else(|| bad("not an iCalendar object"))?;
        if cal.method().as_deref() != Some("REQUEST") {
            return Err(bad("METHOD:REQUEST expected"));
        }
        let fb = cal
            .root
            .subs
            .iter()
            .find(|c| c.name == "VFREEBUSY")
            .ok_or_else(|| bad("no VFREEBUSY"))?;
        let me = who.address().to_ascii_lowercase();
        if fb.organizer().as_deref() != Some(me.as_str()) {
            return Err(CoreError::Forbidden(
                "the ORGANIZER must be the caller's address".into(),
            ));
        }
        let when = |n: &str| {
            fb.value(n)
                .and_then(|v| super::ical::parse_utc(v.trim()))
                .ok_or_else(|| bad("DTSTART and DTEND in UTC"))
        };
        let (start, end) = (when("DTSTART")?, when("DTEND")?);
        if end <= start || end - start > MAX_FREEBUSY_RANGE_MS {
            return Err(bad("range empty or too long"));
        }
        let recipients: Vec<String> = fb
            .props_named("ATTENDEE")
            .filter_map(|p| p.address())
            .collect();
        if recipients.is_empty() || recipients.len() > MAX_FREEBUSY_RECIPIENTS {
            return Err(CoreError::Refused(format!(
                "1 to {MAX_FREEBUSY_RECIPIENTS} recipients"
            )));
        }
        let my_domain = who.principal().domain;
        // One expansion budget for the whole request, not one per recipient.
        let deadline = std::time::Instant::now() + recur::EXPAND_BUDGET;
        let mut out = Vec::new();
        for a in recipients {
            let p = match self.sched_classify(&a, my_domain).await? {
                Recipient::Local(p) if p.domain == my_domain => p,
                _ => {
                    out.push(FreeBusyAnswer {
                        recipient: a,
                        status: "3.7;Invalid calendar user".into(),
                        data: None,
                    });
                    continue;
                }
            };
            let mut list = Vec::new();
            for c in self.sched_collections(p.id).await? {
                if c.kind != DavKind::Calendar {
                    continue;
                }
                let zone = super::collection_zone(&c);
                list.extend(
                    self.store
                        .dav_resources(
                            p.id,
                            c.id,
                            DavFilter {
                                component: Some("VEVENT".into()),
                                start_ms: Some(start),
                                end_ms: Some(end),
                                with_data: true,
                            },
                        )
                        .await?
                        .into_iter()
                        .map(|r| (zone, r)),
                );
            }
            self.record(
                who.ctx(),
                "dav.schedule.busy",
                Some(&a),
                list.iter()
                    .map(|(_, r)| format!("resource:{}", r.name))
                    .collect(),
                "ok",
                None,
                None,
            )
            .await?;
            let addr = a.clone();
            let periods = recur::blocking(move || {
                let mut periods = Vec::new();
                for (zone, r) in &list {
                    let declined = Cal::parse(&r.data)
                        .and_then(|c| c.partstat(&addr))
                        .is_some_and(|p| p == "DECLINED");
                    if !declined {
                        periods.extend(recur::busy_periods(&r.data, start, end, *zone, deadline));
                    }
                }
                (periods, std::time::Instant::now() > deadline)
            })
            .await;
            let Some((periods, false)) = periods else {
                out.push(FreeBusyAnswer {
                    recipient: a,
                    status: "5.1;Service unavailable".into(),
                    data: None,
                });
                continue;
            };
            let body = recur::freebusy_ical(start, end, periods);
            let Some(mut reply) = Cal::parse(&body) else {
                continue;
            };
            reply.set_method(Some("REPLY"));
            if let Some(v) = reply.root.subs.iter_mut().find(|c| c.name == "VFREEBUSY") {
                if let Some(uid) = fb.value("UID") {
                    v.props.insert(0, super::ical::Prop::new("UID", uid));
                }
                if let Some(o) = fb.prop("ORGANIZER") {
                    v.props.push(o.clone());
                }
                let mut att = super::ical::Prop::new("ATTENDEE", &format!("mailto:{a}"));
                att.params.clear();
                v.props.push(att);
            }
            out.push(FreeBusyAnswer {
                recipient: a,
                status: "2.0;Success".into(),
                data: Some(reply.to_text()),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EV: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:u1\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300101T090000Z\r\nDTEND:20300101T100000Z\r\nSUMMARY:Plan\r\nORGANIZER:mailto:a@x.org\r\nATTENDEE;PARTSTAT=ACCEPTED;SCHEDULE-STATUS=1.2:mailto:b@x.org\r\nATTENDEE;SCHEDULE-AGENT=CLIENT:mailto:c@y.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn itip_strips_server_parameters() {
        let c = Cal::parse(EV).unwrap();
        let t = itip(&c, "REQUEST").to_text();
        assert!(t.contains("METHOD:REQUEST"));
        assert!(!t.contains("SCHEDULE-STATUS") && !t.contains("SCHEDULE-AGENT"));
        assert!(!server_schedules(&c, "c@y.org"));
        assert!(server_schedules(&c, "b@x.org"));
    }

    #[test]
    fn reply_names_only_the_attendee() {
        let c = Cal::parse(EV).unwrap();
        let r = reply_of(&c, "b@x.org", "DECLINED");
        assert_eq!(r.method().as_deref(), Some("REPLY"));
        assert_eq!(r.attendees(), vec!["b@x.org".to_string()]);
        assert_eq!(r.partstat("b@x.org").as_deref(), Some("DECLINED"));
    }

    #[test]
    fn significance_ignores_partstat_and_stamps() {
        let a = Cal::parse(EV).unwrap();
        let b = Cal::parse(
            &EV.replace("PARTSTAT=ACCEPTED", "PARTSTAT=DECLINED")
                .replace("DTSTAMP:20300101T000000Z", "DTSTAMP:20310101T000000Z"),
        )
        .unwrap();
        assert_eq!(a.significant(), b.significant());
        assert_eq!(a.timing(), b.timing());
        let c = Cal::parse(&EV.replace("T090000Z", "T080000Z")).unwrap();
        assert_ne!(a.timing(), c.timing());
        let d = Cal::parse(&EV.replace("SUMMARY:Plan", "SUMMARY:Other")).unwrap();
        assert_ne!(a.significant(), d.significant());
    }

    #[test]
    fn cancel_marks_cancelled() {
        let c = cancel_of(&Cal::parse(EV).unwrap());
        assert_eq!(c.method().as_deref(), Some("CANCEL"));
        let m = c.master().unwrap();
        assert_eq!(m.value("STATUS"), Some("CANCELLED"));
        assert_eq!(m.value("SEQUENCE"), Some("1"));
    }
}
