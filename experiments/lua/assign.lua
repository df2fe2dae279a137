-- Record a visitor's first exposure to an experiment; later calls return the recorded variant.
-- KEYS[1] assign hash   KEYS[2] agg hash   KEYS[3] day hash   KEYS[4] days set   KEYS[5] log stream
-- ARGV[1] visitor   ARGV[2] variant index chosen by the hash   ARGV[3] now (ms)   ARGV[4] day
-- ARGV[5] log max length (0 = no log)   ARGV[6] variant key   ARGV[7] attributes JSON
--   ARGV[2] = -1 (the hash enrols the visitor in no variant) only looks the visitor up, so a
--   visitor recorded before coverage was lowered keeps the recorded variant.
-- Returns {variant index or -1, 1 if this call recorded the exposure else 0}.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return {tonumber(string.match(existing, '^(%d+)')), 0}
end
if ARGV[2] == '-1' then return {-1, 0} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
local field = 'n:' .. ARGV[2]
redis.call('HINCRBY', KEYS[2], field, 1)
redis.call('HINCRBY', KEYS[3], field, 1)
redis.call('SADD', KEYS[4], ARGV[4])
local cap = tonumber(ARGV[5])
if cap > 0 then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', cap, '*', 'type', 'exposure', 'visitor', ARGV[1],
    'variant', ARGV[6], 'ts', ARGV[3], 'attributes', ARGV[7])
end
return {tonumber(ARGV[2]), 1}
