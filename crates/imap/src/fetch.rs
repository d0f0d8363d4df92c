//! FETCH, SEARCH, SORT and THREAD: the commands that read messages. Each read of
//! metadata or content first gets a ledger grant from `core` naming the mailbox and
//! UIDs, then loads what it needs: flags and sizes from the view, envelopes and body
//! structures from stored metadata, bytes from the blob only for body sections.

use crate::conn::{ConnError, FLUSH_AT};
use crate::response as resp;
use crate::search::{self, Item};
use crate::section;
use crate::session::Session;
use postern_core::store::{FlagAction, Flags, MessageId, MessageRecord};
use postern_imap_proto::{
    FetchItem, FetchItems, FetchModifiers, SearchCommand, SearchKey, SearchReturn, SeqSet,
    SortCommand, Tag, ThreadAlgorithm, ThreadCommand,
};
use std::collections::HashMap;

/// Most body sections (BODY[…], BINARY[…], RFC822*) one FETCH may name.
const MAX_BODY_ITEMS: usize = 64;

/// What a FETCH needs beyond the view.
struct Needs {
    meta: bool,
    blob: bool,
    /// Sets \Seen (a non-PEEK body fetch in a read-write mailbox).
    sets_seen: bool,
}

fn expand(items: FetchItems) -> Vec<FetchItem> {
    match items {
        FetchItems::All => vec![
            FetchItem::Flags,
            FetchItem::InternalDate,
            FetchItem::Rfc822Size,
            FetchItem::Envelope,
        ],
        FetchItems::Fast => vec![
            FetchItem::Flags,
            FetchItem::InternalDate,
            FetchItem::Rfc822Size,
        ],
        FetchItems::Full => vec![
            FetchItem::Flags,
            FetchItem::InternalDate,
            FetchItem::Rfc822Size,
            FetchItem::Envelope,
            FetchItem::Body,
        ],
        FetchItems::List { items, .. } => items,
    }
}

fn needs_of(items: &[FetchItem]) -> Needs {
    let mut n = Needs {
        meta: false,
        blob: false,
        sets_seen: false,
    };
    for it in items {
        match it {
            FetchItem::Envelope
            | FetchItem::Body
            | FetchItem::BodyStructure
            | FetchItem::InternalDate
            | FetchItem::EmailId
            | FetchItem::ThreadId
            | FetchItem::Preview { .. } => n.meta = true,
            FetchItem::Rfc822 | FetchItem::Rfc822Text => {
                n.meta = true;
                n.blob = true;
                n.sets_seen = true;
            }
            FetchItem::Rfc822Header => {
                n.meta = true;
                n.blob = true;
            }
            FetchItem::BodySection { peek, .. } | FetchItem::Binary { peek, .. } => {
                n.meta = true;
                n.blob = true;
                n.sets_seen |= !peek;
            }
            FetchItem::BinarySize { .. } => {
                n.meta = true;
                n.blob = true;
            }
            FetchItem::Flags
            | FetchItem::Rfc822Size
            | FetchItem::Uid
            | FetchItem::ModSeq
            | FetchItem::SaveDate => {}
        }
    }
    n
}

/// A short description of the items for the ledger.
fn describe(items: &[FetchItem]) -> String {
    let mut v: Vec<&str> = items
        .iter()
        .map(|i| match i {
            FetchItem::Envelope => "envelope",
            FetchItem::Body | FetchItem::BodyStructure => "structure",
            FetchItem::Rfc822 | FetchItem::BodySection { .. } | FetchItem::Binary { .. } => {
                "content"
            }
            FetchItem::Rfc822Header => "header",
            FetchItem::Rfc822Text => "content",
            FetchItem::Preview { .. } => "preview",
            _ => "metadata",
        })
        .collect();
    v.sort_unstable();
    v.dedup();
    v.join(",")
}

