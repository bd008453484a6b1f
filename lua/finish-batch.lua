--[[
  Drops a flushed batch once PostgreSQL recorded its sequence number. UNLINK frees a large
  hash or list in the background instead of blocking Redis.
  KEYS[2] in-flight hash, KEYS[3] meta hash, KEYS[5] in-flight packed list (KEYS[1] and KEYS[4],
  pending, are untouched)
  ARGV[1] the batch's sequence number
  Returns 1 when it was the batch in flight, 0 otherwise (another flusher finished it).
]]
if tonumber(redis.call('HGET', KEYS[3], 'inflight') or '0') ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('UNLINK', KEYS[2], KEYS[5])
redis.call('HSET', KEYS[3], 'inflight', 0, 'done', ARGV[1])
return 1
