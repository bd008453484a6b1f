--[[
  Removes checked users from the touched set, unless they changed again after the check began.
  KEYS[1] touched sorted set
  ARGV[1] the check's start (ms), ARGV[2..] user ids
  Returns the number removed.
]]
local removed = 0
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score and tonumber(score) <= tonumber(ARGV[1]) then
    redis.call('ZREM', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
