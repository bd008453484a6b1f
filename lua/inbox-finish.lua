--[[
  Finishes inbox changes whose SQL statement committed: for each user whose intent is still
  there, removes it, adds the delta to the pending hash and bumps the user's version. An intent
  the reconciler dropped as stale is not there: the delta is not added (the reconciler counted
  from the rows instead) and the user is marked touched again, to be checked once more.
  KEYS[1] pending hash, KEYS[2] in-flight hash, KEYS[3] meta hash, KEYS[4] intents hash,
  KEYS[5] versions hash, KEYS[6] touched sorted set
  ARGV[1] mutation id, ARGV[2] now (ms), ARGV[3] first version of a user without one
          (now in microseconds: versions keep growing even after Redis lost its data),
  ARGV[4..] user id, delta, user id, delta, ...
  Returns, per user: applied (0/1), version, pending, inflight, inflightSeq, doneSeq.
]]
local meta = redis.call('HMGET', KEYS[3], 'inflight', 'done')
local inflightSeq = tonumber(meta[1] or '0')
local doneSeq = tonumber(meta[2] or '0')
local out = {}
for i = 4, #ARGV, 2 do
  local user = ARGV[i]
  local delta = tonumber(ARGV[i + 1])
  local applied = redis.call('HDEL', KEYS[4], ARGV[1] .. user)
  if applied == 1 then
    if delta ~= 0 then
      redis.call('HINCRBY', KEYS[1], user, delta)
      if redis.call('HSETNX', KEYS[5], user, ARGV[3]) == 0 then
        redis.call('HINCRBY', KEYS[5], user, 1)
      end
    end
  else
    redis.call('ZADD', KEYS[6], ARGV[2], user)
  end
  out[#out + 1] = applied
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[5], user) or '0')
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[1], user) or '0')
  out[#out + 1] = tonumber(redis.call('HGET', KEYS[2], user) or '0')
  out[#out + 1] = inflightSeq
  out[#out + 1] = doneSeq
end
return out
