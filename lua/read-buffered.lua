--[[
  One field of a counter buffer, read at one instant.
  KEYS[1] pending hash, KEYS[2] in-flight hash, KEYS[3] meta hash
  ARGV[1] field
  Returns {pending, inflight, inflightSeq, doneSeq}.
]]
local meta = redis.call('HMGET', KEYS[3], 'inflight', 'done')
return {
  tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0'),
  tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0'),
  tonumber(meta[1] or '0'),
  tonumber(meta[2] or '0'),
}
