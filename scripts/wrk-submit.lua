-- wrk script for scripts/bench-http.sh: POST /api/jobs with a noop job.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEEL_KEY")
wrk.body = '{"kind":"noop","args":{"tenant":"t1"}}'

-- wrk itself reports "Non-2xx or 3xx responses" when any submit was refused.
function done(summary, latency, requests)
  io.write(string.format("submits/s: %.0f  (p50 %.2f ms, p99 %.2f ms)\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
