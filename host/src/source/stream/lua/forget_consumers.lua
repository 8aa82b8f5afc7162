-- Removes the consumers of a group that hold no entry and have not been
-- seen for a while: processes that stopped, whose names (HOSTNAME-PID)
-- will never come back. Atomic, so a consumer cannot be handed an entry
-- between the check and its removal (XGROUP DELCONSUMER drops a
-- consumer's pending entries, which must never happen to a live one).
--
-- KEYS[1]  the stream
-- ARGV[1]  the group
-- ARGV[2]  the idle time, in ms, after which an empty consumer goes
-- ARGV[3]  the caller's own consumer name, always kept
-- Returns the names removed.
local removed = {}
local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
local idle_limit = tonumber(ARGV[2])
for _, fields in ipairs(consumers) do
  local info = {}
  for i = 1, #fields, 2 do
    info[fields[i]] = fields[i + 1]
  end
  -- Redis 7.2 splits `idle` into `inactive` (since the last successful
  -- read); `idle` stays, as the time since the last attempt.
  if info['name'] ~= ARGV[3] and tonumber(info['pending']) == 0
      and tonumber(info['idle']) >= idle_limit then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], info['name'])
    removed[#removed + 1] = info['name']
  end
end
return removed
