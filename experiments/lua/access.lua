-- Add or remove one record of an access hash (API keys, share links) with its audit entry.
-- KEYS: records audit audit_all
-- ARGV: op id record_json audit_entry audit_max audit_all_max
--   op  'add': store record_json under id unless id is taken
--       'remove': delete the record of id, if there is one
--   audit_entry  JSON pushed onto both audit lists (kept to audit_max and audit_all_max
--     entries) when the record changed; audit is the workspace list again for records that
--     belong to no experiment, or the experiment's list for a share link
-- Returns 1 (added; removed) or 0 (the id was taken; there was no such record).
local op = ARGV[1]
if op == 'add' then
  if redis.call('HSETNX', KEYS[1], ARGV[2], ARGV[3]) == 0 then return 0 end
elseif op == 'remove' then
  if redis.call('HDEL', KEYS[1], ARGV[2]) == 0 then return 0 end
else
  return redis.error_reply('unknown op ' .. tostring(op))
end
if KEYS[2] ~= KEYS[3] then
  redis.call('LPUSH', KEYS[2], ARGV[4])
  redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[5]) - 1)
end
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
return 1
