//! THREAD: grouping search results into conversations, and writing the thread list.
//!
//! **Standards:** RFC 5256 §4 (ORDEREDSUBJECT and REFERENCES), §5 (`thread-list`
//! syntax), §2.1 (base subject, shared with SORT), RFC 5322 §3.6.4 (Message-ID,
//! In-Reply-To, References).
//!
//! **Security:** Message-IDs and References come from anyone who can send mail, so a
//! mailbox may hold a 100 000-message reply chain, References that form loops, or a
//! thousand ids in one field. Therefore:
//! - every tree walk (pruning, sorting, building, writing, and [`Node`]'s own `Drop`,
//!   `Clone`, `PartialEq` and `Debug`) uses an explicit stack, never recursion;
//! - children are doubly linked lists while the tree is built, so unlinking and
//!   splicing cost O(1) whatever the fan-out;
//! - the loop check of RFC 5256 §4 step 2 looks at most [`MAX_LOOP_CHECK`] ancestors of
//!   the parent and as many descendants of the child, and refuses the link when neither
//!   search is conclusive;
//! - References are cut like `postern_core::message::thread_references` does: the first
//!   id and the last ones, at most `MAX_THREAD_REFERENCES`.
//!
//! **Invariants:** the result holds each item exactly once; a dummy node (`seq: None`)
//! only occurs at the top level and always has at least two children.

use crate::search::Item;
use crate::sort::{analyse_subject, casemap};
use postern_core::message::MAX_THREAD_REFERENCES;
use std::collections::HashMap;
use std::fmt;

/// Most ancestors (and then descendants) the loop check visits before giving up and
/// not linking. Real threads are far smaller; the cap keeps hostile linking orders
/// from costing O(messages × depth). A chain processed in order or in reverse order
/// needs no search at all, so a long chain is still one thread.
pub const MAX_LOOP_CHECK: usize = 1000;

/// One message of a thread, or a dummy (`seq: None`) standing for a missing parent.
pub struct Node {
    pub seq: Option<u32>,
    pub children: Vec<Node>,
}

impl Node {
    fn leaf(seq: u32) -> Node {
        Node {
            seq: Some(seq),
            children: Vec::new(),
        }
    }
}

/// Dropped with an explicit stack: the derived drop recurses once per level, and a
/// 100 000-message chain would overflow the stack.
impl Drop for Node {
    fn drop(&mut self) {
        let mut stack = std::mem::take(&mut self.children);
        while let Some(mut n) = stack.pop() {
            stack.append(&mut n.children);
        }
    }
}

impl Clone for Node {
    fn clone(&self) -> Node {
        // Frames: the source node and its children cloned so far.
        let mut stack: Vec<(&Node, Vec<Node>)> =
            vec![(self, Vec::with_capacity(self.children.len()))];
        loop {
            let Some((src, done)) = stack.last_mut() else {
                // Unreachable: the loop returns when the last frame is popped.
                return Node {
                    seq: self.seq,
                    children: Vec::new(),
                };
            };
            let src: &Node = src;
            if let Some(child) = src.children.get(done.len()) {
                stack.push((child, Vec::with_capacity(child.children.len())));
                continue;
            }
            let Some((src, children)) = stack.pop() else {
                continue;
            };
            let node = Node {
                seq: src.seq,
                children,
            };
            match stack.last_mut() {
                Some((_, parent)) => parent.push(node),
                None => return node,
            }
        }
    }
}

impl PartialEq for Node {
    fn eq(&self, other: &Node) -> bool {
        let mut stack = vec![(self, other)];
        while let Some((a, b)) = stack.pop() {
            if a.seq != b.seq || a.children.len() != b.children.len() {
                return false;
            }
            stack.extend(a.children.iter().zip(&b.children));
        }
        true
    }
}

impl Eq for Node {}

/// The thread-list syntax with sequence numbers, dummies shown as `_`, e.g.
/// `Node(_ (1)(2 3))`.
impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        render(&mut out, std::slice::from_ref(self), &|s| s, true);
        write!(f, "Node{}", String::from_utf8_lossy(&out))
    }
}

/// Writes the RFC 5256 thread-list response data, e.g. `(2)(3 6 (4 23)(44 7 96))`,
/// using `id(seq)` to print sequence numbers or UIDs. A node with one child continues
/// its parenthesised list (`(1 2 3)` is a chain), so a chain needs no nesting; nesting
/// that does occur is written without recursion.
pub fn write_threads(out: &mut Vec<u8>, threads: &[Node], id: &dyn Fn(u32) -> u32) {
    render(out, threads, id, false);
}

