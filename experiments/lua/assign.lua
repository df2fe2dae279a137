-- Record a visitor's first exposure to an experiment; later calls return the recorded variant.
-- KEYS: assign agg day days log dimension_aggs...
-- ARGV: visitor variant assignment day log_max_length log_entry slices
--   assign  the visitor's slice of the assignment hash     agg, day  the shard's aggregates
--   days    the set of days with a day hash                 log       the shard's raw log
--   dimension_aggs  the shard's per-dimension aggregates, one per character of slices
--   visitor the packed visitor id (the slice's field)       variant   index chosen by the hash,
--     or -1 when the hash enrols the visitor in no variant: then the call only looks the visitor
--     up, so a visitor recorded before coverage was lowered keeps the recorded variant
--   assignment  exposed_ms * 32 + variant, the value stored    day  the UTC day YYYYMMDD
--   log_max_length  0 = no log    log_entry  the packed log entry, written when recorded
--   slices  one character per dimension: the visitor's slice of it ('' without dimensions);
--     kept after the assignment as ":" .. slices so that later events reach the same slices
-- Returns {variant index or -1, 1 if this call recorded the exposure else 0}.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if existing then
  return {tonumber(string.match(existing, '^%d+')) % 32, 0}
end
if ARGV[2] == '-1' then return {-1, 0} end
local slices = ARGV[7]
if slices == '' then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. ':' .. slices)
end
local field = 'n:' .. ARGV[2]
redis.call('HINCRBY', KEYS[2], field, 1)
redis.call('HINCRBY', KEYS[3], field, 1)
for d = 1, #slices do
  redis.call('HINCRBY', KEYS[5 + d], string.sub(slices, d, d) .. ':' .. field, 1)
end
redis.call('SADD', KEYS[4], ARGV[4])
local cap = tonumber(ARGV[5])
if cap > 0 then
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', cap, '*', 'd', ARGV[6])
end
return {tonumber(ARGV[2]), 1}
