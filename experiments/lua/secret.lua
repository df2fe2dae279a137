-- The workspace secret: the stored one, or the caller's candidate stored now if there is none.
-- KEYS: secret
-- ARGV: candidate
-- Returns the secret every caller gets from then on (the first stored wins).
local secret = redis.call('GET', KEYS[1])
if secret then return secret end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
