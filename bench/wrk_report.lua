-- wrk script for bench/service.py: one request shape from the environment, answers counted by kind,
-- and a one-line JSON report. BENCH_METHOD, BENCH_BODY and BENCH_KEY come from bench/service.py.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
if wrk.body then
  wrk.headers["Content-Type"] = "application/json"
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, shed, other = 0, 0, 0
end

function response(status, headers, body)
  if status < 300 then
    ok = ok + 1
  elseif status == 429 or status == 503 then
    shed = shed + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local counts = { ok = 0, shed = 0, other = 0 }
  for _, thread in ipairs(threads) do
    for kind, _ in pairs(counts) do
      counts[kind] = counts[kind] + thread:get(kind)
    end
  end
  local errors = summary.errors
  io.write(string.format(
    '{"answers": %d, "ok": %d, "shed": %d, "other_status": %d, "duration_s": %.3f, '
      .. '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, '
      .. '"p50_ms": %.1f, "p95_ms": %.1f, "p99_ms": %.1f, "max_ms": %.1f}\n',
    summary.requests, counts.ok, counts.shed, counts.other, summary.duration / 1e6,
    errors.connect, errors.read, errors.write, errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(95) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3
  ))
end
