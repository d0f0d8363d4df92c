//! The selected mailbox as this session sees it: message sequence numbers, UIDs, flags
//! and modseqs, and how it catches up with the store (RFC 9051 §7.5: EXISTS, EXPUNGE,
//! FETCH FLAGS; RFC 7162 §3.2.10 VANISHED).
//!
//! The view changes only between commands, never in the middle of one, and an expunge
//! is not shown while answering a FETCH, STORE or SEARCH by sequence number (RFC 9051
//! §7.5.1), so sequence numbers stay valid for the client.

use postern_core::access::MailboxAccess;
use postern_core::store::{Flags, Mailbox, MailboxDelta, MailboxEntry};
use postern_imap_proto::{SeqNum, SeqSet};
use std::collections::HashMap;

pub struct Selected {
    /// The mailbox as the user reached it (owner, name in the user's view, rights at
    /// SELECT); core re-checks the rights on every operation.
    pub access: MailboxAccess,
    pub mailbox: Mailbox,
    pub read_only: bool,
    /// In sequence order (seq = index + 1); UIDs ascend.
    pub entries: Vec<MailboxEntry>,
    /// UIDs that are \Recent for this session (IMAP4rev1 only).
    pub recent: std::collections::HashSet<u32>,
    /// SEARCHRES (RFC 5182): UIDs saved by `SEARCH RETURN (SAVE)`.
    pub saved: Vec<u32>,
    /// Expunged in the store but still shown (an expunge waits for a command that may
    /// announce it).
    pub pending_expunge: Vec<u32>,
    /// Keywords seen in this mailbox (for FLAGS / PERMANENTFLAGS).
    pub keywords: Vec<String>,
}

/// Why a sequence set is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SetError {
    /// A message sequence number beyond EXISTS (RFC 9051 §9: BAD).
    OutOfRange,
}

/// Changes found by [`Selected::catch_up`], to announce.
#[derive(Debug, Default)]
pub struct Delta {
    /// Sequence numbers to announce as EXPUNGE, in the order to send them.
    pub expunged_seqs: Vec<u32>,
    /// The UIDs expunged (for VANISHED).
    pub expunged_uids: Vec<u32>,
    /// New EXISTS count when messages arrived.
    pub exists: Option<u32>,
    /// Sequence numbers whose flags changed.
    pub flag_changes: Vec<u32>,
}

impl Selected {
    pub fn new(
        access: MailboxAccess,
        mailbox: Mailbox,
        entries: Vec<MailboxEntry>,
        read_only: bool,
    ) -> Selected {
        let mut s = Selected {
            access,
            mailbox,
            read_only,
            entries,
            recent: Default::default(),
            saved: Vec::new(),
            pending_expunge: Vec::new(),
            keywords: Vec::new(),
        };
        s.learn_keywords();
        s
    }

    /// Collects the mailbox's keywords (case-insensitively distinct) in one pass.
    fn learn_keywords(&mut self) {
        let mut known: std::collections::HashSet<String> = self
            .keywords
            .iter()
            .map(|k| k.to_ascii_lowercase())
            .collect();
        for e in &self.entries {
            for k in &e.keywords {
                if known.insert(k.to_ascii_lowercase()) {
                    self.keywords.push(k.clone());
                }
            }
        }
    }

    pub fn exists(&self) -> u32 {
        self.entries.len() as u32
    }

    pub fn max_uid(&self) -> u32 {
        self.entries.last().map(|e| e.uid).unwrap_or(0)
    }

