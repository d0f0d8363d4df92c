#!/usr/bin/env bash
# IDLE wake-up latency (issue 4: "IDLE sees a delivery (SMTP, APPEND in another session,
# another protocol) within 100 ms, through the change journal"):
# crates/imap/examples/imap_idle.rs against a release Postern. One client IDLEs on INBOX;
# a second delivers COUNT messages by SMTP (the MX listener) and COUNT by APPEND in
# another IMAP session; each latency runs from the delivery's acknowledgement (250 /
# tagged OK) to the `* n EXISTS` in the IDLE session. Durability as shipped (group-
# committed fsync before the acknowledgement).
#
# The MX checks SPF/DMARC for every message; a local responder answering every question
# with NXDOMAIN keeps those checks off the network (and out of the figures' way).
#
# Usage: benches/imap_idle.sh       (from the repository root; builds --release)
# Environment: COUNT=200 IMAP_PORT=11343 SMTP_PORT=11325 DNS_PORT=11353
#   WORK=/tmp/postern-idle-bench  SKIP_BUILD=1 (use the binaries already built)
# Last line: p99 of both paths in ms.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
COUNT="${COUNT:-200}"
IMAP_PORT="${IMAP_PORT:-11343}"
SMTP_PORT="${SMTP_PORT:-11325}"
DNS_PORT="${DNS_PORT:-11353}"
WORK="${WORK:-/tmp/postern-idle-bench}"
USER_ADDR="idle@example.com"
PASS="idle-bench-password-1"

command -v python3 >/dev/null || { echo "python3 missing" >&2; exit 2; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p postern >/dev/null
  cargo build --release --example imap_idle -p postern-imap >/dev/null
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/postern"
IDLE="$TARGET/release/examples/imap_idle"

SERVER_PID=""
DNS_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n "$DNS_PID" ]]; then
    kill "$DNS_PID" 2>/dev/null || true
    wait "$DNS_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK"
chmod 755 "$WORK"

# NXDOMAIN for every question (same header, QR+RA, RCODE 3, the question echoed).
python3 benches/nxdomain_dns.py "$WORK/dns.port" "$DNS_PORT" &
DNS_PID=$!

cat > "$WORK/postern.toml" <<EOF
hostname = "imap.bench.example"
data_dir = "$WORK/data"
[listen]
smtp = ["127.0.0.1:$SMTP_PORT"]
submission = []
submissions = []
imap = ["127.0.0.1:$IMAP_PORT"]
imaps = []
http = []
https = []
admin = []
[server]
run_as = "nobody"
[log]
level = "warn"
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
timeout_secs = 2
[auth]
allow_plaintext_on_loopback = true
EOF

# wait_ready: benches/lib.sh
. benches/lib.sh

# First start creates the data directory; then the domain and the account.
"$BIN" --config "$WORK/postern.toml" serve > "$WORK/serve0.log" 2>&1 &
SERVER_PID=$!
wait_ready "$WORK/serve0.log"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
"$BIN" --config "$WORK/postern.toml" domain add example.com >/dev/null
echo "$PASS" | "$BIN" --config "$WORK/postern.toml" account add "$USER_ADDR" >/dev/null

"$BIN" --config "$WORK/postern.toml" serve > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
wait_ready "$WORK/serve.log"

echo "== postern (imap 127.0.0.1:$IMAP_PORT, smtp 127.0.0.1:$SMTP_PORT), load average $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc))"
"$IDLE" --imap "127.0.0.1:$IMAP_PORT" --smtp "127.0.0.1:$SMTP_PORT" --user "$USER_ADDR" \
  --pass "$PASS" --count "$COUNT" | tee "$WORK/idle.log"
