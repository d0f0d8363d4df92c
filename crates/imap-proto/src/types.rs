//! Command types. Every newtype checks its invariant in its constructor, so a value
//! that exists is one the RFC 9051 §9 grammar allows (STYLE: invalid values can't be
//! built). Nothing here parses the wire; see [`crate::decode`].

use std::fmt;
use std::num::NonZeroU32;

/// Why a value was refused by a constructor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// RFC 9051 §9 `ATOM-CHAR`: any CHAR except atom-specials
/// (`(` `)` `{` SP CTL `%` `*` `"` `\` `]`).
pub fn is_atom_char(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// RFC 9051 §9 `ASTRING-CHAR = ATOM-CHAR / resp-specials`.
pub fn is_astring_char(b: u8) -> bool {
    is_atom_char(b) || b == b']'
}

/// RFC 9051 §9 `tag = 1*<any ASTRING-CHAR except "+">`.
pub fn is_tag_char(b: u8) -> bool {
    is_astring_char(b) && b != b'+'
}

/// A command tag (RFC 9051 §2.2.1, §9 `tag`): non-empty, only tag characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl Tag {
    pub fn new(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid("empty tag"));
        }
        if !s.bytes().all(is_tag_char) {
            return Err(Invalid("forbidden character in tag"));
        }
        Ok(Tag(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 9051 §9 `atom = 1*ATOM-CHAR`. Used for capabilities, extension names,
/// flag keywords, SASL mechanism names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Atom(String);

impl Atom {
    pub fn new(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid("empty atom"));
        }
        if !s.bytes().all(is_atom_char) {
            return Err(Invalid("forbidden character in atom"));
        }
        Ok(Atom(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Case-insensitive comparison, as IMAP keywords are (RFC 9051 §9 note 1).
    pub fn eq_ignore_case(&self, s: &str) -> bool {
        self.0.eq_ignore_ascii_case(s)
    }
}

/// Hides a credential from `Debug` (STYLE: `Secret<T>`); read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(v: T) -> Self {
        Secret(v)
    }
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The value of an `astring` / `string` / `nstring` (RFC 9051 §9). Bytes, because a
/// literal may carry any CHAR8; [`IString::as_str`] when UTF-8 is needed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IString(Vec<u8>);

impl IString {
    /// `CHAR8 = %x01-ff`: NUL is the only byte a string can never hold (RFC 9051 §4.3).
    pub fn new(v: Vec<u8>) -> Result<Self, Invalid> {
        if v.contains(&0) {
            return Err(Invalid("NUL in string"));
        }
        Ok(IString(v))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

/// A mailbox name (RFC 9051 §5.1, §9 `mailbox = "INBOX" / astring`). `INBOX` in any
/// case is INBOX; other names are UTF-8 (IMAP4rev2, RFC 9051 §5.1) — IMAP4rev1
/// clients' modified UTF-7 is decoded by [`crate::decode_mutf7`] at the session layer,
/// which knows whether IMAP4rev2 was enabled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mailbox {
    Inbox,
    Other(MailboxName),
}

/// A mailbox name other than INBOX: UTF-8, non-empty, no NUL, CR or LF.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MailboxName(String);

impl MailboxName {
    pub fn new(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() {
            return Err(Invalid("empty mailbox name"));
        }
        if s.eq_ignore_ascii_case("INBOX") {
            return Err(Invalid("INBOX is Mailbox::Inbox"));
        }
        if s.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(Invalid("control character in mailbox name"));
        }
        Ok(MailboxName(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Mailbox {
    /// RFC 9051 §5.1: "INBOX" is case-insensitive; everything else is case-sensitive.
    pub fn new(s: &str) -> Result<Self, Invalid> {
        if s.eq_ignore_ascii_case("INBOX") {
            Ok(Mailbox::Inbox)
        } else {
            MailboxName::new(s).map(Mailbox::Other)
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            Mailbox::Inbox => "INBOX",
            Mailbox::Other(n) => n.as_str(),
        }
    }
}

/// A LIST pattern (RFC 9051 §9 `list-mailbox`), with `*` and `%` wildcards kept as-is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListMailbox(String);

impl ListMailbox {
    /// May be empty (`LIST "" ""` asks for the hierarchy delimiter, RFC 9051 §6.3.9).
    pub fn new(s: &str) -> Result<Self, Invalid> {
        if s.bytes().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(Invalid("control character in list pattern"));
        }
        Ok(ListMailbox(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A sequence number or UID in a set: a value or `*` (RFC 9051 §9 `seq-number`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    Value(NonZeroU32),
    Star,
}

/// `seq-number` or `seq-range` (RFC 9051 §9). `from == to` is a single number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqRange {
    pub from: SeqNum,
    pub to: SeqNum,
}

/// A non-empty `sequence-set` (RFC 9051 §9), or `$` — the saved search result
/// (RFC 9051 §6.4.4.1, `seq-last-command`; RFC 5182).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeqSet {
    Ranges(SeqRanges),
    Saved,
}

/// At least one range (the invariant the grammar's `1*` gives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqRanges(Vec<SeqRange>);

impl SeqRanges {
    pub fn new(v: Vec<SeqRange>) -> Result<Self, Invalid> {
        if v.is_empty() {
            return Err(Invalid("empty sequence set"));
        }
        Ok(SeqRanges(v))
    }
    pub fn ranges(&self) -> &[SeqRange] {
        &self.0
    }
}

/// A system flag or keyword (RFC 9051 §2.3.2, §9 `flag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flag {
    Answered,
    Flagged,
    Deleted,
    Seen,
    Draft,
    /// `\Recent` is IMAP4rev1 only, accepted in flag lists from such clients.
    Recent,
    /// `flag-extension = "\" atom` (unknown system flag).
    Extension(Atom),
    Keyword(Atom),
}

/// `date` (RFC 9051 §9): `d-Mon-yyyy`, validated as a real calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            let leap =
                (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
            if leap { 29 } else { 28 }
        }
    }
}

impl Date {
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, Invalid> {
        if !(1..=12).contains(&month) {
            return Err(Invalid("bad month"));
        }
        if day == 0 || day > days_in_month(year, month) {
            return Err(Invalid("bad day of month"));
        }
        Ok(Date { year, month, day })
    }
    pub fn year(&self) -> u16 {
        self.year
    }
    pub fn month(&self) -> u8 {
        self.month
    }
    pub fn day(&self) -> u8 {
        self.day
    }
}

/// `date-time` (RFC 9051 §9) as given to APPEND: date, time and zone offset in minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    date: Date,
    hour: u8,
    minute: u8,
    second: u8,
    zone_minutes: i16,
}

impl DateTime {
    pub fn new(
        date: Date,
        hour: u8,
        minute: u8,
        second: u8,
        zone_minutes: i16,
    ) -> Result<Self, Invalid> {
        // 60 admits a leap second; zones are ±99:59 at most (`zone = ("+" / "-") 4DIGIT`).
        if hour > 23 || minute > 59 || second > 60 {
            return Err(Invalid("bad time"));
        }
        if zone_minutes.unsigned_abs() > 99 * 60 + 59 {
            return Err(Invalid("bad zone"));
        }
        Ok(DateTime {
            date,
            hour,
            minute,
            second,
            zone_minutes,
        })
    }
    pub fn date(&self) -> Date {
        self.date
    }
    pub fn time(&self) -> (u8, u8, u8) {
        (self.hour, self.minute, self.second)
    }
    pub fn zone_minutes(&self) -> i16 {
        self.zone_minutes
    }
}

/// RFC 7162 §7 `mod-sequence-value = 1*DIGIT` (positive, ≤ 2^63-1). Zero is only
/// allowed where the grammar says `mod-sequence-valzer`, which uses a plain `u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModSeq(u64);

impl ModSeq {
    pub fn new(v: u64) -> Result<Self, Invalid> {
        if v == 0 || v > i64::MAX as u64 {
            return Err(Invalid("mod-sequence out of range"));
        }
        Ok(ModSeq(v))
    }
    pub fn get(&self) -> u64 {
        self.0
    }
}

/// RFC 8474 §7 `objectid = 1*255(ALPHA / DIGIT / "_" / "-")`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectId(String);

impl ObjectId {
    pub fn new(s: &str) -> Result<Self, Invalid> {
        if s.is_empty() || s.len() > 255 {
            return Err(Invalid("object id length"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(Invalid("forbidden character in object id"));
        }
        Ok(ObjectId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// ACL rights string (RFC 4314 §2.1, §9 `rights = astring`): letters and digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rights(String);

impl Rights {
    /// May be empty (`SETACL m u ""` removes all rights).
    pub fn new(s: &str) -> Result<Self, Invalid> {
        if !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(Invalid("rights are lowercase letters and digits"));
        }
        Ok(Rights(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One tagged command (RFC 9051 §2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: Tag,
    pub body: CommandBody,
}

/// RFC 9051 §6.3.4 `USE (...)` (RFC 6154 §3): special-use attributes such as `\Sent`.
pub type UseAttr = Atom;

/// Every command the parser knows (RFC 9051 §6 and the extensions in the crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandBody {
    // §6.1 any state
    Capability,
    Noop,
    Logout,
    // §6.2 not authenticated
    StartTls,
    /// RFC 9051 §6.2.2; `initial` is SASL-IR (RFC 4959): `Some(empty)` for `=`.
    Authenticate {
        mechanism: Atom,
        initial: Option<Secret<Vec<u8>>>,
    },
    Login {
        username: IString,
        password: Secret<IString>,
    },
    // §6.3 authenticated
    /// RFC 5161 / RFC 9051 §6.3.1.
    Enable {
        capabilities: Vec<Atom>,
    },
    Select {
        mailbox: Mailbox,
        params: SelectParams,
    },
    Examine {
        mailbox: Mailbox,
        params: SelectParams,
    },
    /// `use_attrs`: CREATE-SPECIAL-USE (RFC 6154 §3).
    Create {
        mailbox: Mailbox,
        use_attrs: Vec<UseAttr>,
    },
    Delete {
        mailbox: Mailbox,
    },
    Rename {
        from: Mailbox,
        to: Mailbox,
    },
    Subscribe {
        mailbox: Mailbox,
    },
    Unsubscribe {
        mailbox: Mailbox,
    },
    List(ListCommand),
    /// IMAP4rev1 only (RFC 3501 §6.3.9).
    Lsub {
        reference: ListMailbox,
        pattern: ListMailbox,
    },
    Namespace,
    Status {
        mailbox: Mailbox,
        items: Vec<StatusItem>,
    },
    /// MULTIAPPEND (RFC 3502): one or more messages.
    Append {
        mailbox: Mailbox,
        messages: Vec<AppendMessage>,
    },
    /// RFC 2177 / RFC 9051 §6.3.13.
    Idle,
    // §6.4 selected
    /// IMAP4rev1 only (RFC 3501 §6.4.1).
    Check,
    Close,
    Unselect,
    Expunge,
    /// UIDPLUS (RFC 4315 §2.1) / RFC 9051 §6.4.9.
    UidExpunge {
        uids: SeqSet,
    },
    Search(SearchCommand),
    /// RFC 5256 §3.
    Sort(SortCommand),
    /// RFC 5256 §3.
    Thread(ThreadCommand),
    Fetch {
        uid: bool,
        set: SeqSet,
        items: FetchItems,
        modifiers: FetchModifiers,
    },
    Store {
        uid: bool,
        set: SeqSet,
        /// CONDSTORE (RFC 7162 §3.1.3), `mod-sequence-valzer`.
        unchanged_since: Option<u64>,
        action: StoreAction,
        silent: bool,
        flags: Vec<Flag>,
    },
    Copy {
        uid: bool,
        set: SeqSet,
        mailbox: Mailbox,
    },
    /// RFC 6851.
    Move {
        uid: bool,
        set: SeqSet,
        mailbox: Mailbox,
    },
    // QUOTA, RFC 9208 §4
    GetQuota {
        root: IString,
    },
    GetQuotaRoot {
        mailbox: Mailbox,
    },
    SetQuota {
        root: IString,
        limits: Vec<(Atom, u64)>,
    },
    // ACL, RFC 4314 §3
    SetAcl {
        mailbox: Mailbox,
        identifier: IString,
        modify: RightsModify,
        rights: Rights,
    },
    DeleteAcl {
        mailbox: Mailbox,
        identifier: IString,
    },
    GetAcl {
        mailbox: Mailbox,
    },
    ListRights {
        mailbox: Mailbox,
        identifier: IString,
    },
    MyRights {
        mailbox: Mailbox,
    },
    /// RFC 2971: `None` for `ID NIL`.
    Id {
        params: Option<Vec<(IString, Option<IString>)>>,
    },
    /// RFC 4978.
    Compress {
        algorithm: Atom,
    },
}

/// SETACL's optional `+`/`-` prefix (RFC 4314 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RightsModify {
    Replace,
    Add,
    Remove,
}

/// SELECT/EXAMINE parameters (RFC 7162 §3.1.8, §3.2.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectParams {
    pub condstore: bool,
    pub qresync: Option<QresyncParams>,
}

/// RFC 7162 §3.2.5 `QRESYNC (uidvalidity modseq [known-uids] [(seqs uids)])`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QresyncParams {
    pub uid_validity: NonZeroU32,
    pub mod_seq: ModSeq,
    pub known_uids: Option<SeqSet>,
    pub seq_match: Option<(SeqSet, SeqSet)>,
}

/// LIST (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258, LIST-STATUS RFC 5819).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListCommand {
    /// `None` when no selection options were given (basic LIST).
    pub selection: Option<Vec<ListSelect>>,
    /// The reference name (may be `""`, so not a [`Mailbox`]).
    pub reference: ListMailbox,
    /// At least one pattern; more than one only in the extended syntax.
    pub patterns: Vec<ListMailbox>,
    pub returns: Option<Vec<ListReturn>>,
}

/// RFC 5258 §6 `list-select-opt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListSelect {
    Subscribed,
    Remote,
    RecursiveMatch,
    /// RFC 6154 §3.
    SpecialUse,
    Other(Atom),
}

/// RFC 5258 §6 `return-option`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListReturn {
    Subscribed,
    Children,
    SpecialUse,
    /// LIST-STATUS (RFC 5819 §2).
    Status(Vec<StatusItem>),
    Other(Atom),
}

/// `status-att` (RFC 9051 §6.3.11, STATUS=SIZE RFC 8438, CONDSTORE RFC 7162 §3.1.10,
/// APPENDLIMIT RFC 7889, OBJECTID RFC 8474 §4, QUOTA RFC 9208).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    UidNext,
    UidValidity,
    Unseen,
    Deleted,
    Size,
    Recent,
    HighestModSeq,
    AppendLimit,
    MailboxId,
    /// RFC 9208 §4.2.3 (QUOTA=RES-STORAGE): storage freed by expunging `\Deleted`.
    DeletedStorage,
}

/// One APPEND message (RFC 3502 §6 `append-message`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    /// `None`: no flag list given (not the same as `()`).
    pub flags: Option<Vec<Flag>>,
    pub date: Option<DateTime>,
    pub data: Vec<u8>,
    /// Sent as `literal8` `~{n}` (BINARY, RFC 3516 §4.4): may contain NUL.
    pub binary: bool,
}

/// SEARCH / UID SEARCH (RFC 9051 §6.4.4, ESEARCH RFC 4731).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCommand {
    pub uid: bool,
    /// `None`: no RETURN (classic untagged SEARCH); `Some(vec![])`: `RETURN ()` = ALL.
    pub returns: Option<Vec<SearchReturn>>,
    pub charset: Option<IString>,
    /// Top-level keys, implicitly ANDed; never empty.
    pub keys: Vec<SearchKey>,
}

/// RFC 4731 §3 / RFC 9051 §6.4.4 `search-return-opt`; SAVE from RFC 5182.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    Save,
}

