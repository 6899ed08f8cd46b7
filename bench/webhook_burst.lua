-- wrk script: every connection posts one Alertmanager notification, all at once, then stops.
-- Each line of the file is one JSON body; thread i of n takes lines i, i+n, ... (one per
-- connection). wrk asks delay() before each request: the first one per connection goes at once,
-- later ones never. When all its connections are answered a thread prints DONE: wrk itself runs
-- for its whole -d, so load.py interrupts it (SIGINT, which still reports) once every thread has.
-- wrk calls the first thread's request() once before any delay(), to check it: that call takes no line.
-- Arguments: <bodies file> <threads> <connections per thread> <bearer token>
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
  per_thread = tonumber(args[3])
  token = args[4]
  for line in io.lines(args[1]) do
    lines[#lines + 1] = line
  end
  position = index + 1
  asked = 0
  answered = 0
end

function delay()
  asked = asked + 1
  return asked <= per_thread and 0 or 3600000
end

function request()
  local line = lines[position]
  if asked > 0 then
    position = position + step
  end
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
  }
  return wrk.format("POST", nil, headers, line)
end

function response(status, headers, body)
  answered = answered + 1
  if answered == per_thread then
    io.write("DONE\n")
    io.stdout:flush()
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d non2xx=%d errors=%d p50_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
