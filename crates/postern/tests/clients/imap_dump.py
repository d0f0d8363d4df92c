#!/usr/bin/env python3
"""What one mailbox holds, as Postern tells an IMAP client: one JSON object a line,
{"uid": N, "flags": ["\\Seen", ...], "body": BASE64 of BODY[]}, read-only (EXAMINE), by
imaplib over a plain loopback connection. The tests compare it with what a sync tool
wrote on the other side. Run by tests/imap_clients.rs.

Usage: imap_dump.py --port P --user U --password P --mailbox NAME
"""
import argparse
import base64
import imaplib
import json
import re

ap = argparse.ArgumentParser()
ap.add_argument("--host", default="127.0.0.1")
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--user", required=True)
ap.add_argument("--password", required=True)
ap.add_argument("--mailbox", required=True)
args = ap.parse_args()

m = imaplib.IMAP4(args.host, args.port, timeout=60)
typ, data = m.login(args.user, args.password)
assert typ == "OK", data
typ, data = m.select(args.mailbox, readonly=True)
assert typ == "OK", data
if int(data[0]) > 0:
    typ, data = m.fetch("1:*", "(UID FLAGS BODY.PEEK[])")
    assert typ == "OK", data
    for head, body in (d for d in data if isinstance(d, tuple)):
        uid = int(re.search(rb"UID (\d+)", head).group(1))
        flags = re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split()
        print(json.dumps({"uid": uid, "flags": flags, "body": base64.b64encode(body).decode()}))
m.logout()
print("OK")