/// RFC 9051 §9 `search-key` plus MODSEQ (RFC 7162 §3.1.5), SAVEDATE (RFC 8514 §4),
/// EMAILID/THREADID (RFC 8474 §6), OLDER/YOUNGER (RFC 5032) and the IMAP4rev1 keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    Answered,
    Bcc(IString),
    Before(Date),
    Body(IString),
    Cc(IString),
    Deleted,
    Draft,
    Flagged,
    From(IString),
    Header(IString, IString),
    Keyword(Atom),
    Larger(u64),
    New,
    Not(Box<SearchKey>),
    Old,
    On(Date),
    Or(Box<SearchKey>, Box<SearchKey>),
    Recent,
    Seen,
    SentBefore(Date),
    SentOn(Date),
    SentSince(Date),
    Since(Date),
    Smaller(u64),
    Subject(IString),
    Text(IString),
    To(IString),
    Uid(SeqSet),
    Unanswered,
    Undeleted,
    Undraft,
    Unflagged,
    Unkeyword(Atom),
    Unseen,
    SeqSet(SeqSet),
    /// Parenthesised list; never empty.
    And(Vec<SearchKey>),
    /// RFC 7162 §3.1.5: `MODSEQ [entry-name entry-type] modseq` (valzer).
    ModSeq {
        entry: Option<(IString, EntryType)>,
        mod_seq: u64,
    },
    SavedBefore(Date),
    SavedOn(Date),
    SavedSince(Date),
    SaveDateSupported,
    EmailId(ObjectId),
    ThreadId(ObjectId),
    Older(u32),
    Younger(u32),
}

