-- wrk script for scripts/bench-ingest --flood: POSTs forged events (the benchmark's deal body
-- with a wrong application token, for the installed portal, and for portals the store does not
-- know, in turn), counts the 401 answers, and paces each connection when WRK_FLOOD_DELAY_MS is
-- set (wrk's delay(): milliseconds before the connection's next request), so that the flood
-- arrives at a known rate instead of taking whatever CPU the machine has left.
local body_file = os.getenv("WRK_BODY")
local f = assert(io.open(body_file, "rb"))
local body = f:read("*a")
f:close()
local pace = tonumber(os.getenv("WRK_FLOOD_DELAY_MS") or "0")
local wrong = body:gsub("auth%%5Bapplication_token%%5D=[^&]*", "auth%%5Bapplication_token%%5D=forged")
local unknown = wrong:gsub("auth%%5Bmember_id%%5D=[^&]*", "auth%%5Bmember_id%%5D=unknown-portal")
local bodies = {wrong, unknown}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  n = 0
  rejected = 0
end

function request()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[n % 2 + 1])
end

if pace > 0 then
  function delay()
    return pace
  end
end

function response(status, headers, body)
  if status == 401 then
    rejected = rejected + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do
    total = total + t:get("rejected")
  end
  io.write(string.format("rejected401 %d\n", total))
end
