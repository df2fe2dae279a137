-- Create, replace or delete one experiment definition (compare-and-set).
-- KEYS: definitions audit audit_all
-- ARGV: key expected_json expected_generation new_json generation_field deleted_prefix expected_version audit_entry audit_max audit_all_max
--   expected_json  '' = must not exist (create)    new_json  '' = delete
--   expected_generation  the generation the caller read (ignored on create)
--   generation_field  the field counting the key's generations
--   deleted_prefix  the deleted generation's definition is kept under deleted_prefix .. G until
--     its data is reclaimed
--   expected_version  '' = any; else the definitions' _version the caller checked the write
--     against (a start checks its namespace range against every other definition)
--   audit_entry  '' = none; else JSON pushed onto the experiment's audit list (kept to
--     audit_max entries) and the workspace's (kept to audit_all_max), only if the write is made
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
if ARGV[8] ~= '' then
  redis.call('LPUSH', KEYS[2], ARGV[8])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[9]) - 1)
  redis.call('LPUSH', KEYS[3], ARGV[8])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[10]) - 1)
end
return generation
