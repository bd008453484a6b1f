--[[
  Takes a counter buffer's deltas for flushing. A batch still in flight (its flush crashed or
  has not finished) is named again, unchanged, so it is replayed; otherwise the pending hash and
  the pending list of packed deltas go into flight under the next sequence number.
  Increments landing after the take go to a fresh pending hash or list: none is lost between
  read and delete. The in-flight keys are not read here: the caller pages through them (they no
  longer change), so a large batch never blocks Redis inside a script.
  The packed list is taken whole (a RENAME) when it fits ARGV[2] bytes; otherwise only its
  oldest items that fit (at least one) are moved, and the rest waits for the next batch. So a
  flush that fell behind (PostgreSQL slower than the load) still takes batches of bounded size,
  and the flusher's memory stays bounded; the backlog waits in Redis. The copy this costs is
  bounded by the same figure.
  KEYS[1] pending hash, KEYS[2] in-flight hash, KEYS[3] meta hash {seq, inflight, more, done},
  KEYS[4] pending packed list, KEYS[5] in-flight packed list
  ARGV[1] lowest allowed sequence number minus one (PostgreSQL's last applied batch, so
          numbering stays ahead of it even after Redis lost its data)
  ARGV[2] most bytes of packed deltas one batch takes; 0: no bound
  Returns {seq, more}: the batch's sequence number, and 1 when packed deltas were left pending
  because the batch reached the bound (a replay answers what its take did); or false when there
  is nothing to flush.
]]
local inflight = tonumber(redis.call('HGET', KEYS[3], 'inflight') or '0')
if inflight > 0 and redis.call('EXISTS', KEYS[2], KEYS[5]) > 0 then
  return { inflight, tonumber(redis.call('HGET', KEYS[3], 'more') or '0') }
end
local hash = redis.call('EXISTS', KEYS[1]) == 1
local length = redis.call('LLEN', KEYS[4])
if not hash and length == 0 then
  return false
end
local seq = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
local floor = tonumber(ARGV[1])
if seq < floor then seq = floor end
seq = seq + 1
if hash then redis.call('RENAME', KEYS[1], KEYS[2]) end

-- How many of the oldest packed items fit the bound (read in pages: items can be large).
local bound = tonumber(ARGV[2])
local fit = length
if bound > 0 then
  local bytes, page = 0, 8
  fit = 0
  while fit < length do
    local items = redis.call('LRANGE', KEYS[4], fit, fit + page - 1)
    local stop = false
    for _, item in ipairs(items) do
      bytes = bytes + #item
      if bytes > bound and fit > 0 then stop = true break end
      fit = fit + 1
    end
    if stop or #items < page then break end
  end
end
local more = 0
if fit == length then
  if length > 0 then redis.call('RENAME', KEYS[4], KEYS[5]) end
else
  more = 1
  local moved = 0
  while moved < fit do
    local n = math.min(fit - moved, 64)
    redis.call('RPUSH', KEYS[5], unpack(redis.call('LRANGE', KEYS[4], moved, moved + n - 1)))
    moved = moved + n
  end
  redis.call('LTRIM', KEYS[4], fit, -1)
end
redis.call('HSET', KEYS[3], 'seq', seq, 'inflight', seq, 'more', more)
return { seq, more }