/// RFC 5256 §5: `thread-list = "(" (thread-members / thread-nested) ")"`,
/// `thread-members = nz-number *(SP nz-number) [SP thread-nested]`,
/// `thread-nested = 2*thread-list`. A dummy contributes no number: with one child it is
/// transparent, with several it is only the nesting.
fn render(out: &mut Vec<u8>, threads: &[Node], id: &dyn Fn(u32) -> u32, dummies: bool) {
    // Each entry: siblings still to write. Every entry but the first was opened by a
    // node whose thread-list is closed when its siblings run out.
    let mut stack: Vec<std::slice::Iter<'_, Node>> = vec![threads.iter()];
    while let Some(top) = stack.last_mut() {
        let Some(node) = top.next() else {
            stack.pop();
            if !stack.is_empty() {
                out.push(b')');
            }
            continue;
        };
        if node.seq.is_none() && node.children.is_empty() {
            // Not produced by the algorithms here; "()" would not be valid syntax.
            continue;
        }
        out.push(b'(');
        let mut cur = node;
        let mut first = true;
        loop {
            match cur.seq {
                Some(seq) => {
                    if !first {
                        out.push(b' ');
                    }
                    out.extend_from_slice(id(seq).to_string().as_bytes());
                    first = false;
                }
                None if dummies => {
                    if !first {
                        out.push(b' ');
                    }
                    out.push(b'_');
                    first = false;
                }
                None => {}
            }
            match cur.children.as_slice() {
                [] => {
                    out.push(b')');
                    break;
                }
                [only] => cur = only,
                many => {
                    if !first {
                        out.push(b' ');
                    }
                    stack.push(many.iter());
                    break;
                }
            }
        }
    }
}

/// The sent date (RFC 5256 §3 DATE: the Date header, else INTERNALDATE).
fn sent(it: &Item) -> i64 {
    it.record.meta.sent_ms.unwrap_or(it.record.received_ms)
}

/// RFC 5256 §4 ORDEREDSUBJECT: messages grouped by base subject (compared with
/// i;ascii-casemap, as SORT does), each group sorted by sent date; the first message of
/// a group is the parent of the others, and the threads are sorted by the sent date of
/// their first message. Equal dates keep sequence order.
pub fn ordered_subject(items: &[Item]) -> Vec<Node> {
    let mut keyed: Vec<(Vec<u8>, i64, u32)> = items
        .iter()
        .map(|it| {
            let subject = it.record.meta.envelope.subject.as_deref();
            let base = analyse_subject(subject.unwrap_or_default()).0;
            (casemap(&base), sent(it), it.seq)
        })
        .collect();
    keyed.sort();
    let mut threads: Vec<((i64, u32), Node)> = Vec::new();
    for group in keyed.chunk_by(|a, b| a.0 == b.0) {
        if let Some((head, rest)) = group.split_first() {
            let node = Node {
                seq: Some(head.2),
                children: rest.iter().map(|m| Node::leaf(m.2)).collect(),
            };
            threads.push(((head.1, head.2), node));
        }
    }
    threads.sort_by_key(|a| a.0);
    threads.into_iter().map(|(_, node)| node).collect()
}

/// One container of the REFERENCES algorithm: a message (`item`: index into the items)
/// or a dummy. Children form a doubly linked list.
#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    item: Option<usize>,
    parent: Option<usize>,
    first: Option<usize>,
    last: Option<usize>,
    prev: Option<usize>,
    next: Option<usize>,
}

#[derive(Default)]
struct Arena {
    cells: Vec<Cell>,
}

impl Arena {
    fn add(&mut self, item: Option<usize>) -> usize {
        self.cells.push(Cell {
            item,
            ..Cell::default()
        });
        self.cells.len() - 1
    }

    fn cell(&self, i: usize) -> Cell {
        self.cells.get(i).copied().unwrap_or_default()
    }

    fn with(&mut self, i: usize, f: impl FnOnce(&mut Cell)) {
        if let Some(c) = self.cells.get_mut(i) {
            f(c);
        }
    }

    /// Appends the detached `c` to `p`'s children.
    fn append(&mut self, p: usize, c: usize) {
        let last = self.cell(p).last;
        self.with(c, |x| {
            x.parent = Some(p);
            x.prev = last;
            x.next = None;
        });
        match last {
            Some(l) => self.with(l, |x| x.next = Some(c)),
            None => self.with(p, |x| x.first = Some(c)),
        }
        self.with(p, |x| x.last = Some(c));
    }

    /// Removes `c` from the children of `p` (given, because pruning leaves spliced
    /// cells' `parent` stale).
    fn detach(&mut self, p: usize, c: usize) {
        let Cell { prev, next, .. } = self.cell(c);
        match prev {
            Some(pv) => self.with(pv, |x| x.next = next),
            None => self.with(p, |x| x.first = next),
        }
        match next {
            Some(nx) => self.with(nx, |x| x.prev = prev),
            None => self.with(p, |x| x.last = prev),
        }
        self.with(c, |x| {
            x.parent = None;
            x.prev = None;
            x.next = None;
        });
    }

    fn children(&self, p: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut c = self.cell(p).first;
        while let Some(i) = c {
            out.push(i);
            c = self.cell(i).next;
        }
        out
    }

