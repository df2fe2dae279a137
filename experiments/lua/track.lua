-- Credit one event to one experiment for one visitor, updating every metric it feeds.
-- KEYS: assign agg day days log state ids0 ids1 ids2 ids3 ids4 other_states...
-- ARGV: visitor value timestamp_ms day log_max_length event_id expire_at_ms log_entry specs...
--   assign  the visitor's slice of the assignment hash    agg, day  the shard's aggregates
--   days    the set of days with a day hash                log       the shard's raw log
--   state   the visitor's slice of the tracked event's per-visitor "count:sum" hash
--   ids0..ids4  the visitor's slice of the event-id window parts, newest first (ids0 is
--     written, all are read)    other_states  state slices of other events ratio metrics read
--   visitor  the packed visitor id    value  the value as sent (string)    day  YYYYMMDD
--   log_max_length  0 = no log    event_id  digest of (visitor, event id), or '' for none
--   expire_at_ms  when ids0 may go    log_entry  the packed log entry, its second character a
--     placeholder for the variant (one base-32 digit)
--   specs  a count, then per metric spec 6 values: name, kind ('conversion' | 'mean' |
--     'count' | 'ratio'), and for a ratio the numerator kind, numerator state KEYS index,
--     denominator kind and denominator index (for other kinds '', 0, '', 0)
-- Returns {code, variant index}: code 1 credited, 0 visitor not exposed, 2 event before the
-- exposure, 3 duplicate event id.
local assigned = redis.call('HGET', KEYS[1], ARGV[1])
if not assigned then return {0, -1} end
local packed = tonumber(assigned)
local v = packed % 32
if tonumber(ARGV[3]) < (packed - v) / 32 then return {2, v} end
if ARGV[6] ~= '' then
  for k = 7, 11 do
    if redis.call('HEXISTS', KEYS[k], ARGV[6]) == 1 then return {3, v} end
  end
  redis.call('HSET', KEYS[7], ARGV[6], 1)
  redis.call('PEXPIREAT', KEYS[7], ARGV[7])
end

local function read_state(key)
  local raw = redis.call('HGET', key, ARGV[1])
  if not raw then return 0, 0 end
  local c, s = string.match(raw, '^([^:]+):(.+)$')
  return tonumber(c), tonumber(s)
end

local function metric_value(kind, c, s)
  if kind == 'conversion' then
    if c > 0 then return 1 else return 0 end
  elseif kind == 'mean' then
    return s
  end
  return c
end

-- the shortest of 15 or 17 significant digits that reads back as the same double
local function fmt(x)
  local text = string.format('%.15g', x)
  if tonumber(text) ~= x then text = string.format('%.17g', x) end
  return text
end

local value = tonumber(ARGV[2])
local c0, s0 = read_state(KEYS[6])
local c1, s1 = c0 + 1, s0 + value
redis.call('HSET', KEYS[6], ARGV[1], c1 .. ':' .. fmt(s1))

-- before/after per-visitor (count, sum) of every state hash a spec names
local before, after = {}, {}
before[6] = {c0, s0}
after[6] = {c1, s1}
local function part(kind, index, when)
  index = tonumber(index)
  if not before[index] then
    local c, s = read_state(KEYS[index])
    before[index] = {c, s}
    after[index] = {c, s}
  end
  local st = (when == 0) and before[index] or after[index]
  return metric_value(kind, st[1], st[2])
end

local function add(field, delta)
  if delta ~= 0 then
    local d = fmt(delta)
    redis.call('HINCRBYFLOAT', KEYS[2], field, d)
    redis.call('HINCRBYFLOAT', KEYS[3], field, d)
  end
end

local n = tonumber(ARGV[9])
for i = 0, n - 1 do
  local base = 10 + i * 6
  local name, kind = ARGV[base], ARGV[base + 1]
  local prefix = name .. ':' .. v .. ':'
  if kind == 'ratio' then
    local x0 = part(ARGV[base + 2], ARGV[base + 3], 0)
    local x1 = part(ARGV[base + 2], ARGV[base + 3], 1)
    local y0 = part(ARGV[base + 4], ARGV[base + 5], 0)
    local y1 = part(ARGV[base + 4], ARGV[base + 5], 1)
    add(prefix .. 'xy', x1 * y1 - x0 * y0)
  else
    local m0 = metric_value(kind, c0, s0)
    local m1 = metric_value(kind, c1, s1)
    if kind == 'mean' then
      -- the exact string the client sent, so sums stay exact to the cent
      if value ~= 0 then
        redis.call('HINCRBYFLOAT', KEYS[2], prefix .. 'sum', ARGV[2])
        redis.call('HINCRBYFLOAT', KEYS[3], prefix .. 'sum', ARGV[2])
      end
    else
      add(prefix .. 'sum', m1 - m0)
    end
    add(prefix .. 'ss', m1 * m1 - m0 * m0)
  end
end
redis.call('SADD', KEYS[4], ARGV[4])

local cap = tonumber(ARGV[5])
if cap > 0 then
  local digit = string.sub('0123456789abcdefghijklmnopqrstuv', v + 1, v + 1)
  local entry = string.sub(ARGV[8], 1, 1) .. digit .. string.sub(ARGV[8], 3)
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', cap, '*', 'd', entry)
end
return {1, v}
