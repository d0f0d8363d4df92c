//! Calendars, task lists and address books (CalDAV RFC 4791, CardDAV RFC 6352): the
//! policy behind `crates/dav`.
//!
//! **Access:** a path names the caller's own home only. A path naming another
//! account (or no account) answers [`CoreError::NotFound`], exactly as a collection
//! that does not exist — no existence leak — and the attempt is written to the ledger
//! (`dav.denied`). Collections other accounts shared with the caller and the global
//! address list appear in the caller's home ([`share`], [`gal`]); every method that
//! reads or changes a collection re-checks the caller's access to it
//! (`Core::dav_access_of`) and works on the owner's store rows.
//!
//! **Ledger:** every read of calendar or contact data (`dav.read`: GET, multiget,
//! calendar-query with data) and every change (`dav.put`, `dav.delete`,
//! `dav.collection.*`) has an entry; changes carry it in the same batch.
//!
//! **Validation:** iCalendar (RFC 4791 §4.1, §5.3.2) and vCard objects are parsed once
//! with `calcard` on PUT: one component type, one UID, no METHOD; the parsed fields
//! ([`DavIndex`]) are stored beside the bytes so queries never parse. Objects are kept
//! inline in the store, at most [`MAX_RESOURCE_BYTES`].
//!
//! **Time-range index:** DTSTART..DTEND (or DURATION, or one day for a DATE), in UTC;
//! floating times are read as UTC. A recurring object (RRULE/RDATE) is indexed over
//! its instances when the series ends within the expansion caps ([`recur`],
//! [`INDEX_EXPAND_BUDGET`]), else from its first start to the end of time; a query
//! expands each recurring candidate against its range (`recur::matches_range`).

use crate::error::{CoreError, Result};
use crate::{Authenticated, Core, Ctx};
use postern_store::*;
use sha2::{Digest, Sha256};

pub mod alarm;
pub mod gal;
pub mod ical;
pub mod imip;
pub mod recur;
pub mod sched;
pub mod share;

/// Largest calendar object or vCard accepted.
pub const MAX_RESOURCE_BYTES: usize = 1 << 20;
/// Most collections one account may have.
pub const MAX_COLLECTIONS: usize = 256;
/// Time a PUT may spend expanding a series to index its span.
pub const INDEX_EXPAND_BUDGET: std::time::Duration = std::time::Duration::from_millis(250);
/// Most changes one sync-collection answer reports.
pub const MAX_SYNC_CHANGES: usize = 10_000;
/// Largest calendar-timezone (one VTIMEZONE; the largest in the IANA set are ~10 KiB).
pub const MAX_TIMEZONE_BYTES: usize = 64 * 1024;

/// The collections every account gets on first use: (name, kind, display name).
pub const DEFAULT_COLLECTIONS: [(&str, DavKind, &str); 4] = [
    ("calendar", DavKind::Calendar, "Calendar"),
    ("tasks", DavKind::Tasks, "Tasks"),
    ("contacts", DavKind::AddressBook, "Contacts"),
    (sched::INBOX, DavKind::Inbox, "Scheduling inbox"),
];

/// What parsing a resource found: the fields the store indexes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavIndex {
    pub component: String,
    pub uid: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

/// Why an object is not acceptable, for the protocol's precondition names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DavInvalid {
    /// Not parseable / not one object of the collection's type (valid-calendar-data,
    /// valid-address-data).
    Data(String),
    /// A component type the collection does not accept
    /// (supported-calendar-component).
    Component(String),
    /// Too big (max-resource-size).
    Size,
}

/// The outcome of a conditional DAV write.
#[derive(Debug)]
pub enum DavWriteError {
    /// If-Match / If-None-Match did not hold (412).
    Precondition,
    /// Another resource of the collection has this UID (no-uid-conflict).
    UidConflict,
    Invalid(DavInvalid),
    Core(CoreError),
}

