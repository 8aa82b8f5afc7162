-- invalidator: set a cache value and register it under its tags, atomically.
--
-- KEYS[1]    the cache key
-- KEYS[2..]  the index of each tag: `inv:tag:<tag>`, a sorted set whose
--            members are cache keys, scored by when each key expires
--            (milliseconds since the epoch, `+inf` for no expiry)
-- ARGV[1]    the value
-- ARGV[2]    time to live in milliseconds; 0 for none
--
-- Every index is pruned of members that have expired, so an index never
-- keeps expired keys for longer than until the tag's next write (and the
-- host's janitor prunes the indexes nobody writes to). Indexes have no TTL
-- of their own, so a `volatile-*` eviction policy never evicts an index
-- while its keys live.
--
-- In a cluster every key of one call must share a slot; otherwise run the
-- same steps in this order: SET first, then ZREMRANGEBYSCORE and ZADD on
-- each index.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local score = '+inf'
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  score = string.format('%d', now + ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
for i = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('(%d', now))
  redis.call('ZADD', KEYS[i], score, KEYS[1])
end
return #KEYS - 1
