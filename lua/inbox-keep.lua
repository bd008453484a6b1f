--[[
  Keeps a user's counts, counted from the rows in one PostgreSQL snapshot taken after a read of
  this user that showed version ARGV[2] and no change running. If the version is still that one
  and no change is running, every change committed before the snapshot had finished (its deltas
  are in no kept counts, there were none) and every later one will add its deltas to these.
  Otherwise nothing is kept: the next read counts again.
  KEYS[1] versions hash, KEYS[2] running hash, KEYS[3] the user's kept counts hash
  ARGV[1] user id, ARGV[2] expected version, ARGV[3..] count name, value pairs
  Returns 1 when kept, 0 when not (counts already kept, the version moved, a change running).
]]
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') ~= tonumber(ARGV[2]) then return 0 end
if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') > 0 then return 0 end
redis.call('HSET', KEYS[3], '*', 1)
for k = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[3], ARGV[k], ARGV[k + 1])
end
return 1