pub(crate) async fn fetch(
    s: &mut Session,
    tag: &Tag,
    by_uid: bool,
    set: &SeqSet,
    items: FetchItems,
    modifiers: FetchModifiers,
) -> Result<(), ConnError> {
    let Some(seqs) = s.resolve_or_bad(tag, set, by_uid) else {
        return Ok(());
    };
    let items = expand(items);
    // The same item twice is answered once; body sections are capped, so one line
    // cannot ask for one message's bytes thousands of times.
    let mut seen_items: Vec<FetchItem> = Vec::with_capacity(items.len());
    for it in items {
        if !seen_items.contains(&it) {
            seen_items.push(it);
        }
    }
    let mut items = seen_items;
    let body_items = items
        .iter()
        .filter(|i| {
            matches!(
                i,
                FetchItem::BodySection { .. }
                    | FetchItem::Binary { .. }
                    | FetchItem::BinarySize { .. }
                    | FetchItem::Rfc822
                    | FetchItem::Rfc822Header
                    | FetchItem::Rfc822Text
            )
        })
        .count();
    if body_items > MAX_BODY_ITEMS {
        s.tagged(
            tag,
            "BAD",
            &format!("At most {MAX_BODY_ITEMS} body sections in one FETCH"),
        );
        return Ok(());
    }
    if by_uid && !items.iter().any(|i| matches!(i, FetchItem::Uid)) {
        items.insert(0, FetchItem::Uid);
    }
    // RFC 7162 §3.2.6: VANISHED only in UID FETCH, with QRESYNC enabled and together
    // with CHANGEDSINCE; otherwise BAD.
    if modifiers.vanished && !(by_uid && s.enabled.qresync && modifiers.changed_since.is_some()) {
        s.tagged(
            tag,
            "BAD",
            "VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE",
        );
        return Ok(());
    }
    if modifiers.changed_since.is_some() || items.iter().any(|i| matches!(i, FetchItem::ModSeq)) {
        enable_condstore(s);
    }
    let condstore = s.enabled.condstore;
    if modifiers.changed_since.is_some() && !items.iter().any(|i| matches!(i, FetchItem::ModSeq)) {
        items.push(FetchItem::ModSeq);
    }
    let needs = needs_of(&items);
    let who = s.who()?.clone();
    let Some(sel) = s.selected.as_ref() else {
        return Ok(());
    };
    let read_only = sel.read_only;
    let mailbox = sel.access.clone();
    // The messages to answer for: (seq, uid, message id), after CHANGEDSINCE.
    let mut targets: Vec<(u32, u32, MessageId)> = Vec::with_capacity(seqs.len());
    for seq in &seqs {
        if let Some(e) = sel.entry(*seq) {
            if let Some(cs) = &modifiers.changed_since {
                if e.modseq <= cs.get() {
                    continue;
                }
            }
            targets.push((*seq, e.uid, e.message));
        }
    }
    // QRESYNC VANISHED (EARLIER) for UIDs in the set that are gone (RFC 7162 §3.2.6).
    if modifiers.vanished {
        if let (Some(cs), SeqSet::Ranges(r)) = (&modifiers.changed_since, set) {
            let gone = vanished_since(s, cs.get(), r).await?;
            if !gone.is_empty() {
                let mut line = b"* VANISHED (EARLIER) ".to_vec();
                resp::sequence_set(&mut line, &gone);
                line.extend_from_slice(b"\r\n");
                s.send(&line);
            }
        }
    }
    let named: Vec<(u32, MessageId)> = targets.iter().map(|t| (t.1, t.2)).collect();
    let mut records: HashMap<MessageId, MessageRecord> = HashMap::new();
    let mut grant = None;
    if (needs.meta || needs.blob) && !targets.is_empty() {
        let g = match s
            .shared
            .core
            .grant_read(&who, &mailbox, "message.read", &named, &describe(&items))
            .await
        {
            Ok(g) => g,
            Err(e) => {
                s.no_for(tag, &e);
                return Ok(());
            }
        };
        let ids: Vec<MessageId> = targets.iter().map(|t| t.2).collect();
        match s.shared.core.granted_records(&g, ids).await {
            Ok(rs) => records = rs.into_iter().map(|r| (r.id, r)).collect(),
            Err(e) => {
                s.no_for(tag, &e);
                return Ok(());
            }
        }
        grant = Some(g);
    }
    // Implicit \Seen before answering, so the FLAGS we send include it.
    let mut seen_set: std::collections::HashSet<u32> = Default::default();
    if needs.sets_seen && !read_only {
        let unseen: Vec<u32> = targets
            .iter()
            .filter(|t| sel_entry(s, t.0).is_some_and(|e| !e.flags.contains(Flags::SEEN)))
            .map(|t| t.1)
            .collect();
        if !unseen.is_empty() {
            match s
                .shared
                .core
                .store_flags(
                    &who,
                    &mailbox,
                    unseen.clone(),
                    FlagAction::Add,
                    Flags::SEEN,
                    vec![],
                    None,
                )
                .await
            {
                Ok((changed, _)) => {
                    if let Some(sel) = s.selected.as_mut() {
                        for (uid, modseq) in &changed {
                            if let Some(seq) = sel.seq_of(*uid) {
                                let (f, k) = match sel.entry(seq) {
                                    Some(e) => (e.flags.union(Flags::SEEN), e.keywords.clone()),
                                    None => continue,
                                };
                                sel.set_flags(*uid, f, k, *modseq);
                                seen_set.insert(*uid);
                            }
                        }
                    }
                }
                Err(e) => {
                    s.no_for(tag, &e);
                    return Ok(());
                }
            }
        }
    }
    let utf8 = s.utf8();
    let rev1 = !s.enabled.imap4rev2;
    let modseq_asked = items.iter().any(|i| matches!(i, FetchItem::ModSeq));
    let mut failed_binary = None;
    for (seq, uid, mid) in &targets {
        let Some(sel) = s.selected.as_ref() else {
            break;
        };
        let Some(entry) = sel.entry(*seq).cloned() else {
            continue;
        };
        let recent = rev1 && sel.recent.contains(uid);
        let record = records.get(mid);
        if (needs.meta || needs.blob) && record.is_none() {
            // Expunged meanwhile (its record is gone): nothing to say about it.
            continue;
        }
        let blob = match (&grant, record, needs.blob) {
            (Some(g), Some(r), true) => match s.shared.core.granted_blob(g, r).await {
                Ok(b) => Some(b),
                Err(e) => {
                    s.no_for(tag, &e);
                    return Ok(());
                }
            },
            _ => None,
        };
        let mut out = format!("* {seq} FETCH (").into_bytes();
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !first {
                out.push(b' ');
            }
            first = false;
        };
        let mut flags_written = false;
        for it in &items {
            // A response with several large sections streams out part by part.
            if out.len() > FLUSH_AT {
                s.send(&out);
                out.clear();
                s.conn.flush().await?;
            }
            match it {
                FetchItem::Uid => {
                    sep(&mut out);
                    out.extend_from_slice(format!("UID {uid}").as_bytes());
                }
                FetchItem::Flags => {
                    sep(&mut out);
                    flags_written = true;
                    out.extend_from_slice(b"FLAGS ");
                    resp::flag_list(&mut out, entry.flags, &entry.keywords, recent);
                    // With CONDSTORE on, FLAGS come with their MODSEQ (as Dovecot
                    // does), so a client's cache never holds flags without a modseq.
                    if condstore && !modseq_asked {
                        out.extend_from_slice(format!(" MODSEQ ({})", entry.modseq).as_bytes());
                    }
                }
                FetchItem::Rfc822Size => {
                    sep(&mut out);
                    out.extend_from_slice(format!("RFC822.SIZE {}", entry.size).as_bytes());
                }
                FetchItem::ModSeq => {
                    sep(&mut out);
                    out.extend_from_slice(format!("MODSEQ ({})", entry.modseq).as_bytes());
                }
                FetchItem::SaveDate => {
                    sep(&mut out);
                    out.extend_from_slice(b"SAVEDATE ");
                    resp::date_time(&mut out, entry.saved_ms);
                }
                FetchItem::InternalDate => {
                    sep(&mut out);
                    out.extend_from_slice(b"INTERNALDATE ");
                    resp::date_time(
                        &mut out,
                        record.map(|r| r.received_ms).unwrap_or(entry.saved_ms),
                    );
                }
                FetchItem::EmailId => {
                    sep(&mut out);
                    out.extend_from_slice(format!("EMAILID (M{mid})").as_bytes());
                }
                FetchItem::ThreadId => {
                    sep(&mut out);
                    match record {
                        Some(r) => out.extend_from_slice(
                            format!("THREADID (T{})", object_id(&r.thread_id)).as_bytes(),
                        ),
                        None => out.extend_from_slice(b"THREADID NIL"),
                    }
                }
                FetchItem::Envelope => {
                    if let Some(r) = record {
                        sep(&mut out);
                        out.extend_from_slice(b"ENVELOPE ");
                        resp::envelope(&mut out, &r.meta.envelope, utf8);
                    }
                }
                FetchItem::Body | FetchItem::BodyStructure => {
                    if let Some(r) = record {
                        sep(&mut out);
                        let ext = matches!(it, FetchItem::BodyStructure);
                        out.extend_from_slice(if ext { b"BODYSTRUCTURE " } else { b"BODY " });
                        resp::body_structure(&mut out, &r.meta.body, ext, utf8);
                    }
                }
                FetchItem::Preview { .. } => {
                    if let Some(r) = record {
                        sep(&mut out);
                        out.extend_from_slice(b"PREVIEW ");
                        let p = r.meta.preview.as_bytes();
                        resp::nstring(&mut out, Some(p), utf8);
                    }
                }
                FetchItem::Rfc822 => {
                    if let Some(b) = &blob {
                        sep(&mut out);
                        out.extend_from_slice(b"RFC822 ");
                        resp::literal(&mut out, b);
                    }
                }
                FetchItem::Rfc822Header => {
                    if let (Some(b), Some(r)) = (&blob, record) {
                        sep(&mut out);
                        out.extend_from_slice(b"RFC822.HEADER ");
                        resp::literal(&mut out, section::header(b, &r.meta.body));
                    }
                }
                FetchItem::Rfc822Text => {
                    if let (Some(b), Some(r)) = (&blob, record) {
                        sep(&mut out);
                        out.extend_from_slice(b"RFC822.TEXT ");
                        resp::literal(&mut out, section::text(b, &r.meta.body));
                    }
                }
                FetchItem::BodySection {
                    section: sec,
                    partial,
                    ..
                } => {
                    if let (Some(b), Some(r)) = (&blob, record) {
                        sep(&mut out);
                        out.extend_from_slice(b"BODY[");
                        write_section_spec(&mut out, sec);
                        out.push(b']');
                        if let Some(p) = partial {
                            out.extend_from_slice(format!("<{}>", p.offset).as_bytes());
                        }
                        out.push(b' ');
                        match section::body_section(b, &r.meta.body, sec) {
                            Some(bytes) => {
                                let part = section::partial(&bytes, partial.as_ref());
                                resp::literal(&mut out, part);
                            }
                            None => out.extend_from_slice(b"NIL"),
                        }
                    }
                }
                FetchItem::Binary { part, partial, .. } => {
                    if let (Some(b), Some(r)) = (&blob, record) {
                        match section::binary(b, &r.meta.body, part) {
                            Ok(data) => {
                                sep(&mut out);
                                out.extend_from_slice(b"BINARY[");
                                write_part(&mut out, part);
                                out.push(b']');
                                if let Some(p) = partial {
                                    out.extend_from_slice(format!("<{}>", p.offset).as_bytes());
                                }
                                out.push(b' ');
                                match data {
                                    Some(d) => {
                                        let w = section::partial(&d, partial.as_ref());
                                        if w.contains(&0) {
                                            resp::literal8(&mut out, w);
                                        } else {
                                            resp::literal(&mut out, w);
                                        }
                                    }
                                    None => out.extend_from_slice(b"NIL"),
                                }
                            }
                            Err(e) => failed_binary = Some(e.to_string()),
                        }
                    }
                }
                FetchItem::BinarySize { part } => {
                    if let (Some(b), Some(r)) = (&blob, record) {
                        match section::binary_size(b, &r.meta.body, part) {
                            Ok(n) => {
                                sep(&mut out);
                                out.extend_from_slice(b"BINARY.SIZE[");
                                write_part(&mut out, part);
                                out.extend_from_slice(b"] ");
                                match n {
                                    Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
                                    None => out.extend_from_slice(b"NIL"),
                                }
                            }
                            Err(e) => failed_binary = Some(e.to_string()),
                        }
                    }
                }
            }
        }
        // A message whose \Seen we just set gets its new FLAGS (RFC 9051 §6.4.5), and
        // under CONDSTORE its UID and MODSEQ too (RFC 7162 §3.2.4).
        if seen_set.contains(uid) {
            if !flags_written {
                sep(&mut out);
                out.extend_from_slice(b"FLAGS ");
                resp::flag_list(&mut out, entry.flags, &entry.keywords, recent);
            }
            if condstore && !items.iter().any(|i| matches!(i, FetchItem::Uid)) {
                sep(&mut out);
                out.extend_from_slice(format!("UID {uid}").as_bytes());
            }
            if condstore && !modseq_asked && !flags_written {
                sep(&mut out);
                out.extend_from_slice(format!("MODSEQ ({})", entry.modseq).as_bytes());
            }
        }
        out.extend_from_slice(b")\r\n");
        s.send(&out);
        if s.conn.pending_out() > FLUSH_AT {
            s.conn.flush().await?;
        }
    }
    s.catch_up(by_uid).await;
    match failed_binary {
        Some(e) => s.tagged(tag, "NO", &e),
        None => s.tagged(tag, "OK", "FETCH completed"),
    }
    Ok(())
}

