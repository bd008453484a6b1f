--[[
  One user's inbox count state in the real-time layer, read at one instant (the reconciler's view).
  KEYS[1] pending hash, KEYS[2] in-flight hash, KEYS[3] meta hash, KEYS[4] intents hash,
  KEYS[5] versions hash, KEYS[6] running hash, KEYS[7] the user's kept counts hash
  ARGV[1] user id, ARGV[2] buffer field prefix of the user
  Returns {version, running, inflightSeq, doneSeq, intents, oldest intent start ms,
  {pending name, delta pairs}, {in-flight name, delta pairs}, kept (0/1), kept name, value pairs...}.
  The intents hash holds only changes running right now (and crash leftovers), and the buffer
  hashes only deltas of the last flush interval: scanning them is short.
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
local prefix = ARGV[2]
local function ofUser(key)
  local found = {}
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, #prefix) == prefix then
      found[#found + 1] = string.sub(fields[i], #prefix + 1)
      found[#found + 1] = fields[i + 1]
    end
  end
  return found
end
local out = {
  tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or '0'),
  tonumber(redis.call('HGET', KEYS[6], ARGV[1]) or '0'),
  tonumber(meta[1] or '0'),
  tonumber(meta[2] or '0'),
  intents,
  oldest,
  ofUser(KEYS[1]),
  ofUser(KEYS[2]),
}
local kept = redis.call('HGETALL', KEYS[7])
out[9] = #kept > 0 and 1 or 0
for k = 1, #kept do out[9 + k] = kept[k] end
return out
