-- Append tracked events to one shard of the visitor-sharded activity log, once per visitor and
-- event id.
-- KEYS: log event_ids...
-- ARGV: expire_at_ms log_max_length events...
--   log  the activity stream    event_ids  per event with an id, the visitor's slice of the
--     event-id window parts, newest first (five keys: the first is written, all are read)
--   expire_at_ms  when a first part may go    log_max_length  > 0
--   events  per event 2 values: event_id (the digest of visitor and event id, '' when the
--     event has none) and entry (the packed log entry)
-- Events are applied in order: an id repeated within one call is a duplicate too.
-- Returns one code per event: 1 appended, 0 duplicate event id.
local codes = {}
local kb = 2
for ab = 3, #ARGV, 2 do
  local event_id = ARGV[ab]
  local code = 1
  if event_id ~= '' then
    for k = kb, kb + 4 do
      if redis.call('HEXISTS', KEYS[k], event_id) == 1 then code = 0 break end
    end
    if code == 1 then
      redis.call('HSET', KEYS[kb], event_id, 1)
      redis.call('PEXPIREAT', KEYS[kb], ARGV[1])
    end
    kb = kb + 5
  end
  if code == 1 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[2]), '*', 'a', ARGV[ab + 1])
  end
  codes[#codes + 1] = code
end
return codes
