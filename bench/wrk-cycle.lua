-- wrk script: cycles through a list of request paths, so the load is spread
-- over many fragments instead of one hot file.
--
--   wrk -t1 -c16 -d10s -s bench/wrk-cycle.lua http://127.0.0.1:PORT -- paths.txt
--
-- paths.txt holds one path per line (e.g. /a/t/video_1/0.m4s). Requests are
-- pre-built once; each connection takes the next path of the list in turn,
-- starting at a random offset. done() prints one machine-readable line:
--   RESULT requests=N duration_us=N bytes=N p50_us=N p99_us=N ... status=N
-- where status counts non-2xx/3xx responses and connect/read/write/timeout
-- are wrk's socket error counters.

local reqs = {}
local n = 0
local idx = 0

function init(args)
   local name = args[1]
   if name == nil then
      error("wrk-cycle.lua: pass the path list file after --")
   end
   local f = assert(io.open(name, "r"))
   for line in f:lines() do
      if #line > 0 then
         n = n + 1
         reqs[n] = wrk.format("GET", line)
      end
   end
   f:close()
   if n == 0 then
      error("wrk-cycle.lua: " .. name .. " holds no paths")
   end
   math.randomseed(os.time())
   idx = math.random(n) - 1
end

function request()
   idx = idx % n + 1
   return reqs[idx]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d bytes=%d p50_us=%d p99_us=%d mean_us=%.0f max_us=%d connect=%d read=%d write=%d timeout=%d status=%d\n",
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
      e.connect, e.read, e.write, e.timeout, e.status))
end
