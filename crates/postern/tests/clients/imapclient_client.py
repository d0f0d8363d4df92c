#!/usr/bin/env python3
"""imapclient (PyPI) against Postern: the parsed, UID-based API many Python tools use,
including IDLE woken by another session's APPEND. Run by tests/imap_clients.rs.

Usage: imapclient_client.py --port P --mode plain|starttls|tls [--cert PEM]
                            --user U --password P --peer-user U2 --peer-password P2

Asserts as it goes; prints `step NAME` before each step and `OK` as its last line.
"""
import argparse
import datetime
import email.header
import os
import ssl
import sys
import threading
import time

import imapclient
from imapclient import IMAPClient

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
# imapclient gives dates as naive local times: make local UTC.
os.environ["TZ"] = "UTC"
time.tzset()


def step(name):
    print("step", name, flush=True)


def connect(user, password):
    ctx = ssl.create_default_context(cafile=args.cert) if args.cert else None
    if args.mode == "tls":
        c = IMAPClient(args.host, port=args.port, ssl=True, ssl_context=ctx, timeout=30)
    else:
        c = IMAPClient(args.host, port=args.port, ssl=False, timeout=30)
        if args.mode == "starttls":
            c.starttls(ssl_context=ctx)
    c.login(user, password)
    return c


def decoded(raw):
    """RFC 2047 decoding as a mail client does it (Postern may re-encode header text)."""
    return str(email.header.make_header(email.header.decode_header(raw.decode("ascii"))))


