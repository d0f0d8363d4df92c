//! Plain records the store keeps. They carry no behaviour and no backend types; `core`
//! gives them meaning and policy.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);
        impl $name {
            /// A fresh random identifier. Ids are chosen by the writer, not the database, so
            /// one batch can create an object and refer to it, and so ids reveal nothing
            /// about how many objects exist (no enumeration by counting).
            pub fn generate() -> Self {
                Self(crate::random_id())
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:x}", self.0)
            }
        }
    };
}

id_type!(/// A mail domain.
    DomainId);
id_type!(/// An account, shared mailbox, group or resource.
    PrincipalId);
id_type!(/// A password or app password.
    CredentialId);
id_type!(/// An alias or catch-all.
    AliasId);
id_type!(/// A mailbox (folder) of one account.
    MailboxId);
id_type!(/// A stored message of one account (one blob may back many of them).
    MessageId);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    pub id: DomainId,
    /// Lower-case ASCII (A-labels for IDNs).
    pub name: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    /// A person's account: logs in, owns mailboxes.
    Individual,
    /// A mailbox several people use through permissions; it has no password of its own.
    Shared,
    /// A distribution list: mail to it goes to its members.
    Group,
    /// A room or piece of equipment with a calendar.
    Resource,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Individual => "individual",
            PrincipalKind::Shared => "shared",
            PrincipalKind::Group => "group",
            PrincipalKind::Resource => "resource",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "individual" => PrincipalKind::Individual,
            "shared" => PrincipalKind::Shared,
            "group" => PrincipalKind::Group,
            "resource" => PrincipalKind::Resource,
            _ => return None,
        })
    }
    /// Whether mail is stored for this principal (groups only fan out).
    pub fn has_mailboxes(self) -> bool {
        !matches!(self, PrincipalKind::Group)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub id: PrincipalId,
    pub domain: DomainId,
    /// Lower-case local part; unique within the domain across principals and aliases.
    pub local_part: String,
    pub kind: PrincipalKind,
    pub display_name: String,
    /// Storage limit in bytes; `None` = unlimited.
    pub quota_bytes: Option<u64>,
    pub created_ms: i64,
}

