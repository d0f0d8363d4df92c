#!/usr/bin/env python3
"""A DNS server for the benchmarks that answers every question with NXDOMAIN at once,
so SPF/DMARC lookups cost one loopback round trip and never a wait on the network.
Like a real authoritative answer (RFC 2308 §3), the NXDOMAIN carries an SOA record in
its authority section, whose minimum field lets a resolver cache the negative answer
(for 300 s): the question for the same name does not go out again for every message.

Usage: nxdomain_dns.py PORTFILE [PORT]   (PORT 0 or absent: any free port)
Writes the bound UDP port to PORTFILE, then serves until killed.
"""
import socket
import struct
import sys

NEGATIVE_TTL = 300

s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[2]) if len(sys.argv) > 2 else 0))
with open(sys.argv[1], "w") as f:
    f.write(str(s.getsockname()[1]))
# SOA at the root (owner "."): MNAME and RNAME "." too, serial 1, refresh, retry,
# expire, minimum. Its TTL and minimum are the negative-caching time.
SOA = (
    b"\x00"
    + struct.pack(">HHIH", 6, 1, NEGATIVE_TTL, 22)
    + b"\x00\x00"
    + struct.pack(">IIIII", 1, 3600, 600, 86400, NEGATIVE_TTL)
)
while True:
    q, peer = s.recvfrom(1500)
    if len(q) < 12:
        continue
    i = 12
    while i < len(q) and q[i] != 0:
        i += q[i] + 1
    end = min(i + 5, len(q))
    # The id, QR + RD as asked, RA, NXDOMAIN; the question echoed, no answers, one SOA.
    s.sendto(
        q[:2] + bytes([0x81 | (q[2] & 1), 0x83, 0, 1, 0, 0, 0, 1, 0, 0]) + q[12:end] + SOA,
        peer,
    )
