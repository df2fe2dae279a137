-- Credit one event to one experiment for one visitor, updating every metric it feeds.
-- KEYS[1] assign hash   KEYS[2] agg hash   KEYS[3] day hash   KEYS[4] days set
-- KEYS[5] log stream    KEYS[6] event-id key (dedup)   KEYS[7] state hash of the tracked event
-- KEYS[8..] state hashes of other events that ratio metrics read
-- ARGV[1] visitor   ARGV[2] value (string)   ARGV[3] event time (ms)   ARGV[4] day
-- ARGV[5] event name   ARGV[6] log max length (0 = no log)   ARGV[7] dedup seconds
-- ARGV[8] 1 if an event id is given   ARGV[9] variant keys joined by ','
-- ARGV[10] number of metric specs, then per spec 6 values:
--   name, kind ('conversion' | 'mean' | 'count' | 'ratio'),
--   for a ratio: numerator kind, numerator state KEYS index, denominator kind, denominator index
--   (for other kinds the last four are '', 0, '', 0).
-- Returns {code, variant index}: code 1 credited, 0 visitor not exposed, 2 event before the
-- exposure, 3 duplicate event id.
local assigned = redis.call('HGET', KEYS[1], ARGV[1])
if not assigned then return {0, -1} end
local v, exposed_ms = string.match(assigned, '^(%d+):(%d+)$')
if tonumber(ARGV[3]) < tonumber(exposed_ms) then return {2, tonumber(v)} end
if ARGV[8] == '1' then
  if not redis.call('SET', KEYS[6], '1', 'NX', 'EX', tonumber(ARGV[7])) then
    return {3, tonumber(v)}
  end
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

local function fmt(x) return string.format('%.17g', x) end

local value = tonumber(ARGV[2])
local c0, s0 = read_state(KEYS[7])
local c1, s1 = c0 + 1, s0 + value
redis.call('HSET', KEYS[7], ARGV[1], c1 .. ':' .. fmt(s1))

-- before/after per-visitor (count, sum) of every state hash a spec names
local before, after = {}, {}
before[7] = {c0, s0}
after[7] = {c1, s1}
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

local n = tonumber(ARGV[10])
for i = 0, n - 1 do
  local base = 11 + i * 6
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

local cap = tonumber(ARGV[6])
if cap > 0 then
  local keys = {}
  for k in string.gmatch(ARGV[9], '[^,]+') do keys[#keys + 1] = k end
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', cap, '*', 'type', 'event', 'visitor', ARGV[1],
    'variant', keys[tonumber(v) + 1], 'ts', ARGV[3], 'event', ARGV[5], 'value', ARGV[2])
end
return {1, tonumber(v)}
