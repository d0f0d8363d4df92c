#!/usr/bin/env python3
"""A realistic corpus (shared/tools/gen_mbox.py: MIME trees, 8-bit and encoded headers,
large messages, `From ` body lines) appended through imaplib's APPEND and fetched back:
every message must come back byte for byte. Run by tests/imap_clients.rs.

Usage: imaplib_corpus.py --port P --user U --password P --mbox FILE [--mailbox NAME]

Prints one line per check and `OK` last.
"""
import argparse
import imaplib
import mailbox
import re
import sys
import time

T0 = time.monotonic()


def since():
    return f"{time.monotonic() - T0:.1f}s"


ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--user", required=True)
ap.add_argument("--password", required=True)
ap.add_argument("--mbox", required=True)
ap.add_argument("--mailbox", default="Corpus")
args = ap.parse_args()

# What goes on the wire: imaplib's append turns bare LF into CRLF as well; doing it here
# keeps the expected bytes exactly what was sent.
messages = [re.sub(rb"\r?\n", b"\r\n", mailbox.mbox(args.mbox).get_bytes(k)) for k in mailbox.mbox(args.mbox).keys()]
assert messages, "empty corpus"
print(f"corpus {len(messages)} messages {sum(map(len, messages))} bytes", flush=True)

m = imaplib.IMAP4(args.host, args.port, timeout=60)
typ, _ = m.login(args.user, args.password)
assert typ == "OK"
typ, data = m.create(args.mailbox)
assert typ == "OK", data

uids = []
for i, raw in enumerate(messages):
    typ, data = m.append(args.mailbox, None, None, raw)
    assert typ == "OK", (i, typ, data)
    code = re.match(rb"\[APPENDUID \d+ (\d+)\]", data[0])
    assert code, (i, data)
    uids.append(int(code.group(1)))
print(f"appended {len(uids)} at {since()}", flush=True)

typ, data = m.select(args.mailbox, readonly=True)
assert typ == "OK" and int(data[0]) == len(messages), data

mismatches = []
for i, uid in enumerate(uids):
    typ, data = m.uid("FETCH", str(uid), "(RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT])")
    assert typ == "OK", (uid, data)
    lits = [d for d in data if isinstance(d, tuple)]
    assert len(lits) == 1 or len(lits) == 3, (uid, data)
    # imaplib splits one FETCH response at each literal: the head before each literal
    # names its section.
    got = {}
    for head, lit in lits:
        sect = re.search(rb"(BODY\[[A-Z]*\])(?:<\d+>)? \{\d+\}$", head)
        assert sect, head
        got[sect.group(1)] = lit
        size = re.search(rb"RFC822\.SIZE (\d+)", head)
        if size:
            got[b"SIZE"] = int(size.group(1))
    want = messages[i]
    if got.get(b"BODY[]") != want:
        mismatches.append((i, uid, "BODY[]", len(want), len(got.get(b"BODY[]") or b"")))
        continue
    if got.get(b"SIZE") != len(want):
        mismatches.append((i, uid, "RFC822.SIZE", len(want), got.get(b"SIZE")))
    if got.get(b"BODY[HEADER]", b"") + got.get(b"BODY[TEXT]", b"") != want:
        mismatches.append((i, uid, "HEADER+TEXT", len(want), None))

print(f"fetched one by one at {since()}", flush=True)

# A second pass in one command over the whole mailbox, the way a backup tool fetches.
typ, data = m.fetch("1:*", "(UID BODY.PEEK[])")
assert typ == "OK"
bulk = {}
for head, lit in (d for d in data if isinstance(d, tuple)):
    bulk[int(re.search(rb"UID (\d+)", head).group(1))] = lit
for i, uid in enumerate(uids):
    if bulk.get(uid) != messages[i]:
        mismatches.append((i, uid, "bulk BODY[]", len(messages[i]), len(bulk.get(uid) or b"")))

m.logout()
for x in mismatches[:20]:
    print("MISMATCH message %d uid %d %s: want %s got %s" % x)
assert not mismatches, f"{len(mismatches)} mismatches"
print(f"fetched back {len(uids)} byte-exact at {since()}")
print("OK")