/// What an account holds, maintained by the store in the same transaction as each change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub used_bytes: u64,
    pub messages: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialKind {
    /// The account's main password (at most one).
    Password,
    /// A generated password limited to some protocols, revocable on its own.
    App,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub id: CredentialId,
    pub principal: PrincipalId,
    pub kind: CredentialKind,
    pub label: String,
    /// Protocols this credential may be used for; empty = all.
    pub protocols: Vec<String>,
    /// A PHC string (`$argon2id$…`); never the secret itself.
    pub hash: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alias {
    pub id: AliasId,
    pub domain: DomainId,
    /// Lower-case local part, or `*` for the domain's catch-all.
    pub local_part: String,
    /// Destination address (local or external), lower-case.
    pub target: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SpecialUse {
    Inbox,
    Drafts,
    Sent,
    Junk,
    Trash,
    Archive,
    All,
    Flagged,
}

impl SpecialUse {
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialUse::Inbox => "inbox",
            SpecialUse::Drafts => "drafts",
            SpecialUse::Sent => "sent",
            SpecialUse::Junk => "junk",
            SpecialUse::Trash => "trash",
            SpecialUse::Archive => "archive",
            SpecialUse::All => "all",
            SpecialUse::Flagged => "flagged",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "inbox" => SpecialUse::Inbox,
            "drafts" => SpecialUse::Drafts,
            "sent" => SpecialUse::Sent,
            "junk" => SpecialUse::Junk,
            "trash" => SpecialUse::Trash,
            "archive" => SpecialUse::Archive,
            "all" => SpecialUse::All,
            "flagged" => SpecialUse::Flagged,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mailbox {
    pub id: MailboxId,
    pub account: PrincipalId,
    /// Full name with `/` as hierarchy separator, e.g. `Archive/2026`.
    pub name: String,
    pub special_use: Option<SpecialUse>,
    /// Set by the store at creation (RFC 9051 §2.3.1.1).
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
    pub subscribed: bool,
    pub created_ms: i64,
}

/// System flags as a bit set (RFC 9051 §2.3.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Flags(pub u32);

impl Flags {
    pub const SEEN: Flags = Flags(1);
    pub const ANSWERED: Flags = Flags(2);
    pub const FLAGGED: Flags = Flags(4);
    pub const DELETED: Flags = Flags(8);
    pub const DRAFT: Flags = Flags(16);
    pub const ALL: Flags = Flags(31);
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }
    pub fn minus(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

/// A content-addressed blob: SHA-256 of the bytes, lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    pub hash: String,
    pub size: u64,
}

/// One entry of an address header's list: an address, or a group marker.
///
/// RFC 5322 groups (`Team: a@x, b@y;`, `undisclosed-recipients:;`) are kept as IMAP
/// writes them (RFC 9051 §7.5.2): a start marker (`group: Some(Start)`, `name` = the
/// group's display name, `address: None`), the members as ordinary entries, then an end
/// marker (`group: Some(End)`, no name, no address). Readers that want mailboxes only
/// skip entries where [`Addr::is_group_marker`] holds. `group` is left out of the JSON
/// when `None`, and JSON stored before it existed decodes with `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addr {
    pub name: Option<String>,
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<GroupMark>,
}

/// Which end of an address group an [`Addr`] marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupMark {
    Start,
    End,
}

impl Addr {
    /// A plain address (not a group marker).
    pub fn mailbox(name: Option<String>, address: Option<String>) -> Addr {
        Addr {
            name,
            address,
            group: None,
        }
    }

    /// The start marker of a group named `name`.
    pub fn group_start(name: String) -> Addr {
        Addr {
            name: Some(name),
            address: None,
            group: Some(GroupMark::Start),
        }
    }

    /// The end marker of a group.
    pub fn group_end() -> Addr {
        Addr {
            name: None,
            address: None,
            group: Some(GroupMark::End),
        }
    }

    /// Whether this entry marks the start or end of a group rather than naming a mailbox.
    pub fn is_group_marker(&self) -> bool {
        self.group.is_some()
    }
}

#[cfg(test)]
mod addr_tests {
    use super::*;

    /// Metadata stored before group markers existed still decodes, and a plain address
    /// is written exactly as before (no `group` key), so old readers read new records.
    #[test]
    fn addr_json_is_compatible() {
        let old = r#"{"date":null,"subject":"s","from":[{"name":"A","address":"a@x"}],
            "sender":[],"reply_to":[],"to":[{"name":null,"address":"b@y"}],"cc":[],
            "bcc":[],"in_reply_to":null,"message_id":null}"#;
        let env: Envelope = serde_json::from_str(old).unwrap();
        assert_eq!(
            env.from,
            vec![Addr::mailbox(Some("A".into()), Some("a@x".into()))]
        );
        assert_eq!(env.to, vec![Addr::mailbox(None, Some("b@y".into()))]);
        assert_eq!(
            serde_json::to_string(&env.to[0]).unwrap(),
            r#"{"name":null,"address":"b@y"}"#
        );
        let group = vec![
            Addr::group_start("Team".into()),
            Addr::mailbox(None, Some("c@z".into())),
            Addr::group_end(),
        ];
        let json = serde_json::to_string(&group).unwrap();
        assert_eq!(
            json,
            r#"[{"name":"Team","address":null,"group":"start"},{"name":null,"address":"c@z"},{"name":null,"address":null,"group":"end"}]"#
        );
        assert_eq!(serde_json::from_str::<Vec<Addr>>(&json).unwrap(), group);
        assert!(group[0].is_group_marker() && !group[1].is_group_marker());
    }
}

/// The fields of IMAP's ENVELOPE (RFC 9051 §7.5.2), decoded once at delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub date: Option<String>,
    pub subject: Option<String>,
    pub from: Vec<Addr>,
    pub sender: Vec<Addr>,
    pub reply_to: Vec<Addr>,
    pub to: Vec<Addr>,
    pub cc: Vec<Addr>,
    pub bcc: Vec<Addr>,
    pub in_reply_to: Option<String>,
    pub message_id: Option<String>,
}

/// One MIME part, with byte offsets into the blob so a protocol can serve a part
/// without parsing the message again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BodyPart {
    /// Lower-case media type and subtype, e.g. `text` / `plain`.
    pub media_type: String,
    pub subtype: String,
    pub params: Vec<(String, String)>,
    pub id: Option<String>,
    pub description: Option<String>,
    pub encoding: Option<String>,
    pub disposition: Option<String>,
    pub disposition_params: Vec<(String, String)>,
    pub language: Vec<String>,
    pub location: Option<String>,
    /// Offset of the part's first header byte.
    pub header_offset: u64,
    /// Offset of the part's body (after the blank line).
    pub body_offset: u64,
    /// Offset one past the body's last byte.
    pub end_offset: u64,
    /// Lines in the body (for text parts and message/rfc822, RFC 9051 §7.5.2).
    pub lines: u64,
    /// Children of a multipart.
    pub parts: Vec<BodyPart>,
    /// The envelope and body of an encapsulated message/rfc822.
    pub message: Option<Box<(Envelope, BodyPart)>>,
    /// True when a limit stopped parsing below this part: it is served as opaque bytes.
    pub truncated: bool,
}

