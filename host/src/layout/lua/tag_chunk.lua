-- invalidator: invalidate one chunk of a tag, atomically.
--
-- KEYS[1]  the tag's index, `inv:tag:<tag>`
-- ARGV[1]  how many member keys to take at most
-- ARGV[2]  optional: `members` to have the keys removed returned too
--
-- Takes up to ARGV[1] members, removes them from the index and unlinks
-- them, in one step. Returns { keys deleted, members left in the index },
-- and with ARGV[2] = `members` a third element: the members that existed
-- and were removed (what `serve`'s explain and feed record; other callers
-- keep the two-element answer). Listing unlinks member by member, to know
-- which existed.
-- Call it again until nothing is left: a huge tag is cut into chunks so
-- that Redis never stalls on it. The index disappears with its last member.
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local listed = ARGV[2] == 'members'
if #members == 0 then
  if listed then
    return { 0, 0, {} }
  end
  return { 0, 0 }
end
redis.call('ZREM', KEYS[1], unpack(members))
if listed then
  local removed = {}
  for _, member in ipairs(members) do
    if redis.call('UNLINK', member) == 1 then
      removed[#removed + 1] = member
    end
  end
  return { #removed, redis.call('ZCARD', KEYS[1]), removed }
end
local deleted = redis.call('UNLINK', unpack(members))
return { deleted, redis.call('ZCARD', KEYS[1]) }
