--[[
  A user's counts as kept in the real-time layer: the version, the changes running and the kept
  counts (durable + pending + in flight, moved by every delta: lua/inbox-finish.lua). The count
  read: one call, O(number of the user's count names).
  KEYS[1] versions hash, KEYS[2] running hash, KEYS[3] the user's kept counts hash
  ARGV[1] user id
  Returns {version, running, kept (0/1), then the kept counts as name, value pairs}. The hash
  holds a marker field `*` besides the names: kept counts that are all zero still exist.
]]
local out = {
  tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0'),
  tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0'),
}
local kept = redis.call('HGETALL', KEYS[3])
out[3] = #kept > 0 and 1 or 0
for k = 1, #kept do out[3 + k] = kept[k] end
return out
