--[[
  Acknowledges processed stream entries and deletes them, so the stream holds only the backlog.
  KEYS[1] stream
  ARGV[1] consumer group
  ARGV[2..] entry ids
  Returns the number deleted.
]]
local ids = {}
for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
if #ids == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
return redis.call('XDEL', KEYS[1], unpack(ids))