/// A CONDSTORE enabling command (RFC 7162 §3.1): the first one issued while a mailbox
/// is selected reports that mailbox's HIGHESTMODSEQ, so the client has a starting
/// point.
fn enable_condstore(s: &mut Session) {
    if s.enabled.condstore {
        return;
    }
    s.enabled.condstore = true;
    if let Some(sel) = s.selected.as_ref() {
        let line = format!(
            "* OK [HIGHESTMODSEQ {}] Highest\r\n",
            sel.mailbox.highest_modseq.max(1)
        );
        s.send(line.as_bytes());
    }
}

fn sel_entry(s: &Session, seq: u32) -> Option<&postern_core::store::MailboxEntry> {
    s.selected.as_ref().and_then(|sel| sel.entry(seq))
}

/// Thread ids are free text from the store; OBJECTID allows only `[A-Za-z0-9_-]`.
fn object_id(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(250)
        .collect()
}

fn write_part(out: &mut Vec<u8>, part: &[std::num::NonZeroU32]) {
    let p: Vec<String> = part.iter().map(|n| n.to_string()).collect();
    out.extend_from_slice(p.join(".").as_bytes());
}

fn write_section_spec(out: &mut Vec<u8>, sec: &postern_imap_proto::Section) {
    use postern_imap_proto::SectionText;
    write_part(out, &sec.part);
    let Some(t) = &sec.text else { return };
    if !sec.part.is_empty() {
        out.push(b'.');
    }
    match t {
        SectionText::Header => out.extend_from_slice(b"HEADER"),
        SectionText::Text => out.extend_from_slice(b"TEXT"),
        SectionText::Mime => out.extend_from_slice(b"MIME"),
        SectionText::HeaderFields { not, fields } => {
            out.extend_from_slice(if *not {
                b"HEADER.FIELDS.NOT ("
            } else {
                b"HEADER.FIELDS ("
            });
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                let name = String::from_utf8_lossy(f.as_bytes()).to_ascii_uppercase();
                resp::astring(out, &name, resp::Utf8(false));
            }
            out.push(b')');
        }
    }
}

