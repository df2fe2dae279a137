-- Append one tracked event to the visitor-sharded activity log, once per visitor and event id.
-- KEYS: log ids0 ids1 ids2 ids3 ids4
-- ARGV: event_id expire_at_ms log_max_length entry
--   log  the activity stream    ids0..ids4  the visitor's slice of the event-id window parts,
--     newest first (ids0 is written, all are read)
--   event_id  the digest of (visitor, event id), or '' when the event has no id
--   expire_at_ms  when ids0 may go    log_max_length  > 0    entry  the packed log entry
-- Returns 1 appended, 0 duplicate event id.
if ARGV[1] ~= '' then
  for k = 2, 6 do
    if redis.call('HEXISTS', KEYS[k], ARGV[1]) == 1 then return 0 end
  end
  redis.call('HSET', KEYS[2], ARGV[1], 1)
  redis.call('PEXPIREAT', KEYS[2], ARGV[2])
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[3]), '*', 'a', ARGV[4])
return 1
