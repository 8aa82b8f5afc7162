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
--
-- Across a failover. Replication is asynchronous: the primary may die
-- after removing the marker and before its replica heard of it, and the
-- promoted replica then holds the marker again, so a fill can succeed
-- there with the value loaded before the commit. It cannot outlive the
-- failover: the invalidation that removed the marker is either not yet
-- confirmed (with replica acknowledgements asked, the batch is applied
-- again until a replica has it) or in the host's replay window, which the
-- host applies again on the new primary as soon as it sees the change.
-- Applied again, it removes the marker, or the value filled under it
-- (a pattern's sweep and a tag's index reach both, as above). After
-- that, the marker is gone and every fill under it is refused. So a stale
-- fill can only exist between the promotion and the replay, the window in
-- which the promoted replica serves the values the old primary had
-- deleted anyway, and none survives the replay. The lease's own lifetime
-- (ARGV[3]) bounds it too: a marker expires like any key.
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