    pub fn uids(&self) -> Vec<u32> {
        self.entries.iter().map(|e| e.uid).collect()
    }

    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.entries
            .binary_search_by_key(&uid, |e| e.uid)
            .ok()
            .map(|i| i as u32 + 1)
    }

    pub fn entry(&self, seq: u32) -> Option<&MailboxEntry> {
        self.entries.get(seq.checked_sub(1)? as usize)
    }

    /// The messages a set names, as sequence numbers in ascending order without repeats.
    /// By UID: UIDs that do not exist are skipped; `*` is the highest UID (so `n:*`
    /// always includes the last message). By sequence number: a number beyond EXISTS is
    /// an error; `*` is EXISTS, and in an empty mailbox any set is an error. The work is
    /// bounded by the mailbox, however many (overlapping) ranges the set holds.
    pub fn resolve(&self, set: &SeqSet, by_uid: bool) -> Result<Vec<u32>, SetError> {
        let ranges = match set {
            SeqSet::Saved => {
                let mut v: Vec<u32> = self.saved.iter().filter_map(|u| self.seq_of(*u)).collect();
                v.sort_unstable();
                v.dedup();
                return Ok(v);
            }
            SeqSet::Ranges(r) => r.ranges(),
        };
        let n = self.exists();
        let bound = if by_uid { self.max_uid() } else { n };
        let mut spans: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for r in ranges {
            let a = num(r.from, bound);
            let b = num(r.to, bound);
            let (lo, hi) = (a.min(b), a.max(b));
            // By sequence number, every number must exist. In an empty mailbox every
            // set is invalid, `*` included: `*` is "the number of messages in a
            // non-empty mailbox" (RFC 9051 §9); Dovecot answers BAD too.
            if !by_uid && (hi > n || lo == 0) {
                return Err(SetError::OutOfRange);
            }
            spans.push((lo, hi));
        }
        // Overlapping ranges merged first, so a line of thousands of `1:*` costs one
        // pass over the mailbox, not one per range (the result is bounded by EXISTS).
        spans.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(spans.len());
        for (lo, hi) in spans {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        let mut out = Vec::new();
        for (lo, hi) in merged {
            if by_uid {
                let start = self.entries.partition_point(|e| e.uid < lo);
                for (i, e) in self.entries.iter().enumerate().skip(start) {
                    if e.uid > hi {
                        break;
                    }
                    out.push(i as u32 + 1);
                }
            } else {
                out.extend(lo..=hi);
            }
        }
        // Disjoint ascending spans give an ascending list without repeats.
        Ok(out)
    }

    /// Compares the view with a fresh snapshot of the mailbox. New messages and flag
    /// changes are always taken in; expunges only when `may_expunge`, otherwise kept
    /// in `pending_expunge` until a later call may announce them.
    pub fn catch_up(
        &mut self,
        mailbox: Mailbox,
        fresh: Vec<MailboxEntry>,
        may_expunge: bool,
    ) -> Delta {
        let mut delta = Delta::default();
        self.mailbox = mailbox;
        let by_uid: HashMap<u32, &MailboxEntry> = fresh.iter().map(|e| (e.uid, e)).collect();
        // Expunged: in the view, not in the store.
        let gone: Vec<u32> = self
            .entries
            .iter()
            .filter(|e| !by_uid.contains_key(&e.uid))
            .map(|e| e.uid)
            .collect();
        if may_expunge && !gone.is_empty() {
            // Highest first, so each number is right at the moment it is sent: removing
            // a higher message does not move a lower one's number. One pass removes them.
            for uid in gone.iter().rev() {
                if let Some(seq) = self.seq_of(*uid) {
                    delta.expunged_seqs.push(seq);
                    self.recent.remove(uid);
                }
            }
            self.entries.retain(|e| by_uid.contains_key(&e.uid));
            delta.expunged_uids = gone;
            self.pending_expunge.clear();
        } else {
            self.pending_expunge = gone;
        }
        // Flag changes of messages still present (numbers after the expunges above).
        for (i, e) in self.entries.iter_mut().enumerate() {
            if let Some(f) = by_uid.get(&e.uid) {
                if f.modseq != e.modseq || f.flags != e.flags || f.keywords != e.keywords {
                    e.flags = f.flags;
                    e.keywords = f.keywords.clone();
                    e.modseq = f.modseq;
                    delta.flag_changes.push(i as u32 + 1);
                }
            }
        }
        // New: UIDs above the highest in the view.
        let max = self.max_uid();
        let before = self.entries.len();
        for e in fresh.into_iter().filter(|e| e.uid > max) {
            self.recent.insert(e.uid);
            self.entries.push(e);
        }
        if self.entries.len() != before {
            delta.exists = Some(self.exists());
        }
        self.learn_keywords();
        delta
    }

    /// Takes in what changed since the view's snapshot (the store's delta after
    /// `self.mailbox.highest_modseq`): expunges of UIDs in the view, flag changes of
    /// messages in it, and new messages above its highest UID. Expunges are removed only
    /// when `may_expunge`, otherwise they wait in `pending_expunge` (with earlier ones)
    /// for a later call. The result is the view [`Selected::catch_up`] would give with a
    /// full snapshot, without reading the unchanged messages.
    pub fn apply_delta(&mut self, d: MailboxDelta, may_expunge: bool) -> Delta {
        let mut delta = Delta::default();
        self.mailbox = d.mailbox;
        // Expunged after the snapshot and still shown: add to those already waiting.
        // (A UID added and expunged since the snapshot was never shown: nothing to do.)
        if !d.expunged.is_empty() {
            let mut waiting: std::collections::HashSet<u32> =
                self.pending_expunge.iter().copied().collect();
            for uid in d.expunged {
                if self.seq_of(uid).is_some() && waiting.insert(uid) {
                    self.pending_expunge.push(uid);
                }
            }
        }
        if may_expunge && !self.pending_expunge.is_empty() {
            let mut gone = std::mem::take(&mut self.pending_expunge);
            gone.sort_unstable();
            // Highest first, so each number is right at the moment it is sent.
            for uid in gone.iter().rev() {
                if let Some(seq) = self.seq_of(*uid) {
                    delta.expunged_seqs.push(seq);
                    self.recent.remove(uid);
                }
            }
            let set: std::collections::HashSet<u32> = gone.iter().copied().collect();
            self.entries.retain(|e| !set.contains(&e.uid));
            delta.expunged_uids = gone;
        }
        // Flag changes of messages shown (numbers after the expunges above), then the
        // new messages, which all lie above the highest UID shown.
        let max = self.max_uid();
        let before = self.entries.len();
        let mut fresh_keywords = false;
        for f in d.changed {
            fresh_keywords |= !f.keywords.is_empty();
            if f.uid > max {
                self.recent.insert(f.uid);
                self.entries.push(f);
                continue;
            }
            let Ok(i) = self.entries.binary_search_by_key(&f.uid, |e| e.uid) else {
                continue;
            };
            let e = &mut self.entries[i];
            if f.modseq != e.modseq || f.flags != e.flags || f.keywords != e.keywords {
                e.flags = f.flags;
                e.keywords = f.keywords;
                e.modseq = f.modseq;
                delta.flag_changes.push(i as u32 + 1);
            }
        }
        if self.entries.len() != before {
            delta.exists = Some(self.exists());
        }
        if fresh_keywords {
            self.learn_keywords();
        }
        delta
    }

    /// After our own STORE: take in the new flags without announcing them.
    pub fn set_flags(&mut self, uid: u32, flags: Flags, keywords: Vec<String>, modseq: u64) {
        if let Ok(i) = self.entries.binary_search_by_key(&uid, |e| e.uid) {
            let e = &mut self.entries[i];
            e.flags = flags;
            e.keywords = keywords;
            e.modseq = modseq;
            if !e.keywords.is_empty() {
                let new: Vec<String> = e.keywords.clone();
                self.learn(&new);
            }
        }
    }

    /// Adds keywords not yet known (case-insensitively).
    fn learn(&mut self, keywords: &[String]) {
        for k in keywords {
            if !self.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
                self.keywords.push(k.clone());
            }
        }
    }

    pub fn first_unseen(&self) -> Option<u32> {
        self.entries
            .iter()
            .position(|e| !e.flags.contains(Flags::SEEN))
            .map(|i| i as u32 + 1)
    }
}

