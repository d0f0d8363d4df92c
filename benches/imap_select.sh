#!/usr/bin/env bash
# SELECT of a large mailbox: crates/imap/examples/imap_select.rs fills an empty INBOX to
# $FILL small messages over IMAP (MULTIAPPEND batches) and times SELECT over the wire
# (command to tagged OK, all untagged lines read), each in a fresh session. Postern first;
# with DOVECOT=1 the same against a throwaway Dovecot (../shared/tools/dovecot_baseline.sh
# start, Maildir) in the same run, one server at a time.
#
# Usage: benches/imap_select.sh     (from the repository root; builds --release)
# Environment: FILL=100000 ROUNDS=10 PORT=11244 DOVECOT=0 DOVECOT_IMAP_PORT=11145
#   WORK=/tmp/postern-select-bench  SKIP_BUILD=1 (use the binaries already built)
# Needs: python3 is not needed; dovecot-imapd only with DOVECOT=1 (run as root then).
# Last line: Postern's median SELECT time (and Dovecot's with DOVECOT=1).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
TOOLS="$ROOT/../shared/tools"
FILL="${FILL:-100000}"
ROUNDS="${ROUNDS:-10}"
PORT="${PORT:-11244}"
DOVECOT="${DOVECOT:-0}"
D_IMAP_PORT="${DOVECOT_IMAP_PORT:-11145}"
WORK="${WORK:-/tmp/postern-select-bench}"
D_WORK="$WORK/dovecot"
USER_ADDR="bench@example.com"
PASS="bench-select-password-1"
PATH="$PATH:/usr/sbin"

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p postern >/dev/null
  cargo build --release --example imap_select -p postern-imap >/dev/null
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/postern"
SEL="$TARGET/release/examples/imap_select"

SERVER_PID=""
DOVECOT_STARTED=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ -n "$DOVECOT_STARTED" ]]; then
    WORK="$D_WORK" bash "$TOOLS/dovecot_baseline.sh" stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK"
chmod 755 "$WORK"
cat > "$WORK/postern.toml" <<EOF
hostname = "imap.bench.example"
data_dir = "$WORK/data"
[listen]
smtp = []
submission = []
submissions = []
imap = ["127.0.0.1:$PORT"]
imaps = []
http = []
https = []
admin = []
[server]
run_as = "nobody"
[log]
level = "warn"
[limits]
connections_per_ip = 1000
[auth]
allow_plaintext_on_loopback = true
EOF

# wait_ready: benches/lib.sh
. benches/lib.sh

"$BIN" --config "$WORK/postern.toml" serve > "$WORK/serve0.log" 2>&1 &
SERVER_PID=$!
wait_ready "$WORK/serve0.log"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
"$BIN" --config "$WORK/postern.toml" domain add example.com >/dev/null
echo "$PASS" | "$BIN" --config "$WORK/postern.toml" account add "$USER_ADDR" >/dev/null
"$BIN" --config "$WORK/postern.toml" serve > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
wait_ready "$WORK/serve.log"

echo "== postern (127.0.0.1:$PORT)"
"$SEL" --addr "127.0.0.1:$PORT" --user "$USER_ADDR" --pass "$PASS" --fill "$FILL" \
  --rounds "$ROUNDS" | tee "$WORK/select-postern.log"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
P=$(tail -n 1 "$WORK/select-postern.log" | sed -n 's/^select_ms_p50: \([0-9.]*\) .*/\1/p')

D=""
if [[ "$DOVECOT" == 1 ]]; then
  DOVECOT_STARTED=1
  WORK="$D_WORK" IMAP_PORT="$D_IMAP_PORT" POP3_PORT=11112 LMTP_PORT=11026 \
    NUSERS=1 PASS="$PASS" bash "$TOOLS/dovecot_baseline.sh" start > "$WORK/dovecot-start.log"
  echo "== dovecot (127.0.0.1:$D_IMAP_PORT)"
  "$SEL" --addr "127.0.0.1:$D_IMAP_PORT" --user testuser1 --pass "$PASS" --fill "$FILL" \
    --rounds "$ROUNDS" | tee "$WORK/select-dovecot.log"
  D=$(tail -n 1 "$WORK/select-dovecot.log" | sed -n 's/^select_ms_p50: \([0-9.]*\) .*/\1/p')
fi
echo "SELECT of $FILL messages, median of $ROUNDS: postern ${P:-n/a} ms${D:+, dovecot $D ms}"
