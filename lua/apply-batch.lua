--[=[
  One analytics batch of one site, applied atomically: each event runs its ops only if its
  dedupe key was not set yet (a retried or redelivered event counts once), then the tail ops run.
  KEYS    every key the batch touches; all carry the site's hash tag (one Cluster slot)
  ARGV[1] dedupe key TTL, seconds
  ARGV[2] JSON {"e": [[dedupeKeyIndex, [op, ...]], ...], "t": [op, ...]}; key indexes are 1-based
          op = [1, key, field, by, pendingKey or 0, durableName, [op, ...] or 0]
                                                                   HINCRBY (+ buffered delta);
                                                                   the ops run if the field was 0
             | [2, key, member]                                    PFADD
             | [3, key, member, by]                                ZINCRBY
             | [4, key, member, score]                             ZADD
             | [5, key, max]                                       ZREMRANGEBYSCORE -inf max
             | [6, key, seconds]                                   EXPIRE
  Returns the number of events that were new.
  The JSON is decoded before any write, so a malformed batch changes nothing.
]=]
local batch = cjson.decode(ARGV[2])
local ttl = ARGV[1]

local run
run = function(ops)
  for _, op in ipairs(ops) do
    local code, key = op[1], KEYS[op[2]]
    if code == 1 then
      local value = redis.call('HINCRBY', key, op[3], op[4])
      if op[5] ~= 0 then redis.call('HINCRBY', KEYS[op[5]], op[6], op[4]) end
      if op[7] ~= 0 and value == op[4] then run(op[7]) end
    elseif code == 2 then
      redis.call('PFADD', key, op[3])
    elseif code == 3 then
      redis.call('ZINCRBY', key, op[4], op[3])
    elseif code == 4 then
      redis.call('ZADD', key, op[4], op[3])
    elseif code == 5 then
      redis.call('ZREMRANGEBYSCORE', key, '-inf', op[3])
    elseif code == 6 then
      redis.call('EXPIRE', key, op[3])
    end
  end
end

local applied = 0
for _, event in ipairs(batch.e) do
  if redis.call('SET', KEYS[event[1]], '1', 'NX', 'EX', ttl) then
    applied = applied + 1
    run(event[2])
  end
end
run(batch.t)
return applied
