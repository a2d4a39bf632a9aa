#!/usr/bin/env python3
"""Issue 23's measured failures, reproduced against a running Keel (see probe-hardening.sh).

Usage: probe_hardening.py HOST:PORT ADMIN_TOKEN WEBHOOK_SECRET
Prints one line per figure. Only the standard library; every request goes to HOST:PORT.
"""
import http.client
import json
import select
import socket
import statistics
import sys
import threading
import time

HOST, PORT = sys.argv[1].rsplit(":", 1)
PORT = int(PORT)
ADMIN = sys.argv[2]


def call(method, path, body=None, headers=None, timeout=120):
    """(status, parsed body or text, seconds)."""
    conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout)
    t0 = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        status = resp.status
    except (OSError, http.client.HTTPException) as e:
        return None, str(e), time.monotonic() - t0
    finally:
        conn.close()
    took = time.monotonic() - t0
    try:
        return status, json.loads(raw), took
    except ValueError:
        return status, raw[:200], took


def ms(s):
    return f"{s * 1000:.1f} ms"


def webhook_flood():
    body = json.dumps({"pad": "x" * (1024 * 1024 - 16)}).encode()
    header = f"t={int(time.time())}" + ",v1=00" * 65_000
    result = {}

    def send():
        result["answer"] = call(
            "POST",
            "/webhooks/stripe",
            body,
            {"Content-Type": "application/json", "Stripe-Signature": header},
            timeout=120,
        )

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(0.05)
    health = []
    while sender.is_alive():
        status, _, took = call("GET", "/health", timeout=120)
        health.append(took)
        time.sleep(0.02)
    sender.join()
    status, body, took = result["answer"]
    code = body.get("error", {}).get("code") if isinstance(body, dict) else body
    if status is None:
        code = "no answer"
    print(f"1. webhook flood (1 MiB body, 65,000 v1 entries): {status} {code} after {ms(took)}; "
          f"/health worst {ms(max(health)) if health else 'n/a'} over {len(health)} probes")


def tenant(name):
    status, body, _ = call("POST", "/api/tenants", json.dumps({"name": name}),
                           {"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"})
    assert status == 201, (status, body)
    return body["api_key"]


def metered_submits(n):
    noisy, quiet = tenant(f"noisy-{n}-{time.time()}"), tenant(f"quiet-{n}-{time.time()}")
    statuses, lock = {}, threading.Lock()
    go = threading.Barrier(n + 1)

    def submit(i):
        body = json.dumps({"kind": "sentiment.score", "args": {"texts": [f"revenue fell {i}"]}})
        go.wait()
        status, resp, _ = call("POST", "/api/jobs", body, {
            "Authorization": f"Bearer {noisy}", "Content-Type": "application/json"})
        code = resp.get("error", {}).get("code", "") if isinstance(resp, dict) else ""
        with lock:
            key = f"{status}{' ' + code if code else ''}"
            statuses[key] = statuses.get(key, 0) + 1

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    go.wait()
    reads = []
    read_statuses = {}
    while any(t.is_alive() for t in threads):
        status, _, took = call("GET", "/api/tenant", headers={"Authorization": f"Bearer {quiet}"})
        reads.append(took)
        read_statuses[status] = read_statuses.get(status, 0) + 1
    for t in threads:
        t.join()
    reads.sort()
    p99 = reads[min(len(reads) - 1, int(len(reads) * 0.99))] if reads else 0
    print(f"2. {n} concurrent metered submits from one tenant: {dict(sorted(statuses.items()))}; "
          f"another tenant's GET /api/tenant x{len(reads)} {read_statuses}: "
          f"p50 {ms(statistics.median(reads)) if reads else 'n/a'}, p99 {ms(p99)}, max {ms(max(reads) if reads else 0)}")


def stalled_connections(n=1000, watch=35):
    socks = []
    for _ in range(n):
        s = socket.create_connection((HOST, PORT))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: keel\r\nX-Half: ")
        s.setblocking(False)
        socks.append(s)
    t0 = time.monotonic()
    open_ = set(socks)
    closed_at = []
    while open_ and time.monotonic() - t0 < watch:
        ready, _, _ = select.select(list(open_), [], [], 0.5)
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                open_.discard(s)
                closed_at.append(time.monotonic() - t0)
    for s in socks:
        s.close()
    last = f"{max(closed_at):.1f} s" if closed_at else "n/a"
    print(f"3. {n} connections stalled mid-header: {len(closed_at)} closed by the server within "
          f"{watch} s (last at {last}), {len(open_)} still open")
    status, _, took = call("GET", "/health")
    print(f"   /health afterwards: {status} in {ms(took)}")


# The flood last: where it is not bounded it holds the process for minutes.
metered_submits(40)
metered_submits(200)
stalled_connections()
webhook_flood()
