-- Create, replace or delete one experiment definition (compare-and-set).
-- KEYS: definitions
-- ARGV: key expected_json expected_generation new_json generation_field deleted_prefix expected_version
--   expected_json  '' = must not exist (create)    new_json  '' = delete
--   expected_generation  the generation the caller read (ignored on create)
--   generation_field  the field counting the key's generations
--   deleted_prefix  the deleted generation's definition is kept under deleted_prefix .. G until
--     its data is reclaimed
--   expected_version  '' = any; else the definitions' _version the caller checked the write
--     against (a start checks its namespace range against every other definition)
-- Returns the generation written (>= 1), 0 the stored definition differs from the expected one
-- (a concurrent change), -1 it already exists (create), -2 it does not exist (update, delete).
if ARGV[7] ~= '' and tonumber(redis.call('HGET', KEYS[1], '_version') or '0') ~= tonumber(ARGV[7]) then
  return 0
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
local generation
if ARGV[2] == '' then
  if current then return -1 end
  generation = redis.call('HINCRBY', KEYS[1], ARGV[5], 1)
else
  if not current then return -2 end
  generation = tonumber(redis.call('HGET', KEYS[1], ARGV[5]) or '0')
  if current ~= ARGV[2] or generation ~= tonumber(ARGV[3]) then return 0 end
end
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('HSET', KEYS[1], ARGV[6] .. generation, current)
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
end
redis.call('HINCRBY', KEYS[1], '_version', 1)
return generation