/// RFC 7162 §3.1.5 `entry-type-req`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryType {
    Priv,
    Shared,
    All,
}

/// SORT (RFC 5256 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortCommand {
    pub uid: bool,
    pub criteria: Vec<SortCriterion>,
    pub charset: IString,
    pub keys: Vec<SearchKey>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// RFC 5256 §3 `sort-key`, plus DISPLAYFROM/DISPLAYTO (RFC 5957).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

/// THREAD (RFC 5256 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCommand {
    pub uid: bool,
    pub algorithm: ThreadAlgorithm,
    pub charset: IString,
    pub keys: Vec<SearchKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
    Other(Atom),
}

/// FETCH items: a macro (RFC 9051 §6.4.5) or an explicit list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItems {
    All,
    Fast,
    Full,
    /// `paren` keeps whether the client wrote `(item)` or `item` (canonical encoding).
    List {
        items: Vec<FetchItem>,
        paren: bool,
    },
}

/// RFC 9051 §9 `fetch-att`, plus CONDSTORE MODSEQ (RFC 7162 §3.1.4.1), BINARY
/// (RFC 3516 §4.2; RFC 9051 has it too), OBJECTID (RFC 8474 §5), SAVEDATE (RFC 8514 §3),
/// PREVIEW (RFC 8970 §3) and the IMAP4rev1 RFC822 items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchItem {
    Envelope,
    Flags,
    InternalDate,
    Rfc822Size,
    Rfc822,
    Rfc822Header,
    Rfc822Text,
    /// `BODY` (non-extensible BODYSTRUCTURE).
    Body,
    BodyStructure,
    Uid,
    BodySection {
        peek: bool,
        section: Section,
        partial: Option<Partial>,
    },
    Binary {
        peek: bool,
        part: Vec<NonZeroU32>,
        partial: Option<Partial>,
    },
    BinarySize {
        part: Vec<NonZeroU32>,
    },
    ModSeq,
    EmailId,
    ThreadId,
    SaveDate,
    /// `PREVIEW` or `PREVIEW (LAZY)` (RFC 8970 §3).
    Preview {
        lazy: bool,
    },
}

/// `partial = "<" number64 "." nz-number64 ">"` (RFC 9051 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partial {
    pub offset: u64,
    pub length: u64,
}

/// `section-spec` (RFC 9051 §6.4.5, §9): a part path and what within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub part: Vec<NonZeroU32>,
    pub text: Option<SectionText>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    Header,
    HeaderFields {
        not: bool,
        fields: Vec<IString>,
    },
    Text,
    /// Only after a part number.
    Mime,
}

/// FETCH modifiers (RFC 7162 §3.1.4.1 CHANGEDSINCE, §3.2.6 VANISHED).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchModifiers {
    /// `mod-sequence-value` (positive).
    pub changed_since: Option<ModSeq>,
    pub vanished: bool,
}

/// STORE flag action (RFC 9051 §6.4.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAction {
    Replace,
    Add,
    Remove,
}
