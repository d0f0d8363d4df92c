#!/usr/bin/env python3
"""Independent checks for crates/postern/tests/outbound.rs (Python's own libraries, not
postern's code).

  outbound_check.py fetch PORT CERT USER PASSWORD
      Logs in over IMAPS (trusting only CERT) and prints, as one JSON list, every message
      of INBOX: {"raw": base64, "subject": …, "content_type": …, "dsn": …}. "dsn" is
      null unless the message is a multipart/report; then it is the report read with the
      email package (RFC 3464): report_type, the parts' content types, the per-message
      fields, one dict per recipient, and the returned headers.

  outbound_check.py dkim ZONE.json MESSAGE
      Verifies every DKIM-Signature of MESSAGE with dkimpy, its key looked up in the test
      zone file (the same one dns_zone.py serves). Prints a JSON list of
      {"d", "s", "a", "ok"}.

  outbound_check.py submit PORT CERT PASSWORD N RCPT PREFIX
      Submits N messages as alice@example.com to RCPT in one session (smtplib, STARTTLS,
      AUTH PLAIN), subjects "PREFIX 0" … "PREFIX N-1"; prints each number once the server
      has acknowledged that message.

  outbound_check.py submit-utf8 PORT CERT PASSWORD RCPT
      Submits one message with an 8-bit UTF-8 body and header as alice@example.com to
      RCPT (which may have a UTF-8 local part) with MAIL FROM … SMTPUTF8 BODY=8BITMIME.

  outbound_check.py send PORT CERT PASSWORD JSON
      Submits each message of the JSON list [{"rcpts": […], "subject": …, "body": …,
      "mail_options": […], "rcpt_options": […]}] as alice@example.com in one session
      (DSN parameters RFC 3461 and the like as given); prints "ok".

Needs the PyPI packages dkimpy and pynacl (Ed25519) for `dkim`.
"""

import base64
import email
import email.policy
import imaplib
import json
import ssl
import sys


def fields(msg):
    return {k.lower(): str(v) for k, v in msg.items()}


def read_dsn(msg):
    if msg.get_content_type() != "multipart/report":
        return None
    parts = list(msg.iter_parts())
    out = {
        "report_type": msg.get_param("report-type"),
        "parts": [p.get_content_type() for p in parts],
        "per_message": None,
        "recipients": [],
        "returned": None,
        "human": None,
    }
    for p in parts:
        ct = p.get_content_type()
        if ct == "message/delivery-status":
            blocks = p.get_payload()
            out["per_message"] = fields(blocks[0])
            out["recipients"] = [fields(b) for b in blocks[1:]]
        elif ct == "text/rfc822-headers":
            out["returned"] = p.get_payload(decode=True).decode("utf-8", "replace")
        elif ct == "message/rfc822":
            inner = p.get_payload()[0]
            out["returned"] = inner.as_string()
        elif ct == "text/plain" and out["human"] is None:
            out["human"] = p.get_content()
    return out


def fetch(port, cert, user, password):
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False  # the certificate names the server, we dial 127.0.0.1
    imap = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx)
    imap.login(user, password)
    typ, _ = imap.select("INBOX", readonly=True)
    assert typ == "OK", typ
    typ, data = imap.uid("SEARCH", None, "ALL")
    assert typ == "OK", typ
    result = []
    for uid in data[0].split():
        typ, got = imap.uid("FETCH", uid, "(BODY.PEEK[])")
        assert typ == "OK", typ
        raw = got[0][1]
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        result.append(
            {
                "raw": base64.b64encode(raw).decode(),
                "subject": str(msg.get("subject", "")),
                "content_type": msg.get_content_type(),
                "dsn": read_dsn(msg),
            }
        )
    imap.logout()
    print(json.dumps(result))


def dkim_check(zone_path, message_path):
    import dkim

    with open(zone_path, "r", encoding="utf-8") as f:
        zone = json.load(f)
    txt = {}
    for r in zone.get("records", []):
        if r["type"].upper() == "TXT":
            txt.setdefault(r["name"].rstrip(".").lower(), []).append(r["value"])

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        values = txt.get(name.rstrip(".").lower(), [])
        return values[0].encode() if values else None

    with open(message_path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw)
    sigs = msg.get_all("DKIM-Signature") or []
    d = dkim.DKIM(raw)
    result = []
    for i, sig in enumerate(sigs):
        tags = {}
        for t in "".join(sig.split()).split(";"):
            if "=" in t:
                k, v = t.split("=", 1)
                tags[k] = v
        try:
            ok = bool(d.verify(idx=i, dnsfunc=dnsfunc))
        except Exception as e:  # noqa: BLE001
            ok = False
            sys.stderr.write("dkim verify %d: %s\n" % (i, e))
        result.append({"d": tags.get("d"), "s": tags.get("s"), "a": tags.get("a"), "ok": ok})
    print(json.dumps(result))


def submit(port, cert, password, n, rcpt, prefix):
    import smtplib

    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.example") as s:
        s.starttls(context=ctx)
        s.login("alice@example.com", password)
        for i in range(int(n)):
            msg = (
                "From: alice@example.com\r\nTo: %s\r\nSubject: %s %d\r\n"
                "Message-ID: <%s.%d@example.com>\r\n\r\nmessage %d\r\n"
                % (rcpt, prefix, i, prefix.replace(" ", "-"), i, i)
            )
            s.sendmail("alice@example.com", [rcpt], msg)
            print(i, flush=True)


def submit_utf8(port, cert, password, rcpt):
    import smtplib

    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False
    msg = (
        "From: alice@example.com\r\nTo: %s\r\nSubject: Grüße aus Köln\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nSchöne Grüße, ½ € — ✓\r\n" % rcpt
    ).encode("utf-8")
    with smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.example") as s:
        s.starttls(context=ctx)
        s.login("alice@example.com", password)
        s.sendmail("alice@example.com", [rcpt], msg, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    print("ok")


def send(port, cert, password, spec):
    import smtplib

    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", int(port), local_hostname="client.example") as s:
        s.starttls(context=ctx)
        s.login("alice@example.com", password)
        for m in json.loads(spec):
            msg = "From: alice@example.com\r\nTo: %s\r\nSubject: %s\r\n\r\n%s" % (
                ", ".join(m["rcpts"]),
                m["subject"],
                m.get("body", "body\r\n"),
            )
            s.sendmail(
                "alice@example.com",
                m["rcpts"],
                msg.encode(),
                mail_options=m.get("mail_options", []),
                rcpt_options=m.get("rcpt_options", []),
            )
    print("ok")


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "fetch" and len(sys.argv) == 6:
        fetch(*sys.argv[2:])
    elif len(sys.argv) == 8 and sys.argv[1] == "submit":
        submit(*sys.argv[2:])
    elif len(sys.argv) == 6 and sys.argv[1] == "submit-utf8":
        submit_utf8(*sys.argv[2:])
    elif len(sys.argv) == 6 and sys.argv[1] == "send":
        send(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "dkim":
        dkim_check(sys.argv[2], sys.argv[3])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
