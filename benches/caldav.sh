#!/usr/bin/env bash
# CalDAV benchmark (issue 6): ../shared/tools/caldav_baseline.py against a throwaway
# Radicale and, in the same run, against Postern's `http` listener on loopback, with the
# same event counts, connections and report counts. For each event count (EVENTS, by
# default 500 and 10000) the driver PUTs that many new VEVENTs into a new calendar, then
# measures REPORT calendar-query (a 1-day time-range with calendar-data), REPORT
# calendar-multiget (20 hrefs), REPORT sync-collection (initial) and PROPFIND Depth:1.
# One server runs at a time. Durability as shipped on both sides: Postern answers a PUT
# only after the object and its ledger entry are fsynced (group commit), and every read
# of calendar data has its `dav.read` ledger entry committed before the answer;
# Radicale writes each object to its own file (its default, no fsync setting).
# Postern's account password is argon2id (default cost); Radicale's htpasswd is plain.
#
# Report counts: Radicale answers a time-range query in 30 ms (500 events) to ~1 s
# (10 000), so 200 of them (R_REPORTS) give a steady rate; Postern answers 200 in a
# fraction of a second, too short to measure, so it gets P_REPORTS (2000). Both figures
# are rates per second over their whole phase; the counts are printed.
#
# Usage: benches/caldav.sh            (from the repository root; builds postern --release)
# Environment: EVENTS="500 10000" CONNS=4 R_REPORTS=200 P_REPORTS=2000 (REPORTS sets both)
#   MAX_SECS=600 (per load phase: Radicale needs ~7 min to take 10 000 PUTs; lower it
#   for a quicker, partial run)
#   PORT=18088 (Postern http) RADICALE_PORT=15232 WORK=/tmp/postern-caldav-bench
#   SKIP_BUILD=1 (use the binary already built; CARGO_TARGET_DIR is honoured)
#   ONLY=postern|radicale (run one side; no ratio)
# Needs: pip install radicale caldav==3.6.0 (../shared/tools/install_tools.sh), python3;
#   nginx (apt install nginx-light) for the driver's ceiling, else that line says n/a.
# The driver's ceiling: after Postern's phases, one of its time-range answers is saved
#   and nginx serves it to every request on NGINX_PORT (18089); benches/driver_ceiling.py
#   runs the driver's own query phase (same code, bodies and connections) against it.
#   No server can be measured faster than that here: ceiling / Radicale is the largest
#   ratio this driver can show on this machine.
# Last lines: per event count, both sides' figures, the ratios postern/radicale, the
# error counts (the goal is zero) and how many events each side stored (Radicale's PUT
# slows as its collection grows, ~8/s near 5 000 events: within MAX_SECS it may store
# fewer than asked, and its later phases then run on that smaller collection).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
TOOLS="$ROOT/../shared/tools"
EVENTS="${EVENTS:-500 10000}"
CONNS="${CONNS:-4}"
R_REPORTS="${R_REPORTS:-${REPORTS:-200}}"
P_REPORTS="${P_REPORTS:-${REPORTS:-2000}}"
MAX_SECS="${MAX_SECS:-600}"
PORT="${PORT:-18088}"
R_PORT="${RADICALE_PORT:-15232}"
WORK="${WORK:-/tmp/postern-caldav-bench}"
ONLY="${ONLY:-}"
USER_ADDR="bench@example.com"
PASS="bench-caldav-password-1"
DRIVER="$TOOLS/caldav_baseline.py"

command -v python3 >/dev/null || { echo "python3 missing" >&2; exit 2; }
python3 -c 'import radicale, caldav' 2>/dev/null \
  || { echo "radicale/caldav missing: pip install radicale caldav==3.6.0" >&2; exit 2; }

if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  cargo build --release -p postern >/dev/null
fi
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/postern"

SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT

rm -rf "$WORK"
mkdir -p "$WORK"
chmod 755 "$WORK"

cat > "$WORK/postern.toml" <<EOF
hostname = "dav.bench.example"
data_dir = "$WORK/data"
[listen]
smtp = []
submission = []
submissions = []
imap = []
imaps = []
http = ["127.0.0.1:$PORT"]
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

# First start creates the data directory; then the domain and the account.
"$BIN" --config "$WORK/postern.toml" serve > "$WORK/serve0.log" 2>&1 &
SERVER_PID=$!
wait_ready "$WORK/serve0.log"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
"$BIN" --config "$WORK/postern.toml" domain add example.com >/dev/null
echo "$PASS" | "$BIN" --config "$WORK/postern.toml" account add "$USER_ADDR" >/dev/null

# field NAME LOG: the figure NAME=... of the driver's last line.
field() { tail -n 1 "$2" | tr ' ' '\n' | sed -n "s|^$1=\([0-9.]*\)$|\1|p"; }
ratio() { awk -v p="${1:-0}" -v r="${2:-0}" 'BEGIN { if (r > 0) printf "%.1f", p / r; else print "n/a" }'; }