/// What delivery learns from a message's bytes, kept beside the blob.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub envelope: Envelope,
    /// The Date header as milliseconds since the epoch, when it parses.
    pub sent_ms: Option<i64>,
    pub references: Vec<String>,
    /// The first characters of the text, for lists and IMAP PREVIEW (RFC 8970).
    pub preview: String,
    pub has_attachment: bool,
    pub body: BodyPart,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub id: MessageId,
    pub account: PrincipalId,
    pub blob: BlobRef,
    pub received_ms: i64,
    /// Messages of one conversation share it (from References / In-Reply-To).
    pub thread_id: String,
    pub meta: MessageMeta,
}

/// A message's place in one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxEntry {
    pub uid: u32,
    pub message: MessageId,
    pub size: u64,
    pub flags: Flags,
    pub keywords: Vec<String>,
    pub modseq: u64,
    pub saved_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    MailboxCreated,
    MailboxRenamed,
    MailboxDeleted,
    MessageAdded,
    FlagsChanged,
    MessageExpunged,
    /// DAV changes: `mailbox` carries the collection's id (as a number), `message` the
    /// resource's.
    DavCollectionCreated,
    DavCollectionChanged,
    DavCollectionDeleted,
    DavResourceChanged,
    DavResourceRemoved,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::MailboxCreated => "mailbox_created",
            ChangeKind::MailboxRenamed => "mailbox_renamed",
            ChangeKind::MailboxDeleted => "mailbox_deleted",
            ChangeKind::MessageAdded => "message_added",
            ChangeKind::FlagsChanged => "flags_changed",
            ChangeKind::MessageExpunged => "message_expunged",
            ChangeKind::DavCollectionCreated => "dav_collection_created",
            ChangeKind::DavCollectionChanged => "dav_collection_changed",
            ChangeKind::DavCollectionDeleted => "dav_collection_deleted",
            ChangeKind::DavResourceChanged => "dav_resource_changed",
            ChangeKind::DavResourceRemoved => "dav_resource_removed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "mailbox_created" => ChangeKind::MailboxCreated,
            "mailbox_renamed" => ChangeKind::MailboxRenamed,
            "mailbox_deleted" => ChangeKind::MailboxDeleted,
            "message_added" => ChangeKind::MessageAdded,
            "flags_changed" => ChangeKind::FlagsChanged,
            "message_expunged" => ChangeKind::MessageExpunged,
            "dav_collection_created" => ChangeKind::DavCollectionCreated,
            "dav_collection_changed" => ChangeKind::DavCollectionChanged,
            "dav_collection_deleted" => ChangeKind::DavCollectionDeleted,
            "dav_resource_changed" => ChangeKind::DavResourceChanged,
            "dav_resource_removed" => ChangeKind::DavResourceRemoved,
            _ => return None,
        })
    }
}

/// One entry of an account's change journal. Every change to the account's mailboxes
/// and messages gets the next modification sequence: 1, 2, 3, … without gaps. IMAP
/// CONDSTORE/QRESYNC, JMAP `/changes`, DAV sync-collection and push all read this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub account: PrincipalId,
    pub modseq: u64,
    pub kind: ChangeKind,
    pub mailbox: Option<MailboxId>,
    pub message: Option<MessageId>,
    pub uid: Option<u32>,
    pub at_ms: i64,
}

/// Sent to subscribers after a commit that changed an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeNotice {
    pub account: PrincipalId,
    pub modseq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Delegate,
    Admin,
    Service,
}

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The authenticated account (address), or the admin's name; `None` when unauthenticated.
    pub account: Option<String>,
    pub role: Role,
}

/// From where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// `imap`, `smtp`, `cli`, `admin-api`, …
    pub protocol: String,
    pub remote: Option<String>,
    pub client_id: Option<String>,
    pub auth_method: Option<String>,
    pub session_id: Option<u64>,
}

/// One fact for the access ledger (DESIGN invariant 10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerRecord {
    pub time_ms: i64,
    pub actor: Actor,
    pub session: SessionInfo,
    /// e.g. `message.read`, `account.create`, `credential.change`.
    pub action: String,
    /// The account whose data was touched, when there is one.
    pub target: Option<String>,
    /// Object ids or ranges (`mailbox:…`, `uid:1:40`, `message:…`).
    pub objects: Vec<String>,
    /// `ok`, `denied`, `not_found`, or `error: …`.
    pub result: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// A ledger record as stored: numbered and chained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub seq: u64,
    pub record: LedgerRecord,
    pub prev_hash: String,
    pub hash: String,
}

