--[=[
  One site's analytics batch, pre-aggregated: every op sums the effect of several events, so the
  ops run only if every event of the batch is new. If any dedupe key is set already (or repeats
  in the batch), nothing stays written and the duplicates' positions come back: the caller drops
  them, aggregates again and retries. Duplicates are rare (retries, redeliveries), so the common
  case is one call whose cost follows the distinct counters of the batch, not its events.
  Encoded by src/storage/redis/step-codec.ts, the one writer of the layout below.
  KEYS    every key the batch touches; all carry the site's hash tag (one Cluster slot)
  ARGV[1] dedupe key TTL, seconds
  ARGV[2] JSON {"d": [dedupeKeyIndex, ...], "o": [op, ...], "p": [[listKeyIndex, argvIndex], ...]};
          key indexes are 1-based; each "p" pair pushes ARGV[argvIndex], a buffer's packed
          deltas (not decoded here), onto its pending list: deltas that do not depend on what
          Redis holds cost one RPUSH per batch instead of one HINCRBY per name
          op = [1, key, field, by, pendingKey or 0, durableName, [op, ...] or 0]
                 HINCRBY (+ the same delta buffered as durableName); the nested ops run when
                 the field was 0 before (a first occurrence)
             | [2, key, [member, ...], pendingKey or 0, durableName]
                 PFADD; when the HyperLogLog changed, HINCRBY pending durableName 1 (marks it
                 for the uniques flush)
             | [3, key, member, by]                                  ZINCRBY
             | [4, key, member, score]                               ZADD GT (a later time only)
             | [5, key, max]                                         ZREMRANGEBYSCORE -inf max
             | [6, key, seconds]                                     EXPIRE
             | [7, stateKey, pendingKey, gapMs, stateTtl, [[ts, totalsKey, totalsName, ...], ...]]
                 sessions of one visitor: stateKey holds "lastMs:pageviews" (pageviews capped
                 at 2); each page view (in time order) starts a session when it is more than
                 gapMs from the last one (fields se and bo +1 in every totals hash listed), or
                 is the session's second page view (bo -1: not a bounce any more)
  Returns {} when applied, else the 0-based positions of the duplicate events.
  The JSON is decoded and the dedupe keys claimed before any other write.
]=]
local batch = cjson.decode(ARGV[2])
local ttl = ARGV[1]

-- One SET NX per event claims its dedupe key. A duplicate (a key set already, or repeated in
-- the batch) means nothing more is written: the keys this call claimed are released again, so
-- the retry without the duplicates claims them afresh. The script is atomic: nobody sees them.
local dups, claimed, seen = {}, {}, {}
for i, k in ipairs(batch.d) do
  if seen[k] or not redis.call('SET', KEYS[k], '1', 'EX', ttl, 'NX') then
    dups[#dups + 1] = i - 1
  else
    claimed[#claimed + 1] = KEYS[k]
  end
  seen[k] = true
end
if #dups > 0 then
  for _, key in ipairs(claimed) do redis.call('DEL', key) end
  return dups
end

-- Session figures of the whole batch, summed per hash and field, written once at the end.
local sums, order = {}, {}
local function add(keyIndex, pendingIndex, name, field, by)
  local id = keyIndex .. '|' .. field
  local s = sums[id]
  if not s then
    s = {keyIndex, field, 0, pendingIndex, name .. '|' .. field}
    sums[id] = s
    order[#order + 1] = id
  end
  s[3] = s[3] + by
end

local function sessions(op)
  local state = redis.call('GET', KEYS[op[2]])
  local last, views = -1, 0
  if state then
    local sep = string.find(state, ':', 1, true)
    last = tonumber(string.sub(state, 1, sep - 1))
    views = tonumber(string.sub(state, sep + 1))
  end
  local gap = op[4]
  for _, view in ipairs(op[6]) do
    local ts = view[1]
    if last < 0 or math.abs(ts - last) > gap then
      views = 1
      for j = 2, #view, 2 do
        add(view[j], op[3], view[j + 1], 'se', 1)
        add(view[j], op[3], view[j + 1], 'bo', 1)
      end
    elseif views == 1 then
      views = 2
      for j = 2, #view, 2 do add(view[j], op[3], view[j + 1], 'bo', -1) end
    end
    if ts > last then last = ts end
  end
  redis.call('SET', KEYS[op[2]], string.format('%.0f:%d', last, views), 'EX', op[5])
end

local run
run = function(ops)
  for _, op in ipairs(ops) do
    local code, key = op[1], KEYS[op[2]]
    if code == 1 then
      local value = redis.call('HINCRBY', key, op[3], op[4])
      if op[5] ~= 0 then redis.call('HINCRBY', KEYS[op[5]], op[6], op[4]) end
      if op[7] ~= 0 and value == op[4] then run(op[7]) end
    elseif code == 2 then
      local changed = redis.call('PFADD', key, unpack(op[3]))
      if changed == 1 and op[4] ~= 0 then redis.call('HINCRBY', KEYS[op[4]], op[5], 1) end
    elseif code == 3 then
      redis.call('ZINCRBY', key, op[4], op[3])
    elseif code == 4 then
      redis.call('ZADD', key, 'GT', op[4], op[3])
    elseif code == 5 then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', op[3])
    elseif code == 6 then
      redis.call('EXPIRE', key, op[3])
    elseif code == 7 then
      sessions(op)
    end
  end
end

run(batch.o)
for _, id in ipairs(order) do
  local s = sums[id]
  if s[3] ~= 0 then
    redis.call('HINCRBY', KEYS[s[1]], s[2], s[3])
    redis.call('HINCRBY', KEYS[s[4]], s[5], s[3])
  end
end
for _, p in ipairs(batch.p) do redis.call('RPUSH', KEYS[p[1]], ARGV[p[2]]) end
return {}
