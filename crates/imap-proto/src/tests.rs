//! Parser tests, mox style: ok / bad per command family, the RFC examples, the
//! THREATS.md bombs, every-prefix and a seeded fuzz run; round trip over the corpus.

use std::num::NonZeroU32;

use crate::decode::{Limits, ParseError, parse_command};
use crate::encode::encode;
use crate::types::*;

fn lit(s: &str) -> String {
    format!("{{{}}}\r\n{}", s.len(), s)
}

fn parse(s: &[u8]) -> Result<(usize, Command), ParseError> {
    parse_command(s, &Limits::default())
}

/// Parses `s` + CRLF completely, and checks the canonical re-encoding parses the same.
fn ok(s: &str) -> Command {
    let buf = format!("{s}\r\n");
    let (n, c) = match parse(buf.as_bytes()) {
        Ok(r) => r,
        Err(e) => panic!("{s:?}: {e:?}"),
    };
    assert_eq!(n, buf.len(), "{s:?}");
    let enc = encode(&c);
    let (n2, c2) = parse(&enc)
        .unwrap_or_else(|e| panic!("re-encoded {:?}: {e:?}", String::from_utf8_lossy(&enc)));
    assert_eq!(n2, enc.len());
    assert_eq!(
        c,
        c2,
        "round trip of {s:?} via {:?}",
        String::from_utf8_lossy(&enc)
    );
    c
}

fn bad(s: &str) -> std::borrow::Cow<'static, str> {
    let buf = format!("{s}\r\n");
    match parse(buf.as_bytes()) {
        Err(ParseError::Failed { reason, .. }) => reason,
        other => panic!("{s:?} should fail, got {other:?}"),
    }
}

fn body(s: &str) -> CommandBody {
    ok(s).body
}

fn n(v: u32) -> NonZeroU32 {
    NonZeroU32::new(v).unwrap()
}

fn mbox(s: &str) -> Mailbox {
    Mailbox::new(s).unwrap()
}

fn istr(s: &str) -> IString {
    IString::new(s.as_bytes().to_vec()).unwrap()
}

