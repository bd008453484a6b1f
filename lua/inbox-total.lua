--[[
  A user's count as kept in the real-time layer: the version and the total (durable + pending +
  in flight, moved by every delta: lua/inbox-finish.lua). Without a total kept, and given the
  durable count one PostgreSQL snapshot showed, composes it and keeps it: durable + pending +
  the batch in flight if that snapshot did not hold it. If a batch newer than the snapshot
  finished since, the snapshot may miss a batch Redis no longer has: nothing is composed.
  KEYS[1] pending hash, KEYS[2] in-flight hash, KEYS[3] meta hash, KEYS[4] versions hash,
  KEYS[5] totals hash, KEYS[6] running hash
  ARGV[1] user id, ARGV[2] the snapshot's last batch seq, ARGV[3] its durable count (both
          optional)
  Returns {version, has total (0/1), total, running}: running counts the user's changes begun and
  not finished; while one is, the total may hold a later change before an earlier one.
]]
local user = ARGV[1]
local version = tonumber(redis.call('HGET', KEYS[4], user) or '0')
local running = tonumber(redis.call('HGET', KEYS[6], user) or '0')
local total = redis.call('HGET', KEYS[5], user)
if total then
  return { version, 1, tonumber(total), running }
end
if ARGV[2] == nil then
  return { version, 0, 0, running }
end
local meta = redis.call('HMGET', KEYS[3], 'inflight', 'done')
local seq = tonumber(ARGV[2])
if tonumber(meta[2] or '0') > seq then
  return { version, 0, 0, running }
end
local value = tonumber(ARGV[3]) + tonumber(redis.call('HGET', KEYS[1], user) or '0')
if tonumber(meta[1] or '0') > seq then
  value = value + tonumber(redis.call('HGET', KEYS[2], user) or '0')
end
redis.call('HSET', KEYS[5], user, value)
return { version, 1, value, running }
