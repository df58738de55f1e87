-- GET the URL with a query parameter that no other request carries, so every
-- request misses the gateway's response cache (its key is method, path and the
-- whole query; the catalogue ignores a parameter it does not know). done()
-- prints the same machine-readable line as bench/wrk/request.lua.
--
--   BENCH_NONCE   a value of this wrk run's own, so runs never share a key

local nonce = os.getenv("BENCH_NONCE") or tostring(os.time())
local counter = 0
local base = nil

request = function()
  if base == nil then
    local separator = string.find(wrk.path, "?", 1, true) and "&" or "?"
    base = wrk.path .. separator .. "bench_nocache=" .. nonce .. "-"
  end
  counter = counter + 1
  return wrk.format("GET", base .. counter)
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
