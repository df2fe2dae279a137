-- Compare-and-set one experiment definition.
-- KEYS[1] definitions hash
-- ARGV[1] experiment key   ARGV[2] expected current JSON ('' = must not exist)   ARGV[3] new JSON
--   ('' = delete)
-- Returns 1 written, 0 the current definition differs from the expected one (a concurrent
-- change), -1 it already exists (create), -2 it does not exist (update or delete).
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  if current then return -1 end
else
  if not current then return -2 end
  if current ~= ARGV[2] then return 0 end
end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('HINCRBY', KEYS[1], '_version', 1)
return 1
