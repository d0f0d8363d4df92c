#!/usr/bin/env bash
# IMAP mixed-workload benchmark: crates/imap/examples/imap_load.rs (N clients, each looping
# LOGIN, SELECT, FETCH FLAGS / ENVELOPE / BODY.PEEK[], STORE +/-\Seen, APPEND 4 KiB,
# UID STORE \Deleted, UID EXPUNGE, LOGOUT) against Postern's IMAP listener and, in the
# same run, against a throwaway Dovecot (../shared/tools/dovecot_baseline.sh start), both
# holding the same generated mbox, with the same clients and duration. One server runs at
# a time. Durability as shipped on both sides: Postern's group-committed fsync, Dovecot's
# default mail_fsync=optimized. Passwords: Postern's argon2id (default cost, so every
# LOGIN pays a hash); Dovecot's {PLAIN} passwd-file from the baseline script (no hash),
# unless DOVECOT_HASH=postern, which gives Dovecot Postern's own argon2id PHC string
# ({ARGON2ID}, verified by libsodium) so that both sides pay the same hash per LOGIN.
#
# Usage: benches/imap.sh            (from the repository root; builds --release)
# Environment: MSGS=2000 CLIENTS=10 SECONDS=20 (or DURATION=20) PORT=11243 (Postern IMAP)
#   DOVECOT_IMAP_PORT=11143 DOVECOT_POP3_PORT=11110 DOVECOT_LMTP_PORT=11024
#   WORK=/tmp/postern-imap-bench    (Dovecot's work dir is $WORK/dovecot)
#   SKIP_BUILD=1                     use the binaries already built
#   DOVECOT_HASH=plain|postern       Dovecot's stored password (default plain)
#   AUTH_CACHE_TTL=N                 Postern's [auth] auth_cache_ttl_secs (default: the
#                                    shipped 300; 0 = every LOGIN pays Argon2id, as
#                                    Dovecot does here: its auth_cache is off by default)
# Needs: ../shared/tools/install_tools.sh (dovecot-imapd), python3; run as root (Dovecot
# mail runs as the vmail user the baseline script creates).
# Last line: both figures in ops/s and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
TOOLS="$ROOT/../shared/tools"
MSGS="${MSGS:-2000}"
CLIENTS="${CLIENTS:-10}"
# bash's own $SECONDS counts shell time, so an exported SECONDS is read through printenv.
SECONDS_RUN="${DURATION:-$(printenv SECONDS || echo 20)}"
PORT="${PORT:-11243}"
D_IMAP_PORT="${DOVECOT_IMAP_PORT:-11143}"
D_POP3_PORT="${DOVECOT_POP3_PORT:-11110}"
D_LMTP_PORT="${DOVECOT_LMTP_PORT:-11024}"
WORK="${WORK:-/tmp/postern-imap-bench}"
D_WORK="$WORK/dovecot"
USER_ADDR="bench@example.com"
PASS="bench-imap-password-1"
DOVECOT_HASH="${DOVECOT_HASH:-plain}"
PATH="$PATH:/usr/sbin"

