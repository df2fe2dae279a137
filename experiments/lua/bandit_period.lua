-- Re-weight a bandit experiment: its new definition and its period history, written together.
-- KEYS: definitions audit audit_all
-- ARGV: key expected_json expected_generation new_json generation_field history_field expected_history new_history audit_entry audit_max audit_all_max
--   expected_json, expected_generation  the definition the caller read
--   history_field  the definitions-hash field holding the history    expected_history  the
--     history the caller read ('' = none yet)    new_history  the history to write
--   audit_entry  '' = none; else JSON pushed onto the experiment's audit list (kept to
--     audit_max entries) and the workspace's (kept to audit_all_max) with the write
-- Returns 1 written, 0 the definition or the history changed since they were read (another
-- step won), -2 the experiment does not exist.
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return -2 end
local generation = tonumber(redis.call('HGET', KEYS[1], ARGV[5]) or '0')
if current ~= ARGV[2] or generation ~= tonumber(ARGV[3]) then return 0 end
local history = redis.call('HGET', KEYS[1], ARGV[6]) or ''
if history ~= ARGV[7] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4], ARGV[6], ARGV[8])
redis.call('HINCRBY', KEYS[1], '_version', 1)
if ARGV[9] ~= '' then
  redis.call('LPUSH', KEYS[2], ARGV[9])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[10]) - 1)
  redis.call('LPUSH', KEYS[3], ARGV[9])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[11]) - 1)
end
return 1
