-- invalidator: register a key under one tag (the cluster form of
-- tagged_set.lua, for a key that lives in another slot than the index).
--
-- KEYS[1]  the tag's index, `inv:tag:<tag>`
-- ARGV[1]  the cache key, already SET
-- ARGV[2]  its time to live in milliseconds; 0 for none
--
-- Scores and the prune cutoff come from this node's clock, like the
-- expiry Redis applies to keys.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local score = '+inf'
if ttl > 0 then
  score = string.format('%d', now + ttl)
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', now))
return redis.call('ZADD', KEYS[1], score, ARGV[1])
