-- invalidator: prune the members of one tag index whose keys have expired,
-- by this node's clock. KEYS[1] is the index. Returns how many went.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('(%d', now))
