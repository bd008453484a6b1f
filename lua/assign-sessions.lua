--[=[
  The sessions of one site's batch of events, visitor by visitor (the rule is in
  src/storage/sessions.ts; src/storage/embedded/sessions.ts is the same rule in this process).
  A visitor's state is a JSON array of its latest sessions, sorted by start, disjoint:
    [[id, startMs, lastMs, field1, ..., field9], ...]   (fields in SESSION_FIELD_ORDER)
  KEYS    each visitor's state key; all carry the site's hash tag (one Cluster slot)
  ARGV[1] gap, ms: an event joins a session it is at most this far from
  ARGV[2] state TTL, seconds (renewed with every write)
  ARGV[3] sessions kept per visitor (the earliest is dropped past it)
  ARGV[4] JSON [[keyIndex, [[atMs, id, field1, ..., field9], ...]], ...]: each visitor's events in
          the order they are assigned; id and fields are the session's if the event starts one
  Returns JSON {"s": [[id, field1, ..., field9], ...], "v": [sessionIndex, ...]}: the sessions
  named, and for every event (visitors in ARGV[4]'s order, each one's events in order) the
  0-based index of its session in "s".
]=]
local gap = tonumber(ARGV[1])
local ttl = ARGV[2]
local keep = tonumber(ARGV[3])
local groups = cjson.decode(ARGV[4])

local named, indexOf, assigned = {}, {}, {}

-- Sessions are told apart by visitor and id (ids come from the caller).
local function name(keyIndex, session)
  local id = keyIndex .. ':' .. session[1]
  local index = indexOf[id]
  if index == nil then
    local out = {session[1]}
    for j = 4, #session do out[#out + 1] = session[j] end
    named[#named + 1] = out
    index = #named - 1
    indexOf[id] = index
  end
  assigned[#assigned + 1] = index
end

for _, group in ipairs(groups) do
  local key = KEYS[group[1]]
  local state = redis.call('GET', key)
  local sessions = {}
  if state then sessions = cjson.decode(state) end
  for _, event in ipairs(group[2]) do
    local at = event[1]
    local best, bestDistance = nil, nil
    for i, s in ipairs(sessions) do
      if at >= s[2] - gap and at <= s[3] + gap then
        local distance = 0
        if at < s[2] then distance = s[2] - at elseif at > s[3] then distance = at - s[3] end
        if best == nil or distance < bestDistance then best, bestDistance = i, distance end
      end
    end
    local session
    if best then
      session = sessions[best]
      if at < session[2] then session[2] = at end
      if at > session[3] then session[3] = at end
    else
      session = {event[2], at, at}
      for j = 3, #event do session[#session + 1] = event[j] end
      local position = #sessions + 1
      for i, s in ipairs(sessions) do
        if at < s[2] then
          position = i
          break
        end
      end
      table.insert(sessions, position, session)
      if #sessions > keep then table.remove(sessions, 1) end
    end
    name(group[1], session)
  end
  redis.call('SET', key, cjson.encode(sessions), 'EX', ttl)
end

return cjson.encode({s = named, v = assigned})