command -v dovecot >/dev/null || { echo "dovecot missing: run ../shared/tools/install_tools.sh" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 missing" >&2; exit 2; }

# SKIP_BUILD=1 reuses the binaries already in the target dir (a tree mid-edit elsewhere
# may not build).
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p postern >/dev/null
  cargo build --release --example imap_load -p postern-imap >/dev/null
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/postern"
LOAD="$TARGET/release/examples/imap_load"

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
python3 "$TOOLS/gen_mbox.py" --count "$MSGS" --out "$WORK/bench.mbox" | tail -n 1

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
${AUTH_CACHE_TTL:+auth_cache_ttl_secs = $AUTH_CACHE_TTL}
EOF

# wait_ready: benches/lib.sh
. benches/lib.sh

# First start creates the data directory; then the domain, the account and the mbox.
"$BIN" --config "$WORK/postern.toml" serve > "$WORK/serve0.log" 2>&1 &
SERVER_PID=$!
wait_ready "$WORK/serve0.log"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
"$BIN" --config "$WORK/postern.toml" domain add example.com >/dev/null
echo "$PASS" | "$BIN" --config "$WORK/postern.toml" account add "$USER_ADDR" >/dev/null
"$BIN" --config "$WORK/postern.toml" mailbox import "$USER_ADDR" < "$WORK/bench.mbox" > "$WORK/import.log"

"$BIN" --config "$WORK/postern.toml" serve > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
wait_ready "$WORK/serve.log"

echo "== postern (127.0.0.1:$PORT), load average $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc))"
"$LOAD" --addr "127.0.0.1:$PORT" --user "$USER_ADDR" --pass "$PASS" \
  --clients "$CLIENTS" --seconds "$SECONDS_RUN" | tee "$WORK/load-postern.log"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
P=$(tail -n 1 "$WORK/load-postern.log" | sed -n 's/^ops\/s: \([0-9.]*\)$/\1/p')

# The peer, same run, same mbox: Dovecot's Maildir INBOX gets the same messages, split
# the way `postern mailbox import` splits them (From_ lines, mboxrd unquoting).
DOVECOT_STARTED=1
WORK="$D_WORK" IMAP_PORT="$D_IMAP_PORT" POP3_PORT="$D_POP3_PORT" LMTP_PORT="$D_LMTP_PORT" \
  NUSERS=1 PASS="$PASS" bash "$TOOLS/dovecot_baseline.sh" start > "$WORK/dovecot-start.log"
head -n 1 "$WORK/dovecot-start.log"
python3 - "$WORK/bench.mbox" "$D_WORK/mail/testuser1" <<'PY'
import mailbox, re, sys
data = open(sys.argv[1], "rb").read()
md = mailbox.Maildir(sys.argv[2], create=True)
cur = None
def flush():
    if cur is not None:
        md.add(b"".join(cur))
for line in data.splitlines(keepends=True):
    if line.startswith(b"From "):
        flush()
        cur = []
        continue
    if cur is None:
        continue
    if re.match(rb">+From ", line):
        line = line[1:]
    cur.append(line)
flush()
print(f"dovecot maildir: {len(md)} messages")
PY
chown -R vmail:vmail "$D_WORK/mail"
if [[ "$DOVECOT_HASH" == postern ]]; then
  HASH=$(python3 - "$WORK/data/meta.sqlite" <<'PY'
import sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(c.execute("SELECT hash FROM credentials WHERE kind = 'password'").fetchone()[0])
PY
)
  echo "testuser1:{ARGON2ID}$HASH" > "$D_WORK/users"
  echo "dovecot password: Postern's argon2id hash ($(echo "$HASH" | cut -d'$' -f3-4))"
fi

echo "== dovecot (127.0.0.1:$D_IMAP_PORT), load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$LOAD" --addr "127.0.0.1:$D_IMAP_PORT" --user testuser1 --pass "$PASS" \
  --clients "$CLIENTS" --seconds "$SECONDS_RUN" | tee "$WORK/load-dovecot.log"
D=$(tail -n 1 "$WORK/load-dovecot.log" | sed -n 's/^ops\/s: \([0-9.]*\)$/\1/p')

P_ERR=$(sed -n 's/^iterations: .*errors: \([0-9]*\),.*/\1/p' "$WORK/load-postern.log")
D_ERR=$(sed -n 's/^iterations: .*errors: \([0-9]*\),.*/\1/p' "$WORK/load-dovecot.log")
R=$(awk -v p="${P:-0}" -v d="${D:-0}" 'BEGIN { if (d > 0) printf "%.2f", p / d; else print "n/a" }')
echo "postern ${P:-n/a} ops/s (${P_ERR:-?} errors), dovecot ${D:-n/a} ops/s (${D_ERR:-?} errors), ratio postern/dovecot ${R} (${MSGS} msgs, ${CLIENTS} clients, ${SECONDS_RUN} s, dovecot password ${DOVECOT_HASH}, postern auth cache ${AUTH_CACHE_TTL:-300} s, mixed IMAP workload)"
