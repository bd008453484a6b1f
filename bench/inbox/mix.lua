-- The inbox mix: 50 % create / 40 % mark-read / 10 % count, a new random request each time;
-- flavour "states" (Tally) turns a quarter of the mark-reads into 5 % mark-seen and 5 % archive.
-- Arguments (after --): flavour (states | tally | django), users, hot fraction (share of requests aimed at
-- users 1..10), base notifications (ids 1..base, user ((id-1) % users) + 1), first hot id, hot ids
-- (user ((id-first) % 10) + 1). BENCH_AUTH, when set, is sent as the Authorization header.
-- done() prints the figures and the number of requests of each kind as one JSON line.
-- Bodies are JSON; a mark-read has no body, so it has no Content-Type either.
local json, plain = { ["Content-Type"] = "application/json" }, {}
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
  json["Authorization"] = auth
  plain["Authorization"] = auth
end

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("seed", #threads)
end

local flavour, users, hot, base, hot_first, hot_count
creates, reads, counts, seens, archives = 0, 0, 0, 0, 0

function init(args)
  math.randomseed(os.time() * 1000 + seed)
  flavour = args[1]
  users = tonumber(args[2])
  hot = tonumber(args[3])
  base = tonumber(args[4])
  hot_first = tonumber(args[5])
  hot_count = tonumber(args[6])
end

local function user()
  if math.random() < hot then return math.random(1, 10) end
  return math.random(1, users)
end

local function notification()
  if math.random() < hot then return hot_first + math.random(0, hot_count - 1) end
  return math.random(1, base)
end

function request()
  local r = math.random()
  if r < 0.5 then
    creates = creates + 1
    if flavour == "django" then
      return wrk.format("POST", "/n", json, string.format('{"user_id":%d}', user()))
    end
    return wrk.format("POST", "/v1/notifications", json, string.format('{"userId":"%d","title":"bench"}', user()))
  elseif flavour == "states" and r < 0.85 and r >= 0.75 then
    local action = r < 0.8 and "seen" or "archive"
    if action == "seen" then seens = seens + 1 else archives = archives + 1 end
    return wrk.format("POST", string.format("/v1/notifications/%d/%s", notification(), action), plain)
  elseif r < 0.9 then
    reads = reads + 1
    if flavour == "django" then
      return wrk.format("POST", string.format("/n/%d/read", notification()), plain)
    end
    return wrk.format("POST", string.format("/v1/notifications/%d/read", notification()), plain)
  end
  counts = counts + 1
  if flavour == "django" then
    return wrk.format("GET", string.format("/u/%d/unread", user()), plain)
  end
  return wrk.format("GET", string.format("/v1/users/%d/notifications/count", user()), plain)
end

function done(summary, latency, requests)
  local c, m, n, s, a = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("creates")
    m = m + t:get("reads")
    n = n + t:get("counts")
    s = s + t:get("seens")
    a = a + t:get("archives")
  end
  local e = summary.errors
  io.write(string.format(
    '\nWRK_JSON {"responses":%d,"duration_us":%d,"socket_errors":%d,"status_errors":%d,"p50":%d,"p99":%d,"creates":%d,"reads":%d,"counts":%d,"seens":%d,"archives":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), c, m, n, s, a))
end
