--[[
  The reconciler's correction of one user's counts: adds the drift of each count to the pending
  hash, bumps the version and drops the user's kept counts (the next read counts them again from
  the rows: counts that drifted with the buffer are not trusted), only if the version is still
  the one the drift was measured at. Any change finished since (or another reconciler's repair)
  bumped it: then nothing is added, and the user is checked again later.
  KEYS[1] pending hash, KEYS[2] versions hash, KEYS[3] the user's kept counts hash
  ARGV[1] user id, ARGV[2] version the drift was measured at, ARGV[3] first version of a user
  without one (as in inbox-finish.lua), ARGV[4] buffer field prefix of the user,
  ARGV[5..] count name, drift pairs
  Returns 1 when repaired, 0 when the version moved.
]]
local version = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if version ~= tonumber(ARGV[2]) then
  return 0
end
for k = 5, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[4] .. ARGV[k], ARGV[k + 1])
end
redis.call('DEL', KEYS[3])
if version == 0 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
else
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
return 1
