-- wrk script for scripts/bench-storage: POSTs the corpus mix (the files named by the
-- space-separated BENCH_BODIES, in turn) for BENCH_PORTALS portals, each body rewritten for its
-- portal (member_id, domain, application token) with a random entity ID and user_id and ts =
-- now, and stops each thread after BENCH_PER_THREAD requests, so a fill is bounded in count as
-- well as by wrk's duration. wrk itself waits out its whole duration, so a thread that is done
-- also leaves a file in BENCH_DONE_DIR, and the script interrupts wrk once every thread has.
-- The portals are installed by the script before wrk starts.
local portals = tonumber(os.getenv("BENCH_PORTALS"))
local limit = tonumber(os.getenv("BENCH_PER_THREAD"))
local path = os.getenv("BENCH_PATH")
local bodies = {}
for name in string.gmatch(os.getenv("BENCH_BODIES"), "%S+") do
  local f = assert(io.open(name, "rb"))
  local type = name:match("%.json$") and "application/json" or "application/x-www-form-urlencoded"
  table.insert(bodies, {text = f:read("*a"), type = type})
  f:close()
end

-- The same member_id, domain and token as scripts/bench-storage's portal() (32 hex digits).
function hex32(p, salt)
  local out = ""
  for i = 1, 4 do
    out = out .. string.format("%08x", ((p + 1) * 2654435761 * i + salt * 40503) % 4294967296)
  end
  return out
end

local threads = {}
function setup(thread)
  thread:set("seed", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(seed * 7919)
  sent = 0
  answered = 0
  ok = 0
end

function request()
  sent = sent + 1
  local b = bodies[(sent % #bodies) + 1]
  local p = math.random(portals) - 1
  local entity = tostring(math.random(2000))
  local user = tostring(math.random(50))
  local text = b.text
    :gsub("7c1e5a93d2b84f06a9e3c5d71b2f8e40", hex32(p, 1))
    :gsub("f4a8c2e61b9d7035e8c4a1f6d2b97e53", hex32(p, 2))
    :gsub("acme%-test", "portal-" .. p)
    :gsub("(ID%%5D=)%d+", "%1" .. entity)
    :gsub("(%[ID%]=)%d+", "%1" .. entity)
    :gsub("(\"ID\": \")%d+", "%1" .. entity)
    :gsub("(user_id%%5D=)%d+", "%1" .. user)
    :gsub("(%[user_id%]=)%d+", "%1" .. user)
    :gsub("(\"user_id\": \")%d+", "%1" .. user)
    :gsub("([&?]?ts=)%d+", "%1" .. os.time())
    :gsub("(\"ts\": \")%d+", "%1" .. os.time())
  return wrk.format("POST", path, {["Content-Type"] = b.type}, text)
end

function response(status, headers, body)
  answered = answered + 1
  if status == 200 then ok = ok + 1 end
  if answered == limit then
    assert(io.open(os.getenv("BENCH_DONE_DIR") .. "/" .. seed, "w")):close()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("ok") end
  io.write(string.format("ok200 %d\n", total))
end