SUMMARY=()
for N in $EVENTS; do
  R_LOG="$WORK/radicale-$N.log"
  P_LOG="$WORK/postern-$N.log"
  if [[ "$ONLY" != postern ]]; then
    echo "== radicale, $N events, $CONNS conns (127.0.0.1:$R_PORT)"
    python3 "$DRIVER" --port "$R_PORT" --work "$WORK/radicale-$N" --events "$N" \
      --reports "$R_REPORTS" --conns "$CONNS" --max-secs "$MAX_SECS" | tee "$R_LOG"
  fi
  if [[ "$ONLY" != radicale ]]; then
    # A fresh server per event count (same data directory: each run makes its own
    # calendar).
    "$BIN" --config "$WORK/postern.toml" serve > "$WORK/serve-$N.log" 2>&1 &
    SERVER_PID=$!
    wait_ready "$WORK/serve-$N.log"
    echo "== postern, $N events, $CONNS conns (127.0.0.1:$PORT)"
    python3 "$DRIVER" --no-start --url "http://127.0.0.1:$PORT/dav/" --user "$USER_ADDR" \
      --password "$PASS" --work "$WORK/postern-$N" --events "$N" --reports "$P_REPORTS" \
      --conns "$CONNS" --max-secs "$MAX_SECS" | tee "$P_LOG"
    CAL=$(sed -n 's|.* calendar=http://[^/]*\(/[^ ]*\) .*|\1|p' "$P_LOG" | head -n 1)
    C_LOG="$WORK/ceiling-$N.log"
    if command -v nginx >/dev/null && [[ -n "$CAL" ]]; then
      # One real answer (a full day's events), served by nginx from memory.
      NGX="$WORK/nginx-$N"
      mkdir -p "$NGX"
      python3 - "$PORT" "$CAL" "$USER_ADDR" "$PASS" "$NGX/canned.xml" <<'PY'
import base64, http.client, sys
port, cal, user, pw, out = sys.argv[1:]
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
body = ('<?xml version="1.0" encoding="utf-8"?><C:calendar-query xmlns:D="DAV:" '
        'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>'
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range '
        'start="20300102T000000Z" end="20300103T000000Z"/></C:comp-filter></C:comp-filter>'
        '</C:filter></C:calendar-query>')
auth = "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()
c.request("REPORT", cal, body=body, headers={"Authorization": auth, "Depth": "1",
                                              "Content-Type": "application/xml"})
r = c.getresponse()
open(out, "wb").write(r.read())
PY
      chmod -R a+rX "$NGX"
      cat > "$NGX/nginx.conf" <<NGINX
worker_processes 1;
pid $NGX/nginx.pid;
error_log $NGX/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $NGX;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:${NGINX_PORT:-18089};
    root $NGX;
    error_page 405 =207 /canned.xml;
    location / { try_files /nonexistent @any; }
    location @any { return 405; }
    location = /canned.xml { internal; default_type application/xml; }
  }
}
NGINX
      nginx -c "$NGX/nginx.conf"
      echo "== driver ceiling, $N events ($(wc -c < "$NGX/canned.xml") B answer from nginx)"
      python3 benches/driver_ceiling.py "http://127.0.0.1:${NGINX_PORT:-18089}/" "$CAL" \
        "$P_REPORTS" "$CONNS" | tee "$C_LOG"
      nginx -c "$NGX/nginx.conf" -s stop || true
    fi
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
  fi
  line="$N events:"
  for f in PUT/s query-REPORT/s multiget-REPORT/s sync-REPORT/s PROPFIND-D1/s; do
    p=""; r=""
    [[ -f "$P_LOG" ]] && p=$(field "$f" "$P_LOG")
    [[ -f "$R_LOG" ]] && r=$(field "$f" "$R_LOG")
    line+=" $f postern ${p:-n/a} radicale ${r:-n/a} (x$(ratio "$p" "$r"));"
  done
  pe=""; re=""
  [[ -f "$P_LOG" ]] && pe=$(tail -n 1 "$P_LOG" | sed -n 's/.*errors=\([0-9]*\).*/\1/p')
  [[ -f "$R_LOG" ]] && re=$(tail -n 1 "$R_LOG" | sed -n 's/.*errors=\([0-9]*\).*/\1/p')
  line+=" errors postern ${pe:-n/a} radicale ${re:-n/a};"
  ps=""; rs=""
  [[ -f "$P_LOG" ]] && ps=$(tail -n 1 "$P_LOG" | sed -n 's/.* \([0-9]*\) events stored.*/\1/p')
  [[ -f "$R_LOG" ]] && rs=$(tail -n 1 "$R_LOG" | sed -n 's/.* \([0-9]*\) events stored.*/\1/p')
  line+=" stored postern ${ps:-n/a} radicale ${rs:-n/a};"
  ce=""
  [[ -f "$WORK/ceiling-$N.log" ]] && ce=$(field query-REPORT/s "$WORK/ceiling-$N.log")
  qr=""; [[ -f "$R_LOG" ]] && qr=$(field query-REPORT/s "$R_LOG")
  line+=" driver ceiling query-REPORT/s ${ce:-n/a} (largest measurable ratio x$(ratio "$ce" "$qr"))"
  SUMMARY+=("$line")
done

echo "== summary ($CONNS conns, reports radicale $R_REPORTS postern $P_REPORTS, max $MAX_SECS s per phase, load average $(cut -d' ' -f1-3 /proc/loadavg), nproc $(nproc))"
for l in "${SUMMARY[@]}"; do echo "$l"; done
