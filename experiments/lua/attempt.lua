-- Count one failed attempt in a fixed window that starts with the first failure.
-- KEYS: counter
-- ARGV: window_ms
-- Returns {failures in the window, milliseconds until the window ends}.
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1])) end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
  left = tonumber(ARGV[1])
end
return {count, left}
