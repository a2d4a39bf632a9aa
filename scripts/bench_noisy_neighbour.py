#!/usr/bin/env python3
"""Issue 22's noisy-neighbour scenario against a running Keel (see bench-noisy-neighbour.sh).

Tenant A submits NOISY webhook.deliver jobs to a local receiver that takes DELAY seconds each;
then tenant B submits QUIET noop jobs one after another, each waited for (`?wait=30`). Prints
the time from each B submit to its job's end: p50, p99, max. Standard library only; every
request goes to 127.0.0.1.
Usage: bench_noisy_neighbour.py API_PORT ADMIN_TOKEN [NOISY=800] [QUIET=20] [DELAY=0.5]
"""
import http.client
import http.server
import json
import socketserver
import sys
import threading
import time
from datetime import datetime

PORT, ADMIN = int(sys.argv[1]), sys.argv[2]
NOISY = int(sys.argv[3]) if len(sys.argv) > 3 else 800
QUIET = int(sys.argv[4]) if len(sys.argv) > 4 else 20
DELAY = float(sys.argv[5]) if len(sys.argv) > 5 else 0.5


class Slow(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(DELAY)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


receiver = Server(("127.0.0.1", 0), Slow)
threading.Thread(target=receiver.serve_forever, daemon=True).start()
hook = f"http://127.0.0.1:{receiver.server_address[1]}/hook"


def call(method, path, key, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=120)
    headers = {"Authorization": f"Bearer {key}"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(body)
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = json.loads(resp.read() or b"null")
    conn.close()
    return resp.status, data


def tenant(name):
    status, body = call("POST", "/api/tenants", ADMIN, {"name": name})
    assert status == 201, body
    return body["api_key"]


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


noisy, quiet = tenant("noisy"), tenant("quiet")
t0 = time.time()
for start in range(0, NOISY, 1000):
    jobs = [{"kind": "webhook.deliver",
             "args": {"url": hook, "event": "bench", "payload": {"n": i}}}
            for i in range(start, min(NOISY, start + 1000))]
    status, body = call("POST", "/api/jobs/batch", noisy, {"jobs": jobs})
    assert status == 202, body
print(f"tenant A: {NOISY} webhook.deliver jobs ({DELAY} s each at the receiver) submitted "
      f"in {time.time() - t0:.2f} s")
# B's jobs arrive while A's backlog drains: one a second, each followed to its end.
ids = []
for i in range(QUIET):
    status, body = call("POST", "/api/jobs", quiet, {"kind": "noop", "args": {"n": i}})
    assert status == 202, body
    ids.append(body["id"])
    time.sleep(1.0)
waits = []
for job_id in ids:
    job = {"status": "queued"}
    while job["status"] not in ("succeeded", "dead", "cancelled"):
        _, job = call("GET", f"/api/jobs/{job_id}?wait=30", quiet)
    waits.append(ts(job["finished_at"]) - ts(job["created_at"]))
waits.sort()
p = lambda q: waits[min(len(waits) - 1, int(len(waits) * q))]
print(f"tenant B: {QUIET} noop jobs, submit to end: p50 {p(0.5):.3f} s, p99 {p(0.99):.3f} s, "
      f"max {waits[-1]:.3f} s")
