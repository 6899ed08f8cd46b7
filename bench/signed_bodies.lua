-- wrk script: POST pre-signed Twilio form bodies from a file, one per request, never repeating.
-- Each line of the file is "<X-Twilio-Signature>\t<form body>". Thread i of n takes lines
-- i, i+n, i+2n... so no MessageSid is sent twice (a repeat would take the cheaper duplicate path).
local lines = {}
local threads = {}
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  step = tonumber(args[2])
  for line in io.lines(path) do
    lines[#lines + 1] = line
  end
  position = index + 1
  exhausted = 0
end

function request()
  local line = lines[position]
  if line == nil then
    exhausted = exhausted + 1
    position = index + 1
    line = lines[position]
  end
  position = position + step
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
