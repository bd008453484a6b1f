--[[
  Takes a counter buffer's deltas for flushing. A batch still in flight (its flush crashed or
  has not finished) is named again, unchanged, so it is replayed; otherwise the pending hash and
  the pending list of packed deltas are renamed into flight under the next sequence number.
  Increments landing after the rename go to a fresh pending hash or list: none is lost between
  read and delete. The in-flight keys are not read here: the caller pages through them (they no
  longer change), so a large batch never blocks Redis inside a script.
  KEYS[1] pending hash, KEYS[2] in-flight hash, KEYS[3] meta hash {seq, inflight, done},
  KEYS[4] pending packed list, KEYS[5] in-flight packed list
  ARGV[1] lowest allowed sequence number minus one (PostgreSQL's last applied batch, so
          numbering stays ahead of it even after Redis lost its data)
  Returns the batch's sequence number, or false when there is nothing to flush.
]]
local inflight = tonumber(redis.call('HGET', KEYS[3], 'inflight') or '0')
if inflight > 0 and redis.call('EXISTS', KEYS[2], KEYS[5]) > 0 then
  return inflight
end
local hash = redis.call('EXISTS', KEYS[1]) == 1
local packed = redis.call('EXISTS', KEYS[4]) == 1
if not hash and not packed then
  return false
end
local seq = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
local floor = tonumber(ARGV[1])
if seq < floor then seq = floor end
seq = seq + 1
if hash then redis.call('RENAME', KEYS[1], KEYS[2]) end
if packed then redis.call('RENAME', KEYS[4], KEYS[5]) end
redis.call('HSET', KEYS[3], 'seq', seq, 'inflight', seq)
return seq
