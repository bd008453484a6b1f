--[[
  One user's inbox counter state in the real-time layer, read at one instant.
  KEYS[1] pending hash, KEYS[2] in-flight hash, KEYS[3] meta hash, KEYS[4] intents hash,
  KEYS[5] versions hash, KEYS[6] totals hash
  ARGV[1] user id
  Returns {version, pending, inflight, inflightSeq, doneSeq, intents, oldest intent start ms,
  has total (0/1), total}.
  The intents hash holds only changes running right now (and crash leftovers): scanning it is short.
]]
local meta = redis.call('HMGET', KEYS[3], 'inflight', 'done')
local intents, oldest = 0, 0
local all = redis.call('HGETALL', KEYS[4])
for i = 1, #all, 2 do
  if string.sub(all[i], 17) == ARGV[1] then
    intents = intents + 1
    local at = tonumber(all[i + 1])
    if oldest == 0 or at < oldest then oldest = at end
  end
end
local total = redis.call('HGET', KEYS[6], ARGV[1])
return {
  tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or '0'),
  tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0'),
  tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0'),
  tonumber(meta[1] or '0'),
  tonumber(meta[2] or '0'),
  intents,
  oldest,
  total and 1 or 0,
  tonumber(total or '0'),
}