    /// Whether making `parent` the parent of `child` would close a loop: `child` is
    /// `parent` or one of its ancestors. Two bounded searches decide: up from `parent`
    /// through at most [`MAX_LOOP_CHECK`] ancestors, then down through at most as many
    /// of `child`'s descendants. Only when neither is conclusive (a deep `parent` *and*
    /// a large subtree under `child`) is the answer "yes", and the link is not made.
    fn would_loop(&self, parent: usize, child: usize) -> bool {
        if parent == child {
            return true;
        }
        let Some(first) = self.cell(child).first else {
            // A cell without children has no descendants.
            return false;
        };
        let mut at = parent;
        let mut up_done = false;
        for _ in 0..MAX_LOOP_CHECK {
            match self.cell(at).parent {
                Some(up) if up == child => return true,
                Some(up) => at = up,
                None => {
                    up_done = true;
                    break;
                }
            }
        }
        if up_done {
            return false;
        }
        let mut stack = vec![first];
        let mut seen = 0;
        while let Some(x) = stack.pop() {
            if x == parent {
                return true;
            }
            seen += 1;
            if seen > MAX_LOOP_CHECK {
                return true;
            }
            let cell = self.cell(x);
            stack.extend(cell.next);
            stack.extend(cell.first);
        }
        false
    }

    /// Cells reachable from `root`, parents before children.
    fn preorder(&self, root: usize) -> Vec<usize> {
        let mut seen = vec![false; self.cells.len()];
        let mut order = Vec::new();
        let mut stack = vec![root];
        while let Some(i) = stack.pop() {
            match seen.get_mut(i) {
                Some(s) if !*s => *s = true,
                _ => continue,
            }
            order.push(i);
            let mut c = self.cell(i).first;
            while let Some(k) = c {
                stack.push(k);
                c = self.cell(k).next;
            }
        }
        order
    }
}

/// The first id in angle brackets of an In-Reply-To field, without the brackets (as
/// Message-IDs and References are stored, see `postern_core::message::extract`).
fn first_bracketed_id(text: &str) -> Option<&str> {
    let open = text.find('<')?;
    let rest = text.get(open + 1..)?;
    let close = rest.find('>')?;
    let id = rest.get(..close)?.trim();
    (!id.is_empty()).then_some(id)
}

/// RFC 5256 §4 step 1: the References ids, else the first In-Reply-To id. Long lists
/// keep the first id and the last ones (see the module doc).
fn parent_ids<'a>(it: &Item<'a>) -> Vec<&'a str> {
    let meta = &it.record.meta;
    let refs: Vec<&str> = meta
        .references
        .iter()
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .collect();
    if refs.is_empty() {
        return meta
            .envelope
            .in_reply_to
            .as_deref()
            .and_then(first_bracketed_id)
            .into_iter()
            .collect();
    }
    if refs.len() <= MAX_THREAD_REFERENCES {
        return refs;
    }
    let tail = refs.len() - (MAX_THREAD_REFERENCES - 1);
    refs.iter()
        .take(1)
        .chain(refs.iter().skip(tail))
        .copied()
        .collect()
}

/// RFC 5256 §4 REFERENCES.
pub fn references(items: &[Item]) -> Vec<Node> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items.get(i).map(|it| it.seq));
    let mut arena = Arena::default();
    let mut ids: HashMap<&str, usize> = HashMap::new();

    // Step 1 and 2: containers by Message-ID (case-sensitive), linked along References.
    for &i in &order {
        let Some(it) = items.get(i) else { continue };
        let own = it
            .record
            .meta
            .envelope
            .message_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty());
        let cell = match own {
            Some(id) => match ids.get(id).copied() {
                // A dummy created by an earlier reference: this message fills it.
                Some(c) if arena.cell(c).item.is_none() => {
                    arena.with(c, |x| x.item = Some(i));
                    c
                }
                // A duplicate id: only the first message keeps it.
                Some(_) => arena.add(Some(i)),
                None => {
                    let c = arena.add(Some(i));
                    ids.insert(id, c);
                    c
                }
            },
            // No usable id: a unique one, i.e. a container nobody can refer to.
            None => arena.add(Some(i)),
        };
        let refs: Vec<usize> = parent_ids(it)
            .into_iter()
            .map(|id| match ids.get(id) {
                Some(&c) => c,
                None => {
                    let c = arena.add(None);
                    ids.insert(id, c);
                    c
                }
            })
            .collect();
        // Step 2A: each reference the parent of the next, unless the child already has
        // a parent or the link would make a loop.
        for pair in refs.windows(2) {
            if let [p, c] = *pair
                && arena.cell(c).parent.is_none()
                && !arena.would_loop(p, c)
            {
                arena.append(p, c);
            }
        }
        // Step 2B: the last reference is this message's parent, replacing any parent
        // an earlier (possibly truncated) References gave it.
        let parent = refs.last().copied();
        let current = arena.cell(cell).parent;
        if current != parent {
            if let Some(old) = current {
                arena.detach(old, cell);
            }
            if let Some(p) = parent
                && !arena.would_loop(p, cell)
            {
                arena.append(p, cell);
            }
        }
    }

    // Step 3: parentless containers under one root.
    let root = arena.add(None);
    for c in 0..root {
        if arena.cell(c).parent.is_none() {
            arena.append(root, c);
        }
    }

    // Step 4: prune dummies, children before parents.
    let pre = arena.preorder(root);
    for &p in pre.iter().rev() {
        prune(&mut arena, p, root);
    }

    // Step 5: merge top-level threads with the same base subject.
    let subjects: Vec<(Vec<u8>, bool)> = items
        .iter()
        .map(|it| {
            let subject = it.record.meta.envelope.subject.as_deref();
            let (base, reply) = analyse_subject(subject.unwrap_or_default());
            (casemap(&base), reply)
        })
        .collect();
    merge_subjects(&mut arena, root, &subjects);

    // Step 6: sort siblings by sent date (then sequence), deepest first; a dummy sorts
    // as its first child.
    let mut key: Vec<(i64, u32)> = arena
        .cells
        .iter()
        .map(|c| {
            c.item
                .and_then(|i| items.get(i))
                .map_or((i64::MAX, u32::MAX), |it| (sent(it), it.seq))
        })
        .collect();
    let pre = arena.preorder(root);
    for &p in pre.iter().rev() {
        let mut kids = arena.children(p);
        if kids.len() > 1 {
            kids.sort_by_key(|&k| key.get(k).copied());
            for &k in &kids {
                arena.detach(p, k);
            }
            for &k in &kids {
                arena.append(p, k);
            }
        }
        if arena.cell(p).item.is_none()
            && let Some(first) = kids.first().and_then(|&k| key.get(k).copied())
            && let Some(slot) = key.get_mut(p)
        {
            *slot = first;
        }
    }

    build(&arena, root, items)
}

