-- Segment batches for bench:pipeline: POST /v1/batch with 100 messages per request, a fixed mix
-- per batch (60 page views, 20 product clicks, 15 custom events, 5 Page Engaged), random visitors
-- (1..100000; the first 30,000 are signed in: their messages carry a userId too), pages (1..200),
-- products (1..1000), browsers; messageIds unique per thread and request. BENCH_AUTH is the
-- Authorization header (the write key).
wrk.method = "POST"
wrk.path = "/v1/batch"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")

-- BENCH_DELAY_MS paces each connection (a wait before each request): a load below saturation.
local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pace and pace > 0 then
  delay = function() return pace end
end

local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
  "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
}
local referrers = { "", "https://www.google.com/", "https://news.ycombinator.com/", "https://twitter.com/" }

local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end

local counter = 0
local run = ""
function init(args)
  math.randomseed(os.time() * 1000 + seed)
  run = string.format("%d-%d-%d", os.time(), seed, math.random(1, 1000000000))
end

function request()
  counter = counter + 1
  local parts = {}
  for i = 1, 100 do
    local id = string.format('"messageId":"%s-%d-%d"', run, counter, i)
    local n = math.random(1, 100000)
    local visitor = string.format('"anonymousId":"v%d"', n)
    if n <= 30000 then visitor = string.format('%s,"userId":"u%d"', visitor, n) end
    local path = string.format("/page/%d", math.random(1, 200))
    local ctx = string.format('"context":{"userAgent":"%s","page":{"path":"%s","url":"https://shop.example%s","referrer":"%s"}}',
      agents[math.random(1, #agents)], path, path, referrers[math.random(1, #referrers)])
    local m
    if i <= 60 then
      m = string.format('{"type":"page",%s,%s,%s}', id, visitor, ctx)
    elseif i <= 80 then
      m = string.format('{"type":"track","event":"Product Clicked","properties":{"product_id":"p%d"},%s,%s,%s}', math.random(1, 1000), id, visitor, ctx)
    elseif i <= 95 then
      m = string.format('{"type":"track","event":"Event %d","properties":{},%s,%s,%s}', math.random(1, 20), id, visitor, ctx)
    else
      m = string.format('{"type":"track","event":"Page Engaged","properties":{"engaged_ms":%d},%s,%s,%s}', math.random(1000, 60000), id, visitor, ctx)
    end
    parts[i] = m
  end
  return wrk.format(nil, nil, nil, '{"batch":[' .. table.concat(parts, ",") .. ']}')
end
