#!/usr/bin/env python3
"""Python's stdlib imaplib against Postern: the commands a simple script or a backup tool
sends, as imaplib sends them. Run by tests/imap_clients.rs.

Usage: imaplib_client.py --port P --mode plain|starttls|tls [--cert PEM]
                         --user U --password P --peer-user U2 --peer-password P2

Asserts as it goes (a failed assert exits non-zero with a traceback naming the step);
prints `step NAME` before each step and `OK` as its last line.
"""
import argparse
import imaplib
import re
import ssl
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--mode", choices=["plain", "starttls", "tls"], required=True)
ap.add_argument("--cert")
ap.add_argument("--user", required=True)
ap.add_argument("--password", required=True)
ap.add_argument("--peer-user", required=True)
ap.add_argument("--peer-password", required=True)
args = ap.parse_args()


def step(name):
    print("step", name, flush=True)


def connect(user, password):
    if args.mode == "tls":
        # Full verification: the certificate names 127.0.0.1 among its subject names.
        ctx = ssl.create_default_context(cafile=args.cert)
        m = imaplib.IMAP4_SSL(args.host, args.port, ssl_context=ctx, timeout=30)
    else:
        m = imaplib.IMAP4(args.host, args.port, timeout=30)
        if args.mode == "starttls":
            ctx = ssl.create_default_context(cafile=args.cert)
            typ, _ = m.starttls(ssl_context=ctx)
            assert typ == "OK", typ
    typ, data = m.login(user, password)
    assert typ == "OK", (typ, data)
    return m


def ok(result):
    typ, data = result
    assert typ == "OK", (typ, data)
    return data