/// Commands from RFC 9051 §6 and the extension RFCs (tags as in the RFCs).
fn corpus() -> Vec<String> {
    let msg = "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\r\nFrom: Fred Foobar <foobar@Blurdybloop.example>\r\nSubject: afternoon meeting\r\n\r\nHello Joe, do you think we can meet at 3:30 tomorrow?\r\n";
    let mut v: Vec<String> = [
        // RFC 9051 §6.1
        "abcd CAPABILITY",
        "a002 NOOP",
        "A023 LOGOUT",
        // §6.2
        "a001 STARTTLS",
        "A001 AUTHENTICATE GSSAPI",
        "a AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=",
        "a AUTHENTICATE PLAIN =",
        "a001 LOGIN SMITH SESAME",
        r#"a001 LOGIN "smith@example.com" "pa ss\"w\\ord""#,
        // §6.3
        "t2 ENABLE IMAP4rev2",
        "t1 ENABLE CONDSTORE QRESYNC",
        "t3 ENABLE UTF8=ACCEPT",
        "A142 SELECT INBOX",
        "A142 SELECT inbox",
        "A932 EXAMINE blurdybloop",
        "a SELECT \"Entwürfe\"",
        "A003 CREATE owatagusiam/",
        "A004 CREATE owatagusiam/blurdybloop",
        r"t1 CREATE MySpecial (USE (\Drafts \Sent))",
        "a CREATE \"台北\"",
        "A682 DELETE blurdybloop",
        "A683 RENAME blurdybloop sarasoop",
        "A685 RENAME INBOX old-mail",
        "A002 SUBSCRIBE #news.comp.mail.mime",
        "A002 UNSUBSCRIBE #news.comp.mail.mime",
        r#"A101 LIST "" """#,
        r#"A102 LIST #news.comp.mail.misc """#,
        r#"A103 LIST /usr/staff/jones """#,
        "A202 LIST ~/Mail/ %",
        "A01 LIST \"\" *",
        // RFC 5258 §5
        r#"A02 LIST (SUBSCRIBED) "" "*""#,
        r#"A03 LIST () "" "%" RETURN (CHILDREN)"#,
        r#"A04 LIST (REMOTE) "" "%" RETURN (CHILDREN)"#,
        r#"C04 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%""#,
        r#"C05 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)"#,
        r#"A01 LIST "" ("INBOX" "Drafts" "Sent/%")"#,
        // RFC 5819 / RFC 9051 §6.3.9.7
        r#"A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))"#,
        // RFC 6154 §5.1
        r#"t1 LIST "" "%" RETURN (SPECIAL-USE)"#,
        r#"t3 LIST (SPECIAL-USE) "" "*""#,
        "A002 NAMESPACE",
        "A042 STATUS blurdybloop (UIDNEXT MESSAGES)",
        // RFC 8438, RFC 7162 §3.1.10, RFC 7889, RFC 8474
        "S STATUS INBOX (MESSAGES SIZE)",
        "a STATUS INBOX (HIGHESTMODSEQ APPENDLIMIT MAILBOXID DELETED UIDVALIDITY UNSEEN)",
        "A001 IDLE",
        // §6.4
        "A341 CLOSE",
        "A342 UNSELECT",
        "A202 EXPUNGE",
        "A003 UID EXPUNGE 3000:3002",
        r#"A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith""#,
        r#"A283 SEARCH RETURN () FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith""#,
        r#"A284 SEARCH TEXT "string not in mailbox""#,
        "A284 SEARCH RETURN (MIN) UNSEEN",
        "A285 UID SEARCH RETURN (MIN MAX) 1:5000",
        "A286 SEARCH RETURN (ALL COUNT) 1:*",
        "A282 SEARCH RETURN (SAVE) FLAGGED SINCE 1-Feb-1994 NOT FROM \"Smith\"",
        "A283 FETCH $ (UID INTERNALDATE FLAGS RFC822.SIZE)",
        "A301 SEARCH $ SMALLER 4096",
        "a SEARCH OR (SEEN UNDELETED) NOT (KEYWORD $Junk) HEADER X-Spam yes",
        "a SEARCH ANSWERED DELETED DRAFT UNANSWERED UNDELETED UNDRAFT UNFLAGGED UNSEEN UNKEYWORD foo",
        "a SEARCH BCC x BODY y CC z TO w SUBJECT v LARGER 10 BEFORE 1-Jan-2000 ON \"2-Feb-2001\"",
        "a SEARCH SENTBEFORE 1-Jan-2000 SENTON 29-Feb-2000 SENTSINCE 31-Dec-1999 UID 1,3:5,9:* 2:4",
        "a SEARCH NEW OLD RECENT ALL",
        // RFC 7162 §3.1.5
        r#"a SEARCH MODSEQ "/flags/\\draft" all 620162338"#,
        "t SEARCH OR NOT MODSEQ 720162338 LARGER 50000",
        "a103 UID SEARCH MODSEQ 0",
        // RFC 8514, RFC 8474 §6, RFC 5032
        "a SEARCH SAVEDBEFORE 1-Jan-2020 SAVEDON 2-Jan-2020 SAVEDSINCE 3-Jan-2020 SAVEDATESUPPORTED",
        "a SEARCH EMAILID M6d99ac3275bb4e",
        "a SEARCH THREADID T64b478a75b7ea9",
        "a SEARCH YOUNGER 3600 OLDER 60",
        // §6.4.5
        "A654 FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])",
        "A001 FETCH 1 BODY[]",
        "a FETCH 1 (BODY.PEEK[1.2.HEADER.FIELDS.NOT (Received \"X-Y\")]<0.2048>)",
        "a FETCH 1:* ALL",
        "a FETCH 1 FULL",
        "a FETCH 1 FAST",
        "a FETCH 1 (BODY[1.MIME] BODY[TEXT] BODY[4.2.TEXT] BODY[3.HEADER] BODY[2] BODYSTRUCTURE BODY ENVELOPE INTERNALDATE RFC822.SIZE UID)",
        "a FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT)",
        // RFC 3516 §4.2
        "a FETCH 1 (BINARY[1.2] BINARY.PEEK[1]<0.1024> BINARY.SIZE[1])",
        "a FETCH 1 BINARY[]",
        // RFC 7162 §3.1.4.2, §3.2.6
        "s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)",
        "s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
        "a FETCH 1 (MODSEQ)",
        "a FETCH 1 FLAGS (CHANGEDSINCE 7)",
        // RFC 8474 §5, RFC 8514 §3, RFC 8970 §3
        "a FETCH 1:* (EMAILID THREADID)",
        "a FETCH 1 (SAVEDATE)",
        "a FETCH 1 (PREVIEW)",
        "a FETCH 1:3 (UID PREVIEW (LAZY) FLAGS)",
        r"A003 STORE 2:4 +FLAGS (\Deleted)",
        r"a STORE 1 -FLAGS.SILENT \Seen $Forwarded",
        r"a STORE 1 FLAGS (\Answered \Flagged \Draft \Recent \Custom kw)",
        // RFC 7162 §3.1.3
        r"d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\Deleted)",
        "a UID STORE 1:* FLAGS ()",
        "A003 COPY 2:4 MEETING",
        // RFC 9051 §6.4.9
        "A999 UID FETCH 4827313:4828442 FLAGS",
        "a STATUS INBOX (DELETED-STORAGE)",
        "A004 UID COPY 2:4 MEETING",
        // RFC 6851 §4.4
        "a UID MOVE 42:69 foo",
        "a MOVE 1:* Trash",
        // RFC 7162 §3.1.8, §3.2.5
        "a SELECT INBOX (CONDSTORE)",
        "A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))",
        "B02 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))",
        "A03 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976:29999)))",
        "A04 SELECT INBOX (QRESYNC (67890007 90060115194045000 (1:5 10:14)))",
        "a EXAMINE INBOX (CONDSTORE QRESYNC (1 2))",
        // RFC 5256 §3
        "A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994",
        "A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL",
        r#"A284 SORT (SUBJECT) US-ASCII TEXT "not in mailbox""#,
        "a UID SORT (REVERSE ARRIVAL DISPLAYFROM CC FROM SIZE TO DISPLAYTO) UTF-8 UNSEEN",
        "A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000",
        r#"A284 THREAD ORDEREDSUBJECT US-ASCII TEXT "gewp""#,
        "A285 UID THREAD REFERENCES UTF-8 SINCE 5-MAR-2000",
        // RFC 9208 §4
        r#"G0001 GETQUOTA "!partition/sda4""#,
        "G0002 GETQUOTAROOT INBOX",
        r#"S0000 SETQUOTA "" (STORAGE 512)"#,
        r#"S0001 SETQUOTA "" (STORAGE 512 MESSAGE 1000)"#,
        r##"S0002 SETQUOTA "#user/alice" ()"##,
        // RFC 4314 §3
        "A001 SETACL INBOX/Drafts Chris +cda",
        "A002 SETACL INBOX/Drafts John lrswicda",
        "A003 SETACL INBOX/Drafts Chris -w",
        r#"A004 SETACL INBOX/Drafts -Fred """#,
        "A002 GETACL INBOX/Drafts",
        "A003 DELETEACL INBOX/Drafts Smith",
        "a LISTRIGHTS ~/Mail/saved smith",
        "a MYRIGHTS INBOX",
        // RFC 2971 §3.1, RFC 4978 §3
        r#"a023 ID ("name" "sodr" "version" "19.34" "vendor" "Pink Floyd Music Limited")"#,
        r#"a ID ("name" NIL)"#,
        "a ID NIL",
        "a ID ()",
        "a COMPRESS DEFLATE",
        // IMAP4rev1 (RFC 3501)
        r##"A002 LSUB "#news." "comp.mail.*""##,
        "FXXZ CHECK",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Literals (RFC 9051 §4.3, §6.3.12; RFC 7888; RFC 3502; RFC 3516 §4.4).
    v.push(format!("a LOGIN {} {}", lit("alice"), lit("sec ret")));
    v.push("a LOGIN {5+}\r\nalice {6+}\r\nsecret".to_owned());
    v.push(format!("A285 SEARCH CHARSET UTF-8 TEXT {}", lit("отпуск")));
    v.push("A286 SEARCH CHARSET UTF-8 TEXT {12+}\r\nотпуск".to_owned());
    v.push(format!("A003 APPEND saved-messages (\\Seen) {}", lit(msg)));
    v.push(format!(
        "A003 APPEND saved-messages (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {}",
        lit(msg)
    ));
    v.push(format!("A003 APPEND saved-messages {}", lit(msg)));
    v.push(format!(
        "A003 APPEND saved-messages (\\Seen) {} (\\Seen) \" 7-Feb-1994 22:43:04 -0800\" {}",
        lit(msg),
        lit("Subject: second\r\n\r\nx\r\n")
    ));
    v.push("A003 APPEND Drafts (\\Seen $MDNSent) ~{5}\r\na\0b\0c".to_owned());
    v.push(format!(
        "a LOGIN alice {}",
        lit("with \"quote\" and\r\nCRLF")
    ));
    v
}

#[test]
fn corpus_parses_and_round_trips() {
    let c = corpus();
    for s in &c {
        ok(s);
    }
    assert!(c.len() > 130, "{}", c.len());
}

#[test]
fn every_prefix_is_incomplete() {
    let mut checked = 0;
    for s in corpus() {
        let buf = format!("{s}\r\n").into_bytes();
        for i in 0..buf.len() {
            match parse(&buf[..i]) {
                Err(ParseError::Incomplete) | Err(ParseError::LiteralNeeded { .. }) => {}
                other => panic!(
                    "prefix {:?} gave {other:?}",
                    String::from_utf8_lossy(&buf[..i])
                ),
            }
            checked += 1;
        }
    }
    assert!(checked > 5_000, "{checked}");
}

#[test]
fn pipelined_commands_consume_one_at_a_time() {
    let buf = b"a NOOP\r\nb LOGOUT\r\nc";
    let (n1, c1) = parse(buf).unwrap();
    assert_eq!(c1.body, CommandBody::Noop);
    let (n2, c2) = parse(&buf[n1..]).unwrap();
    assert_eq!((c2.tag.as_str(), c2.body), ("b", CommandBody::Logout));
    assert_eq!(parse(&buf[n1 + n2..]), Err(ParseError::Incomplete));
}

// --- per family ---

#[test]
fn any_state() {
    assert_eq!(body("a noop"), CommandBody::Noop);
    assert_eq!(ok("a]b CaPaBiLiTy").tag.as_str(), "a]b");
    bad("a NOOP x");
    bad("a NOOP ");
    bad("+a NOOP");
    bad("a* NOOP");
    bad("a{ NOOP");
    bad(" NOOP");
    bad("a FOO");
    bad("a");
    bad("");
    assert_eq!(
        parse(b"a NOOP\n"),
        Err(ParseError::Failed {
            tag: Some(Tag::new("a").unwrap()),
            reason: "bare LF".into()
        })
    );
}

#[test]
fn not_authenticated() {
    match body("a LOGIN {5}\r\nalice {6}\r\nsecret") {
        CommandBody::Login { username, password } => {
            assert_eq!(username, istr("alice"));
            assert_eq!(password.expose(), &istr("secret"));
            // Secret hides the password from Debug.
            assert!(!format!("{password:?}").contains("secret"));
        }
        b => panic!("{b:?}"),
    }
    match body("a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA==") {
        CommandBody::Authenticate { mechanism, initial } => {
            assert_eq!(mechanism.as_str(), "PLAIN");
            assert_eq!(initial.unwrap().expose(), b"\0alice\0secret");
        }
        b => panic!("{b:?}"),
    }
    bad("a LOGIN alice");
    bad("a LOGIN alice pw extra");
    bad("a LOGIN \"alice");
    bad("a LOGIN \"al\rice\" pw");
    bad("a LOGIN \"a\\x\" pw");
    bad("a LOGIN {3}\r\na\0b pw");
    bad("a LOGIN ~{1}\r\nx pw");
    bad("a LOGIN {3} pw");
    bad("a LOGIN \"\u{0}\" pw");
    bad("a AUTHENTICATE PLAIN !!!");
    bad("a AUTHENTICATE");
    bad("a STARTTLS now");
}

#[test]
fn mailbox_commands() {
    assert_eq!(
        body("a SELECT inBOX"),
        CommandBody::Select {
            mailbox: Mailbox::Inbox,
            params: SelectParams::default()
        }
    );
    assert_eq!(
        body("a DELETE \"Entwürfe\""),
        CommandBody::Delete {
            mailbox: mbox("Entwürfe")
        }
    );
    match body(r"t1 CREATE MySpecial (USE (\Drafts \Sent))") {
        CommandBody::Create { use_attrs, .. } => {
            assert_eq!(
                use_attrs.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
                ["Drafts", "Sent"]
            );
        }
        b => panic!("{b:?}"),
    }
    match body("A03 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000 15000)))") {
        CommandBody::Select { params, .. } => {
            let q = params.qresync.unwrap();
            assert_eq!(q.uid_validity, n(67890007));
            assert_eq!(q.mod_seq.get(), 90060115194045000);
            assert!(q.known_uids.is_some() && q.seq_match.is_some());
        }
        b => panic!("{b:?}"),
    }
    bad("a SELECT");
    bad("a SELECT \"\"");
    bad("a SELECT \"\\xff\"");
    bad("a SELECT INBOX (FOO)");
    bad("a SELECT INBOX ()");
    bad("a SELECT INBOX (QRESYNC (0 1))");
    bad("a SELECT INBOX (QRESYNC (1 0))");
    bad("a CREATE x (USE (Drafts))");
    bad("a CREATE x (FOO (\\Drafts))");
    bad("a RENAME a");
    assert!(matches!(
        parse(b"a SELECT {2}\r\n\xff\xfe\r\n"),
        Err(ParseError::Failed { .. })
    ));
    bad("a STATUS INBOX ()");
    bad("a STATUS INBOX (FOO)");
    bad("a STATUS INBOX MESSAGES");
}

#[test]
fn list_commands() {
    match body(
        r#"A01 LIST (SUBSCRIBED) "" ("INBOX" "Drafts" %) RETURN (CHILDREN STATUS (MESSAGES SIZE))"#,
    ) {
        CommandBody::List(l) => {
            assert_eq!(l.selection, Some(vec![ListSelect::Subscribed]));
            assert_eq!(l.reference.as_str(), "");
            assert_eq!(l.patterns.len(), 3);
            assert_eq!(
                l.returns,
                Some(vec![
                    ListReturn::Children,
                    ListReturn::Status(vec![StatusItem::Messages, StatusItem::Size])
                ])
            );
        }
        b => panic!("{b:?}"),
    }
    bad(r#"a LIST "" "#);
    bad(r#"a LIST "" x RETURN"#);
    bad(r#"a LIST "" x FOO (CHILDREN)"#);
    bad(r#"a LIST "" ()"#);
    bad(r#"a LIST "" x RETURN (STATUS ())"#);
    bad(r#"a LIST (RECURSIVEMATCH) "" %"#);
    bad(r#"a LIST (REMOTE RECURSIVEMATCH) "" %"#);
    // The reference is a mailbox (astring): wildcards only when quoted.
    bad(r#"a LIST * x"#);
    ok(r#"a LIST "*" x"#);
}

#[test]
fn append_commands() {
    let c = body("A003 APPEND Drafts (\\Seen $MDNSent) ~{5}\r\na\0b\0c");
    match c {
        CommandBody::Append { mailbox, messages } => {
            assert_eq!(mailbox, mbox("Drafts"));
            assert_eq!(messages.len(), 1);
            assert!(messages[0].binary);
            assert_eq!(messages[0].data, b"a\0b\0c");
        }
        b => panic!("{b:?}"),
    }
    match body(&format!(
        "a APPEND x (\\Seen) \" 7-Feb-1994 22:43:04 -0800\" {} () {}",
        lit("one"),
        lit("two")
    )) {
        CommandBody::Append { messages, .. } => {
            assert_eq!(messages.len(), 2);
            let d = messages[0].date.unwrap();
            assert_eq!(
                (d.date().day(), d.date().month(), d.date().year()),
                (7, 2, 1994)
            );
            assert_eq!(d.zone_minutes(), -480);
            assert_eq!(messages[1].flags, Some(vec![]));
            assert_eq!(messages[1].data, b"two");
        }
        b => panic!("{b:?}"),
    }
    bad("a APPEND INBOX");
    bad("a APPEND INBOX \"x\"");
    bad("a APPEND INBOX (\\Seen)");
    bad("a APPEND INBOX \"31-Feb-2020 00:00:00 +0000\" {1}\r\nx");
    bad("a APPEND INBOX \"1-Feb-2020 00:00:00 +0000\" {1}\r\nx");
    bad("a APPEND INBOX \"01-Feb-2020 24:00:00 +0000\" {1}\r\nx");
    bad("a APPEND INBOX \"01-Feb-2020 00:00:00 +0060\" {1}\r\nx");
    bad("a APPEND INBOX {1}\r\n\0");
}

#[test]
fn search_commands() {
    match body(r#"A282 SEARCH RETURN (MIN COUNT) FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith""#) {
        CommandBody::Search(s) => {
            assert_eq!(
                s.returns,
                Some(vec![SearchReturn::Min, SearchReturn::Count])
            );
            assert_eq!(
                s.keys,
                vec![
                    SearchKey::Flagged,
                    SearchKey::Since(Date::new(1994, 2, 1).unwrap()),
                    SearchKey::Not(Box::new(SearchKey::From(istr("Smith")))),
                ]
            );
        }
        b => panic!("{b:?}"),
    }
    match body(r#"a SEARCH MODSEQ "/flags/\\draft" all 620162338"#) {
        CommandBody::Search(s) => assert_eq!(
            s.keys,
            vec![SearchKey::ModSeq {
                entry: Some((istr("/flags/\\draft"), EntryType::All)),
                mod_seq: 620162338
            }]
        ),
        b => panic!("{b:?}"),
    }
    match body("a UID SEARCH $") {
        CommandBody::Search(s) => {
            assert!(s.uid);
            assert_eq!(s.keys, vec![SearchKey::SeqSet(SeqSet::Saved)]);
        }
        b => panic!("{b:?}"),
    }
    bad("a SEARCH");
    bad("a SEARCH FOO");
    bad("a SEARCH SINCE 30-Feb-2020");
    bad("a SEARCH SINCE 1-Foo-2020");
    bad("a SEARCH SINCE 1-Feb-20");
    bad("a SEARCH RETURN (BAR) ALL");
    bad("a SEARCH RETURN (MIN)");
    bad("a SEARCH (");
    bad("a SEARCH ()");
    bad("a SEARCH (ALL");
    bad("a SEARCH $,1");
    bad("a SEARCH 1:");
    bad("a SEARCH 0");
    bad("a SEARCH 4294967296");
    bad("a SEARCH OR ALL");
    bad("a SEARCH NOT");
    bad("a SEARCH MODSEQ \"/flags/x\" foo 1");
    bad("a SEARCH EMAILID bad!id");
    bad("a SEARCH YOUNGER 0");
    bad("a SEARCH LARGER 99999999999999999999");
    bad("a SEARCH CHARSET");
    bad("a SORT SUBJECT UTF-8 ALL");
    bad("a SORT (FOO) UTF-8 ALL");
    bad("a SORT (SUBJECT) ALL");
    bad("a SORT () UTF-8 ALL");
    bad("a THREAD REFERENCES UTF-8");
}

#[test]
fn fetch_commands() {
    match body(
        "a FETCH 1 (BODY.PEEK[1.2.HEADER.FIELDS.NOT (Received)]<0.2048> BINARY[3]<5.6> PREVIEW (LAZY))",
    ) {
        CommandBody::Fetch {
            items: FetchItems::List { items, paren: true },
            ..
        } => assert_eq!(
            items,
            vec![
                FetchItem::BodySection {
                    peek: true,
                    section: Section {
                        part: vec![n(1), n(2)],
                        text: Some(SectionText::HeaderFields {
                            not: true,
                            fields: vec![istr("Received")]
                        }),
                    },
                    partial: Some(Partial {
                        offset: 0,
                        length: 2048
                    }),
                },
                FetchItem::Binary {
                    peek: false,
                    part: vec![n(3)],
                    partial: Some(Partial {
                        offset: 5,
                        length: 6
                    })
                },
                FetchItem::Preview { lazy: true },
            ]
        ),
        b => panic!("{b:?}"),
    }
    match body("s100 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)") {
        CommandBody::Fetch { uid, modifiers, .. } => {
            assert!(uid);
            assert_eq!(modifiers.changed_since.unwrap().get(), 12345);
            assert!(modifiers.vanished);
        }
        b => panic!("{b:?}"),
    }
    bad("a FETCH 0 FLAGS");
    bad("a FETCH 1: FLAGS");
    bad("a FETCH 1 (FLAGS");
    bad("a FETCH 1 ()");
    bad("a FETCH 1 FOO");
    bad("a FETCH 1 BODY[MIME]");
    bad("a FETCH 1 BODY[1.]");
    bad("a FETCH 1 BODY[0]");
    bad("a FETCH 1 BODY[]<0.0>");
    bad("a FETCH 1 BODY[]<0>");
    bad("a FETCH 1 BODY[HEADER.FIELDS ()]");
    bad("a FETCH 1 BODY.PEEK");
    bad("a FETCH 1 BINARY[TEXT]");
    bad("a FETCH 1 FLAGS (CHANGEDSINCE 0)");
    bad("a FETCH 1 FLAGS (FOO)");
    bad("a FETCH 1 FLAGS FLAGS");
    bad("a UID FETCH");
    bad("a UID FOO 1");
}

#[test]
fn store_copy_move() {
    match body(r"d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\Deleted)") {
        CommandBody::Store {
            uid,
            set,
            unchanged_since,
            action,
            silent,
            flags,
        } => {
            assert!(!uid);
            assert_eq!(
                set,
                SeqSet::Ranges(
                    SeqRanges::new(vec![
                        SeqRange {
                            from: SeqNum::Value(n(7)),
                            to: SeqNum::Value(n(7))
                        },
                        SeqRange {
                            from: SeqNum::Value(n(5)),
                            to: SeqNum::Value(n(5))
                        },
                        SeqRange {
                            from: SeqNum::Value(n(9)),
                            to: SeqNum::Value(n(9))
                        },
                    ])
                    .unwrap()
                )
            );
            assert_eq!(
                (unchanged_since, action, silent),
                (Some(320162338), StoreAction::Add, true)
            );
            assert_eq!(flags, vec![Flag::Deleted]);
        }
        b => panic!("{b:?}"),
    }
    assert_eq!(
        body("a UID MOVE 42:* foo"),
        CommandBody::Move {
            uid: true,
            set: SeqSet::Ranges(
                SeqRanges::new(vec![SeqRange {
                    from: SeqNum::Value(n(42)),
                    to: SeqNum::Star
                }])
                .unwrap()
            ),
            mailbox: mbox("foo"),
        }
    );
    bad("a STORE 1 FLAGS (\\Seen");
    bad("a STORE 1 BLAGS (\\Seen)");
    bad("a STORE 1 FLAGS");
    bad("a STORE 1 +FLAGS \\");
    bad("a STORE 1 (FOO 1) FLAGS ()");
    bad("a COPY 1");
    bad("a MOVE foo bar");
    bad("a UID EXPUNGE");
    bad("a EXPUNGE 1");
}

#[test]
fn quota_acl_id() {
    assert_eq!(
        body(r#"S0001 SETQUOTA "" (STORAGE 512 MESSAGE 1000)"#),
        CommandBody::SetQuota {
            root: istr(""),
            limits: vec![
                (Atom::new("STORAGE").unwrap(), 512),
                (Atom::new("MESSAGE").unwrap(), 1000)
            ],
        }
    );
    assert_eq!(
        body("A001 SETACL INBOX/Drafts Chris +cda"),
        CommandBody::SetAcl {
            mailbox: mbox("INBOX/Drafts"),
            identifier: istr("Chris"),
            modify: RightsModify::Add,
            rights: Rights::new("cda").unwrap(),
        }
    );
    assert_eq!(
        body(r#"A004 SETACL INBOX/Drafts -Fred """#),
        CommandBody::SetAcl {
            mailbox: mbox("INBOX/Drafts"),
            identifier: istr("-Fred"),
            modify: RightsModify::Replace,
            rights: Rights::new("").unwrap(),
        }
    );
    assert_eq!(
        body("A003 SETACL INBOX/Drafts Chris -w"),
        CommandBody::SetAcl {
            mailbox: mbox("INBOX/Drafts"),
            identifier: istr("Chris"),
            modify: RightsModify::Remove,
            rights: Rights::new("w").unwrap(),
        }
    );
    assert_eq!(
        body("A003 DELETEACL INBOX/Drafts Smith"),
        CommandBody::DeleteAcl {
            mailbox: mbox("INBOX/Drafts"),
            identifier: istr("Smith"),
        }
    );
    assert_eq!(
        body("a LISTRIGHTS \"Other Users/a@b.c/x\" {6+}\r\nanyone"),
        CommandBody::ListRights {
            mailbox: mbox("Other Users/a@b.c/x"),
            identifier: istr("anyone"),
        }
    );
    assert_eq!(
        body("a MYRIGHTS inbox"),
        CommandBody::MyRights {
            mailbox: Mailbox::Inbox,
        }
    );
    assert_eq!(
        body("a GETACL Shared/team@example.com/INBOX"),
        CommandBody::GetAcl {
            mailbox: mbox("Shared/team@example.com/INBOX"),
        }
    );
    // RFC 4314 §3.1: "A035 BAD Uppercase rights are not allowed".
    bad("A035 SETACL INBOX/Drafts John lrQswicda");
    bad("a SETACL INBOX John");
    bad("a SETACL INBOX John l r");
    bad("a SETACL INBOX John l\u{e9}");
    bad("a GETACL");
    bad("a GETACL INBOX extra");
    bad("a DELETEACL INBOX");
    bad("a LISTRIGHTS INBOX");
    bad("a MYRIGHTS");
    bad("a MYRIGHTS INBOX INBOX");
    bad("a SETQUOTA \"\" (STORAGE)");
    bad("a SETQUOTA \"\" STORAGE 1");
    bad("a ID (\"name\")");
    bad("a ID (name \"x\")");
    bad("a ID");
    bad("a COMPRESS");
    bad("a ENABLE");
}

// --- THREATS.md "IMAP bombs" ---

#[test]
fn literal_bomb_before_login_is_left_to_the_caller() {
    let l = Limits::default();
    let r = parse(b"a LOGIN {4294967295}\r\n");
    assert_eq!(
        r,
        Err(ParseError::LiteralNeeded {
            tag: Tag::new("a").unwrap(),
            length: 4294967295,
            non_sync: false
        })
    );
    assert!(!l.accepts_literal(4294967295));
    // A client that sends data anyway is refused, not buffered.
    assert!(matches!(
        parse(b"a LOGIN {4294967295}\r\nxx"),
        Err(ParseError::Failed { .. })
    ));
    // Largest number64 and past it.
    assert!(matches!(
        parse(b"a LOGIN {9223372036854775807}\r\n"),
        Err(ParseError::LiteralNeeded { .. })
    ));
    assert!(matches!(
        parse(b"a LOGIN {9223372036854775808}\r\n"),
        Err(ParseError::Failed { .. })
    ));
    assert!(matches!(
        parse(b"a LOGIN {99999999999999999999999}\r\n"),
        Err(ParseError::Failed { .. })
    ));
    assert!(matches!(
        parse(b"a LOGIN {}\r\n"),
        Err(ParseError::Failed { .. })
    ));
    assert!(matches!(
        parse(b"a LOGIN {1x}\r\n"),
        Err(ParseError::Failed { .. })
    ));
    // Accepted size: after `+` the data comes.
    assert!(matches!(
        parse(b"a LOGIN {5}\r\n"),
        Err(ParseError::LiteralNeeded { length: 5, .. })
    ));
    assert_eq!(parse(b"a LOGIN {5}\r\nali"), Err(ParseError::Incomplete));
    assert_eq!(parse(b"a LOGIN {5}\r\nalice"), Err(ParseError::Incomplete));
}

#[test]
fn non_synchronising_literal_limits() {
    let too_big = format!("a LOGIN {{{}+}}\r\n", Limits::default().literal_size + 1);
    assert_eq!(
        parse(too_big.as_bytes()),
        Err(ParseError::Failed {
            tag: Some(Tag::new("a").unwrap()),
            reason: "literal too large".into()
        })
    );
    assert!(matches!(
        parse(b"a LOGIN {4294967295+}\r\n"),
        Err(ParseError::Failed { .. })
    ));
    // LITERAL- (RFC 7888 §5): 4096 is the ceiling.
    let minus = Limits {
        literal_plus: false,
        ..Limits::default()
    };
    assert!(matches!(
        parse_command(b"a LOGIN {4096+}\r\n", &minus),
        Err(ParseError::LiteralNeeded {
            length: 4096,
            non_sync: true,
            ..
        })
    ));
    assert!(matches!(
        parse_command(b"a LOGIN {4097+}\r\n", &minus),
        Err(ParseError::Failed { .. })
    ));
    // LITERAL+ allows more, up to literal_size.
    assert!(matches!(
        parse(b"a LOGIN {4097+}\r\n"),
        Err(ParseError::LiteralNeeded { non_sync: true, .. })
    ));
    // Synchronising literals over 4096 are fine under LITERAL-.
    assert!(matches!(
        parse_command(b"a LOGIN {5000}\r\n", &minus),
        Err(ParseError::LiteralNeeded { .. })
    ));
}

#[test]
fn long_line_without_crlf_fails_at_the_limit() {
    let l = Limits {
        line_length: 1000,
        ..Limits::default()
    };
    let mut buf = b"a SEARCH TEXT ".to_vec();
    buf.resize(999, b'x');
    assert_eq!(parse_command(&buf, &l), Err(ParseError::Incomplete));
    buf.push(b'x');
    assert!(matches!(
        parse_command(&buf, &l),
        Err(ParseError::Failed { tag: Some(_), .. })
    ));
    // A CRLF just past the limit does not rescue it.
    buf.extend_from_slice(b"\r\n");
    assert!(matches!(
        parse_command(&buf, &l),
        Err(ParseError::Failed { .. })
    ));
    // 16 MiB with no CRLF, default limit: refused, and only the first line_length bytes
    // are looked at (fast).
    let big = vec![b'a'; 16 << 20];
    let t = std::time::Instant::now();
    assert!(matches!(parse(&big), Err(ParseError::Failed { .. })));
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
    // The line after a literal has its own limit.
    let mut buf = b"a LOGIN {3}\r\nabc ".to_vec();
    buf.resize(buf.len() + 1000, b'x');
    assert!(matches!(
        parse_command(&buf, &l),
        Err(ParseError::Failed { .. })
    ));
}

fn nested(open: &str, inner: &str, close: &str, n: usize) -> Vec<u8> {
    let mut s = String::from("a SEARCH ");
    s.push_str(&open.repeat(n));
    s.push_str(inner);
    s.push_str(&close.repeat(n));
    s.push_str("\r\n");
    s.into_bytes()
}

#[test]
fn nesting_bombs_fail_without_deep_recursion() {
    // Run in a thread with a small stack: exceeding the limit must not recurse.
    let h = std::thread::Builder::new()
        .stack_size(512 * 1024)
        .spawn(|| {
            let wide = Limits {
                line_length: 1 << 21,
                ..Limits::default()
            };
            for bomb in [
                nested("(", "ALL", ")", 100_000),
                nested("NOT ", "ALL", "", 100_000),
                nested("OR ALL ", "ALL", "", 100_000),
                nested("OR ", "ALL", " ALL", 100_000),
            ] {
                // Default line limit stops it first.
                assert!(matches!(parse(&bomb), Err(ParseError::Failed { .. })));
                match parse_command(&bomb, &wide) {
                    Err(ParseError::Failed { reason, .. }) => {
                        assert_eq!(reason, "nesting too deep")
                    }
                    r => panic!("{r:?}"),
                }
            }
            // Exactly at the limit is fine; one more is not.
            let l = Limits::default();
            assert!(parse_command(&nested("(", "ALL", ")", 64), &l).is_ok());
            assert!(parse_command(&nested("(", "ALL", ")", 65), &l).is_err());
            assert!(parse_command(&nested("NOT ", "ALL", "", 64), &l).is_ok());
            assert!(parse_command(&nested("NOT ", "ALL", "", 65), &l).is_err());
            // FETCH has no nesting: parentheses past the one list are an error at once.
            let mut f = b"a FETCH 1 ".to_vec();
            f.extend(std::iter::repeat_n(b'(', 100_000));
            f.extend_from_slice(b"\r\n");
            assert!(matches!(
                parse_command(&f, &wide),
                Err(ParseError::Failed { .. })
            ));
        })
        .unwrap();
    h.join().unwrap();
}

#[test]
fn item_count_limit() {
    let l = Limits {
        max_items: 10,
        ..Limits::default()
    };
    let set: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    assert!(
        parse_command(
            format!("a FETCH {} FLAGS\r\n", set.join(",")).as_bytes(),
            &l
        )
        .is_ok()
    );
    let set: Vec<String> = (1..=11).map(|i| i.to_string()).collect();
    assert!(
        parse_command(
            format!("a FETCH {} FLAGS\r\n", set.join(",")).as_bytes(),
            &l
        )
        .is_err()
    );
    assert!(
        parse_command(
            format!("a SEARCH {}\r\n", ["ALL"; 11].join(" ")).as_bytes(),
            &l
        )
        .is_err()
    );
    assert!(
        parse_command(
            format!("a FETCH 1 ({})\r\n", ["UID"; 11].join(" ")).as_bytes(),
            &l
        )
        .is_err()
    );
    // Literal count per command.
    let many = "{1}\r\nx ".repeat(11);
    assert!(matches!(
        parse_command(format!("a SEARCH TEXT {many}ALL\r\n").as_bytes(), &l),
        Err(ParseError::Failed { .. })
    ));
}

// --- fuzz ---

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn fuzz_never_panics_and_round_trips() {
    const TOKENS: &[&[u8]] = &[
        b"(",
        b")",
        b"{5}\r\n",
        b"{0}\r\n",
        b"~{3}\r\n",
        b"{2+}\r\n",
        b"\r\n",
        b" ",
        b"\"",
        b"\\",
        b"NOT ",
        b"OR ",
        b"BODY[",
        b"]",
        b"<0.5>",
        b"*",
        b"$",
        b":",
        b",",
        b"\0",
        b"\xff",
        b"\n",
        b"\r",
        b"INBOX",
        b"NIL",
        b"1",
        b"4294967295",
        b"UID ",
        b"RETURN (",
        b"CHARSET ",
        b"&",
        b"-",
        b"((((((((((((((((",
        b"NOT NOT NOT NOT ",
        b"{4294967295}\r\n",
        b"{99999+}\r\n",
        b"BODY.PEEK[1.2.MIME]",
        b"~",
        b"%",
        b"\"\r\n\"",
    ];
    let seeds: Vec<Vec<u8>> = corpus()
        .into_iter()
        .map(|s| format!("{s}\r\n").into_bytes())
        .collect();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let limits = Limits {
        line_length: 4096,
        literal_size: 1 << 16,
        ..Limits::default()
    };
    let start = std::time::Instant::now();
    let mut parsed = 0;
    for _ in 0..20_000 {
        let mut buf = seeds[rng.below(seeds.len())].clone();
        match rng.below(4) {
            0 => {
                // Random bytes.
                let len = rng.below(200);
                buf = (0..len).map(|_| rng.next() as u8).collect();
            }
            _ => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(buf.len() + 1);
                    match rng.below(4) {
                        0 if at < buf.len() => buf[at] = rng.next() as u8,
                        1 if at < buf.len() => {
                            buf.remove(at);
                        }
                        2 => {
                            let t = TOKENS[rng.below(TOKENS.len())];
                            buf.splice(at..at, t.iter().copied());
                        }
                        _ => buf.truncate(at),
                    }
                }
            }
        }
        if let Ok((n, c)) = parse_command(&buf, &limits) {
            assert!(n <= buf.len());
            parsed += 1;
            let enc = encode(&c);
            let again = parse_command(&enc, &limits).map(|(_, c)| c);
            assert_eq!(
                again.as_ref(),
                Ok(&c),
                "input {:?} encoded {:?}",
                String::from_utf8_lossy(&buf),
                String::from_utf8_lossy(&enc)
            );
        }
    }
    eprintln!("fuzz: 20000 inputs, {parsed} parsed, {:?}", start.elapsed());
    assert!(parsed > 500, "{parsed}");
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn idle_done_and_auth_continuations() {
    use crate::decode::{AuthResponse, parse_auth_response, parse_idle_done};
    let l = Limits::default();
    assert_eq!(parse_idle_done(b"done\r\nb NOOP\r\n", &l), Ok(6));
    for i in 0..6 {
        assert_eq!(
            parse_idle_done(&b"DONE\r\n"[..i], &l),
            Err(ParseError::Incomplete)
        );
    }
    assert!(matches!(
        parse_idle_done(b"a NOOP\r\n", &l),
        Err(ParseError::Failed { .. })
    ));
    assert!(matches!(
        parse_idle_done(b"DONE\n", &l),
        Err(ParseError::Failed { .. })
    ));
    let small = Limits {
        line_length: 8,
        ..Limits::default()
    };
    assert!(matches!(
        parse_idle_done(b"DDDDDDDDDDDD", &small),
        Err(ParseError::Failed { .. })
    ));

    assert_eq!(
        parse_auth_response(b"*\r\n", &l),
        Ok((3, AuthResponse::Cancel))
    );
    match parse_auth_response(b"AGFsaWNlAHNlY3JldA==\r\n", &l) {
        Ok((22, AuthResponse::Data(d))) => assert_eq!(d.expose(), b"\0alice\0secret"),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        parse_auth_response(b"\r\n", &l),
        Ok((2, AuthResponse::Data(_)))
    ));
    assert!(matches!(
        parse_auth_response(b"!!\r\n", &l),
        Err(ParseError::Failed { .. })
    ));
    assert_eq!(
        parse_auth_response(b"AGFsa", &l),
        Err(ParseError::Incomplete)
    );
}

/// A session-like driver: the whole corpus pipelined in one stream, delivered in random
/// chunk sizes; every command comes out once, equal to parsing it alone.
#[test]
fn streamed_in_random_chunks() {
    let cmds: Vec<Vec<u8>> = corpus()
        .into_iter()
        .map(|s| format!("{s}\r\n").into_bytes())
        .collect();
    let expected: Vec<Command> = cmds.iter().map(|c| parse(c).unwrap().1).collect();
    let stream: Vec<u8> = cmds.concat();
    let mut rng = XorShift(42);
    let (mut fed, mut buf, mut got) = (0, Vec::new(), Vec::new());
    let mut literals_answered = 0;
    // Half the chunks end right after a CRLF, as a client waiting for `+ ` would send.
    let mut feed = |buf: &mut Vec<u8>, fed: &mut usize| {
        let rest = &stream[*fed..];
        assert!(!rest.is_empty(), "stream ended inside a command");
        let take = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(p) if rng.below(2) == 0 => p + 2,
            _ => (1 + rng.below(64)).min(rest.len()),
        };
        buf.extend_from_slice(&rest[..take]);
        *fed += take;
    };
    while got.len() < expected.len() {
        match parse(&buf) {
            Ok((n, c)) => {
                got.push(c);
                buf.drain(..n);
            }
            Err(ParseError::LiteralNeeded { length, .. }) => {
                assert!(Limits::default().accepts_literal(length));
                literals_answered += 1;
                feed(&mut buf, &mut fed);
            }
            Err(ParseError::Incomplete) => feed(&mut buf, &mut fed),
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(got, expected);
    assert!(buf.is_empty() && fed == stream.len());
    assert!(literals_answered > 0);
}

#[test]
fn errors_carry_the_tag() {
    match parse(b"x1 FETCH 1 FOO\r\n") {
        Err(ParseError::Failed {
            tag: Some(t),
            reason,
        }) => {
            assert_eq!(t.as_str(), "x1");
            assert_eq!(reason, "unknown fetch item");
        }
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        parse(b"+ NOOP\r\n"),
        Err(ParseError::Failed { tag: None, .. })
    ));
    // LiteralNeeded is stable until bytes arrive.
    let b = b"t7 LOGIN {3}\r\n";
    assert_eq!(parse(b), parse(b));
    assert!(
        matches!(parse(b), Err(ParseError::LiteralNeeded { tag, length: 3, non_sync: false }) if tag.as_str() == "t7")
    );
}

/// Inputs the cargo-fuzz targets (`fuzz/`) found, each with the check that failed.
#[test]
fn fuzz_regressions() {
    // round_trip: `l{cai` re-encodes as a quoted string, and the line then ends
    // `"l{cai" e2}`; framing took the `{` inside the quotes for a literal header and
    // failed a valid command ("malformed literal header").
    let c = ok("a LOGIN {5}\r\nl{cai e2}");
    assert_eq!(parse(b"a LOGIN \"l{cai\" e2}\r\n").map(|(_, c)| c), Ok(c));
    ok(r#"a LOGIN "{5}" x}"#);
    ok(r#"a SEARCH SUBJECT "{" BODY x}"#);
    // Every prefix of such a line still waits for more.
    let buf = b"a LOGIN \"l{cai\" e2}\r\n";
    for i in 0..buf.len() {
        assert!(matches!(
            parse(&buf[..i]),
            Err(ParseError::Incomplete | ParseError::LiteralNeeded { .. })
        ));
    }
    // A `{` outside quotes is still a malformed literal header. Framing does not track
    // quotes, so a quoted string left open before `{5}` at the line end is taken for a
    // literal (the caller may send `+`); the grammar refuses it once the data is there.
    assert_eq!(bad("a LOGIN x {5a}"), "malformed literal header");
    assert!(matches!(
        parse(b"a LOGIN x \"y{5}\r\n"),
        Err(ParseError::LiteralNeeded { length: 5, .. })
    ));
    bad("a LOGIN x \"y{5}\r\nhello");
}

/// Writes the corpus, one command per file, as seeds for the cargo-fuzz targets
/// (`fuzz/README.md`): `POSTERN_FUZZ_SEEDS=DIR cargo test -p postern-imap-proto --
/// --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes files; run by hand to seed a fuzz corpus"]
fn write_fuzz_seeds() {
    let dir = std::env::var("POSTERN_FUZZ_SEEDS").expect("set POSTERN_FUZZ_SEEDS to a directory");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in corpus().iter().enumerate() {
        std::fs::write(format!("{dir}/seed-{i:03}"), format!("{s}\r\n")).unwrap();
    }
    let extra: [&[u8]; 6] = [
        b"DONE\r\n",
        b"done\r\n",
        b"*\r\n",
        b"AGFsaWNlAHNlY3JldA==\r\n",
        b"\r\n",
        b"a LOGIN {5}\r\nalice {6}\r\nsecret\r\n",
    ];
    for (i, s) in extra.iter().enumerate() {
        std::fs::write(format!("{dir}/extra-{i}"), s).unwrap();
    }
}
