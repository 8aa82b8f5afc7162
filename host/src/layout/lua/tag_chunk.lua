-- invalidator: invalidate one chunk of a tag, atomically.
--
-- KEYS[1]  the tag's index, `inv:tag:<tag>`
-- ARGV[1]  how many member keys to take at most
--
-- Takes up to ARGV[1] members, removes them from the index and unlinks
-- them, in one step. Returns { keys deleted, members left in the index }.
-- Call it again until nothing is left: a huge tag is cut into chunks so
-- that Redis never stalls on it. The index disappears with its last member.
local members = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #members == 0 then
  return { 0, 0 }
end
redis.call('ZREM', KEYS[1], unpack(members))
local deleted = redis.call('UNLINK', unpack(members))
return { deleted, redis.call('ZCARD', KEYS[1]) }
