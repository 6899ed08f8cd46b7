-- wrk script: signed_bodies.lua held to a fixed rate. Each line of the file is
-- "<X-Twilio-Signature>\t<form body>"; thread i of n takes lines i, i+n, ... so no MessageSid
-- repeats. wrk asks delay() before every request; it answers the time left until this thread's
-- next slot (start + k / rate), so requests leave on a schedule instead of as fast as answers
-- come back, and a slow answer holds back only its own connection. wrk calls the first thread's
-- request() once before any delay(), to check it: that call takes no line.
-- Arguments: <bodies file> <threads> <requests/s per thread>
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now_ts = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
  return tonumber(now_ts.tv_sec) + tonumber(now_ts.tv_nsec) / 1e9
end

local lines = {}
local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  step = tonumber(args[2])
  rate = tonumber(args[3])
  for line in io.lines(args[1]) do
    lines[#lines + 1] = line
  end
  position = index + 1
  exhausted = 0
  slot = 0
  start = nil
end

function delay()
  start = start or now()
  local due = start + slot / rate
  slot = slot + 1
  local wait = due - now()
  return wait > 0 and math.floor(wait * 1000) or 0
end

function request()
  local line = lines[position]
  if line == nil then
    exhausted = exhausted + 1
    position = index + 1
    line = lines[position]
  end
  if slot > 0 then
    position = position + step
  end
  local tab = line:find("\t", 1, true)
  local headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = line:sub(1, tab - 1),
  }
  return wrk.format("POST", nil, headers, line:sub(tab + 1))
end

function done(summary, latency, requests)
  local wrapped = 0
  for _, thread in ipairs(threads) do
    wrapped = wrapped + (thread:get("exhausted") or 0)
  end
  io.write(string.format(
    "RESULT requests=%d non2xx=%d errors=%d p50_us=%d p99_us=%d wrapped=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), wrapped))
end
