-- invalidator: fill a key under a lease, unless an invalidation defeated it.
--
-- KEYS[1]    the cache key
-- KEYS[2..]  on a single node, the index of each of the value's tags; in a
--            cluster none: index the value with index_add.lua on each tag
--            after this call (and unlink the key if that fails)
-- ARGV[1]    the lease marker this caller holds (prefix .. token)
-- ARGV[2]    the value
-- ARGV[3]    time to live in milliseconds; 0 for none
--
-- Returns 1 when stored; 0 when the key no longer holds this lease's marker
-- (an invalidation removed it, the lease expired, or another writer set the
-- key): the value may be stale, and is not stored. See lease_take.lua for
-- why that is enough.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
local score = '+inf'
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  score = string.format('%d', now + ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
end
for i = 2, #KEYS do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('(%d', now))
  redis.call('ZADD', KEYS[i], score, KEYS[1])
end
return 1
