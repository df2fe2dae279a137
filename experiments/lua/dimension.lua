-- The slice of one dimension value: the first max_values distinct values get 0, 1, ...; later
-- ones the "other" slice, max_values. A value keeps its slice for the experiment's life.
-- KEYS: registry
-- ARGV: dimension value max_values
--   registry  the experiment generation's hash of dimension values: "D:value" -> slice,
--     "#D" -> how many values of dimension D have a slice
--   dimension  the dimension's position in the definition    value  the attribute value as text
-- Returns the slice index.
local field = ARGV[1] .. ':' .. ARGV[2]
local known = redis.call('HGET', KEYS[1], field)
if known then return tonumber(known) end
local limit = tonumber(ARGV[3])
local count = tonumber(redis.call('HGET', KEYS[1], '#' .. ARGV[1]) or '0')
if count >= limit then return limit end
redis.call('HSET', KEYS[1], field, count, '#' .. ARGV[1], count + 1)
return count
