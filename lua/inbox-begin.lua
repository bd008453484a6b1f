--[[
  Records that inbox changes are about to run their SQL statement (an intent per user), and
  marks the users as touched for the reconciler. An intent left behind by a crash between the
  statement and inbox-finish.lua tells the reconciler that this user's count may have lost a delta.
  KEYS[1] intents hash (field: mutation id, 16 characters, then the user id; value: start ms)
  KEYS[2] touched sorted set (member: user id; score: ms of the last change)
  KEYS[3] running hash (user id -> the user's intents: a count read checks it in O(1))
  ARGV[1] mutation id (16 characters), ARGV[2] now (ms), ARGV[3..] user ids
  Returns the number of users.
]]
for i = 3, #ARGV do
  if redis.call('HSET', KEYS[1], ARGV[1] .. ARGV[i], ARGV[2]) == 1 then
    redis.call('HINCRBY', KEYS[3], ARGV[i], 1)
  end
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[i])
end
return #ARGV - 2
