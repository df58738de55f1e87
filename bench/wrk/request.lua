-- One request, repeated: method, headers and body come from the environment so
-- that one script serves every case. done() prints one machine-readable line.
--
--   BENCH_METHOD  GET (default), POST, ...
--   BENCH_BODY    request body; sent with Content-Type: application/json
--   BENCH_TOKEN   bearer token; sent as Authorization: Bearer <token>

wrk.method = os.getenv("BENCH_METHOD") or "GET"

local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "BENCH_RESULT {\"requests\":%d,\"duration_us\":%d,\"rps\":%.2f," ..
    "\"p50_us\":%d,\"p95_us\":%d,\"p99_us\":%d,\"max_us\":%d," ..
    "\"non_2xx\":%d,\"socket_errors\":%d,\"timeouts\":%d}\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max,
    errors.status, errors.connect + errors.read + errors.write, errors.timeout))
end