/// RFC 5256 §4 step 4 for the children of `p`, whose own children are already pruned:
/// a dummy without children goes; a dummy with children is replaced by them, except
/// that at the top level only a dummy with a single child is.
fn prune(arena: &mut Arena, p: usize, root: usize) {
    let mut head: Option<usize> = None;
    let mut tail: Option<usize> = None;
    let mut push = |arena: &mut Arena, first: usize, last: usize| {
        match tail {
            Some(t) => arena.with(t, |x| x.next = Some(first)),
            None => head = Some(first),
        }
        arena.with(first, |x| x.prev = tail);
        tail = Some(last);
    };
    let mut child = arena.cell(p).first;
    while let Some(c) = child {
        let cell = arena.cell(c);
        child = cell.next;
        match (cell.item, cell.first, cell.last) {
            (None, None, _) => {}
            (None, Some(f), Some(l)) if p != root || f == l => {
                if p == root {
                    arena.with(f, |x| x.parent = Some(root));
                }
                push(arena, f, l);
            }
            _ => push(arena, c, c),
        }
    }
    if let Some(t) = tail {
        arena.with(t, |x| x.next = None);
    }
    arena.with(p, |x| {
        x.first = head;
        x.last = tail;
    });
}

/// RFC 5256 §4 step 5: the subject table (B), then the merge (C).
fn merge_subjects(arena: &mut Arena, root: usize, subjects: &[(Vec<u8>, bool)]) {
    let is_dummy = |arena: &Arena, c: usize| arena.cell(c).item.is_none();
    // The thread subject: the message's, or a dummy's first child's.
    let subject_of = |arena: &Arena, c: usize| {
        let cell = arena.cell(c);
        let item = cell
            .item
            .or_else(|| cell.first.and_then(|f| arena.cell(f).item));
        item.and_then(|i| subjects.get(i))
    };
    let reply = |arena: &Arena, c: usize| {
        arena
            .cell(c)
            .item
            .and_then(|i| subjects.get(i))
            .is_some_and(|s| s.1)
    };
    let tops = arena.children(root);
    let mut table: HashMap<&[u8], usize> = HashMap::new();
    for &c in &tops {
        let Some((key, _)) = subject_of(arena, c) else {
            continue;
        };
        if key.is_empty() {
            continue;
        }
        match table.get(key.as_slice()).copied() {
            None => {
                table.insert(key.as_slice(), c);
            }
            Some(t) => {
                if !is_dummy(arena, t)
                    && (is_dummy(arena, c) || (reply(arena, t) && !reply(arena, c)))
                {
                    table.insert(key.as_slice(), c);
                }
            }
        }
    }
    let mut at_root = vec![false; arena.cells.len()];
    for &c in &tops {
        if let Some(flag) = at_root.get_mut(c) {
            *flag = true;
        }
    }
    for &c in &tops {
        if !at_root.get(c).copied().unwrap_or(false) {
            continue;
        }
        let Some((key, _)) = subject_of(arena, c) else {
            continue;
        };
        if key.is_empty() {
            continue;
        }
        let Some(t) = table.get(key.as_slice()).copied() else {
            continue;
        };
        if t == c {
            continue;
        }
        match (is_dummy(arena, t), is_dummy(arena, c)) {
            (true, true) => {
                // Both dummies: the children of both become siblings.
                arena.detach(root, c);
                for k in arena.children(c) {
                    arena.detach(c, k);
                    arena.append(t, k);
                }
            }
            (true, false) => {
                arena.detach(root, c);
                arena.append(t, c);
            }
            (false, true) => {
                // Not reachable after step 5B (a dummy always wins the table); kept
                // consistent: the message joins the dummy, which takes the table.
                arena.detach(root, t);
                arena.append(c, t);
                table.insert(key.as_slice(), c);
                if let Some(flag) = at_root.get_mut(t) {
                    *flag = false;
                }
                continue;
            }
            (false, false) if reply(arena, c) && !reply(arena, t) => {
                arena.detach(root, c);
                arena.append(t, c);
            }
            (false, false) => {
                let d = arena.add(None);
                at_root.resize(arena.cells.len(), false);
                arena.detach(root, c);
                arena.detach(root, t);
                arena.append(d, t);
                arena.append(d, c);
                arena.append(root, d);
                if let Some(flag) = at_root.get_mut(d) {
                    *flag = true;
                }
                if let Some(flag) = at_root.get_mut(t) {
                    *flag = false;
                }
                table.insert(key.as_slice(), d);
            }
        }
        if let Some(flag) = at_root.get_mut(c) {
            *flag = false;
        }
    }
}

