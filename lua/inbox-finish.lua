--[[
  Finishes inbox changes whose SQL statement committed: for each user whose intent is still
  there, removes it, adds each delta to the pending hash (field: the user's prefix and the count
  name) and to the user's kept counts (if kept), bumps the user's version and publishes it. An
  intent the reconciler dropped as stale is not there: nothing is added (the reconciler counted
  from the rows instead) and the user is marked touched again, to be checked once more.
  KEYS[1] pending hash, KEYS[2] intents hash, KEYS[3] versions hash, KEYS[4] touched sorted set,
  KEYS[5] running hash, KEYS[5 + j] the kept counts hash of the j-th user
  ARGV[1] mutation id, ARGV[2] now (ms), ARGV[3] first version of a user without one
          (now in microseconds: versions keep growing even after Redis lost its data),
  ARGV[4..] per user: user id, buffer field prefix, channel ('' : none), number of deltas n,
          then n pairs of count name and delta
  Returns, per user: {applied (0/1), version, running (the user's changes still begun and not
  finished), kept (0/1), then the kept counts as name, value pairs}.
]]
local out = {}
local i = 4
local j = 0
while i <= #ARGV do
  j = j + 1
  local user, prefix, channel, n = ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3])
  local counts = KEYS[5 + j]
  local applied = redis.call('HDEL', KEYS[2], ARGV[1] .. user)
  local running = 0
  if applied == 1 then
    running = redis.call('HINCRBY', KEYS[5], user, -1)
    if running <= 0 then redis.call('HDEL', KEYS[5], user) end
  else
    running = tonumber(redis.call('HGET', KEYS[5], user) or '0')
  end
  local version = tonumber(redis.call('HGET', KEYS[3], user) or '0')
  if applied == 1 then
    if n > 0 then
      local kept = redis.call('EXISTS', counts) == 1
      for k = i + 4, i + 3 + 2 * n, 2 do
        redis.call('HINCRBY', KEYS[1], prefix .. ARGV[k], ARGV[k + 1])
        if kept then redis.call('HINCRBY', counts, ARGV[k], ARGV[k + 1]) end
      end
      if version == 0 then
        version = tonumber(ARGV[3])
        redis.call('HSET', KEYS[3], user, ARGV[3])
      else
        version = redis.call('HINCRBY', KEYS[3], user, 1)
      end
      if channel ~= '' then
        redis.call('PUBLISH', channel, version)
      end
    end
  else
    redis.call('ZADD', KEYS[4], ARGV[2], user)
  end
  local entry = { applied, version, math.max(running, 0) }
  local kept = redis.call('HGETALL', counts)
  entry[4] = #kept > 0 and 1 or 0
  for k = 1, #kept do entry[4 + k] = kept[k] end
  out[j] = entry
  i = i + 4 + 2 * n
end
return out
