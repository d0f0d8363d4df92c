//! The selected mailbox as this session sees it: message sequence numbers, UIDs, flags
//! and modseqs, and how it catches up with the store (RFC 9051 §7.5: EXISTS, EXPUNGE,
//! FETCH FLAGS; RFC 7162 §3.2.10 VANISHED).
//!
//! The view changes only between commands, never in the middle of one, and an expunge
//! is not shown while answering a FETCH, STORE or SEARCH by sequence number (RFC 9051
//! §7.5.1), so sequence numbers stay valid for the client.

use postern_core::store::{Flags, Mailbox, MailboxEntry};
use postern_imap_proto::{SeqNum, SeqSet};
use std::collections::HashMap;

pub struct Selected {
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
    pub fn new(mailbox: Mailbox, entries: Vec<MailboxEntry>, read_only: bool) -> Selected {
        let mut s = Selected {
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

    fn learn_keywords(&mut self) {
        for e in &self.entries {
            for k in &e.keywords {
                if !self.keywords.iter().any(|x| x.eq_ignore_ascii_case(k)) {
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
    /// an error; `*` is EXISTS (an empty mailbox has none).
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
        let mut out = Vec::new();
        if by_uid {
            let max = self.max_uid();
            for r in ranges {
                let a = num(r.from, max);
                let b = num(r.to, max);
                let (lo, hi) = (a.min(b), a.max(b));
                let start = self.entries.partition_point(|e| e.uid < lo);
                for (i, e) in self.entries.iter().enumerate().skip(start) {
                    if e.uid > hi {
                        break;
                    }
                    out.push(i as u32 + 1);
                }
            }
        } else {
            for r in ranges {
                let a = num(r.from, n);
                let b = num(r.to, n);
                let (lo, hi) = (a.min(b), a.max(b));
                if hi > n || lo == 0 {
                    if n == 0 && matches!(r.from, SeqNum::Star) && matches!(r.to, SeqNum::Star) {
                        continue;
                    }
                    return Err(SetError::OutOfRange);
                }
                // Bounded by EXISTS, so this cannot amplify.
                out.extend(lo..=hi);
            }
        }
        out.sort_unstable();
        out.dedup();
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
            // Highest first, so each number is right at the moment it is sent.
            for uid in gone.iter().rev() {
                if let Some(seq) = self.seq_of(*uid) {
                    delta.expunged_seqs.push(seq);
                    self.entries.remove(seq as usize - 1);
                    self.recent.remove(uid);
                }
            }
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

    /// After our own STORE: take in the new flags without announcing them.
    pub fn set_flags(&mut self, uid: u32, flags: Flags, keywords: Vec<String>, modseq: u64) {
        if let Ok(i) = self.entries.binary_search_by_key(&uid, |e| e.uid) {
            let e = &mut self.entries[i];
            e.flags = flags;
            e.keywords = keywords;
            e.modseq = modseq;
        }
        self.learn_keywords();
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
