--[[
  Drops a user's intents that started at or before a cutoff: changes that crashed between their
  SQL statement and inbox-finish.lua. A change that was only slow finds its intent gone, adds
  nothing, and marks the user touched again (inbox-finish.lua).
  KEYS[1] intents hash, KEYS[2] running hash
  ARGV[1] user id, ARGV[2] cutoff (ms)
  Returns the number of intents dropped.
]]
local dropped = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if string.sub(all[i], 17) == ARGV[1] and tonumber(all[i + 1]) <= tonumber(ARGV[2]) then
    redis.call('HDEL', KEYS[1], all[i])
    dropped = dropped + 1
  end
end
if dropped > 0 and redis.call('HINCRBY', KEYS[2], ARGV[1], -dropped) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[1])
end
return dropped
