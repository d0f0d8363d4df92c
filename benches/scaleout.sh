#!/usr/bin/env bash
# Scale-out benchmark (issue 7): the SMTP delivery load of benches/smtp.sh (Postfix's
# smtp-source, durable delivery) and the IMAP mixed workload of benches/imap.sh
# (crates/imap/examples/imap_load.rs) against Postern in three set-ups, in one run:
#   1. embedded store, one node;
#   2. PostgreSQL, one node;
#   3. PostgreSQL, two nodes on the same schema (the load split evenly between them).
# All on this machine: two nodes share its cores and its PostgreSQL, so (3) shows the
# cost of coordination through the database, not added capacity.
#
# Usage: benches/scaleout.sh          (from the repository root; builds --release)
# Environment: MSGS=2000 SESSIONS=10 LEN=4096 CLIENTS=10 DURATION=15
#   PG_URL=postgres://postgres@127.0.0.1:5432/test  WORK=/tmp/postern-scaleout
#   SKIP_BUILD=1 (use the binaries already built)
# Needs: smtp-source (../shared/tools/install_tools.sh), python3, psql, PostgreSQL.
# Last lines: one figure per set-up and protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
MSGS="${MSGS:-2000}"
SESSIONS="${SESSIONS:-10}"
LEN="${LEN:-4096}"
CLIENTS="${CLIENTS:-10}"
DURATION="${DURATION:-15}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
WORK="${WORK:-/tmp/postern-scaleout}"
PATH="$PATH:/usr/sbin"

command -v smtp-source >/dev/null || { echo "smtp-source missing: run ../shared/tools/install_tools.sh" >&2; exit 2; }
command -v psql >/dev/null || { echo "psql missing" >&2; exit 2; }
psql "$PG_URL" -qc 'SELECT 1' >/dev/null || { echo "PostgreSQL does not answer at $PG_URL" >&2; exit 2; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p postern >/dev/null
  cargo build --release --example imap_load -p postern-imap >/dev/null
fi
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET/release/postern"
LOAD="$TARGET/release/examples/imap_load"

rm -rf "$WORK"
mkdir -p "$WORK"
chmod 755 "$WORK"
SCHEMA="postern_bench_$$"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# NXDOMAIN for every question: SPF/DMARC cost a loopback round trip, never a wait.
python3 benches/nxdomain_dns.py "$WORK/dns.port" &
PIDS+=($!)
for _ in $(seq 1 50); do [[ -s "$WORK/dns.port" ]] && break; sleep 0.1; done
DNS_PORT="$(cat "$WORK/dns.port")"

# config NAME SMTP_PORT IMAP_PORT STORE_TOML
config() {
  mkdir -p "$WORK/$1"
  cat > "$WORK/$1/postern.toml" <<EOF
hostname = "mx.bench.example"
data_dir = "$WORK/$1/data"
[listen]
smtp = ["127.0.0.1:$2"]
imap = ["127.0.0.1:$3"]
submission = []
submissions = []
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
[outbound]
enabled = false
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
timeout_secs = 2
$4
EOF
}

start() {
  "$BIN" --config "$WORK/$1/postern.toml" serve > "$WORK/$1/serve.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do grep -q '^ready$' "$WORK/$1/serve.log" 2>/dev/null && break; sleep 0.1; done
  grep -q '^ready$' "$WORK/$1/serve.log" || { cat "$WORK/$1/serve.log" >&2; exit 1; }
}

stop_all() {
  for p in "${PIDS[@]:1}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  PIDS=("${PIDS[0]}")
}

setup_accounts() {
  # First start creates the data directory and admin token.
  start "$1"; stop_all
  "$BIN" --config "$WORK/$1/postern.toml" domain add example.com >/dev/null
  echo "bench-imap-password-1" | "$BIN" --config "$WORK/$1/postern.toml" account add bench@example.com >/dev/null
}

# smtp NAME... : smtp-source split over the given set-ups' SMTP ports, in parallel.
smtp_run() {
  local n=$# per=$((SESSIONS / $#)) msgs=$((MSGS / $#)) t0 t1 pids=()
  t0=$(date +%s.%N)
  for name in "$@"; do
    smtp-source -s "$per" -m "$msgs" -l "$LEN" -f sender@example.com -t bench@example.com \
      "127.0.0.1:$(grep -o 'smtp = \["127.0.0.1:[0-9]*' "$WORK/$name/postern.toml" | grep -o '[0-9]*$')" \
      > "$WORK/$name/source.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  t1=$(date +%s.%N)
  awk -v n="$((msgs * n))" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", n / (b - a) }'
}

# imap NAME... : imap_load clients split over the set-ups' IMAP ports, in parallel.
imap_run() {
  local per=$((CLIENTS / $#)) outs=() pids=() total=0
  for name in "$@"; do
    local port
    port=$(grep -o 'imap = \["127.0.0.1:[0-9]*' "$WORK/$name/postern.toml" | grep -o '[0-9]*$')
    "$LOAD" --addr "127.0.0.1:$port" --user bench@example.com --pass bench-imap-password-1 \
      --clients "$per" --seconds "$DURATION" > "$WORK/$name/imap.log" 2>&1 &
    pids+=($!)
    outs+=("$WORK/$name/imap.log")
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  for o in "${outs[@]}"; do
    local v
    v=$(grep -o 'ops/s: [0-9.]*' "$o" | tail -n 1 | grep -o '[0-9.]*$' || echo 0)
    total=$(awk -v a="$total" -v b="${v:-0}" 'BEGIN { print a + b }')
  done
  echo "$total"
}

PG_STORE="[store]
backend = \"postgres\"
url = \"$PG_URL\"
schema = \"$SCHEMA\"
pool_size = 16"

config embedded 10126 10143 ""
config pg1 10226 10243 "$PG_STORE"
config pg2 10326 10343 "$PG_STORE"

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc))"
setup_accounts embedded
start embedded
E_SMTP=$(smtp_run embedded)
E_IMAP=$(imap_run embedded)
stop_all

setup_accounts pg1
start pg1
P1_SMTP=$(smtp_run pg1)
P1_IMAP=$(imap_run pg1)
start pg2
P2_SMTP=$(smtp_run pg1 pg2)
P2_IMAP=$(imap_run pg1 pg2)
stop_all

echo "smtp  embedded 1 node:   $E_SMTP msgs/s"
echo "smtp  postgres 1 node:   $P1_SMTP msgs/s"
echo "smtp  postgres 2 nodes:  $P2_SMTP msgs/s"
echo "imap  embedded 1 node:   $E_IMAP ops/s"
echo "imap  postgres 1 node:   $P1_IMAP ops/s"
echo "imap  postgres 2 nodes:  $P2_IMAP ops/s"
