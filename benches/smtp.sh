#!/usr/bin/env bash
# SMTP delivery benchmark: Postfix's smtp-source into Postern's MX listener and, in the
# same run, into Dovecot's LMTP (../shared/tools/smtp_baseline.sh lmtp), with the same
# message size, session count and message count. Both sides deliver durably: Postern
# answers 250 only after the message and its ledger entry are fsynced (group commit);
# Dovecot's default mail_fsync=optimized fsyncs each delivered mail.
#
# Usage: benches/smtp.sh            (from the repository root; builds postern --release)
# Environment: MSGS=3000 SESSIONS=10 LEN=4096 PORT=10026 WORK=/tmp/postern-smtp-bench
# Needs: ../shared/tools/install_tools.sh (postfix for smtp-source, dovecot-lmtpd), python3.
# Last line: both figures in msgs/s and their ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
TOOLS="$ROOT/../shared/tools"
MSGS="${MSGS:-3000}"
SESSIONS="${SESSIONS:-10}"
LEN="${LEN:-4096}"
PORT="${PORT:-10026}"
WORK="${WORK:-/tmp/postern-smtp-bench}"
PATH="$PATH:/usr/sbin"

command -v smtp-source >/dev/null || { echo "smtp-source missing: run ../shared/tools/install_tools.sh" >&2; exit 2; }
command -v python3 >/dev/null || { echo "python3 missing" >&2; exit 2; }

cargo build --release -p postern >/dev/null
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/postern"

rm -rf "$WORK"
mkdir -p "$WORK"
chmod 755 "$WORK"

# A local DNS that answers NXDOMAIN at once: SPF/DMARC lookups cost a round trip on
# loopback, never a wait on the network (the benchmark measures delivery, not DNS).
python3 benches/nxdomain_dns.py "$WORK/dns.port" &
DNS_PID=$!
SERVER_PID=""
cleanup() {
  [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  kill "$DNS_PID" 2>/dev/null || true
  wait "$DNS_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 50); do [[ -s "$WORK/dns.port" ]] && break; sleep 0.1; done
DNS_PORT="$(cat "$WORK/dns.port")"

cat > "$WORK/postern.toml" <<EOF
hostname = "mx.bench.example"
data_dir = "$WORK/data"
[listen]
smtp = ["127.0.0.1:$PORT"]
submission = []
submissions = []
imap = []
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
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
timeout_secs = 2
EOF

# First start creates the data directory and admin token; then the domain and account.
"$BIN" --config "$WORK/postern.toml" serve > "$WORK/serve0.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do grep -q '^ready$' "$WORK/serve0.log" 2>/dev/null && break; sleep 0.1; done
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
"$BIN" --config "$WORK/postern.toml" domain add example.com >/dev/null
"$BIN" --config "$WORK/postern.toml" account add rcpt@example.com --generate >/dev/null </dev/null

"$BIN" --config "$WORK/postern.toml" serve > "$WORK/serve.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do grep -q '^ready$' "$WORK/serve.log" 2>/dev/null && break; sleep 0.1; done
grep -q '^ready$' "$WORK/serve.log" || { cat "$WORK/serve.log" >&2; exit 1; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc))"
t0=$(date +%s.%N)
smtp-source -s "$SESSIONS" -m "$MSGS" -l "$LEN" -f sender@example.com -t rcpt@example.com \
  "127.0.0.1:$PORT" > "$WORK/source.log" 2>&1 || echo "smtp-source exited $?" >&2
t1=$(date +%s.%N)
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
delivered=$("$BIN" --config "$WORK/postern.toml" account show rcpt@example.com | grep '"messages"' | tr -dc '0-9')
P=$(awk -v n="$delivered" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }')
echo "postern: smtp-source -s $SESSIONS -m $MSGS -l $LEN -> postern MX: $delivered delivered in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s, $P msgs/s"
"$BIN" --config "$WORK/postern.toml" store verify | tail -n 1

# The peer, same run, same sizes.
D_LINE=$(LMTP_SESSIONS="$SESSIONS" LMTP_MSGS="$MSGS" LEN="$LEN" bash "$TOOLS/smtp_baseline.sh" lmtp | tee "$WORK/lmtp.log" | tail -n 1)
grep '^LMTP:' "$WORK/lmtp.log" || true
D=$(echo "$D_LINE" | sed -n 's/.*dovecot LMTP delivered msgs\/s: \([0-9.]*\).*/\1/p')
R=$(awk -v p="$P" -v d="$D" 'BEGIN { if (d > 0) printf "%.2f", p / d; else print "n/a" }')
echo "postern ${P} msgs/s, dovecot lmtp ${D} msgs/s, ratio postern/dovecot ${R} (${MSGS} x ${LEN} B, ${SESSIONS} sessions, durable both)"
