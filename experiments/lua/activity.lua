-- Append one tracked event to the visitor-sharded activity log, once per event id.
-- KEYS[1] activity stream   KEYS[2] event-id key (dedup), or a never-written key of the slot
-- ARGV[1] visitor   ARGV[2] event name   ARGV[3] value (string)   ARGV[4] event time (ms)
-- ARGV[5] log max length (> 0)   ARGV[6] dedup seconds   ARGV[7] 1 if an event id is given
-- Returns 1 appended, 0 duplicate event id.
if ARGV[7] == '1' then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[6])) then return 0 end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[5]), '*', 'visitor', ARGV[1],
  'event', ARGV[2], 'value', ARGV[3], 'ts', ARGV[4])
return 1