/// Which ledger entries to read.
#[derive(Debug, Clone, Default)]
pub struct LedgerQuery {
    /// First sequence number (inclusive).
    pub from_seq: u64,
    /// Only entries whose actor or target is this account.
    pub account: Option<String>,
    /// Only entries at or after this time.
    pub since_ms: Option<i64>,
    pub limit: usize,
}

// ---- CalDAV / CardDAV -------------------------------------------------------------

id_type!(/// A calendar, task list or address book of one account.
    DavCollectionId);
id_type!(/// One calendar object or vCard in a DAV collection.
    DavResourceId);

/// What a DAV collection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DavKind {
    /// A calendar (RFC 4791) of events.
    Calendar,
    /// A calendar of tasks (VTODO).
    Tasks,
    /// An address book (RFC 6352).
    AddressBook,
    /// The scheduling inbox (RFC 6638 §2.2): iTIP messages delivered to the account.
    Inbox,
}

impl DavKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DavKind::Calendar => "calendar",
            DavKind::Tasks => "tasks",
            DavKind::AddressBook => "addressbook",
            DavKind::Inbox => "inbox",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "calendar" => DavKind::Calendar,
            "tasks" => DavKind::Tasks,
            "addressbook" => DavKind::AddressBook,
            "inbox" => DavKind::Inbox,
            _ => return None,
        })
    }
    /// Calendars and task lists are CalDAV collections.
    pub fn is_calendar(self) -> bool {
        !matches!(self, DavKind::AddressBook)
    }
}

/// A DAV collection. `modseq` is the journal number of its last change (its own or a
/// resource's): the CTag, and the sync token of RFC 6578.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavCollection {
    pub id: DavCollectionId,
    pub account: PrincipalId,
    pub kind: DavKind,
    /// The path segment under the account's home: unique per account.
    pub name: String,
    pub display_name: String,
    /// `#RRGGBB` or `#RRGGBBAA` (Apple's calendar-color).
    pub color: Option<String>,
    pub order: Option<i64>,
    pub description: Option<String>,
    /// CalDAV calendar-timezone (RFC 4791 §5.2.2): an iCalendar object holding one
    /// VTIMEZONE, the zone floating times and dates of this calendar are read in.
    pub timezone: Option<String>,
    /// iCalendar component names it accepts (`VEVENT`, `VTODO`, …); empty for address books.
    pub components: Vec<String>,
    /// Set by the store.
    pub modseq: u64,
    pub created_ms: i64,
}

/// The properties PROPPATCH may change: `None` leaves a field as it is, `Some(None)`
/// removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DavCollectionProps {
    pub display_name: Option<String>,
    pub color: Option<Option<String>>,
    pub order: Option<Option<i64>>,
    pub description: Option<Option<String>>,
    pub timezone: Option<Option<String>>,
}

/// One calendar object resource or vCard, with the fields indexed for queries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavResource {
    pub id: DavResourceId,
    pub account: PrincipalId,
    pub collection: DavCollectionId,
    /// The path segment in the collection (`<uid>.ics`).
    pub name: String,
    /// Strong ETag: the SHA-256 of `data`, lower-case hex (without quotes).
    pub etag: String,
    /// The object as the client sent it (empty in listings made without data).
    pub data: String,
    pub size: u64,
    /// `VEVENT`, `VTODO`, `VJOURNAL`, `VFREEBUSY`, or `VCARD`.
    pub component: String,
    pub uid: String,
    /// Index for time-range queries (UTC ms): `None` start = no date (matches every
    /// range); `end_ms` is exclusive, `i64::MAX` for a recurring object.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Set by the store.
    pub modseq: u64,
    pub modified_ms: i64,
}

/// The condition a DAV write requires (If-Match / If-None-Match, RFC 9110 §13.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DavExpect {
    Any,
    /// `If-None-Match: *`: only when there is no such resource.
    Absent,
    /// `If-Match: *`.
    Present,
    /// `If-Match: "etag"` (the tag without quotes).
    Etag(String),
}

impl DavExpect {
    /// Whether a resource whose ETag is `current` (`None` = none there) satisfies it.
    pub fn holds(&self, current: Option<&str>) -> bool {
        match self {
            DavExpect::Any => true,
            DavExpect::Absent => current.is_none(),
            DavExpect::Present => current.is_some(),
            DavExpect::Etag(e) => current == Some(e.as_str()),
        }
    }
}

/// Which resources of a collection a query wants (their index fields; no parsing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DavFilter {
    /// Only this component (`VEVENT`, …).
    pub component: Option<String>,
    /// Only resources overlapping `[start_ms, end_ms)`; either side open when `None`.
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Include `data` (else it is left empty).
    pub with_data: bool,
}

/// A resource changed after a sync token: its name, and its ETag unless it was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DavChange {
    pub name: String,
    pub etag: Option<String>,
    pub modseq: u64,
}
