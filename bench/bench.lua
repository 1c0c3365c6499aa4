-- wrk script for `make bench`, configured through the environment:
--   BENCH_METHOD, BENCH_BODY, BENCH_TOKEN    the request every connection sends
--   BENCH_TIMEOUT_S                          wrk's --timeout, to count requests left unanswered
--   BENCH_PATCH_FIRST, BENCH_PATCH_COUNT     PATCH mode (below)
-- It counts non-2xx answers and requests still unanswered past the timeout when the run
-- ends (wrk itself only counts a timeout when a late answer does arrive, so a scenario
-- slower than the run would show no errors at all), and ends with one line: BENCH {json}.
--
-- PATCH mode measures the intended thing, a conditional update that succeeds: each request
-- takes a task that has no PATCH in flight and sends the ETag its last response carried
-- (tasks start at version 1) as If-Match. A fixed If-Match would succeed once and then
-- measure 412s; no If-Match at all would skip the check being measured.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *now);
]])
local clock = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.body = os.getenv("BENCH_BODY")
if wrk.body then wrk.headers["Content-Type"] = "application/json" end
local token = os.getenv("BENCH_TOKEN")
if token then wrk.headers["Authorization"] = "Bearer " .. token end
local timeout_s = tonumber(os.getenv("BENCH_TIMEOUT_S") or "2")

-- Globals, so done() can read each thread's copy with thread:get.
non2xx = 0
sent_at = {} -- send times of the requests not answered yet, oldest first
first_pending, next_sent = 1, 1
verifying = false -- set on the first thread, whose first request() wrk only inspects

local patch_first = tonumber(os.getenv("BENCH_PATCH_FIRST") or "")
local patch_count = tonumber(os.getenv("BENCH_PATCH_COUNT") or "")
local idle_ids = {} -- tasks with no PATCH in flight
local etags = {} -- task id -> the ETag of its last successful PATCH
local fixed_request = nil

local function patch_request()
  local id = table.remove(idle_ids) or patch_first -- only errors can drain the pool
  local headers = { ["If-Match"] = etags[id] or string.format('"%d-1"', id) }
  for name, value in pairs(wrk.headers) do headers[name] = value end
  return wrk.format("PATCH", "/tasks/" .. id, headers, wrk.body)
end

local function remember_etag(headers)
  local tag = headers["etag"] or headers["ETag"]
  local id = tag and tonumber(tag:match('^"(%d+)%-%d+"$'))
  if id then
    etags[id] = tag
    table.insert(idle_ids, id)
  end
end

if patch_first then
  for id = patch_first + patch_count - 1, patch_first, -1 do table.insert(idle_ids, id) end
end

function request()
  if verifying then
    verifying = false
    return wrk.format()
  end
  sent_at[next_sent] = now()
  next_sent = next_sent + 1
  if patch_first then return patch_request() end
  fixed_request = fixed_request or wrk.format()
  return fixed_request
end

function response(status, headers, body)
  -- Answers are matched to the oldest pending send: this can only underestimate how long
  -- the requests left at the end have waited, never count a prompt one as late.
  sent_at[first_pending] = nil
  first_pending = first_pending + 1
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
  if patch_first then remember_etag(headers) end
end

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("verifying", #threads == 1)
end

function done(summary, latency, requests)
  local bad, unanswered, late = 0, 0, now() - timeout_s
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
    for _, sent in pairs(thread:get("sent_at")) do
      if sent < late then unanswered = unanswered + 1 end
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,'
      .. '"unanswered":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, bad, e.connect, e.read, e.write, e.timeout, unanswered,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max
  ))
end