fn num(n: SeqNum, star: u32) -> u32 {
    match n {
        SeqNum::Value(v) => v.get(),
        SeqNum::Star => star,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postern_imap_proto::{SeqRange, SeqRanges};
    use std::num::NonZeroU32;

    fn view(uids: &[u32]) -> Selected {
        let mailbox = Mailbox {
            id: postern_core::store::MailboxId(1),
            account: postern_core::store::PrincipalId(1),
            name: "INBOX".into(),
            special_use: None,
            uid_validity: 1,
            uid_next: uids.last().map(|u| u + 1).unwrap_or(1),
            highest_modseq: 1,
            subscribed: true,
            created_ms: 0,
        };
        let entries = uids
            .iter()
            .map(|u| MailboxEntry {
                uid: *u,
                message: postern_core::store::MessageId(i64::from(*u)),
                size: 1,
                flags: Flags::default(),
                keywords: Vec::new(),
                modseq: 1,
                saved_ms: 0,
            })
            .collect();
        let access = postern_core::access::MailboxAccess {
            owner: mailbox.account,
            owner_address: "a@example.com".into(),
            name: mailbox.name.clone(),
            mailbox: mailbox.clone(),
            rights: postern_core::access::Rights::ALL,
        };
        Selected::new(access, mailbox, entries, false)
    }

    fn n(v: u32) -> SeqNum {
        match NonZeroU32::new(v) {
            Some(v) => SeqNum::Value(v),
            None => SeqNum::Star,
        }
    }

    /// `0` stands for `*`.
    fn set(r: &[(u32, u32)]) -> SeqSet {
        let v = r
            .iter()
            .map(|(a, b)| SeqRange {
                from: n(*a),
                to: n(*b),
            })
            .collect();
        SeqSet::Ranges(SeqRanges::new(v).unwrap())
    }

    #[test]
    fn sequence_numbers() {
        let s = view(&[3, 5, 9, 10]);
        assert_eq!(
            s.resolve(&set(&[(2, 3), (1, 1), (3, 2)]), false),
            Ok(vec![1, 2, 3])
        );
        assert_eq!(s.resolve(&set(&[(0, 0)]), false), Ok(vec![4]));
        assert_eq!(
            s.resolve(&set(&[(0, 3), (1, 2)]), false),
            Ok(vec![1, 2, 3, 4])
        );
        assert_eq!(s.resolve(&set(&[(5, 5)]), false), Err(SetError::OutOfRange));
        assert_eq!(s.resolve(&set(&[(5, 0)]), false), Err(SetError::OutOfRange));
        let empty = view(&[]);
        assert_eq!(
            empty.resolve(&set(&[(0, 0)]), false),
            Err(SetError::OutOfRange)
        );
        assert_eq!(
            empty.resolve(&set(&[(1, 0)]), false),
            Err(SetError::OutOfRange)
        );
        assert_eq!(empty.resolve(&set(&[(1, 0)]), true), Ok(vec![]));
    }

    #[test]
    fn uids() {
        let s = view(&[3, 5, 9, 10]);
        assert_eq!(
            s.resolve(&set(&[(4, 9), (1, 3), (9, 5)]), true),
            Ok(vec![1, 2, 3])
        );
        assert_eq!(s.resolve(&set(&[(100, 0)]), true), Ok(vec![4]));
        assert_eq!(s.resolve(&set(&[(11, 20)]), true), Ok(vec![]));
        assert_eq!(s.resolve(&set(&[(10, 10), (3, 3)]), true), Ok(vec![1, 4]));
    }

    fn entry(uid: u32, flags: Flags, modseq: u64) -> MailboxEntry {
        MailboxEntry {
            uid,
            message: postern_core::store::MessageId(i64::from(uid)),
            size: 1,
            flags,
            keywords: Vec::new(),
            modseq,
            saved_ms: 0,
        }
    }

    /// The delta gives the same view and announcements as a full snapshot; expunges not
    /// allowed yet wait and are announced (with later ones) when allowed.
    #[test]
    fn delta_matches_full_snapshot() {
        let mut full = view(&[1, 2, 3, 4, 5]);
        let mut inc = view(&[1, 2, 3, 4, 5]);
        let mut mb = full.mailbox.clone();
        mb.highest_modseq = 9;
        // Now: 2 flagged (modseq 7), 3 expunged, 6 added (8), 7 added and expunged (9).
        let fresh = vec![
            entry(1, Flags::default(), 1),
            entry(2, Flags::FLAGGED, 7),
            entry(4, Flags::default(), 1),
            entry(5, Flags::default(), 1),
            entry(6, Flags::SEEN, 8),
        ];
        let d = MailboxDelta {
            mailbox: mb.clone(),
            changed: vec![entry(2, Flags::FLAGGED, 7), entry(6, Flags::SEEN, 8)],
            expunged: vec![3, 7],
        };
        let a = full.catch_up(mb.clone(), fresh.clone(), false);
        let b = inc.apply_delta(d, false);
        assert_eq!(full.entries, inc.entries);
        assert_eq!(full.pending_expunge, inc.pending_expunge);
        assert_eq!(inc.pending_expunge, vec![3]);
        assert_eq!(a.flag_changes, b.flag_changes);
        assert_eq!(a.exists, b.exists);
        assert_eq!(b.exists, Some(6));
        // Later: 5 expunged too; now expunges may be announced, highest first.
        let mut mb2 = mb.clone();
        mb2.highest_modseq = 10;
        let fresh2: Vec<MailboxEntry> = fresh.into_iter().filter(|e| e.uid != 5).collect();
        let a = full.catch_up(mb2.clone(), fresh2, true);
        let b = inc.apply_delta(
            MailboxDelta {
                mailbox: mb2,
                changed: vec![],
                expunged: vec![5],
            },
            true,
        );
        assert_eq!(full.entries, inc.entries);
        assert_eq!(a.expunged_seqs, b.expunged_seqs);
        assert_eq!(b.expunged_seqs, vec![5, 3]);
        assert_eq!(b.expunged_uids, vec![3, 5]);
        assert!(inc.pending_expunge.is_empty());
        assert_eq!(inc.mailbox.highest_modseq, 10);
    }

    /// Thousands of overlapping `1:*` resolve to each message once, in one pass.
    #[test]
    fn overlapping_ranges_do_not_multiply() {
        let uids: Vec<u32> = (1..=20_000).collect();
        let s = view(&uids);
        let many: Vec<(u32, u32)> = std::iter::repeat_n((1, 0), 10_000).collect();
        let seqs = s.resolve(&set(&many), false).unwrap();
        assert_eq!(seqs.len(), 20_000);
        let seqs = s.resolve(&set(&many), true).unwrap();
        assert_eq!(seqs.len(), 20_000);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }
}