/// The arena under `root` as [`Node`] trees, built bottom-up with an explicit stack.
fn build(arena: &Arena, root: usize, items: &[Item]) -> Vec<Node> {
    let seq_of = |c: usize| {
        arena
            .cell(c)
            .item
            .and_then(|i| items.get(i))
            .map(|it| it.seq)
    };
    // Frames: the cell, its next child to build, its children built so far.
    let mut stack: Vec<(usize, Option<usize>, Vec<Node>)> =
        vec![(root, arena.cell(root).first, Vec::new())];
    let mut steps = 0usize;
    // Every cell is entered at most once in a tree; the bound only matters if the
    // arena were corrupt.
    let limit = arena.cells.len().saturating_mul(2).saturating_add(2);
    while let Some(top) = stack.last_mut() {
        steps += 1;
        if steps > limit {
            break;
        }
        if let Some(c) = top.1 {
            top.1 = arena.cell(c).next;
            stack.push((c, arena.cell(c).first, Vec::new()));
            continue;
        }
        let Some((cell, _, children)) = stack.pop() else {
            break;
        };
        match stack.last_mut() {
            Some(parent) => parent.2.push(Node {
                seq: seq_of(cell),
                children,
            }),
            None => return children,
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::tests::{item, msg};
    use postern_core::store::{
        BlobRef, Flags, MailboxEntry, MessageId, MessageMeta, MessageRecord, PrincipalId,
    };

    /// A message made by hand (fast enough for 100 000 of them): Message-ID, References,
    /// In-Reply-To, subject, sent time.
    struct Spec<'a> {
        seq: u32,
        id: Option<&'a str>,
        refs: &'a [&'a str],
        irt: Option<&'a str>,
        subject: &'a str,
        sent: i64,
    }

    fn spec<'a>(seq: u32, id: &'a str, refs: &'a [&'a str], subject: &'a str) -> Spec<'a> {
        Spec {
            seq,
            id: Some(id),
            refs,
            irt: None,
            subject,
            sent: i64::from(seq),
        }
    }

    fn stored(s: &Spec) -> (MailboxEntry, MessageRecord) {
        let mut meta = MessageMeta::default();
        meta.envelope.message_id = s.id.map(str::to_string);
        meta.envelope.in_reply_to = s.irt.map(str::to_string);
        meta.envelope.subject = Some(s.subject.to_string());
        meta.references = s.refs.iter().map(|r| r.to_string()).collect();
        meta.sent_ms = Some(s.sent);
        let entry = MailboxEntry {
            uid: s.seq,
            message: MessageId(i64::from(s.seq)),
            size: 0,
            flags: Flags::default(),
            keywords: Vec::new(),
            modseq: 1,
            saved_ms: 0,
        };
        let record = MessageRecord {
            id: MessageId(i64::from(s.seq)),
            account: PrincipalId(1),
            blob: BlobRef {
                hash: String::new(),
                size: 0,
            },
            received_ms: 0,
            thread_id: String::new(),
            meta,
        };
        (entry, record)
    }

    fn run(specs: &[Spec], algo: fn(&[Item]) -> Vec<Node>) -> String {
        let stored: Vec<_> = specs.iter().map(stored).collect();
        let items: Vec<Item> = stored
            .iter()
            .zip(specs)
            .map(|((entry, record), s)| Item {
                seq: s.seq,
                entry,
                record,
                raw: None,
                recent: false,
            })
            .collect();
        let threads = algo(&items);
        let mut out = Vec::new();
        write_threads(&mut out, &threads, &|s| s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc5256_example_structure() {
        // (2)(3 6 (4 23)(44 7 96)): 6 answers 3; 4 and 44 answer 6; 23 answers 4; 7
        // answers 44 and 96 answers 7. Given out of order, with truncated References.
        let specs = [
            spec(96, "96", &["3", "6", "44", "7"], "Re: x"),
            spec(2, "2", &[], "y"),
            spec(23, "23", &["6", "4"], "Re: x"),
            spec(44, "44", &["3", "6"], "Re: x"),
            spec(3, "3", &[], "x"),
            spec(7, "7", &["44"], "Re: x"),
            spec(4, "4", &["3", "6"], "Re: x"),
            spec(6, "6", &["3"], "Re: x"),
        ];
        assert_eq!(run(&specs, references), "(2)(3 6 (4 23)(44 7 96))");
        // The same with a UID mapping.
        let stored: Vec<_> = specs.iter().map(stored).collect();
        let items: Vec<Item> = stored
            .iter()
            .zip(&specs)
            .map(|((entry, record), s)| Item {
                seq: s.seq,
                entry,
                record,
                raw: None,
                recent: false,
            })
            .collect();
        let mut out = Vec::new();
        write_threads(&mut out, &references(&items), &|s| s + 1000);
        assert_eq!(out, b"(1002)(1003 1006 (1004 1023)(1044 1007 1096))");
    }

    #[test]
    fn siblings_sorted_by_sent_date() {
        let mut specs = vec![
            spec(1, "r", &[], "x"),
            spec(2, "a", &["r"], "Re: x"),
            spec(3, "b", &["r"], "Re: x"),
            spec(4, "c", &["r"], "Re: x"),
        ];
        specs[1].sent = 30;
        specs[2].sent = 10;
        specs[3].sent = 10;
        assert_eq!(run(&specs, references), "(1 (3)(4)(2))");
    }

    #[test]
    fn dummies() {
        // Two replies to a missing message: a dummy parent with two children.
        let specs = [
            spec(1, "a", &["gone"], "Re: x"),
            spec(2, "b", &["gone"], "Re: x"),
            spec(3, "c", &[], "other"),
        ];
        assert_eq!(run(&specs, references), "((1)(2))(3)");
        // A missing message in the middle of a chain disappears.
        let specs = [spec(1, "a", &[], "x"), spec(2, "c", &["a", "b"], "Re: x")];
        assert_eq!(run(&specs, references), "(1 2)");
        // A single reply to a missing message is promoted to the top.
        let specs = [spec(1, "a", &["gone1", "gone2"], "Re: x")];
        assert_eq!(run(&specs, references), "(1)");
        // Missing parents below a message: children of the dummies are spliced in.
        let specs = [
            spec(1, "r", &[], "x"),
            spec(2, "a", &["r", "m1"], "Re: x"),
            spec(3, "b", &["r", "m1", "m2"], "Re: x"),
            spec(4, "c", &["r", "m1", "m2"], "Re: x"),
        ];
        assert_eq!(run(&specs, references), "(1 (2)(3)(4))");
    }

    #[test]
    fn references_loops_are_not_followed() {
        // a says b is its parent, b says a is: the first link wins.
        let specs = [spec(1, "a", &["b"], "x"), spec(2, "b", &["a"], "x")];
        assert_eq!(run(&specs, references), "(2 1)");
        // A three-way loop, and a message that references itself.
        let specs = [
            spec(1, "a", &["c", "b"], "x"),
            spec(2, "b", &["a", "c"], "x"),
            spec(3, "c", &["b", "a"], "x"),
            spec(4, "d", &["d"], "y"),
            spec(5, "e", &["e", "d", "e"], "y"),
        ];
        let out = run(&specs, references);
        for n in ["1", "2", "3", "4", "5"] {
            assert_eq!(out.matches(n).count(), 1, "{out}");
        }
        assert!(out.starts_with('(') && out.ends_with(')'), "{out}");
    }

    #[test]
    fn missing_and_duplicate_ids_in_reply_to() {
        let mut specs = vec![
            spec(1, "a", &[], "x"),
            spec(2, "a", &[], "y"),
            spec(3, "c", &["a"], "Re: x"),
            spec(4, "d", &[], "z"),
            spec(5, "e", &[], "w"),
        ];
        // No Message-ID: still threaded by its own references, never referenced.
        specs[3].id = None;
        specs[3].irt = Some("<c> (Message of Monday)");
        // In-Reply-To is used only when there is no References field.
        specs[4].irt = Some("junk <a> <c>");
        assert_eq!(run(&specs, references), "(1 (3 4)(5))(2)");
    }

    #[test]
    fn subject_merging() {
        // A reply whose References are lost joins the thread of its subject.
        let specs = [spec(1, "a", &[], "hello"), spec(2, "b", &[], "Re: hello")];
        assert_eq!(run(&specs, references), "(1 2)");
        // Two non-replies with the same subject: a dummy holds both.
        let specs = [
            spec(1, "a", &[], "hello"),
            spec(2, "b", &[], "[list] HELLO"),
            spec(3, "c", &[], "Re: hello"),
        ];
        assert_eq!(run(&specs, references), "((1)(2)(3))");
        // Two dummies with the same thread subject become one.
        let specs = [
            spec(1, "a", &["m1"], "Re: s"),
            spec(2, "b", &["m1"], "Re: s"),
            spec(3, "c", &["m2"], "Re: s"),
            spec(4, "d", &["m2"], "Re: s"),
        ];
        assert_eq!(run(&specs, references), "((1)(2)(3)(4))");
        // Empty subjects are never merged.
        let specs = [spec(1, "a", &[], ""), spec(2, "b", &[], "Re: ")];
        assert_eq!(run(&specs, references), "(1)(2)");
    }

    #[test]
    fn ordered_subject_groups() {
        let mut specs = vec![
            spec(1, "a", &[], "Re: beta"),
            spec(2, "b", &[], "alpha"),
            spec(3, "c", &[], "BETA"),
            spec(4, "d", &[], "[list] beta (fwd)"),
            spec(5, "e", &[], "gamma"),
            spec(6, "f", &[], "Re: alpha"),
        ];
        specs[0].sent = 50;
        specs[1].sent = 40;
        specs[2].sent = 20;
        specs[3].sent = 60;
        specs[4].sent = 10;
        specs[5].sent = 45;
        // gamma (10), beta: 3 (20) then 1, 4; alpha: 2 (40) then 6.
        assert_eq!(run(&specs, ordered_subject), "(5)(3 (1)(4))(2 6)");
        assert_eq!(run(&[], ordered_subject), "");
        assert_eq!(run(&[], references), "");
    }

    #[test]
    fn real_messages() {
        // Through the real extractor: ids without brackets, In-Reply-To raw.
        let a = msg(
            "Message-ID: <a@x>\nSubject: s\nDate: Mon, 4 Mar 2024 10:00:00 +0000\n\nx\n",
            1,
        );
        let b = msg(
            "Message-ID: <b@x>\nIn-Reply-To: <a@x>\nSubject: Re: s\nDate: Mon, 4 Mar 2024 11:00:00 +0000\n\nx\n",
            2,
        );
        let c = msg(
            "Message-ID: <c@x>\nReferences: <a@x>\n <b@x>\nSubject: Re: s\nDate: Mon, 4 Mar 2024 12:00:00 +0000\n\nx\n",
            3,
        );
        let items = [item(&c, 3), item(&a, 1), item(&b, 2)];
        let mut out = Vec::new();
        write_threads(&mut out, &references(&items), &|s| s);
        assert_eq!(out, b"(1 2 3)");
    }

    #[test]
    fn write_syntax() {
        let leaf = Node::leaf;
        let n = |seq: Option<u32>, children: Vec<Node>| Node { seq, children };
        let threads = vec![
            leaf(2),
            n(
                Some(3),
                vec![n(
                    Some(6),
                    vec![
                        n(Some(4), vec![leaf(23)]),
                        n(Some(44), vec![n(Some(7), vec![leaf(96)])]),
                    ],
                )],
            ),
            n(None, vec![leaf(8), leaf(9)]),
            n(Some(10), vec![n(None, vec![leaf(11), leaf(12)])]),
            n(None, vec![]),
        ];
        let mut out = Vec::new();
        write_threads(&mut out, &threads, &|s| s);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "(2)(3 6 (4 23)(44 7 96))((8)(9))(10 (11)(12))"
        );
        assert_eq!(format!("{:?}", threads[2]), "Node(_ (8)(9))");
        assert_eq!(threads.clone(), threads);
        assert_ne!(threads[1], threads[3]);
    }

    const LONG: u32 = 100_000;

    fn chain_specs(ids: &[String], forward: bool) -> Vec<Spec<'_>> {
        (0..LONG as usize)
            .map(|i| {
                let seq = i as u32 + 1;
                // forward: seq k answers seq k-1; backward: seq k answers seq k+1.
                let parent = if forward {
                    i.checked_sub(1)
                } else {
                    (i + 1 < LONG as usize).then_some(i + 1)
                };
                Spec {
                    seq,
                    id: Some(&ids[i]),
                    refs: &[],
                    irt: None,
                    subject: "chain",
                    sent: i64::from(seq),
                }
                .with_irt(parent.map(|p| ids[p].as_str()))
            })
            .collect()
    }

    impl<'a> Spec<'a> {
        fn with_irt(mut self, irt: Option<&'a str>) -> Self {
            self.irt = irt;
            self
        }
    }

    #[test]
    fn long_chain_is_flat_and_does_not_overflow() {
        // Run on a 2 MiB stack, like a tokio worker.
        let handle = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| {
                let ids: Vec<String> = (0..LONG).map(|i| format!("<{i}@chain>")).collect();
                let bare: Vec<String> = (0..LONG).map(|i| format!("{i}@chain")).collect();
                for forward in [true, false] {
                    let mut specs = chain_specs(&ids, forward);
                    for (s, id) in specs.iter_mut().zip(&bare) {
                        s.id = Some(id);
                    }
                    let stored: Vec<_> = specs.iter().map(stored).collect();
                    let items: Vec<Item> = stored
                        .iter()
                        .zip(&specs)
                        .map(|((entry, record), s)| Item {
                            seq: s.seq,
                            entry,
                            record,
                            raw: None,
                            recent: false,
                        })
                        .collect();
                    let threads = references(&items);
                    assert_eq!(threads.len(), 1);
                    let copy = threads.clone();
                    assert_eq!(copy, threads);
                    let mut out = Vec::new();
                    write_threads(&mut out, &threads, &|s| s);
                    let expected: Vec<String> = if forward {
                        (1..=LONG).map(|s| s.to_string()).collect()
                    } else {
                        (1..=LONG).rev().map(|s| s.to_string()).collect()
                    };
                    assert_eq!(
                        String::from_utf8(out).unwrap(),
                        format!("({})", expected.join(" "))
                    );
                    let _ = format!("{:?}", threads[0]);
                }
            })
            .unwrap();
        handle.join().unwrap();
    }

    #[test]
    fn deep_nesting_is_written_without_recursion() {
        // A comb: every node has a leaf and a deeper node as children.
        let handle = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(|| {
                let mut node = Node::leaf(2 * LONG + 1);
                for i in (0..LONG).rev() {
                    node = Node {
                        seq: Some(2 * i + 1),
                        children: vec![Node::leaf(2 * i + 2), node],
                    };
                }
                let threads = vec![node];
                let mut out = Vec::new();
                write_threads(&mut out, &threads, &|s| s);
                assert!(out.starts_with(b"(1 (2)(3 (4)(5 (6)(7 "));
                assert!(out.ends_with(&vec![b')'; LONG as usize + 1]));
                let copy = threads.clone();
                assert_eq!(copy, threads);
            })
            .unwrap();
        handle.join().unwrap();
    }

    #[test]
    fn hostile_fan_out_of_dummies_is_fast() {
        // m_k's References make a chain of 20 000 missing messages, each with one
        // real reply: dummy splicing must not be quadratic.
        let n = 20_000usize;
        let names: Vec<String> = (0..=n).map(|i| format!("d{i}")).collect();
        let own: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let refs: Vec<[&str; 2]> = (0..n)
            .map(|i| [names[i].as_str(), names[i + 1].as_str()])
            .collect();
        let specs: Vec<Spec> = (0..n)
            .map(|i| spec(i as u32 + 1, &own[i], &refs[i], "s"))
            .collect();
        let start = std::time::Instant::now();
        let out = run(&specs, references);
        // Every reply hangs below d1 once the dummies are gone; d0 stays as the
        // top-level dummy holding them all.
        assert!(out.starts_with("((1)(2)(3)"), "{}", &out[..40]);
        assert!(out.ends_with("(19999)(20000))"));
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn deep_thread_with_late_parents_is_fast_and_linked() {
        // Replies y_i to x_i arrive first, then a 5 000-deep chain c, then each x_i
        // answering the deepest c: every x_i link checks a deep parent, but x_i's
        // subtree is small, so the links are made.
        let n = 5_000usize;
        let xs: Vec<String> = (0..n).map(|i| format!("x{i}")).collect();
        let ys: Vec<String> = (0..n).map(|i| format!("y{i}")).collect();
        let cs: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
        let y_refs: Vec<[&str; 1]> = xs.iter().map(|x| [x.as_str()]).collect();
        let c_refs: Vec<[&str; 1]> = (0..n).map(|i| [cs[i.saturating_sub(1)].as_str()]).collect();
        let last = [cs[n - 1].as_str()];
        let mut specs = Vec::new();
        for i in 0..n {
            specs.push(spec(specs.len() as u32 + 1, &ys[i], &y_refs[i], "y"));
        }
        for i in 0..n {
            let refs: &[&str] = if i == 0 { &[] } else { &c_refs[i] };
            specs.push(spec(specs.len() as u32 + 1, &cs[i], refs, "c"));
        }
        for x in &xs {
            specs.push(spec(specs.len() as u32 + 1, x, &last, "x"));
        }
        let start = std::time::Instant::now();
        let out = run(&specs, references);
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        // One thread: the chain, then the x_i (each with its y_i) below its last link.
        let chain: Vec<String> = (n + 1..=2 * n).map(|s| s.to_string()).collect();
        let tail = format!("{} (10001 1)(10002 2)", chain.join(" "));
        assert!(out.starts_with(&format!("({tail}")), "{}", &out[..60]);
        assert!(out.ends_with("(15000 5000))"));
    }
}