impl From<CoreError> for DavWriteError {
    fn from(e: CoreError) -> Self {
        DavWriteError::Core(e)
    }
}

impl From<StoreError> for DavWriteError {
    fn from(e: StoreError) -> Self {
        DavWriteError::Core(e.into())
    }
}

/// A name usable as one path segment: 1–255 bytes of printable ASCII without `/`,
/// `\`, `%`, not `.`/`..`. Names come from URLs (already percent-decoded once).
pub fn valid_segment(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b'\\' | b'%' | b'"'))
}

fn etag_of(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Parses a calendar object resource and checks RFC 4791 §4.1: one iCalendar object,
/// no METHOD, components of one type (besides VTIMEZONE) sharing one UID.
pub fn index_icalendar(text: &str) -> std::result::Result<DavIndex, DavInvalid> {
    use calcard::icalendar::{ICalendar, ICalendarComponentType as T, ICalendarProperty as P};
    let bad = |s: &str| DavInvalid::Data(s.to_string());
    let ical = ICalendar::parse(text).map_err(|_| bad("not an iCalendar object"))?;
    let Some(root) = ical.components.first() else {
        return Err(bad("empty"));
    };
    if root.component_type != T::VCalendar {
        return Err(bad("no VCALENDAR"));
    }
    if root.property(&P::Method).is_some() {
        return Err(bad("METHOD is not allowed in a stored calendar object"));
    }
    let mains: Vec<_> = ical
        .components
        .iter()
        .filter(|c| c.component_type.has_time_ranges())
        .collect();
    let Some(first) = mains.first() else {
        return Err(bad("no VEVENT, VTODO, VJOURNAL or VFREEBUSY"));
    };
    let kind = first.component_type.clone();
    if mains.iter().any(|c| c.component_type != kind) {
        return Err(bad("more than one component type"));
    }
    let Some(uid) = first.uid() else {
        return Err(bad("no UID"));
    };
    if uid.is_empty() || uid.len() > 1024 || mains.iter().any(|c| c.uid() != Some(uid)) {
        return Err(bad("the components do not share one UID"));
    }
    let component = match kind {
        T::VEvent => "VEVENT",
        T::VTodo => "VTODO",
        T::VJournal => "VJOURNAL",
        _ => "VFREEBUSY",
    };
    let recurring = mains
        .iter()
        .any(|c| c.property(&P::Rrule).is_some() || c.property(&P::Rdate).is_some());
    // Dates of the components themselves; recurrence rules are taken out first, so no
    // rule is ever expanded here (RRULE bombs are the later expansion slice's concern).
    let mut flat = ical.clone();
    for c in &mut flat.components {
        c.entries
            .retain(|e| !matches!(e.name, P::Rrule | P::Rdate | P::Exdate));
    }
    let expanded = flat.expand_dates(calcard::common::timezone::Tz::UTC, 64);
    let mut start: Option<i64> = None;
    let mut end: Option<i64> = None;
    for ev in &expanded.events {
        let (s, e) = ev.timestamps();
        let (s, e) = (s.saturating_mul(1000), e.saturating_mul(1000));
        start = Some(start.map_or(s, |v| v.min(s)));
        end = Some(end.map_or(e, |v| v.max(e)));
    }
    if let (Some(s), Some(e)) = (start, end)
        && e <= s
    {
        // Instantaneous: still overlaps a range containing its start.
        end = Some(s.saturating_add(1));
    }
    if recurring && start.is_some() {
        // A series that ends within the expansion caps is indexed over its instances;
        // an open-ended or capped one from its first start to the end of time (queries
        // then expand it, `recur`).
        let deadline = std::time::Instant::now() + INDEX_EXPAND_BUDGET;
        match recur::finite_span(&ical, deadline) {
            Some((s, e)) => {
                start = Some(start.map_or(s, |v| v.min(s)));
                end = Some(end.map_or(e, |v| v.max(e)));
            }
            None => end = Some(i64::MAX),
        }
    }
    if recur::may_float(text) {
        // Floating times and dates are read in the calendar's (or the query's) zone,
        // known only when a query runs: the index holds their UTC reading (a series'
        // too) widened by the largest zone offsets, and queries check such objects
        // exactly (`recur`).
        start = start.map(|s| s.saturating_sub(recur::MAX_ZONE_OFFSET_MS));
        end = end.map(|e| e.saturating_add(recur::MAX_ZONE_OFFSET_MS));
    }
    Ok(DavIndex {
        component: component.into(),
        uid: uid.to_string(),
        start_ms: start,
        end_ms: end,
    })
}

/// Parses a vCard (RFC 6350 / 2426). Its UID is the index key; a card without one is
/// keyed by the resource name.
pub fn index_vcard(text: &str, name: &str) -> std::result::Result<DavIndex, DavInvalid> {
    use calcard::vcard::VCard;
    let card = VCard::parse(text).map_err(|_| DavInvalid::Data("not a vCard".into()))?;
    let uid = card
        .uid()
        .filter(|u| !u.is_empty() && u.len() <= 1024)
        .unwrap_or(name)
        .to_string();
    Ok(DavIndex {
        component: "VCARD".into(),
        uid,
        start_ms: None,
        end_ms: None,
    })
}

/// A calendar-timezone value (or a query's CALDAV:timezone) Postern takes: at most
/// [`MAX_TIMEZONE_BYTES`], no control characters but CR, LF and TAB (the value is
/// served back in XML), and exactly one VTIMEZONE naming a zone ([`recur::zone_of`]).
pub fn timezone_ok(text: &str) -> bool {
    checked_zone(text).is_some()
}

/// The zone of such a value ([`timezone_ok`]), else `None`.
pub fn checked_zone(text: &str) -> Option<recur::Tz> {
    if text.len() > MAX_TIMEZONE_BYTES
        || text
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\r' | '\n' | '\t'))
    {
        return None;
    }
    recur::zone_of(text)
}

/// The zone a calendar's floating times and dates are read in: its calendar-timezone
/// (RFC 4791 §5.2.2), else UTC.
pub fn collection_zone(c: &DavCollection) -> recur::Tz {
    c.timezone
        .as_deref()
        .and_then(recur::zone_of)
        .unwrap_or(recur::Tz::UTC)
}

/// Properties of a new collection (MKCALENDAR / extended MKCOL).
#[derive(Debug, Clone, Default)]
pub struct NewCollection {
    pub display_name: Option<String>,
    pub color: Option<String>,
    pub order: Option<i64>,
    pub description: Option<String>,
    /// CalDAV calendar-timezone: an iCalendar object with one VTIMEZONE.
    pub timezone: Option<String>,
    /// Components for a calendar (`VEVENT`, `VTODO`, …); empty = the kind's default.
    pub components: Vec<String>,
}

fn check_text(field: &'static str, s: &str, max: usize) -> Result<()> {
    if s.len() > max || s.chars().any(|c| c.is_control() && c != '\t') {
        return Err(CoreError::invalid(
            field,
            format!("at most {max} bytes, no control characters"),
        ));
    }
    Ok(())
}

/// Checks PROPPATCH values before they reach the store.
pub fn check_props(p: &DavCollectionProps) -> Result<()> {
    if let Some(d) = &p.display_name {
        check_text("displayname", d, 256)?;
    }
    if let Some(Some(c)) = &p.color {
        // Apple's hex form, or a CSS colour name (`blue`, `rebeccapurple`), kept as
        // given: some clients write names.
        let hex = c.strip_prefix('#').unwrap_or("");
        let is_hex = matches!(hex.len(), 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        let is_name = (1..=32).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphabetic());
        if !is_hex && !is_name {
            return Err(CoreError::invalid(
                "calendar-color",
                "#RRGGBB, #RRGGBBAA or a CSS colour name",
            ));
        }
    }
    if let Some(Some(d)) = &p.description {
        check_text("description", d, 4096)?;
    }
    if let Some(Some(tz)) = &p.timezone
        && !timezone_ok(tz)
    {
        return Err(CoreError::invalid(
            "calendar-timezone",
            "an iCalendar object with exactly one VTIMEZONE",
        ));
    }
    Ok(())
}

impl Core {
    fn dav_ctx(who: &Authenticated) -> &Ctx {
        who.ctx()
    }

    /// Whether `segment` (the account part of a DAV path) names the caller. Anything
    /// else is `NotFound`, with a `dav.denied` ledger entry when it named some other
    /// text (an IDOR attempt or a typo: the ledger cannot tell which).
    pub async fn dav_check_owner(&self, who: &Authenticated, segment: &str) -> Result<()> {
        if segment.eq_ignore_ascii_case(who.address()) {
            return Ok(());
        }
        let shown: String = segment.chars().take(320).collect();
        self.record(
            Self::dav_ctx(who),
            "dav.denied",
            Some(&shown),
            vec![],
            "not_found",
            None,
            None,
        )
        .await?;
        Err(CoreError::NotFound("no such collection".into()))
    }

    /// The caller's collections, by name; the default calendar, task list and address
    /// book are made on first use.
    pub async fn dav_collections(&self, who: &Authenticated) -> Result<Vec<DavCollection>> {
        let account = who.principal().id;
        let have = self.store.dav_collections(account).await?;
        if !have.is_empty() {
            // Accounts made before scheduling get their inbox on first use.
            return self.sched_with_inbox(account, have).await;
        }
        let ops: Vec<Op> = DEFAULT_COLLECTIONS
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
                    components: default_components(*kind),
                    modseq: 0,
                    created_ms: now_ms(),
                })
            })
            .collect();
        match self.store.write(ops).await {
            // Another request made them first.
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self.store.dav_collections(account).await?)
    }

    /// One of the caller's collections by name.
    pub async fn dav_collection(&self, who: &Authenticated, name: &str) -> Result<DavCollection> {
        if let Some(c) = self
            .dav_collections(who)
            .await?
            .into_iter()
            .find(|c| c.name == name)
        {
            return Ok(c);
        }
        // A collection shared with the caller, or the global address list (share.rs).
        self.dav_shared_named(who, name)
            .await?
            .ok_or_else(|| CoreError::NotFound("no such collection".into()))
    }

    pub async fn dav_create_collection(
        &self,
        who: &Authenticated,
        name: &str,
        kind: DavKind,
        new: NewCollection,
    ) -> Result<DavCollection> {
        if !valid_segment(name) {
            return Err(CoreError::invalid("collection", "not a valid name"));
        }
        if share::reserved_name(name) {
            return Err(CoreError::Conflict(format!("collection {name}")));
        }
        let existing = self.dav_collections(who).await?;
        if existing.iter().any(|c| c.name == name) {
            return Err(CoreError::Conflict(format!("collection {name}")));
        }
        if existing.len() >= MAX_COLLECTIONS {
            return Err(CoreError::Refused(format!(
                "at most {MAX_COLLECTIONS} collections"
            )));
        }
        check_props(&DavCollectionProps {
            display_name: new.display_name.clone(),
            color: Some(new.color.clone()),
            order: None,
            description: Some(new.description.clone()),
            timezone: Some(new.timezone.clone()),
        })?;
        let components = if kind.is_calendar() && !new.components.is_empty() {
            for c in &new.components {
                if !matches!(c.as_str(), "VEVENT" | "VTODO" | "VJOURNAL" | "VFREEBUSY") {
                    return Err(CoreError::invalid(
                        "supported-calendar-component-set",
                        format!("{c} is not supported"),
                    ));
                }
            }
            new.components.clone()
        } else if kind == DavKind::Calendar {
            // A calendar made by a client without a component set takes every type
            // (RFC 4791 §5.2.3: the server's choice); the default one is events only.
            vec!["VEVENT".into(), "VTODO".into(), "VJOURNAL".into()]
        } else {
            default_components(kind)
        };
        let col = DavCollection {
            id: DavCollectionId::generate(),
            account: who.principal().id,
            kind,
            name: name.into(),
            display_name: new.display_name.unwrap_or_else(|| name.into()),
            color: new.color,
            order: new.order,
            description: new.description,
            timezone: new.timezone,
            components,
            modseq: 0,
            created_ms: now_ms(),
        };
        let rec = Self::ledger_record(
            Self::dav_ctx(who),
            "dav.collection.create",
            Some(who.address()),
            vec![format!("collection:{}", col.name)],
            "ok",
            None,
            Some(serde_json::json!({ "kind": kind.as_str() })),
        );
        self.store
            .write(vec![
                Op::CreateDavCollection(col.clone()),
                Op::AppendLedger(rec),
            ])
            .await?;
        self.dav_collection(who, name).await
    }

    pub async fn dav_update_collection(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        props: DavCollectionProps,
    ) -> Result<()> {
        self.dav_access_of(who, col).await?.owner_only()?;
        check_props(&props)?;
        let rec = Self::ledger_record(
            Self::dav_ctx(who),
            "dav.collection.update",
            Some(who.address()),
            vec![format!("collection:{}", col.name)],
            "ok",
            None,
            None,
        );
        self.store
            .write(vec![
                Op::UpdateDavCollection {
                    account: who.principal().id,
                    collection: col.id,
                    props,
                },
                Op::AppendLedger(rec),
            ])
            .await?;
        Ok(())
    }

    pub async fn dav_delete_collection(
        &self,
        who: &Authenticated,
        col: &DavCollection,
    ) -> Result<()> {
        self.dav_access_of(who, col).await?.owner_only()?;
        if col.kind == DavKind::Inbox {
            return Err(CoreError::Forbidden("the scheduling inbox stays".into()));
        }
        let rec = Self::ledger_record(
            Self::dav_ctx(who),
            "dav.collection.delete",
            Some(who.address()),
            vec![format!("collection:{}", col.name)],
            "ok",
            None,
            None,
        );
        self.store
            .write(vec![
                Op::DeleteDavCollection {
                    account: who.principal().id,
                    collection: col.id,
                },
                Op::AppendLedger(rec),
            ])
            .await?;
        Ok(())
    }

    /// Resources of a collection. With `filter.with_data` the read is calendar or
    /// contact data: one `dav.read` ledger entry names every resource returned.
    pub async fn dav_list(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        filter: DavFilter,
    ) -> Result<Vec<DavResource>> {
        let with_data = filter.with_data;
        let access = self.dav_access_of(who, col).await?;
        let out = if access.gal {
            let mut cards = self.dav_gal_cards(who, col.id).await?;
            if !with_data {
                cards.iter_mut().for_each(|c| c.data.clear());
            }
            cards
        } else {
            self.store
                .dav_resources(col.account, col.id, filter)
                .await?
        };
        if with_data && !out.is_empty() {
            self.dav_read_ledger(who, &access, col, &out).await?;
        }
        Ok(out)
    }

    /// Resources by name, with their data (GET, multiget): one `dav.read` entry.
    pub async fn dav_get(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        names: Vec<String>,
    ) -> Result<Vec<DavResource>> {
        let access = self.dav_access_of(who, col).await?;
        let out = if access.gal {
            let mut cards = self.dav_gal_cards(who, col.id).await?;
            cards.retain(|c| names.contains(&c.name));
            cards
        } else {
            self.store
                .dav_resources_named(col.account, col.id, names)
                .await?
        };
        if !out.is_empty() {
            self.dav_read_ledger(who, &access, col, &out).await?;
        }
        Ok(out)
    }

    async fn dav_read_ledger(
        &self,
        who: &Authenticated,
        access: &share::Access,
        col: &DavCollection,
        res: &[DavResource],
    ) -> Result<()> {
        let mut objects = vec![format!("collection:{}", col.name)];
        objects.extend(res.iter().map(|r| format!("resource:{}", r.name)));
        self.record(
            &access.ctx(who),
            "dav.read",
            Some(&access.owner_address),
            objects,
            "ok",
            None,
            None,
        )
        .await
    }

    /// Creates or replaces a resource (PUT). Returns whether it is new and its ETag.
    pub async fn dav_put(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        name: &str,
        data: &[u8],
        expect: DavExpect,
    ) -> std::result::Result<(bool, String), DavWriteError> {
        if !valid_segment(name) {
            return Err(CoreError::invalid("resource", "not a valid name").into());
        }
        let access = self.dav_access_of(who, col).await?;
        access.may_write()?;
        if data.len() > MAX_RESOURCE_BYTES {
            return Err(DavWriteError::Invalid(DavInvalid::Size));
        }
        let text = std::str::from_utf8(data)
            .map_err(|_| DavWriteError::Invalid(DavInvalid::Data("not UTF-8".into())))?;
        if text.contains('\0') {
            return Err(DavWriteError::Invalid(DavInvalid::Data("NUL".into())));
        }
        let index = if col.kind.is_calendar() {
            // Parsing and indexing a series may take up to INDEX_EXPAND_BUDGET (more for
            // one rule calcard cannot interrupt): off the async workers.
            let owned = text.to_string();
            let ix = tokio::task::spawn_blocking(move || index_icalendar(&owned))
                .await
                .map_err(|_| DavWriteError::Invalid(DavInvalid::Data("not parseable".into())))?
                .map_err(DavWriteError::Invalid)?;
            if !col.components.contains(&ix.component) {
                return Err(DavWriteError::Invalid(DavInvalid::Component(ix.component)));
            }
            ix
        } else {
            index_vcard(text, name).map_err(DavWriteError::Invalid)?
        };
        let etag = etag_of(data);
        let resource = DavResource {
            id: DavResourceId::generate(),
            account: col.account,
            collection: col.id,
            name: name.into(),
            etag: etag.clone(),
            data: text.to_string(),
            size: data.len() as u64,
            component: index.component,
            uid: index.uid,
            start_ms: index.start_ms,
            end_ms: index.end_ms,
            modseq: 0,
            modified_ms: now_ms(),
        };
        let rec = Self::ledger_record(
            &access.ctx(who),
            "dav.put",
            Some(&access.owner_address),
            vec![
                format!("collection:{}", col.name),
                format!("resource:{name}"),
            ],
            "ok",
            None,
            Some(serde_json::json!({ "etag": etag })),
        );
        match self
            .store
            .write(vec![
                Op::PutDavResource { resource, expect },
                Op::AppendLedger(rec),
            ])
            .await
        {
            Ok(r) => {
                let created = matches!(r.first(), Some(OpResult::DavWritten { created: true, .. }));
                Ok((created, etag))
            }
            Err(StoreError::Modified(_)) => Err(DavWriteError::Precondition),
            Err(StoreError::Conflict(_)) => Err(DavWriteError::UidConflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a resource (DELETE).
    pub async fn dav_delete(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        name: &str,
        expect: DavExpect,
    ) -> std::result::Result<(), DavWriteError> {
        let access = self.dav_access_of(who, col).await?;
        access.may_write()?;
        let rec = Self::ledger_record(
            &access.ctx(who),
            "dav.delete",
            Some(&access.owner_address),
            vec![
                format!("collection:{}", col.name),
                format!("resource:{name}"),
            ],
            "ok",
            None,
            None,
        );
        match self
            .store
            .write(vec![
                Op::DeleteDavResource {
                    account: col.account,
                    collection: col.id,
                    name: name.into(),
                    expect,
                },
                Op::AppendLedger(rec),
            ])
            .await
        {
            Ok(_) => Ok(()),
            Err(StoreError::Modified(_)) => Err(DavWriteError::Precondition),
            Err(e) => Err(e.into()),
        }
    }

    /// Changes after `since` for sync-collection (names and ETags only: no data, no
    /// ledger entry), oldest first. At most [`MAX_SYNC_CHANGES`] + 1 are read: one past
    /// the cap tells the caller to answer the first [`MAX_SYNC_CHANGES`] and truncate
    /// (RFC 6578 §3.6: the client asks again from there).
    pub async fn dav_changes(
        &self,
        who: &Authenticated,
        col: &DavCollection,
        since: u64,
    ) -> Result<Option<Vec<DavChange>>> {
        let access = self.dav_access_of(who, col).await?;
        if access.gal {
            // The GAL's token changes with its id (share.rs): one with this id is
            // either the empty token (everything) or current (nothing).
            if since >= col.modseq {
                return Ok(Some(Vec::new()));
            }
            let cards = self.dav_gal_cards(who, col.id).await?;
            return Ok(Some(
                cards
                    .into_iter()
                    .map(|c| DavChange {
                        name: c.name,
                        etag: Some(c.etag),
                        modseq: c.modseq,
                    })
                    .collect(),
            ));
        }
        let out = self
            .store
            .dav_changes(col.account, col.id, since, MAX_SYNC_CHANGES + 1)
            .await?;
        Ok(Some(out))
    }
}

fn default_components(kind: DavKind) -> Vec<String> {
    match kind {
        DavKind::Calendar => vec!["VEVENT".into()],
        DavKind::Tasks => vec!["VTODO".into()],
        DavKind::AddressBook | DavKind::Inbox => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EV: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:abc\r\nDTSTAMP:20300101T000000Z\r\nDTSTART:20300101T090000Z\r\nDTEND:20300101T100000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn indexes_an_event() {
        let ix = index_icalendar(EV).unwrap();
        assert_eq!(ix.component, "VEVENT");
        assert_eq!(ix.uid, "abc");
        assert_eq!(ix.start_ms, Some(1_893_488_400_000));
        assert_eq!(ix.end_ms, Some(1_893_492_000_000));
    }

    #[test]
    fn recurring_is_open_ended_and_never_expanded() {
        let ev = EV.replace("SUMMARY:x\r\n", "RRULE:FREQ=SECONDLY\r\n");
        let ix = index_icalendar(&ev).unwrap();
        assert_eq!(ix.start_ms, Some(1_893_488_400_000));
        assert_eq!(ix.end_ms, Some(i64::MAX));
    }

    #[test]
    fn refuses_method_two_uids_and_mixed_types() {
        let m = EV.replace("VERSION:2.0\r\n", "VERSION:2.0\r\nMETHOD:REQUEST\r\n");
        assert!(index_icalendar(&m).is_err());
        let two = EV.replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:other\r\nDTSTART:20300101T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR",
        );
        assert!(index_icalendar(&two).is_err());
        let mixed = EV.replace(
            "END:VCALENDAR",
            "BEGIN:VTODO\r\nUID:abc\r\nEND:VTODO\r\nEND:VCALENDAR",
        );
        assert!(index_icalendar(&mixed).is_err());
        assert!(index_icalendar("hello").is_err());
        assert!(index_icalendar("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").is_err());
    }

    #[test]
    fn todo_without_dates_matches_everything() {
        let t = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:t1\r\nSUMMARY:x\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
        let ix = index_icalendar(t).unwrap();
        assert_eq!(
            (ix.component.as_str(), ix.start_ms, ix.end_ms),
            ("VTODO", None, None)
        );
    }

    #[test]
    fn segments() {
        assert!(valid_segment("abc.ics"));
        for bad in ["", ".", "..", "a/b", "a\\b", "a%2f", "a b", "a\"b"] {
            assert!(!valid_segment(bad), "{bad}");
        }
    }
}
