-- invalidator: give a lease back (its loader failed), if it is still held.
--
-- KEYS[1]  the cache key
-- ARGV[1]  the lease marker this caller holds (prefix .. token)
--
-- Returns 1 when the marker was removed, 0 when it was no longer there.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
