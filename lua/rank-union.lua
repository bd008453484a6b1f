--[[
  The top members of the sum of several sorted sets (a ranking over several time buckets).
  KEYS[1]  scratch key (same hash tag as the sources), deleted before returning
  KEYS[2..] source sorted sets
  ARGV[1]  how many members, highest scores first (0: all)
  Returns {member1, score1, member2, score2, ...}.
]]
local stop = tonumber(ARGV[1]) - 1
local n = #KEYS - 1
if n == 1 then
  return redis.call('ZREVRANGE', KEYS[2], 0, stop, 'WITHSCORES')
end
redis.call('ZUNIONSTORE', KEYS[1], n, unpack(KEYS, 2))
local out = redis.call('ZREVRANGE', KEYS[1], 0, stop, 'WITHSCORES')
redis.call('DEL', KEYS[1])
return out
