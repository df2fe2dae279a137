-- Open, check or close a browser session, or close every session of its key.
-- KEYS: session epoch
-- ARGV: op ttl_ms
--   op  'open': store the key's current epoch in the session, expiring after ttl_ms
--       'check': whether the session exists and was opened in the current epoch
--       'close': delete the session      'close_all': bump the epoch (every session is stale)
-- Returns 1 (open, close_all, a valid check, a closed session that existed) or 0.
local op = ARGV[1]
local epoch = redis.call('GET', KEYS[2]) or '0'
if op == 'open' then
  redis.call('SET', KEYS[1], epoch, 'PX', tonumber(ARGV[2]))
  return 1
elseif op == 'check' then
  local opened = redis.call('GET', KEYS[1])
  if opened and opened == epoch then return 1 end
  return 0
elseif op == 'close' then
  return redis.call('DEL', KEYS[1])
elseif op == 'close_all' then
  redis.call('INCR', KEYS[2])
  return 1
end
return redis.error_reply('unknown op ' .. tostring(op))
