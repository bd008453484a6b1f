-- The seed's click: POST /click {"user_id": 1..10000, "product_id": 1..1000}, a new random
-- body per request. BENCH_AUTH, when set, is sent as the Authorization header (Tally's write key).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

function init(args)
  -- Each thread has its own Lua state: give each its own random sequence.
  math.randomseed(os.time() * 1000 + seed)
end

function request()
  local body = string.format('{"user_id":%d,"product_id":%d}', math.random(1, 10000), math.random(1, 1000))
  return wrk.format(nil, nil, nil, body)
end
