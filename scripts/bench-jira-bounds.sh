#!/usr/bin/env bash
# Benchmark (not a test) of what a hostile Jira costs a worker. A fake Jira answers every
# search with a body that never ends (a 30 MiB page, and on and on); TENANTS tenants each
# submit JOBS portfolio analyses to one `keel worker` process (the API runs in a process of its
# own, so the worker's memory is the worker's). Prints how the jobs ended and why, what the
# fake got out, how long it took, and the worker's peak RSS (VmHWM from /proc/<pid>/status).
# tests/outbound.rs asserts the outcome; this script measures the memory.
#   usage: bash scripts/bench-jira-bounds.sh [TENANTS=1] [JOBS=8]
#   KEEL_BIN=path/to/keel runs that build instead of building the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTS="${1:-1}"; JOBS="${2:-8}"
bash scripts/services.sh
if [ -z "${KEEL_BIN:-}" ]; then
  cargo build --release --bin keel -q
  KEEL_BIN="${CARGO_TARGET_DIR:-target}/release/keel"
fi
. scripts/bench-scratch.sh
scratch jirabounds
DB=$SCRATCH_DB
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
API_PORT=$(port); JIRA_PORT=$(port)
# Metering and request rates off: the free plan would refuse the analyses before any Jira call.
export KEEL_ADMIN_TOKEN=bench-admin-token-0123456789 KEEL_ALLOW_PRIVATE_NETWORKS=true \
  KEEL_METERING=false KEEL_RATE_LIMITS=false \
  KEEL_API_ADDR="127.0.0.1:$API_PORT"
SENT="$BENCH_OUT/sent"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap 'cleanup; scratch_clean; rm -rf "$BENCH_OUT"' EXIT

# The fake Jira: the account for the connection check, and endless search answers. It counts
# the bytes it got into sockets (written to $SENT as it goes).
python3 - "$JIRA_PORT" "$SENT" <<'PY' &
import http.server, json, sys, threading
port, sent_file = int(sys.argv[1]), sys.argv[2]
lock, sent = threading.Lock(), [0]
CHUNK = 1 << 20
class Jira(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        body = json.dumps({"accountId": "bench", "displayName": "Bench", "emailAddress": "b@example.com"}).encode()
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("transfer-encoding", "chunked"); self.end_headers()
        data = bytearray(b" " * CHUNK); data[:11] = b'{"issues":['
        try:
            while True:
                self.wfile.write(b"%x\r\n" % CHUNK + bytes(data) + b"\r\n")
                data[:11] = b" " * 11
                with lock:
                    sent[0] += CHUNK
                    open(sent_file, "w").write(str(sent[0]))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
http.server.ThreadingHTTPServer(("127.0.0.1", port), Jira).serve_forever()
PY
pids+=($!)

"$KEEL_BIN" migrate >/dev/null
"$KEEL_BIN" api & pids+=($!)
"$KEEL_BIN" worker & W=$!; pids+=($W)
api="http://127.0.0.1:$API_PORT"
for _ in $(seq 100); do curl -sf "$api/health" >/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$JIRA_PORT/rest/api/3/myself" >/dev/null && break; sleep 0.1; done

t0=$(date +%s.%N)
for t in $(seq "$TENANTS"); do
  key=$(curl -sf "$api/api/tenants" -H "Authorization: Bearer $KEEL_ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d "{\"name\":\"bench-$t\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
  curl -sf -X PUT "$api/api/tenant/jira" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    -d "{\"base_url\":\"http://127.0.0.1:$JIRA_PORT\",\"email\":\"b@example.com\",\"api_token\":\"tok\"}" >/dev/null
  for j in $(seq "$JOBS"); do
    curl -sf "$api/api/analyze/portfolio" -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
      -d '{"project_keys":["ED"]}' >/dev/null
  done
done
total=$((TENANTS * JOBS))
q() { psql -h 127.0.0.1 -U postgres -d "$DB" -tAc "$1"; }
until [ "$(q "SELECT count(*) FROM jobs WHERE status IN ('dead','succeeded')")" -ge "$total" ]; do
  kill -0 "$W" 2>/dev/null || { echo "the worker exited" >&2; exit 1; }
  sleep 0.2
done
t1=$(date +%s.%N)
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$W/status")
echo "jobs: $(q "SELECT string_agg(status || ' ' || n, ', ') FROM (SELECT status, count(*) n FROM jobs GROUP BY status) s")"
q "SELECT DISTINCT 'error: ' || (last_error->>'kind') || ', final ' || (last_error->>'final') || ': ' || (last_error->>'message') FROM jobs"
python3 -c "
sent = int(open('$SENT').read() or 0) if __import__('os').path.exists('$SENT') else 0
print(f'$TENANTS tenant(s) x $JOBS portfolio analyses against endless search answers: all ended in {$t1-$t0:.1f} s; '
      f'the fake got {sent/2**20:.0f} MiB into sockets in all ({sent/2**20/$total:.1f} MiB per job); '
      f'worker peak RSS {$hwm/1024:.1f} MB')"
