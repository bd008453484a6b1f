--[[
  Adds deltas to a counter buffer's pending hash.
  KEYS[1] pending hash
  ARGV    field1, delta1, field2, delta2, ...
]]
for i = 1, #ARGV, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return #ARGV / 2
