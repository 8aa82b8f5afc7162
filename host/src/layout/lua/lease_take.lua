-- invalidator: read a key, or take a lease on it to fill it.
--
-- KEYS[1]    the cache key
-- KEYS[2..]  on a single node, the index of each of the value's tags
--            (`inv:tag:<tag>`); in a cluster none: index the lease with
--            index_add.lua on each tag, after this call and before loading
-- ARGV[1]    the lease marker's prefix ("\0inv:lease:")
-- ARGV[2]    this lease's token, unique to the caller
-- ARGV[3]    how long the lease lives, in milliseconds
--
-- Returns {0, value} on a hit; {1} when another caller holds a lease (wait
-- for its value, or load without storing); {2} when the lease is granted:
-- the key now holds the marker (prefix .. token), indexed under the tags.
--
-- Why a granted lease can only be filled with a fresh value. The loader
-- runs after this call (and, in a cluster, after the lease is indexed), so
-- a commit it did not see commits after the lease exists, and that
-- commit's invalidation starts later still. Whatever it invalidates, it
-- removes the marker: a key by UNLINK; a pattern by a SCAN, which returns
-- every key that exists for the whole scan; a tag by unlinking the members
-- of its index, which include the marker. lease_fill.lua stores the value
-- only while the marker is still there. An invalidation that began before
-- the lease was taken (and so may miss the marker) belongs to a commit that
-- the loader, starting later, sees.
local v = redis.call('GET', KEYS[1])
if v then
  if string.sub(v, 1, string.len(ARGV[1])) == ARGV[1] then
    return { 1 }
  end
  return { 0, v }
end
local ttl = tonumber(ARGV[3])
redis.call('SET', KEYS[1], ARGV[1] .. ARGV[2], 'PX', ttl)
if #KEYS > 1 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  for i = 2, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('(%d', now))
    redis.call('ZADD', KEYS[i], string.format('%d', now + ttl), KEYS[1])
  end
end
return { 2 }
