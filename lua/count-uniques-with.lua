--[[
  Distinct members of the union of HyperLogLogs in Redis and of sketches sent along (HyperLogLog
  strings, as GET returns them: PostgreSQL's copies of buckets Redis no longer holds).
  KEYS[1..n]   scratch keys (same hash tag as the others), one per sketch, deleted before returning
  KEYS[n+1..]  HyperLogLogs in Redis (a missing one counts as empty)
  ARGV[1]      n, the number of sketches (at least 1)
  ARGV[2..n+1] the sketches
  Returns PFCOUNT of them all; a sketch that is not a HyperLogLog is PFCOUNT's error, and the
  scratch keys are gone either way.
]]
local n = tonumber(ARGV[1])
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i + 1])
end
local count = redis.pcall('PFCOUNT', unpack(KEYS))
redis.call('DEL', unpack(KEYS, 1, n))
if type(count) == 'table' and count.err then
  return redis.error_reply(count.err)
end
return count
