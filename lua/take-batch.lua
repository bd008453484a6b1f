--[[
  Takes a counter buffer's deltas for flushing. A batch still in flight (its flush crashed or
  has not finished) is named again, unchanged, so it is replayed; otherwise the pending hash is
  renamed into flight under the next sequence number. Increments landing after the rename go to
  a fresh pending hash: none is lost between read and delete. The in-flight hash is not read
  here: the caller pages through it with HSCAN (it no longer changes), so a large batch never
  blocks Redis inside a script.
  KEYS[1] pending hash, KEYS[2] in-flight hash, KEYS[3] meta hash {seq, inflight, done}
  ARGV[1] lowest allowed sequence number minus one (PostgreSQL's last applied batch, so
          numbering stays ahead of it even after Redis lost its data)
  Returns the batch's sequence number, or false when there is nothing to flush.
]]
local inflight = tonumber(redis.call('HGET', KEYS[3], 'inflight') or '0')
if inflight > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  return inflight
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return false
end
local seq = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
local floor = tonumber(ARGV[1])
if seq < floor then seq = floor end
seq = seq + 1
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[3], 'seq', seq, 'inflight', seq)
return seq
