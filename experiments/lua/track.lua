-- Credit one event to one experiment for one visitor, updating every metric it feeds.
-- KEYS: assign agg day days log state ids0 ids1 ids2 ids3 ids4 more_keys...
-- ARGV: visitor value timestamp_ms day log_max_length event_id expire_at_ms log_entry dimensions specs...
--   assign  the visitor's slice of the assignment hash    agg, day  the shard's aggregates
--   days    the set of days with a day hash                log       the shard's raw log
--   state   the visitor's slice of the tracked event's per-visitor "count:sum" hash
--   ids0..ids4  the visitor's slice of the event-id window parts, newest first (ids0 is
--     written, all are read)    more_keys  the shard's per-dimension aggregates (ARGV
--     dimensions of them, in the definition's order), then the state slices of other events
--     that ratio metrics read
--   visitor  the packed visitor id    value  the value as sent (string)    day  YYYYMMDD
--   log_max_length  0 = no log    event_id  digest of (visitor, event id), or '' for none
--   expire_at_ms  when ids0 may go    log_entry  the packed log entry, its second character a
--     placeholder for the variant (one base-32 digit)
--   dimensions  how many dimension aggregate keys follow the fixed KEYS
--   specs  a count, then per metric spec 9 values: name, kind ('conversion' | 'mean' |
--     'count' | 'ratio'), cap ('' for none), and for a ratio the numerator kind, KEYS index
--     and cap, the denominator kind, KEYS index and cap (for other kinds '', 0, '' twice)
-- The assignment value is "exposed_ms * 32 + variant", followed, when the experiment has
-- dimensions, by ":" and one character per dimension: the visitor's slice of that dimension.
-- A cap bounds each visitor's total: the aggregates move by the change of the capped total.
-- Returns {code, variant index}: code 1 credited, 0 visitor not exposed, 2 event before the
-- exposure, 3 duplicate event id.
local assigned = redis.call('HGET', KEYS[1], ARGV[1])
if not assigned then return {0, -1} end
local number, slices = string.match(assigned, '^(%d+):?(.*)$')
local packed = tonumber(number)
local v = packed % 32
if tonumber(ARGV[3]) < (packed - v) / 32 then return {2, v} end
if ARGV[6] ~= '' then
  for k = 7, 11 do
    if redis.call('HEXISTS', KEYS[k], ARGV[6]) == 1 then return {3, v} end
  end
  redis.call('HSET', KEYS[7], ARGV[6], 1)
  redis.call('PEXPIREAT', KEYS[7], ARGV[7])
end
local dimensions = tonumber(ARGV[9])

local function read_state(key)
  local raw = redis.call('HGET', key, ARGV[1])
  if not raw then return 0, 0 end
  local c, s = string.match(raw, '^([^:]+):(.+)$')
  return tonumber(c), tonumber(s)
end

local function metric_value(kind, c, s, cap)
  local x = c
  if kind == 'conversion' then
    if c > 0 then return 1 else return 0 end
  elseif kind == 'mean' then
    x = s
  end
  if cap ~= '' then
    local limit = tonumber(cap)
    if x > limit then x = limit end
  end
  return x
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
local function part(kind, index, cap, when)
  index = tonumber(index)
  if not before[index] then
    local c, s = read_state(KEYS[index])
    before[index] = {c, s}
    after[index] = {c, s}
  end
  local st = (when == 0) and before[index] or after[index]
  return metric_value(kind, st[1], st[2], cap)
end

-- text: the increment as written (the client's exact value text for uncapped sums)
local function add_text(field, text)
  redis.call('HINCRBYFLOAT', KEYS[2], field, text)
  redis.call('HINCRBYFLOAT', KEYS[3], field, text)
  for d = 1, dimensions do
    local slice = string.sub(slices, d, d)
    redis.call('HINCRBYFLOAT', KEYS[11 + d], slice .. ':' .. field, text)
  end
end

local function add(field, delta)
  if delta ~= 0 then add_text(field, fmt(delta)) end
end

local n = tonumber(ARGV[10])
for i = 0, n - 1 do
  local base = 11 + i * 9
  local name, kind, cap = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local prefix = name .. ':' .. v .. ':'
  if kind == 'ratio' then
    local x0 = part(ARGV[base + 3], ARGV[base + 4], ARGV[base + 5], 0)
    local x1 = part(ARGV[base + 3], ARGV[base + 4], ARGV[base + 5], 1)
    local y0 = part(ARGV[base + 6], ARGV[base + 7], ARGV[base + 8], 0)
    local y1 = part(ARGV[base + 6], ARGV[base + 7], ARGV[base + 8], 1)
    add(prefix .. 'xy', x1 * y1 - x0 * y0)
  else
    local m0 = metric_value(kind, c0, s0, cap)
    local m1 = metric_value(kind, c1, s1, cap)
    if kind == 'mean' and cap == '' then
      -- the exact string the client sent, so sums stay exact to the cent
      if value ~= 0 then add_text(prefix .. 'sum', ARGV[2]) end
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
