#!/usr/bin/env python3
"""Authoritative test DNS server for crates/smtp/tests/verify.rs and
crates/postern/tests/outbound.rs.

Usage: dns_zone.py ZONE.json

Serves the records of ZONE.json on 127.0.0.1:<ephemeral port>, over UDP and over TCP on
the same port, prints that port on stdout (one line) once both sockets listen, and exits
when its standard input closes (the test process keeps the pipe open for as long as it
needs the server, so the server can never outlive the test run).

ZONE.json:
    {
      "records": [
        {"name": "example.test", "type": "TXT", "value": "v=spf1 -all"},
        {"name": "example.test", "type": "A", "value": "192.0.2.1"},
        {"name": "example.test", "type": "AAAA", "value": "2001:db8::1"},
        {"name": "example.test", "type": "MX", "value": "10 mx.example.test"},
        {"name": "nomail.test", "type": "MX", "value": "0 ."},
        {"name": "_25._tcp.mx.example.test", "type": "TLSA", "value": "3 1 1 <hex>"}
      ],
      "ad": false,                # true: every answer carries the AD bit (RFC 4035
                                  # §3.2.3), as a validating resolver's would
      "ttl": 1,
      "silent": false,            # true: read every query, answer none (UDP and TCP)
      "silent_names": [],         # names whose queries are read and never answered
      "tcp_only_names": [],       # names whose UDP answers are truncated (TC=1)
      "delay_names": {"n": 0.3}   # names answered only after this many seconds
    }

A name with no record of the asked type but with another type gets NOERROR and an
empty answer (NODATA); an unknown name gets NXDOMAIN (RFC 8020: nothing below it either).
TXT values longer than 255 octets are split into several character-strings
(RFC 7208 §3.3, RFC 6376 §3.6.2.2).

ZONE.json is read again whenever its modification time changes, so a test can publish
records (DKIM keys it generated, a new TLSA record) while the server runs: write the new
file next to it and rename it over the old one.

Needs the PyPI package dnslib (`pip install dnslib`).
"""

import json
import os
import socket
import struct
import sys
import threading
import time

try:
    from dnslib import AAAA, MX, QTYPE, RCODE, RR, TLSA, TXT, A, DNSRecord
except ImportError:
    sys.stderr.write(
        "dns_zone.py: the Python package 'dnslib' is missing; install it with "
        "`pip install dnslib`\n"
    )
    sys.exit(3)


def norm(name):
    return str(name).rstrip(".").lower()


def load_zone(path):
    with open(path, "r", encoding="utf-8") as f:
        zone = json.load(f)
    records = {}
    for rec in zone.get("records", []):
        key = (norm(rec["name"]), rec["type"].upper())
        records.setdefault(key, []).append(rec["value"])
    names = {name for (name, _) in records}
    return {
        "records": records,
        "names": names,
        "ttl": int(zone.get("ttl", 1)),
        "silent": bool(zone.get("silent", False)),
        "silent_names": {norm(n) for n in zone.get("silent_names", [])},
        "tcp_only_names": {norm(n) for n in zone.get("tcp_only_names", [])},
        "delay_names": {norm(n): float(d) for n, d in zone.get("delay_names", {}).items()},
        "ad": bool(zone.get("ad", False)),
    }


class Zone:
    """The zone of a file, read again when the file's modification time changes."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.mtime = os.stat(path).st_mtime_ns
        self.zone = load_zone(path)

    def current(self):
        with self.lock:
            try:
                mtime = os.stat(self.path).st_mtime_ns
                if mtime != self.mtime:
                    self.zone = load_zone(self.path)
                    self.mtime = mtime
            except (OSError, ValueError) as e:  # a half-written file: keep the old zone
                sys.stderr.write("dns_zone.py: keeping the old zone: %s\n" % e)
            return self.zone


def rdata(rtype, value):
    if rtype == "TXT":
        data = value.encode("utf-8")
        chunks = [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]
        return TXT(chunks)
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "MX":
        pref, host = value.split(None, 1)
        return MX(host, int(pref))
    if rtype == "TLSA":
        usage, selector, matching, data = value.split(None, 3)
        return TLSA(int(usage), int(selector), int(matching), bytes.fromhex(data.replace(" ", "")))
    raise ValueError("unsupported record type " + rtype)


def delay_of(zone, wire):
    zone = zone.current()
    try:
        return zone["delay_names"].get(norm(DNSRecord.parse(wire).q.qname), 0.0)
    except Exception:  # noqa: BLE001
        return 0.0


def answer(zone, wire, over_udp):
    """Returns the reply bytes for one query, or None to stay silent."""
    zone = zone.current()
    try:
        request = DNSRecord.parse(wire)
    except Exception:  # noqa: BLE001 - garbage in, no answer out
        return None
    if zone["silent"]:
        return None
    qname = norm(request.q.qname)
    if qname in zone["silent_names"]:
        return None
    qtype = QTYPE[request.q.qtype]
    reply = request.reply()  # copies id, question, RD; sets QR and AA
    if zone["ad"]:
        reply.header.ad = 1
    if qname not in zone["names"]:
        reply.header.rcode = RCODE.NXDOMAIN
    else:
        for value in zone["records"].get((qname, qtype), []):
            reply.add_answer(
                RR(request.q.qname, request.q.qtype, rdata=rdata(qtype, value), ttl=zone["ttl"])
            )
    if over_udp and qname in zone["tcp_only_names"]:
        # RFC 1035 §4.2.1 / RFC 7766: a truncated UDP answer sends the client to TCP.
        truncated = request.reply()
        truncated.header.tc = 1
        return truncated.pack()
    return reply.pack()


def serve_udp(zone, sock):
    while True:
        try:
            wire, peer = sock.recvfrom(65535)
        except OSError:
            return
        out = answer(zone, wire, True)
        if out is not None:
            delay = delay_of(zone, wire)
            if delay > 0:
                threading.Timer(delay, send_quietly, args=(sock, out, peer)).start()
            else:
                send_quietly(sock, out, peer)


def send_quietly(sock, out, peer):
    try:
        sock.sendto(out, peer)
    except OSError:
        pass


def recv_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def serve_tcp_conn(zone, conn):
    with conn:
        while True:
            head = recv_exact(conn, 2)
            if head is None:
                return
            (length,) = struct.unpack("!H", head)
            wire = recv_exact(conn, length)
            if wire is None:
                return
            out = answer(zone, wire, False)
            if out is None:
                continue  # keep the connection open, answer nothing
            delay = delay_of(zone, wire)
            if delay > 0:
                time.sleep(delay)
            conn.sendall(struct.pack("!H", len(out)) + out)


def serve_tcp(zone, sock):
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        threading.Thread(target=serve_tcp_conn, args=(zone, conn), daemon=True).start()


def bind_pair():
    """UDP and TCP sockets on the same ephemeral port of 127.0.0.1."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        port = udp.getsockname()[1]
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind(("127.0.0.1", port))
        except OSError:
            udp.close()
            tcp.close()
            continue
        tcp.listen(64)
        return udp, tcp, port
    raise RuntimeError("no free port for UDP and TCP together")


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: dns_zone.py ZONE.json\n")
        sys.exit(2)
    zone = Zone(sys.argv[1])
    udp, tcp, port = bind_pair()
    threading.Thread(target=serve_udp, args=(zone, udp), daemon=True).start()
    threading.Thread(target=serve_tcp, args=(zone, tcp), daemon=True).start()
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    # Exit when the test closes our stdin (or dies).
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
