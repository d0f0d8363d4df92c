//! Canonical command encoder, used by the decode → encode → decode round-trip tests.

use crate::types::*;

struct W(Vec<u8>);

impl W {
    fn s(&mut self, s: &str) {
        self.0.extend_from_slice(s.as_bytes());
    }
    fn sp(&mut self) {
        self.0.push(b' ');
    }
    /// `string`: quoted when it can be, literal otherwise.
    fn string(&mut self, v: &[u8]) {
        let quotable =
            !v.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) && std::str::from_utf8(v).is_ok();
        if quotable {
            self.0.push(b'"');
            for b in v {
                if matches!(b, b'"' | b'\\') {
                    self.0.push(b'\\');
                }
                self.0.push(*b);
            }
            self.0.push(b'"');
        } else {
            self.s(&format!("{{{}}}\r\n", v.len()));
            self.0.extend_from_slice(v);
        }
    }
    fn astring(&mut self, v: &[u8]) {
        if !v.is_empty() && v.iter().all(|b| is_astring_char(*b)) {
            self.0.extend_from_slice(v);
        } else {
            self.string(v);
        }
    }
    fn mailbox(&mut self, m: &Mailbox) {
        self.astring(m.as_str().as_bytes());
    }
    fn list_mailbox(&mut self, m: &ListMailbox) {
        let v = m.as_str().as_bytes();
        if !v.is_empty()
            && v.iter()
                .all(|b| is_astring_char(*b) || matches!(b, b'%' | b'*'))
        {
            self.0.extend_from_slice(v);
        } else {
            self.string(v);
        }
    }
    fn list<T>(&mut self, items: &[T], mut f: impl FnMut(&mut Self, &T)) {
        self.s("(");
        for (i, it) in items.iter().enumerate() {
            if i > 0 {
                self.sp();
            }
            f(self, it);
        }
        self.s(")");
    }
    fn seq(&mut self, s: &SeqSet) {
        match s {
            SeqSet::Saved => self.s("$"),
            SeqSet::Ranges(r) => {
                for (i, r) in r.ranges().iter().enumerate() {
                    if i > 0 {
                        self.s(",");
                    }
                    self.seq_num(r.from);
                    if r.from != r.to {
                        self.s(":");
                        self.seq_num(r.to);
                    }
                }
            }
        }
    }
    fn seq_num(&mut self, n: SeqNum) {
        match n {
            SeqNum::Star => self.s("*"),
            SeqNum::Value(v) => self.s(&v.to_string()),
        }
    }
    fn flag(&mut self, f: &Flag) {
        match f {
            Flag::Answered => self.s("\\Answered"),
            Flag::Flagged => self.s("\\Flagged"),
            Flag::Deleted => self.s("\\Deleted"),
            Flag::Seen => self.s("\\Seen"),
            Flag::Draft => self.s("\\Draft"),
            Flag::Recent => self.s("\\Recent"),
            Flag::Extension(a) => self.s(&format!("\\{}", a.as_str())),
            Flag::Keyword(a) => self.s(a.as_str()),
        }
    }
    fn date(&mut self, d: &Date) {
        self.s(&format!(
            "{}-{}-{:04}",
            d.day(),
            MONTHS[d.month() as usize - 1],
            d.year()
        ));
    }
    fn status(&mut self, s: &StatusItem) {
        self.s(match s {
            StatusItem::Messages => "MESSAGES",
            StatusItem::UidNext => "UIDNEXT",
            StatusItem::UidValidity => "UIDVALIDITY",
            StatusItem::Unseen => "UNSEEN",
            StatusItem::Deleted => "DELETED",
            StatusItem::Size => "SIZE",
            StatusItem::Recent => "RECENT",
            StatusItem::HighestModSeq => "HIGHESTMODSEQ",
            StatusItem::AppendLimit => "APPENDLIMIT",
            StatusItem::MailboxId => "MAILBOXID",
            StatusItem::DeletedStorage => "DELETED-STORAGE",
        });
    }
    fn uid(&mut self, uid: bool) {
        if uid {
            self.s("UID ");
        }
    }
    fn keys(&mut self, keys: &[SearchKey]) {
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                self.sp();
            }
            self.key(k);
        }
    }
    fn key(&mut self, k: &SearchKey) {
        use SearchKey as K;
        match k {
            K::All => self.s("ALL"),
            K::Answered => self.s("ANSWERED"),
            K::Deleted => self.s("DELETED"),
            K::Draft => self.s("DRAFT"),
            K::Flagged => self.s("FLAGGED"),
            K::New => self.s("NEW"),
            K::Old => self.s("OLD"),
            K::Recent => self.s("RECENT"),
            K::Seen => self.s("SEEN"),
            K::Unanswered => self.s("UNANSWERED"),
            K::Undeleted => self.s("UNDELETED"),
            K::Undraft => self.s("UNDRAFT"),
            K::Unflagged => self.s("UNFLAGGED"),
            K::Unseen => self.s("UNSEEN"),
            K::SaveDateSupported => self.s("SAVEDATESUPPORTED"),
            K::Bcc(s) => self.kv("BCC", s),
            K::Body(s) => self.kv("BODY", s),
            K::Cc(s) => self.kv("CC", s),
            K::From(s) => self.kv("FROM", s),
            K::Subject(s) => self.kv("SUBJECT", s),
            K::Text(s) => self.kv("TEXT", s),
            K::To(s) => self.kv("TO", s),
            K::Before(d) => self.kd("BEFORE", d),
            K::On(d) => self.kd("ON", d),
            K::Since(d) => self.kd("SINCE", d),
            K::SentBefore(d) => self.kd("SENTBEFORE", d),
            K::SentOn(d) => self.kd("SENTON", d),
            K::SentSince(d) => self.kd("SENTSINCE", d),
            K::SavedBefore(d) => self.kd("SAVEDBEFORE", d),
            K::SavedOn(d) => self.kd("SAVEDON", d),
            K::SavedSince(d) => self.kd("SAVEDSINCE", d),
            K::Header(n, v) => {
                self.kv("HEADER", n);
                self.sp();
                self.astring(v.as_bytes());
            }
            K::Keyword(a) => self.s(&format!("KEYWORD {}", a.as_str())),
            K::Unkeyword(a) => self.s(&format!("UNKEYWORD {}", a.as_str())),
            K::Larger(n) => self.s(&format!("LARGER {n}")),
            K::Smaller(n) => self.s(&format!("SMALLER {n}")),
            K::Uid(s) => {
                self.s("UID ");
                self.seq(s);
            }
            K::SeqSet(s) => self.seq(s),
            K::Not(k) => {
                self.s("NOT ");
                self.key(k);
            }
            K::Or(a, b) => {
                self.s("OR ");
                self.key(a);
                self.sp();
                self.key(b);
            }
            K::And(keys) => {
                self.s("(");
                self.keys(keys);
                self.s(")");
            }
            K::ModSeq { entry, mod_seq } => {
                self.s("MODSEQ ");
                if let Some((name, t)) = entry {
                    self.string(name.as_bytes());
                    self.s(match t {
                        EntryType::Priv => " priv ",
                        EntryType::Shared => " shared ",
                        EntryType::All => " all ",
                    });
                }
                self.s(&mod_seq.to_string());
            }
            K::EmailId(id) => self.s(&format!("EMAILID {}", id.as_str())),
            K::ThreadId(id) => self.s(&format!("THREADID {}", id.as_str())),
            K::Older(n) => self.s(&format!("OLDER {n}")),
            K::Younger(n) => self.s(&format!("YOUNGER {n}")),
        }
    }
    fn kv(&mut self, k: &str, v: &IString) {
        self.s(k);
        self.sp();
        self.astring(v.as_bytes());
    }
    fn kd(&mut self, k: &str, d: &Date) {
        self.s(k);
        self.sp();
        self.date(d);
    }
    fn part(&mut self, part: &[std::num::NonZeroU32]) {
        let p: Vec<String> = part.iter().map(|n| n.to_string()).collect();
        self.s(&p.join("."));
    }
    fn partial(&mut self, p: &Option<Partial>) {
        if let Some(p) = p {
            self.s(&format!("<{}.{}>", p.offset, p.length));
        }
    }
    fn fetch_item(&mut self, f: &FetchItem) {
        use FetchItem as F;
        match f {
            F::Envelope => self.s("ENVELOPE"),
            F::Flags => self.s("FLAGS"),
            F::InternalDate => self.s("INTERNALDATE"),
            F::Rfc822Size => self.s("RFC822.SIZE"),
            F::Rfc822 => self.s("RFC822"),
            F::Rfc822Header => self.s("RFC822.HEADER"),
            F::Rfc822Text => self.s("RFC822.TEXT"),
            F::Body => self.s("BODY"),
            F::BodyStructure => self.s("BODYSTRUCTURE"),
            F::Uid => self.s("UID"),
            F::ModSeq => self.s("MODSEQ"),
            F::EmailId => self.s("EMAILID"),
            F::ThreadId => self.s("THREADID"),
            F::SaveDate => self.s("SAVEDATE"),
            F::Preview { lazy } => self.s(if *lazy { "PREVIEW (LAZY)" } else { "PREVIEW" }),
            F::BodySection {
                peek,
                section,
                partial,
            } => {
                self.s(if *peek { "BODY.PEEK[" } else { "BODY[" });
                self.part(&section.part);
                if let Some(t) = &section.text {
                    if !section.part.is_empty() {
                        self.s(".");
                    }
                    match t {
                        SectionText::Header => self.s("HEADER"),
                        SectionText::Text => self.s("TEXT"),
                        SectionText::Mime => self.s("MIME"),
                        SectionText::HeaderFields { not, fields } => {
                            self.s(if *not {
                                "HEADER.FIELDS.NOT "
                            } else {
                                "HEADER.FIELDS "
                            });
                            self.list(fields, |w, f| w.astring(f.as_bytes()));
                        }
                    }
                }
                self.s("]");
                self.partial(partial);
            }
            F::Binary {
                peek,
                part,
                partial,
            } => {
                self.s(if *peek { "BINARY.PEEK[" } else { "BINARY[" });
                self.part(part);
                self.s("]");
                self.partial(partial);
            }
            F::BinarySize { part } => {
                self.s("BINARY.SIZE[");
                self.part(part);
                self.s("]");
            }
        }
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Encode a command in canonical form (keywords upper-case, minimal quoting).
pub fn encode(c: &Command) -> Vec<u8> {
    use CommandBody as C;
    let mut w = W(Vec::new());
    w.s(c.tag.as_str());
    w.sp();
    match &c.body {
        C::Capability => w.s("CAPABILITY"),
        C::Noop => w.s("NOOP"),
        C::Logout => w.s("LOGOUT"),
        C::StartTls => w.s("STARTTLS"),
        C::Namespace => w.s("NAMESPACE"),
        C::Idle => w.s("IDLE"),
        C::Check => w.s("CHECK"),
        C::Close => w.s("CLOSE"),
        C::Unselect => w.s("UNSELECT"),
        C::Expunge => w.s("EXPUNGE"),
        C::Authenticate { mechanism, initial } => {
            w.s("AUTHENTICATE ");
            w.s(mechanism.as_str());
            if let Some(i) = initial {
                w.sp();
                if i.expose().is_empty() {
                    w.s("=");
                } else {
                    use base64::Engine;
                    w.s(&base64::engine::general_purpose::STANDARD.encode(i.expose()));
                }
            }
        }
        C::Login { username, password } => {
            w.s("LOGIN ");
            w.astring(username.as_bytes());
            w.sp();
            w.astring(password.expose().as_bytes());
        }
        C::Enable { capabilities } => {
            w.s("ENABLE");
            for c in capabilities {
                w.sp();
                w.s(c.as_str());
            }
        }
        C::Select { mailbox, params } | C::Examine { mailbox, params } => {
            w.s(if matches!(c.body, C::Select { .. }) {
                "SELECT "
            } else {
                "EXAMINE "
            });
            w.mailbox(mailbox);
            let mut ps: Vec<Vec<u8>> = Vec::new();
            if params.condstore {
                ps.push(b"CONDSTORE".to_vec());
            }
            if let Some(q) = &params.qresync {
                let mut x = W(Vec::new());
                x.s(&format!("QRESYNC ({} {}", q.uid_validity, q.mod_seq.get()));
                if let Some(k) = &q.known_uids {
                    x.sp();
                    x.seq(k);
                }
                if let Some((a, b)) = &q.seq_match {
                    x.s(" (");
                    x.seq(a);
                    x.sp();
                    x.seq(b);
                    x.s(")");
                }
                x.s(")");
                ps.push(x.0);
            }
            if !ps.is_empty() {
                w.sp();
                w.list(&ps, |w, p| w.0.extend_from_slice(p));
            }
        }
        C::Create { mailbox, use_attrs } => {
            w.s("CREATE ");
            w.mailbox(mailbox);
            if !use_attrs.is_empty() {
                w.s(" (USE ");
                w.list(use_attrs, |w, a| w.s(&format!("\\{}", a.as_str())));
                w.s(")");
            }
        }
        C::Delete { mailbox } => {
            w.s("DELETE ");
            w.mailbox(mailbox);
        }
        C::Rename { from, to } => {
            w.s("RENAME ");
            w.mailbox(from);
            w.sp();
            w.mailbox(to);
        }
        C::Subscribe { mailbox } => {
            w.s("SUBSCRIBE ");
            w.mailbox(mailbox);
        }
        C::Unsubscribe { mailbox } => {
            w.s("UNSUBSCRIBE ");
            w.mailbox(mailbox);
        }
        C::List(l) => {
            w.s("LIST ");
            if let Some(sel) = &l.selection {
                w.list(sel, |w, s| match s {
                    ListSelect::Subscribed => w.s("SUBSCRIBED"),
                    ListSelect::Remote => w.s("REMOTE"),
                    ListSelect::RecursiveMatch => w.s("RECURSIVEMATCH"),
                    ListSelect::SpecialUse => w.s("SPECIAL-USE"),
                    ListSelect::Other(a) => w.s(a.as_str()),
                });
                w.sp();
            }
            w.astring(l.reference.as_str().as_bytes());
            w.sp();
            if l.patterns.len() == 1 {
                w.list_mailbox(&l.patterns[0]);
            } else {
                w.list(&l.patterns, |w, p| w.list_mailbox(p));
            }
            if let Some(r) = &l.returns {
                w.s(" RETURN ");
                w.list(r, |w, r| match r {
                    ListReturn::Subscribed => w.s("SUBSCRIBED"),
                    ListReturn::Children => w.s("CHILDREN"),
                    ListReturn::SpecialUse => w.s("SPECIAL-USE"),
                    ListReturn::Other(a) => w.s(a.as_str()),
                    ListReturn::Status(items) => {
                        w.s("STATUS ");
                        w.list(items, |w, s| w.status(s));
                    }
                });
            }
        }
        C::Lsub { reference, pattern } => {
            w.s("LSUB ");
            w.astring(reference.as_str().as_bytes());
            w.sp();
            w.list_mailbox(pattern);
        }
        C::Status { mailbox, items } => {
            w.s("STATUS ");
            w.mailbox(mailbox);
            w.sp();
            w.list(items, |w, s| w.status(s));
        }
        C::Append { mailbox, messages } => {
            w.s("APPEND ");
            w.mailbox(mailbox);
            for m in messages {
                w.sp();
                if let Some(f) = &m.flags {
                    w.list(f, |w, f| w.flag(f));
                    w.sp();
                }
                if let Some(d) = &m.date {
                    let (h, mi, s) = d.time();
                    let z = d.zone_minutes();
                    let dd = d.date();
                    w.s(&format!(
                        "\"{:2}-{}-{:04} {:02}:{:02}:{:02} {}{:02}{:02}\" ",
                        dd.day(),
                        MONTHS[dd.month() as usize - 1],
                        dd.year(),
                        h,
                        mi,
                        s,
                        if z < 0 { '-' } else { '+' },
                        z.unsigned_abs() / 60,
                        z.unsigned_abs() % 60
                    ));
                }
                if m.binary {
                    w.s("~");
                }
                w.s(&format!("{{{}}}\r\n", m.data.len()));
                w.0.extend_from_slice(&m.data);
            }
        }
        C::UidExpunge { uids } => {
            w.s("UID EXPUNGE ");
            w.seq(uids);
        }
        C::Search(s) => {
            w.uid(s.uid);
            w.s("SEARCH ");
            if let Some(r) = &s.returns {
                w.s("RETURN ");
                w.list(r, |w, r| {
                    w.s(match r {
                        SearchReturn::Min => "MIN",
                        SearchReturn::Max => "MAX",
                        SearchReturn::All => "ALL",
                        SearchReturn::Count => "COUNT",
                        SearchReturn::Save => "SAVE",
                    })
                });
                w.sp();
            }
            if let Some(cs) = &s.charset {
                w.s("CHARSET ");
                w.astring(cs.as_bytes());
                w.sp();
            }
            w.keys(&s.keys);
        }
        C::Sort(s) => {
            w.uid(s.uid);
            w.s("SORT ");
            w.list(&s.criteria, |w, c| {
                if c.reverse {
                    w.s("REVERSE ");
                }
                w.s(match c.key {
                    SortKey::Arrival => "ARRIVAL",
                    SortKey::Cc => "CC",
                    SortKey::Date => "DATE",
                    SortKey::From => "FROM",
                    SortKey::Size => "SIZE",
                    SortKey::Subject => "SUBJECT",
                    SortKey::To => "TO",
                    SortKey::DisplayFrom => "DISPLAYFROM",
                    SortKey::DisplayTo => "DISPLAYTO",
                });
            });
            w.sp();
            w.astring(s.charset.as_bytes());
            w.sp();
            w.keys(&s.keys);
        }
        C::Thread(t) => {
            w.uid(t.uid);
            w.s("THREAD ");
            w.s(match &t.algorithm {
                ThreadAlgorithm::OrderedSubject => "ORDEREDSUBJECT",
                ThreadAlgorithm::References => "REFERENCES",
                ThreadAlgorithm::Other(a) => a.as_str(),
            });
            w.sp();
            w.astring(t.charset.as_bytes());
            w.sp();
            w.keys(&t.keys);
        }
        C::Fetch {
            uid,
            set,
            items,
            modifiers,
        } => {
            w.uid(*uid);
            w.s("FETCH ");
            w.seq(set);
            w.sp();
            match items {
                FetchItems::All => w.s("ALL"),
                FetchItems::Fast => w.s("FAST"),
                FetchItems::Full => w.s("FULL"),
                FetchItems::List { items, paren: true } => w.list(items, |w, f| w.fetch_item(f)),
                FetchItems::List {
                    items,
                    paren: false,
                } => {
                    for f in items {
                        w.fetch_item(f);
                    }
                }
            }
            let mut ms = Vec::new();
            if let Some(c) = modifiers.changed_since {
                ms.push(format!("CHANGEDSINCE {}", c.get()));
            }
            if modifiers.vanished {
                ms.push("VANISHED".to_owned());
            }
            if !ms.is_empty() {
                w.sp();
                w.list(&ms, |w, m| w.s(m));
            }
        }
        C::Store {
            uid,
            set,
            unchanged_since,
            action,
            silent,
            flags,
        } => {
            w.uid(*uid);
            w.s("STORE ");
            w.seq(set);
            w.sp();
            if let Some(u) = unchanged_since {
                w.s(&format!("(UNCHANGEDSINCE {u}) "));
            }
            w.s(match action {
                StoreAction::Replace => "",
                StoreAction::Add => "+",
                StoreAction::Remove => "-",
            });
            w.s(if *silent { "FLAGS.SILENT " } else { "FLAGS " });
            w.list(flags, |w, f| w.flag(f));
        }
        C::Copy { uid, set, mailbox } | C::Move { uid, set, mailbox } => {
            w.uid(*uid);
            w.s(if matches!(c.body, C::Copy { .. }) {
                "COPY "
            } else {
                "MOVE "
            });
            w.seq(set);
            w.sp();
            w.mailbox(mailbox);
        }
        C::GetQuota { root } => {
            w.s("GETQUOTA ");
            w.astring(root.as_bytes());
        }
        C::GetQuotaRoot { mailbox } => {
            w.s("GETQUOTAROOT ");
            w.mailbox(mailbox);
        }
        C::SetQuota { root, limits } => {
            w.s("SETQUOTA ");
            w.astring(root.as_bytes());
            w.sp();
            w.list(limits, |w, (n, v)| w.s(&format!("{} {v}", n.as_str())));
        }
        C::SetAcl {
            mailbox,
            identifier,
            modify,
            rights,
        } => {
            w.s("SETACL ");
            w.mailbox(mailbox);
            w.sp();
            w.astring(identifier.as_bytes());
            w.sp();
            let r = format!(
                "{}{}",
                match modify {
                    RightsModify::Replace => "",
                    RightsModify::Add => "+",
                    RightsModify::Remove => "-",
                },
                rights.as_str()
            );
            w.astring(r.as_bytes());
        }
        C::DeleteAcl {
            mailbox,
            identifier,
        } => {
            w.s("DELETEACL ");
            w.mailbox(mailbox);
            w.sp();
            w.astring(identifier.as_bytes());
        }
        C::GetAcl { mailbox } => {
            w.s("GETACL ");
            w.mailbox(mailbox);
        }
        C::ListRights {
            mailbox,
            identifier,
        } => {
            w.s("LISTRIGHTS ");
            w.mailbox(mailbox);
            w.sp();
            w.astring(identifier.as_bytes());
        }
        C::MyRights { mailbox } => {
            w.s("MYRIGHTS ");
            w.mailbox(mailbox);
        }
        C::Id { params } => {
            w.s("ID ");
            match params {
                None => w.s("NIL"),
                Some(p) => w.list(p, |w, (k, v)| {
                    w.string(k.as_bytes());
                    w.sp();
                    match v {
                        None => w.s("NIL"),
                        Some(v) => w.string(v.as_bytes()),
                    }
                }),
            }
        }
        C::Compress { algorithm } => {
            w.s("COMPRESS ");
            w.s(algorithm.as_str());
        }
    }
    w.s("\r\n");
    w.0
}
