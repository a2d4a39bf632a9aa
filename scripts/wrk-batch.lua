-- wrk script for scripts/bench-http.sh with BATCH=n: POST /api/jobs/batch with n noop jobs.
local n = tonumber(os.getenv("BATCH"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEEL_KEY")
local jobs = {}
for i = 1, n do jobs[i] = '{"kind":"noop","args":{"tenant":"t1"}}' end
wrk.body = '{"jobs":[' .. table.concat(jobs, ",") .. ']}'

function done(summary, latency, requests)
  local rps = summary.requests / (summary.duration / 1e6)
  io.write(string.format("batches/s: %.0f of %d = jobs/s: %.0f  (p50 %.2f ms, p99 %.2f ms)\n",
    rps, n, rps * n, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