async fn vanished_since(
    s: &mut Session,
    since: u64,
    ranges: &postern_imap_proto::SeqRanges,
) -> Result<Vec<u32>, ConnError> {
    let who = s.who()?.clone();
    let Some(sel) = s.selected.as_ref() else {
        return Ok(Vec::new());
    };
    let access = sel.access.clone();
    let max = sel.max_uid().max(1);
    let mut out = s
        .shared
        .core
        .expunged_since(&who, &access, since)
        .await
        .unwrap_or_default();
    let Some(sel) = s.selected.as_ref() else {
        return Ok(Vec::new());
    };
    out.retain(|u| {
        sel.seq_of(*u).is_none()
            && ranges.ranges().iter().any(|r| {
                let v = |n: postern_imap_proto::SeqNum| match n {
                    postern_imap_proto::SeqNum::Value(v) => v.get(),
                    postern_imap_proto::SeqNum::Star => max,
                };
                let (a, b) = (v(r.from), v(r.to));
                (a.min(b)..=a.max(b)).contains(u)
            })
    });
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The matching sequence numbers for SEARCH/SORT/THREAD, with the records of every
/// message (for sorting and threading). Writes the ledger entry first.
async fn evaluate(
    s: &mut Session,
    tag: &Tag,
    keys: &[SearchKey],
    what: &str,
) -> Result<Option<(Vec<u32>, HashMap<MessageId, MessageRecord>)>, ConnError> {
    let who = s.who()?.clone();
    let Some(sel) = s.selected.as_ref() else {
        return Ok(None);
    };
    let mailbox = sel.access.clone();
    let uids = sel.uids();
    let ids: Vec<MessageId> = sel.entries.iter().map(|e| e.message).collect();
    let named: Vec<(u32, MessageId)> = sel.entries.iter().map(|e| (e.uid, e.message)).collect();
    if content_keys(keys) > MAX_CONTENT_KEYS {
        s.tagged(
            tag,
            "NO",
            &format!("[LIMIT] At most {MAX_CONTENT_KEYS} BODY/TEXT/HEADER keys in one search"),
        );
        return Ok(None);
    }
    if keys.iter().any(uses_modseq) {
        enable_condstore(s);
    }
    let grant = match s
        .shared
        .core
        .grant_read(&who, &mailbox, "message.search", &named, what)
        .await
    {
        Ok(g) => g,
        Err(e) => {
            s.no_for(tag, &e);
            return Ok(None);
        }
    };
    let records: HashMap<MessageId, MessageRecord> =
        match s.shared.core.granted_records(&grant, ids).await {
            Ok(r) => r.into_iter().map(|r| (r.id, r)).collect(),
            Err(e) => {
                s.no_for(tag, &e);
                return Ok(None);
            }
        };
    let needs_content = search::needs_content(keys);
    let now = postern_core::store::now_ms();
    let Some(sel) = s.selected.as_ref() else {
        return Ok(None);
    };
    let rev1 = !s.enabled.imap4rev2;
    let cx = search::Context {
        now_ms: now,
        max_seq: sel.exists(),
        max_uid: sel.max_uid(),
        saved: &sel.saved,
        uids: &uids,
    };
    let mut matched = Vec::new();
    for (i, e) in sel.entries.iter().enumerate() {
        let Some(r) = records.get(&e.message) else {
            continue;
        };
        if needs_content {
            // Content search reads and scans each message: let other sessions run.
            tokio::task::yield_now().await;
        }
        let raw = if needs_content {
            match s.shared.core.granted_blob(&grant, r).await {
                Ok(b) => Some(b),
                Err(_) => None,
            }
        } else {
            None
        };
        let item = Item {
            seq: i as u32 + 1,
            entry: e,
            record: r,
            raw: raw.as_deref(),
            recent: rev1 && sel.recent.contains(&e.uid),
        };
        if search::matches(keys, &item, &cx) {
            matched.push(i as u32 + 1);
        }
    }
    Ok(Some((matched, records)))
}

/// Most keys that read message bytes in one SEARCH: each scans every message's text.
const MAX_CONTENT_KEYS: usize = 16;

fn content_keys(keys: &[SearchKey]) -> usize {
    keys.iter()
        .map(|k| match k {
            SearchKey::Body(_) | SearchKey::Text(_) | SearchKey::Header(..) => 1,
            SearchKey::Not(a) => content_keys(std::slice::from_ref(a)),
            SearchKey::Or(a, b) => {
                content_keys(std::slice::from_ref(a)) + content_keys(std::slice::from_ref(b))
            }
            SearchKey::And(v) => content_keys(v),
            _ => 0,
        })
        .sum()
}

fn uses_modseq(k: &SearchKey) -> bool {
    match k {
        SearchKey::ModSeq { .. } => true,
        SearchKey::Not(a) => uses_modseq(a),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::And(v) => v.iter().any(uses_modseq),
        _ => false,
    }
}

pub(crate) async fn search(
    s: &mut Session,
    tag: &Tag,
    cmd: SearchCommand,
) -> Result<(), ConnError> {
    let saves = cmd
        .returns
        .as_ref()
        .is_some_and(|r| r.contains(&SearchReturn::Save));
    if let Err(e) = search::check_charset(cmd.charset.as_ref()) {
        // RFC 5182 §2.1: a failed SEARCH ... SAVE leaves `$` empty.
        if saves && let Some(sel) = s.selected.as_mut() {
            sel.saved.clear();
        }
        s.tagged(tag, "NO", &e.to_string());
        return Ok(());
    }
    let Some((matched, _)) = evaluate(s, tag, &cmd.keys, "search").await? else {
        if saves && let Some(sel) = s.selected.as_mut() {
            sel.saved.clear();
        }
        return Ok(());
    };
    let Some(sel) = s.selected.as_mut() else {
        return Ok(());
    };
    let ids: Vec<u32> = if cmd.uid {
        matched
            .iter()
            .filter_map(|q| sel.entry(*q).map(|e| e.uid))
            .collect()
    } else {
        matched.clone()
    };
    let highest_modseq = if cmd.keys.iter().any(uses_modseq) {
        matched
            .iter()
            .filter_map(|q| sel.entry(*q).map(|e| e.modseq))
            .max()
    } else {
        None
    };
    let mut out = Vec::new();
    // IMAP4rev2 has no SEARCH response: a SEARCH without RETURN is RETURN (ALL) and is
    // answered with ESEARCH (RFC 9051 §6.4.4, §7.3.4).
    let returns = match &cmd.returns {
        None if s.enabled.imap4rev2 => Some(Vec::new()),
        r => r.clone(),
    };
    let Some(sel) = s.selected.as_mut() else {
        return Ok(());
    };
    match &returns {
        None => {
            out.extend_from_slice(b"* SEARCH");
            for i in &ids {
                out.extend_from_slice(format!(" {i}").as_bytes());
            }
            if let Some(m) = highest_modseq {
                out.extend_from_slice(format!(" (MODSEQ {m})").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        }
        Some(rets) => {
            let save = rets.iter().any(|r| matches!(r, SearchReturn::Save));
            if save {
                let all: Vec<u32> = matched
                    .iter()
                    .filter_map(|q| sel.entry(*q).map(|e| e.uid))
                    .collect();
                // RFC 5182 §2.4: SAVE with MIN and/or MAX but neither ALL nor COUNT
                // saves only the lowest and/or highest match.
                let has = |x: SearchReturn| rets.contains(&x);
                let (min, max) = (has(SearchReturn::Min), has(SearchReturn::Max));
                sel.saved = if (min || max) && !has(SearchReturn::All) && !has(SearchReturn::Count)
                {
                    let mut v = Vec::new();
                    if let (true, Some(f)) = (min, all.first()) {
                        v.push(*f);
                    }
                    if let (true, Some(l)) = (max, all.last()) {
                        v.push(*l);
                    }
                    v.dedup();
                    v
                } else {
                    all
                };
            }
            let mut rets: Vec<SearchReturn> = rets.clone();
            if rets.is_empty() {
                rets.push(SearchReturn::All);
            }
            let only_save = rets.iter().all(|r| matches!(r, SearchReturn::Save));
            if !only_save {
                out.extend_from_slice(format!("* ESEARCH (TAG \"{}\")", tag.as_str()).as_bytes());
                if cmd.uid {
                    out.extend_from_slice(b" UID");
                }
                for r in &rets {
                    match r {
                        SearchReturn::Min => {
                            if let Some(m) = ids.iter().min() {
                                out.extend_from_slice(format!(" MIN {m}").as_bytes());
                            }
                        }
                        SearchReturn::Max => {
                            if let Some(m) = ids.iter().max() {
                                out.extend_from_slice(format!(" MAX {m}").as_bytes());
                            }
                        }
                        SearchReturn::All => {
                            if !ids.is_empty() {
                                out.extend_from_slice(b" ALL ");
                                resp::sequence_set(&mut out, &ids);
                            }
                        }
                        SearchReturn::Count => {
                            out.extend_from_slice(format!(" COUNT {}", ids.len()).as_bytes());
                        }
                        SearchReturn::Save => {}
                    }
                }
                if let Some(m) = highest_modseq {
                    out.extend_from_slice(format!(" MODSEQ {m}").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    s.send(&out);
    s.catch_up(cmd.uid).await;
    s.tagged(tag, "OK", "SEARCH completed");
    Ok(())
}

/// The matched messages as SORT/THREAD items (metadata only, no bytes).
fn items_of<'a>(
    sel: &'a crate::selected::Selected,
    matched: &[u32],
    records: &'a HashMap<MessageId, MessageRecord>,
) -> Vec<Item<'a>> {
    matched
        .iter()
        .filter_map(|q| {
            let e = sel.entry(*q)?;
            let r = records.get(&e.message)?;
            Some(Item {
                seq: *q,
                entry: e,
                record: r,
                raw: None,
                recent: false,
            })
        })
        .collect()
}

pub(crate) async fn sort(s: &mut Session, tag: &Tag, cmd: SortCommand) -> Result<(), ConnError> {
    if let Err(e) = search::check_charset(Some(&cmd.charset)) {
        s.tagged(tag, "NO", &e.to_string());
        return Ok(());
    }
    let Some((matched, records)) = evaluate(s, tag, &cmd.keys, "sort").await? else {
        return Ok(());
    };
    let Some(sel) = s.selected.as_ref() else {
        return Ok(());
    };
    let items = items_of(sel, &matched, &records);
    let order = crate::sort::sort(&cmd.criteria, &items);
    let mut out = b"* SORT".to_vec();
    for q in order {
        let v = if cmd.uid {
            sel.entry(q).map(|e| e.uid).unwrap_or(0)
        } else {
            q
        };
        out.extend_from_slice(format!(" {v}").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    s.send(&out);
    s.catch_up(cmd.uid).await;
    s.tagged(tag, "OK", "SORT completed");
    Ok(())
}

pub(crate) async fn thread(
    s: &mut Session,
    tag: &Tag,
    cmd: ThreadCommand,
) -> Result<(), ConnError> {
    if let Err(e) = search::check_charset(Some(&cmd.charset)) {
        s.tagged(tag, "NO", &e.to_string());
        return Ok(());
    }
    if matches!(cmd.algorithm, ThreadAlgorithm::Other(_)) {
        s.tagged(tag, "BAD", "Unknown threading algorithm");
        return Ok(());
    }
    let Some((matched, records)) = evaluate(s, tag, &cmd.keys, "thread").await? else {
        return Ok(());
    };
    let Some(sel) = s.selected.as_ref() else {
        return Ok(());
    };
    let items = items_of(sel, &matched, &records);
    let threads = match cmd.algorithm {
        ThreadAlgorithm::References => crate::thread::references(&items),
        _ => crate::thread::ordered_subject(&items),
    };
    let uid_of: HashMap<u32, u32> = sel
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (i as u32 + 1, e.uid))
        .collect();
    let by_uid = cmd.uid;
    let id = move |q: u32| {
        if by_uid {
            uid_of.get(&q).copied().unwrap_or(0)
        } else {
            q
        }
    };
    let mut out = b"* THREAD ".to_vec();
    crate::thread::write_threads(&mut out, &threads, &id);
    out.extend_from_slice(b"\r\n");
    s.send(&out);
    s.catch_up(cmd.uid).await;
    s.tagged(tag, "OK", "THREAD completed");
    Ok(())
}
