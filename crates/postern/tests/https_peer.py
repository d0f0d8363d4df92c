#!/usr/bin/env python3
"""An HTTPS server for crates/postern/tests/outbound_tls.rs: the MTA-STS policy host of a
test domain and an RFC 8460 `https:` report endpoint, on Python's standard library only.

Usage: https_peer.py --host 127.0.0.1 --port PORT --cert CERT.pem --key KEY.pem --dir DIR

Prints the port (PORT 0: an ephemeral one) on stdout once it listens and exits when its
standard input closes. GET /.well-known/mta-sts.txt answers DIR/policy.txt as text/plain
(404 when the file is missing); every POST is written to DIR/post-NNNNNN.bin with its
path and headers in DIR/post-NNNNNN.json, and answered 200. Bodies over 1 MiB get 413.
"""

import argparse
import http.server
import json
import os
import ssl
import sys
import threading

MAX_BODY = 1 << 20
counter = [0]
lock = threading.Lock()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    directory = args.dir

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, code, body, ctype="text/plain"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path != "/.well-known/mta-sts.txt":
                return self.answer(404, b"not found\n")
            try:
                with open(os.path.join(directory, "policy.txt"), "rb") as f:
                    body = f.read()
            except OSError:
                return self.answer(404, b"no policy\n")
            self.answer(200, body, "text/plain; charset=utf-8")

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n > MAX_BODY:
                return self.answer(413, b"too big\n")
            body = self.rfile.read(n)
            with lock:
                counter[0] += 1
                k = counter[0]
            base = os.path.join(directory, "post-%06d" % k)
            with open(base + ".bin.tmp", "wb") as f:
                f.write(body)
            with open(base + ".json", "w") as f:
                json.dump({"path": self.path, "headers": dict(self.headers.items())}, f)
            os.rename(base + ".bin.tmp", base + ".bin")
            self.answer(200, b"ok\n")

    server = http.server.ThreadingHTTPServer((args.host, args.port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":
    main()
