#!/usr/bin/env python3
"""A scriptable receiving MTA for crates/postern/tests/outbound.rs, built on aiosmtpd.

Usage: outbound_peer.py --hosts 127.0.0.2[,127.0.0.3…] --port PORT --dir DIR
                        [--cert CERT.pem --key KEY.pem]

Listens on PORT (0: an ephemeral one, chosen on the first host) of every host, prints the
port on stdout (one line) once all listen, and exits when its standard input closes (the
test holds the pipe, so the peer never outlives the test run). With --cert/--key it
offers STARTTLS (RFC 3207) with that certificate.

What it answers comes from DIR/mode.json, read again for every command (absent: accept
everything):
    {
      "rcpt": {"default": "250 2.1.5 OK", "nobody@other.test": "550 5.1.1 no such user"},
      "data": "250 2.0.0 queued",     # the reply after the message data
      "disconnect_in_data": false,    # close the connection in the middle of the data
      "delay": 0.0,                   # seconds to wait before the reply to the data
      "hosts": {"127.0.0.3": {"data": "554 5.6.0 no"}}  # per listening address
    }
Every message the peer accepts (2xx after the data) is written to DIR/msg-NNNNNN.eml with
its envelope in DIR/msg-NNNNNN.json: mail_from, rcpt_tos, mail_options, rcpt_options,
tls (STARTTLS was done), local (the address the client connected to), helo, and
bare_lf / bare_cr (a line end other than CRLF arrived on the wire). Every transaction that
reached DATA is also a line of DIR/events.jsonl: {"event": "data_start", …} when the
client sends DATA, {"event": "data", "reply": …, "rcpt_tos": …} when the data is in.

Needs the PyPI package aiosmtpd (`pip install aiosmtpd`).
"""

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys
import threading

try:
    from aiosmtpd.smtp import SMTP
except ImportError:
    sys.stderr.write(
        "outbound_peer.py: the Python package 'aiosmtpd' is missing; install it with "
        "`pip install aiosmtpd`\n"
    )
    sys.exit(3)

DEFAULT_MODE = {
    "rcpt": {"default": "250 2.1.5 OK"},
    "data": "250 2.0.0 queued",
    "disconnect_in_data": False,
    "delay": 0.0,
}

lock = threading.Lock()
counter = [0]


def mode(directory, local):
    """The mode for a connection to address `local`: the file's top level, overridden by
    its "hosts" entry for that address."""
    m = dict(DEFAULT_MODE)
    try:
        with open(os.path.join(directory, "mode.json"), "r", encoding="utf-8") as f:
            got = json.load(f)
    except (FileNotFoundError, ValueError):
        return m
    per_host = got.pop("hosts", {})
    m.update(got)
    m.update(per_host.get(local, {}))
    return m


def local_of(server):
    sock = server.transport.get_extra_info("sockname") if server.transport else None
    return sock[0] if sock else None


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def line_ends(raw):
    """(bare LF, bare CR) in the data as it came off the wire."""
    bare_lf = any(i == 0 or raw[i - 1] != 0x0D for i in range(len(raw)) if raw[i] == 0x0A)
    bare_cr = any(
        i + 1 >= len(raw) or raw[i + 1] != 0x0A for i in range(len(raw)) if raw[i] == 0x0D
    )
    return bare_lf, bare_cr


class Handler:
    def __init__(self, directory):
        self.dir = directory

    def event(self, record):
        with lock:
            with open(os.path.join(self.dir, "events.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rules = mode(self.dir, local_of(server))["rcpt"]
        reply = rules.get(address.lower(), rules.get("default", "250 2.1.5 OK"))
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.append(rcpt_options)
        return reply

    async def handle_DATA(self, server, session, envelope):
        local = local_of(server)
        m = mode(self.dir, local)
        if m.get("delay"):
            await asyncio.sleep(float(m["delay"]))
        reply = m.get("data", "250 2.0.0 queued")
        self.event(
            {"event": "data", "reply": reply, "rcpt_tos": envelope.rcpt_tos, "local": local}
        )
        if not reply.startswith("2"):
            return reply
        raw = envelope.original_content or b""
        bare_lf, bare_cr = line_ends(raw)
        with lock:
            counter[0] += 1
            n = counter[0]
        base = os.path.join(self.dir, "msg-%06d" % n)
        meta = {
            "mail_from": envelope.mail_from,
            "mail_options": envelope.mail_options,
            "rcpt_tos": envelope.rcpt_tos,
            "rcpt_options": envelope.rcpt_options,
            "tls": session.ssl is not None,
            "local": local,
            "helo": session.host_name,
            "bare_lf": bare_lf,
            "bare_cr": bare_cr,
        }
        write_atomic(base + ".eml", raw)
        write_atomic(base + ".json", json.dumps(meta).encode())
        return "250 2.0.0 queued as %d" % n


class Peer(SMTP):
    async def smtp_DATA(self, arg):
        local = local_of(self)
        m = mode(self.event_handler.dir, local)
        if self.envelope.rcpt_tos:
            self.event_handler.event(
                {"event": "data_start", "rcpt_tos": self.envelope.rcpt_tos, "local": local}
            )
        if m.get("disconnect_in_data") and self.envelope.rcpt_tos:
            # The client gets 354, sends part of the message, and the connection drops.
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            try:
                await asyncio.wait_for(self._reader.read(64), 5)
            except Exception:  # noqa: BLE001
                pass
            self.event_handler.event(
                {
                    "event": "data",
                    "reply": "disconnect",
                    "rcpt_tos": self.envelope.rcpt_tos,
                    "local": local,
                }
            )
            self.transport.close()
            return
        return await super().smtp_DATA(arg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    hosts = [h for h in args.hosts.split(",") if h]
    tls = None
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
    handler = Handler(args.dir)

    def factory():
        return Peer(
            handler,
            hostname="peer.test",
            tls_context=tls,
            require_starttls=False,
            enable_SMTPUTF8=True,
            decode_data=False,
            data_size_limit=50 * 1024 * 1024,
        )

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    port = args.port
    servers = []
    for host in hosts:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        port = sock.getsockname()[1]
        sock.listen(128)
        servers.append(loop.run_until_complete(loop.create_server(factory, sock=sock)))
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()

    def stdin_watch():
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=stdin_watch, daemon=True).start()
    loop.run_forever()


if __name__ == "__main__":
    main()