def msg(subject, body, msgid, date="Tue, 24 Nov 2026 10:00:00 +0000"):
    return (
        "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.org>\r\n"
        "To: Alice <alice@example.com>, bob@example.com\r\n"
        "Cc: Carol <carol@example.net>\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{msgid}@example.org>\r\n"
        f"Date: {date}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


ALT = (
    b"From: shop@example.net\r\n"
    b"To: alice@example.com\r\n"
    b"Subject: Your order\r\n"
    b"Message-ID: <alt1@example.net>\r\n"
    b"Date: Mon, 23 Nov 2026 08:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Caf=C3=A9 order shipped\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b"<p>Caf\xc3\xa9 order shipped</p>\r\n"
    b"--b1--\r\n"
)

c = connect(args.user, args.password)
try:
    step("capabilities")
    caps = c.capabilities()
    for cap in (b"IDLE", b"UIDPLUS", b"MOVE", b"NAMESPACE", b"ID"):
        assert cap in caps, (cap, caps)
    ns = c.namespace()
    assert ns.personal and ns.personal[0][1] == "/", ns
    ident = c.id_({"name": "imapclient", "version": imapclient.__version__})
    assert ident is None or isinstance(ident, (tuple, list, dict)), ident

    step("folders")
    names = [f[2] for f in c.list_folders()]
    assert "INBOX" in names, names
    # imapclient encodes non-ASCII names as modified UTF-7 (RFC 3501 §5.1.3).
    c.create_folder("Entwürfe")
    c.create_folder("Projects")
    c.create_folder("Projects/2026")
    names = [f[2] for f in c.list_folders()]
    assert "Entwürfe" in names and "Projects/2026" in names, names
    assert c.folder_exists("Entwürfe")
    flags = {f[2]: f[0] for f in c.list_folders("", "Projects*")}
    assert b"\\HasChildren" in flags["Projects"], flags
    c.rename_folder("Entwürfe", "Drafts-old")
    assert not c.folder_exists("Entwürfe") and c.folder_exists("Drafts-old")
    c.delete_folder("Drafts-old")
    c.subscribe_folder("Projects")
    assert "Projects" in [f[2] for f in c.list_sub_folders()]

    step("append")
    when = datetime.datetime(2026, 11, 20, 12, 0, 0, tzinfo=datetime.timezone.utc)
    sent = [
        msg("=?UTF-8?Q?Gr=C3=BC=C3=9Fe?=", "Grüße aus Berlin, needle", "c1"),
        msg("Plan for Monday", "agenda attached", "c2", "Wed, 25 Nov 2026 07:00:00 +0000"),
        ALT,
    ]
    resp = c.append("INBOX", sent[0], flags=[b"\\Flagged"], msg_time=when)
    assert resp.startswith(b"[APPENDUID "), resp
    c.append("INBOX", sent[1])
    c.multiappend("INBOX", [sent[2]])

    step("select")
    info = c.select_folder("INBOX")
    assert info[b"EXISTS"] == 3, info
    assert info[b"UIDVALIDITY"] > 0 and info[b"UIDNEXT"] > 3, info
    assert b"\\Seen" in info[b"FLAGS"], info

    step("fetch")
    uids = c.search()
    assert len(uids) == 3, uids
    got = c.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "BODY.PEEK[]", "FLAGS", "INTERNALDATE", "RFC822.SIZE"])
    assert sorted(got) == uids, got.keys()
    first = got[uids[0]]
    assert first[b"BODY[]"] == sent[0], first[b"BODY[]"]
    assert first[b"RFC822.SIZE"] == len(sent[0])
    assert b"\\Flagged" in first[b"FLAGS"], first[b"FLAGS"]
    assert first[b"INTERNALDATE"].astimezone(datetime.timezone.utc).replace(tzinfo=None) == datetime.datetime(2026, 11, 20, 12, 0, 0), first[b"INTERNALDATE"]
    env = first[b"ENVELOPE"]
    assert decoded(env.subject) == "Grüße", env
    assert env.message_id == b"<c1@example.org>", env
    assert env.date == datetime.datetime(2026, 11, 24, 10, 0, 0), env.date
    assert env.from_[0].mailbox == b"juergen" and env.from_[0].host == b"example.org", env.from_
    assert decoded(env.from_[0].name) == "Jürgen Müller", env.from_
    assert [(a.mailbox, a.host) for a in env.to] == [(b"alice", b"example.com"), (b"bob", b"example.com")], env.to
    assert env.cc[0].name == b"Carol", env.cc
    assert env.sender[0].mailbox == b"juergen" and env.reply_to[0].mailbox == b"juergen"
    bs = first[b"BODYSTRUCTURE"]
    assert bs[0].lower() == b"text" and bs[1].lower() == b"plain", bs
    alt = got[uids[2]]
    bs = alt[b"BODYSTRUCTURE"]
    assert bs.is_multipart, bs
    parts, subtype = bs[0], bs[1]
    assert subtype.lower() == b"alternative" and len(parts) == 2, bs
    assert parts[0][1].lower() == b"plain" and parts[0][5].lower() == b"quoted-printable", parts[0]
    assert parts[1][1].lower() == b"html", parts[1]
    assert alt[b"BODY[]"] == sent[2]
    # Partial and part fetches.
    part = c.fetch([uids[2]], ["BODY.PEEK[1]", "BODY.PEEK[2]<0.8>", "BODY.PEEK[HEADER.FIELDS (SUBJECT DATE)]"])[uids[2]]
    assert part[b"BODY[1]"] == b"Caf=C3=A9 order shipped", part
    assert part[b"BODY[2]<0>"] == b"<p>Caf\xc3\xa9", part
    assert part[b"BODY[HEADER.FIELDS (SUBJECT DATE)]"] == b"Subject: Your order\r\nDate: Mon, 23 Nov 2026 08:00:00 +0000\r\n\r\n", part
    assert c.get_flags([uids[1]])[uids[1]] == (), "PEEK set a flag"

    step("search")
    assert c.search(["SUBJECT", "Monday"]) == [uids[1]]
    assert c.search(["FLAGGED"]) == [uids[0]]
    assert c.search(["UNFLAGGED"]) == uids[1:]
    assert c.search(["BODY", "Grüße"], charset="UTF-8") == [uids[0]]
    assert c.search(["TEXT", "needle"]) == [uids[0]]
    assert c.search(["SENTSINCE", datetime.date(2026, 11, 25)]) == [uids[1]]
    assert c.search(["FROM", "shop@example.net"]) == [uids[2]]
    assert c.search(["OR", "SUBJECT", "Monday", "SUBJECT", "order"]) == uids[1:]
    assert c.search(["HEADER", "Message-ID", "<c2@example.org>"]) == [uids[1]]
    assert c.search(["LARGER", 10**6]) == []
    assert c.sort(["DATE"]) == [uids[2], uids[0], uids[1]], c.sort(["DATE"])
    assert c.sort(["REVERSE", "ARRIVAL"]) == list(reversed(uids))

    step("extensions")
    threads = c.thread("REFERENCES")
    assert sorted(u for t in threads for u in t) == uids, threads
    # FETCH MODSEQ enables CONDSTORE by itself (RFC 7162 §3.1; imapclient allows
    # ENABLE only before SELECT).
    got = c.fetch(uids, ["MODSEQ"])
    modseqs = {u: got[u][b"MODSEQ"][0] for u in uids}
    assert all(m > 0 for m in modseqs.values()), got

    step("flags")
    res = c.add_flags([uids[1]], [b"\\Seen", b"$Important"])
    assert set(res[uids[1]]) == {b"\\Seen", b"$Important"}, res
    res = c.remove_flags([uids[0]], [b"\\Flagged"])
    assert res[uids[0]] == (), res
    res = c.set_flags([uids[2]], [b"\\Answered"])
    assert res[uids[2]] == (b"\\Answered",), res
    assert c.search(["KEYWORD", "$Important"]) == [uids[1]]
    assert c.search(["UNSEEN"]) == [uids[0], uids[2]]
    # CONDSTORE: only the changed messages are newer than their old MODSEQ.
    changed = c.fetch(uids, ["FLAGS"], modifiers=["CHANGEDSINCE %d" % max(modseqs.values())])
    assert sorted(changed) == uids, changed
    assert c.fetch(uids, ["FLAGS"], modifiers=["CHANGEDSINCE %d" % max(m[b"MODSEQ"][0] for m in c.fetch(uids, ["MODSEQ"]).values())]) == {}
    st = c.folder_status("INBOX", [b"MESSAGES", b"UNSEEN", b"UIDNEXT"])
    assert st[b"MESSAGES"] == 3 and st[b"UNSEEN"] == 2, st

    step("copy")
    # Returns None with use_uid (imaplib's uid() drops the tagged COPYUID text).
    c.copy([uids[0]], "Projects")
    st = c.folder_status("Projects", [b"MESSAGES"])
    assert st[b"MESSAGES"] == 1, st

    step("move")
    c.move([uids[1]], "Projects/2026")
    assert c.search() == [uids[0], uids[2]]
    st = c.folder_status("Projects/2026", [b"MESSAGES"])
    assert st[b"MESSAGES"] == 1, st

    step("expunge")
    c.delete_messages([uids[0]])
    assert b"\\Deleted" in c.get_flags([uids[0]])[uids[0]]
    c.uid_expunge([uids[0]])
    assert c.search() == [uids[2]]
    c.delete_messages([uids[2]])
    resp, expunged = c.expunge()
    assert expunged == [(1, b"EXPUNGE")], (resp, expunged)
    assert c.search() == []

    step("idle")
    before = c.select_folder("INBOX")[b"EXISTS"]
    assert before == 0, before
    err = []

    def append_later():
        try:
            time.sleep(0.5)
            other = connect(args.user, args.password)
            other.append("INBOX", msg("while idling", "ping", "c9"))
            other.logout()
        except Exception as e:  # shown by the main thread
            err.append(e)

    t = threading.Thread(target=append_later)
    c.idle()
    t.start()
    events = []
    deadline = time.time() + 15
    while time.time() < deadline and not any(e[1] == b"EXISTS" for e in events):
        events += c.idle_check(timeout=1)
    done = c.idle_done()
    t.join()
    assert not err, err
    assert (1, b"EXISTS") in events, (events, done)
    assert c.search(["SUBJECT", "while idling"]) != []

    step("unselect")
    c.unselect_folder()
    c.select_folder("Projects", readonly=True)
    got = c.fetch(c.search(), ["FLAGS", "BODY[]"])
    assert len(got) == 1, got
    # EXAMINE: a non-PEEK fetch must not set \Seen.
    assert b"\\Seen" not in list(got.values())[0][b"FLAGS"], got
    c.close_folder()

    step("isolation")
    b = connect(args.peer_user, args.peer_password)
    assert "Projects" not in [f[2] for f in b.list_folders()]
    assert b.select_folder("INBOX")[b"EXISTS"] == 0
    b.logout()

    step("quota")
    if b"QUOTA" in caps:
        roots = c.get_quota_root("INBOX")
        assert roots is not None, roots
finally:
    step("logout")
    c.logout()
print("OK")
