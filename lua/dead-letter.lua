--[[
  Moves stream entries whose batch failed every attempt to the shard's dead-letter stream:
  copies each payload there, then acknowledges and deletes it from the live stream, in one step,
  so an entry is in exactly one of the two at any time.
  KEYS[1] stream
  KEYS[2] dead-letter stream (same hash tag)
  ARGV[1] consumer group
  ARGV[2..] entry ids
  Returns the number of entries moved (an id no longer in the stream is skipped).
]]
local moved = {}
for i = 2, #ARGV do
  local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])[1]
  if entry then
    local fields = entry[2]
    for j = 1, #fields, 2 do
      if fields[j] == 'p' then
        redis.call('XADD', KEYS[2], '*', 'p', fields[j + 1])
        moved[#moved + 1] = ARGV[i]
      end
    end
  end
end
if #moved == 0 then return 0 end
redis.call('XACK', KEYS[1], ARGV[1], unpack(moved))
redis.call('XDEL', KEYS[1], unpack(moved))
return #moved
