-- Which visitors their experiments have exposed: a read of their assignment slices, no write
-- (on a cluster all the keys of one call are one experiment shard's, on one server any).
-- KEYS: assign...
-- ARGV: visitor...
--   assign  per visitor, its slice of the shard's assignment hash
--   visitor  per visitor (in the same order), the packed visitor id
-- Tracking asks this first when several experiments read the same events: most of them never
-- showed the visitor anything, and a lookup is a fraction of a full track.lua call to build,
-- send and run. An exposure is never taken back (a reset starts a new generation, in other
-- keys), so a visitor found exposed here is still exposed when track.lua runs.
-- Returns one code per visitor: 0 not exposed, 1 exposed or not known (a key that cannot be
-- read, as a hash, here: the full call then meets the same error and reports it as its own).
local codes = {}
for i = 1, #KEYS do
  local found = redis.pcall('HEXISTS', KEYS[i], ARGV[i])
  if found == 0 then codes[i] = 0 else codes[i] = 1 end
end
return codes
