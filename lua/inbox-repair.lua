--[[
  The reconciler's correction of one user's count: adds the drift to the pending hash, bumps
  the version and drops the user's total (the next read composes it again from PostgreSQL and
  the buffer: a total that drifted with the buffer is not trusted), only if the version is
  still the one the drift was measured at. Any change
  finished since (or another reconciler's repair) bumped it: then nothing is added, and the
  user is checked again later.
  KEYS[1] pending hash, KEYS[2] versions hash, KEYS[3] totals hash
  ARGV[1] user id, ARGV[2] drift, ARGV[3] version the drift was measured at,
  ARGV[4] first version of a user without one (as in inbox-finish.lua)
  Returns 1 when repaired, 0 when the version moved.
]]
local version = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if version ~= tonumber(ARGV[3]) then
  return 0
end
redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[1])
if version == 0 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
else
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
return 1