def msg(subject, body, msgid):
    return (
        "From: Bob Example <bob@example.org>\r\n"
        "To: Alice <alice@example.com>\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{msgid}@example.org>\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


MULTIPART = (
    b"From: Carol <carol@example.net>\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_mit_Anhang?=\r\n"
    b"Message-ID: <mp1@example.net>\r\n"
    b"Date: Wed, 25 Nov 2026 09:30:00 +0100\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XyZ"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--XyZ\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"see attachment\r\n"
    b"--XyZ\r\n"
    b'Content-Type: application/octet-stream; name="a.bin"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: attachment; filename="a.bin"\r\n'
    b"\r\n"
    b"AAECAwQFBgcICQ==\r\n"
    b"--XyZ--\r\n"
)

m = connect(args.user, args.password)
try:
    step("capability")
    # imaplib keeps the greeting's (pre-login) list: ask again.
    caps = ok(m.capability())[0].upper().split()
    for c in (b"IMAP4REV1", b"IDLE", b"UIDPLUS", b"MOVE"):
        assert c in caps, (c, caps)

    step("list")
    boxes = ok(m.list())
    names = [re.search(rb'"[^"]*" (.+)$', b).group(1).strip(b'"') for b in boxes]
    assert b"INBOX" in names, boxes
    ok(m.create("Work"))
    ok(m.create("Work/Sub"))
    boxes = ok(m.list('""', "Work*"))
    assert len(boxes) == 2, boxes
    work = [b for b in boxes if b.endswith(b'"Work"') or b.endswith(b" Work")]
    assert len(work) == 1 and b"\\HasChildren" in work[0], boxes

    step("append")
    sent = [
        msg("first", "Grüße, the first message", "a1"),
        msg("second needle", "the second one", "a2"),
        msg("third", "the third, with needle in the body", "a3"),
        MULTIPART,
    ]
    uids = []
    for i, raw in enumerate(sent):
        flags = "(\\Seen)" if i == 0 else None
        date = imaplib.Time2Internaldate(time.time())
        typ, data = m.append("INBOX", flags, date, raw)
        assert typ == "OK", (typ, data)
        code = re.match(rb"\[APPENDUID (\d+) (\d+)\]", data[0])
        assert code, data
        uids.append(int(code.group(2)))
    assert uids == sorted(uids) and len(set(uids)) == 4, uids

    step("select")
    data = ok(m.select("INBOX"))
    assert data == [b"4"], data
    assert m.untagged_responses.get("UIDVALIDITY"), m.untagged_responses

    step("fetch")
    data = ok(m.fetch("1:4", "(UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE BODY.PEEK[])"))
    # imaplib: (b'1 (UID 1 ... BODY[] {n}', literal), b')' per message.
    parts = [d for d in data if isinstance(d, tuple)]
    assert len(parts) == 4, data
    for i, (head, body) in enumerate(parts):
        assert body == sent[i], (i, body, sent[i])
        assert f"RFC822.SIZE {len(sent[i])}".encode() in head, head
        assert f"UID {uids[i]}".encode() in head, head
    assert b"\\Seen" in parts[0][0] and b"\\Seen" not in parts[1][0], parts
    env0 = parts[0][0]
    assert b'"Tue, 24 Nov 2026 10:00:00 +0000" "first"' in env0, env0
    assert b'(("Bob Example" NIL "bob" "example.org"))' in env0, env0
    assert b'"<a1@example.org>"' in env0, env0
    assert b'("TEXT" "PLAIN" ("CHARSET" "UTF-8") NIL NIL "8BIT" 28 1' in env0.upper(), env0
    mp = parts[3][0].upper()
    assert b'"MIXED"' in mp and b'"APPLICATION" "OCTET-STREAM"' in mp and b'"BASE64"' in mp, mp
    assert b'"ATTACHMENT" ("FILENAME" "A.BIN")' in mp, mp
    # Sections: a header field subset, a MIME part, a partial.
    data = ok(m.fetch("4", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[2] BODY.PEEK[1.MIME])"))
    flat = b"".join(d[1] for d in data if isinstance(d, tuple))
    assert b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_mit_Anhang?=\r\n\r\n" in flat, data
    assert b"AAECAwQFBgcICQ==" in flat, data
    assert b"Content-Type: text/plain; charset=us-ascii\r\n\r\n" in flat, data
    data = ok(m.fetch("2", "(BODY.PEEK[]<0.10>)"))
    assert data[0][1] == sent[1][:10], data
    # Nothing above set \Seen (PEEK).
    data = ok(m.fetch("2", "(FLAGS)"))
    assert b"\\Seen" not in data[0], data
    # A non-PEEK fetch sets it.
    data = ok(m.fetch("2", "(BODY[TEXT])"))
    assert data[0][1] == b"the second one\r\n", data
    data = ok(m.fetch("2", "(FLAGS)"))
    assert b"\\Seen" in data[0], data

    step("search")
    assert ok(m.search(None, "ALL")) == [b"1 2 3 4"]
    assert ok(m.search(None, "SUBJECT", "needle")) == [b"2"]
    assert ok(m.search(None, "TEXT", "needle")) == [b"2 3"]
    assert ok(m.search(None, "UNSEEN")) == [b"3 4"]
    assert ok(m.search(None, "FROM", "carol")) == [b"4"]
    assert ok(m.search(None, "NOT", "FROM", "carol", "SEEN")) == [b"1 2"]
    # Non-ASCII with CHARSET UTF-8 as a literal (imaplib sends str args as is, so
    # use the literal attribute for the 8-bit string).
    m.literal = "Grüße".encode()
    assert ok(m.search("UTF-8", "BODY")) == [b"1"]
    assert ok(m.uid("SEARCH", None, "ALL")) == [" ".join(map(str, uids)).encode()]

    step("store")
    data = ok(m.store("3", "+FLAGS", "(\\Flagged $Label1)"))
    assert b"\\Flagged" in data[0] and b"$Label1" in data[0], data
    data = ok(m.store("3", "-FLAGS.SILENT", "(\\Flagged)"))
    assert data == [None], data
    data = ok(m.fetch("3", "(FLAGS)"))
    assert b"$Label1" in data[0] and b"\\Flagged" not in data[0], data
    data = ok(m.uid("STORE", str(uids[0]), "FLAGS", "(\\Answered \\Seen)"))
    assert b"\\Answered" in data[0], data
    assert ok(m.search(None, "ANSWERED")) == [b"1"]
    assert ok(m.search(None, "KEYWORD", "$Label1")) == [b"3"]

    step("copy")
    data = ok(m.copy("1:2", "Work"))
    assert re.match(rb"\[COPYUID \d+ \d+:\d+ \d+:\d+\]", data[0]), data
    # imaplib's uid() keeps only untagged FETCH data, so COPYUID is not visible here.
    ok(m.uid("COPY", str(uids[3]), "Work/Sub"))
    data = ok(m.status("Work", "(MESSAGES UNSEEN UIDNEXT)"))
    assert b"MESSAGES 2" in data[0] and b"UNSEEN 0" in data[0], data

    step("move")
    typ, data = m._simple_command("MOVE", "3", "Work")
    assert typ == "OK", (typ, data)
    assert m.untagged_responses.pop("EXPUNGE", None) == [b"3"], m.untagged_responses
    # RFC 6851 §4.3: with UIDPLUS, COPYUID comes in an untagged OK before the expunge.
    assert m.untagged_responses.pop("COPYUID", None), m.untagged_responses
    assert ok(m.search(None, "ALL")) == [b"1 2 3"]
    typ, data = m.uid("MOVE", str(uids[3]), "Work")
    assert typ == "OK", (typ, data)
    assert m.untagged_responses.pop("EXPUNGE", None) == [b"3"], m.untagged_responses
    m.untagged_responses.pop("COPYUID", None)
    assert ok(m.search(None, "ALL")) == [b"1 2"]
    data = ok(m.status("Work", "(MESSAGES)"))
    assert b"MESSAGES 4" in data[0], data

    step("expunge")
    ok(m.store("1", "+FLAGS", "(\\Deleted)"))
    data = ok(m.expunge())
    assert data == [b"1"], data
    assert ok(m.search(None, "ALL")) == [b"1"]
    data = ok(m.fetch("1", "(UID)"))
    assert f"UID {uids[1]}".encode() in data[0], data

    step("idle")
    # imaplib (3.11) has no IDLE method: send it by hand as a client would. Another
    # session (the peer account cannot reach alice's mailbox, so the same account)
    # appends; the idling session must be told `* 2 EXISTS`.
    tag = m._new_tag()
    m.send(tag + b" IDLE\r\n")
    line = m.readline()
    assert line.startswith(b"+"), line
    other = connect(args.user, args.password)
    ok(other.append("INBOX", None, None, msg("during idle", "woke you up", "a9")))
    other.logout()
    m.sock.settimeout(10)
    lines = []
    while True:
        line = m.readline()
        assert line, lines
        lines.append(line)
        if line.startswith(b"* 2 EXISTS"):
            break
    m.send(b"DONE\r\n")
    while True:
        line = m.readline()
        assert line, lines
        lines.append(line)
        if line.startswith(tag):
            break
    assert line.startswith(tag + b" OK"), lines
    m.sock.settimeout(30)

    step("isolation")
    # Bob sees none of alice's folders or mail.
    b = connect(args.peer_user, args.peer_password)
    assert ok(b.select("INBOX")) == [b"0"]
    typ, data = b.select("Work")
    assert typ == "NO", (typ, data)
    b.logout()

    step("close")
    ok(m.select("Work"))
    ok(m.store("1:*", "+FLAGS.SILENT", "(\\Deleted)"))
    ok(m.close())
    data = ok(m.status("Work", "(MESSAGES)"))
    assert b"MESSAGES 0" in data[0], data
    ok(m.delete("Work/Sub"))
    ok(m.delete("Work"))
finally:
    step("logout")
    typ, data = m.logout()
    assert typ == "BYE", (typ, data)
print("OK")
