--[[
  Finishes inbox changes whose SQL statement committed: for each user whose intent is still
  there, removes it, adds the delta to the pending hash and to the user's total (if one is kept),
  bumps the user's version and publishes it. An intent the reconciler dropped as stale is not
  there: the delta is not added (the reconciler counted from the rows instead) and the user is
  marked touched again, to be checked once more. A user without a total gets one composed from
  the durable count the statement read, unless a batch newer than that finished since.
  KEYS[1] pending hash, KEYS[2] in-flight hash, KEYS[3] meta hash, KEYS[4] intents hash,
  KEYS[5] versions hash, KEYS[6] touched sorted set, KEYS[7] totals hash, KEYS[8] running hash
  ARGV[1] mutation id, ARGV[2] now (ms), ARGV[3] first version of a user without one
          (now in microseconds: versions keep growing even after Redis lost its data),
  ARGV[4..] per user: user id, delta, channel ('' : none), durable count's batch seq and
          durable count ('' '': not read)
  Returns, per user: applied (0/1), version, pending, inflight, inflightSeq, doneSeq,
  has total (0/1), total, running (the user's changes still begun and not finished).
]]
local meta = redis.call('HMGET', KEYS[3], 'inflight', 'done')
local inflightSeq = tonumber(meta[1] or '0')
local doneSeq = tonumber(meta[2] or '0')
local out = {}
for i = 4, #ARGV, 5 do
  local user = ARGV[i]
  local delta = tonumber(ARGV[i + 1])
  local applied = redis.call('HDEL', KEYS[4], ARGV[1] .. user)
  local running = 0
  if applied == 1 then
    running = redis.call('HINCRBY', KEYS[8], user, -1)
    if running <= 0 then redis.call('HDEL', KEYS[8], user) end
  else
    running = tonumber(redis.call('HGET', KEYS[8], user) or '0')
  end
  local version = tonumber(redis.call('HGET', KEYS[5], user) or '0')
  if applied == 1 then
    if delta ~= 0 then
      redis.call('HINCRBY', KEYS[1], user, delta)
      if redis.call('HEXISTS', KEYS[7], user) == 1 then
        redis.call('HINCRBY', KEYS[7], user, delta)
      end
      if version == 0 then
        version = tonumber(ARGV[3])
        redis.call('HSET', KEYS[5], user, ARGV[3])
      else
        version = redis.call('HINCRBY', KEYS[5], user, 1)
      end
      if ARGV[i + 2] ~= '' then
        redis.call('PUBLISH', ARGV[i + 2], version)
      end
    end
  else
    redis.call('ZADD', KEYS[6], ARGV[2], user)
  end
  local pending = tonumber(redis.call('HGET', KEYS[1], user) or '0')
  local inflight = tonumber(redis.call('HGET', KEYS[2], user) or '0')
  local total = redis.call('HGET', KEYS[7], user)
  if total then
    total = tonumber(total)
  elseif ARGV[i + 3] ~= '' and doneSeq <= tonumber(ARGV[i + 3]) then
    local seq = tonumber(ARGV[i + 3])
    total = tonumber(ARGV[i + 4]) + pending
    if inflightSeq > seq then total = total + inflight end
    redis.call('HSET', KEYS[7], user, total)
  end
  out[#out + 1] = applied
  out[#out + 1] = version
  out[#out + 1] = pending
  out[#out + 1] = inflight
  out[#out + 1] = inflightSeq
  out[#out + 1] = doneSeq
  out[#out + 1] = total and 1 or 0
  out[#out + 1] = total or 0
  out[#out + 1] = math.max(running, 0)
end
return out
