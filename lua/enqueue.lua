--[[
  Appends one ingestion batch to a stream shard, unless the shard's backlog is full.
  KEYS[1] stream
  ARGV[1] max backlog (entries not yet acknowledged and deleted)
  ARGV[2] payload
  Returns the entry id, or false when the backlog is full (the caller answers 503).
]]
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return false
end
return redis.call('XADD', KEYS[1], '*', 'p', ARGV[2])
