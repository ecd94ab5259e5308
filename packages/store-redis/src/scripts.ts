/**
 * Lua scripts run atomically by Redis (a script runs to completion before any other command).
 *
 * Counters are decimal strings of any length. Lua numbers are IEEE doubles, exact only up to 2^53, so
 * the increment script never converts a counter to a number: it adds, subtracts and compares decimal
 * digit strings, which keeps wei-sized balances (10^18 and more) exact.
 */

/** Error prefix the increment script returns when a key holds something other than a decimal integer. */
export const notIntegerMarker = 'MPPKIT_NOT_INTEGER'

/**
 * KEYS[1] = key; ARGV[1] = expected, ARGV[2] = next, ARGV[3] = TTL in ms.
 * Returns 1 when the swap happened. (The `expected = absent` case uses `SET NX PX` instead.)
 */
export const compareAndSetScript = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`

/** Lua helpers on decimal integers held as (negative, digits), shared by the scripts below. */
const decimalFunctions = `
-- A decimal integer is held as (negative, digits): digits has no leading zero except '0' itself.
local function parse(text)
  local negative = false
  if string.sub(text, 1, 1) == '-' then
    negative = true
    text = string.sub(text, 2)
  end
  if not string.match(text, '^[0-9]+$') then return nil, nil end
  text = string.gsub(text, '^0+', '')
  if text == '' then return false, '0' end
  return negative, text
end

-- Compares magnitudes byte by byte (string '<' in Lua follows the C locale collation, so avoid it).
local function compareDigits(a, b)
  if #a ~= #b then
    if #a < #b then return -1 end
    return 1
  end
  for index = 1, #a do
    local x, y = string.byte(a, index), string.byte(b, index)
    if x ~= y then
      if x < y then return -1 end
      return 1
    end
  end
  return 0
end

local function addDigits(a, b)
  local out = {}
  local i, j, carry = #a, #b, 0
  while i > 0 or j > 0 or carry > 0 do
    local digit = carry
    if i > 0 then digit = digit + string.byte(a, i) - 48; i = i - 1 end
    if j > 0 then digit = digit + string.byte(b, j) - 48; j = j - 1 end
    if digit >= 10 then digit = digit - 10; carry = 1 else carry = 0 end
    out[#out + 1] = string.char(48 + digit)
  end
  return string.reverse(table.concat(out))
end

-- a - b for magnitudes with a >= b.
local function subtractDigits(a, b)
  local out = {}
  local i, j, borrow = #a, #b, 0
  while i > 0 do
    local digit = string.byte(a, i) - 48 - borrow
    if j > 0 then digit = digit - (string.byte(b, j) - 48); j = j - 1 end
    if digit < 0 then digit = digit + 10; borrow = 1 else borrow = 0 end
    out[#out + 1] = string.char(48 + digit)
    i = i - 1
  end
  local text = string.gsub(string.reverse(table.concat(out)), '^0+', '')
  if text == '' then return '0' end
  return text
end

local function add(an, a, bn, b)
  if an == bn then
    local sum = addDigits(a, b)
    return an and sum ~= '0', sum
  end
  local order = compareDigits(a, b)
  if order == 0 then return false, '0' end
  if order > 0 then return an, subtractDigits(a, b) end
  return bn, subtractDigits(b, a)
end

local function compare(an, a, bn, b)
  if an ~= bn then
    if an then return -1 end
    return 1
  end
  local order = compareDigits(a, b)
  if an then return -order end
  return order
end

local function format(negative, digits)
  if negative and digits ~= '0' then return '-' .. digits end
  return digits
end
`

/**
 * KEYS[1] = key; ARGV[1] = delta, ARGV[2] = TTL in ms, ARGV[3] = min or '', ARGV[4] = max or ''
 * (all integers as canonical decimal strings). Returns { applied (0/1), value as a decimal string }.
 */
export const incrementScript = `${decimalFunctions}
local currentNegative, current = false, '0'
local raw = redis.call('GET', KEYS[1])
if raw then
  currentNegative, current = parse(raw)
  if current == nil then return redis.error_reply('${notIntegerMarker} counter holds a non-integer value') end
end
local deltaNegative, delta = parse(ARGV[1])
local nextNegative, next = add(currentNegative, current, deltaNegative, delta)
if ARGV[3] ~= '' then
  local minNegative, min = parse(ARGV[3])
  if compare(nextNegative, next, minNegative, min) < 0 then return { 0, format(currentNegative, current) } end
end
if ARGV[4] ~= '' then
  local maxNegative, max = parse(ARGV[4])
  if compare(nextNegative, next, maxNegative, max) > 0 then return { 0, format(currentNegative, current) } end
end
local value = format(nextNegative, next)
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return { 1, value }
`

/**
 * `Store.atomic`: KEYS = the distinct keys of the batch; ARGV[1] = number of steps, then 6 ARGV per step:
 * op, key index, and 4 operands:
 * - `k` check: equals present ('1'/'0'), equals
 * - `c` compareAndSet: expected present ('1'/'0'), expected, next, TTL ms
 * - `i` increment: delta, TTL ms, min or '', max or ''
 * - `s` setIfAtLeast: value, TTL ms, counter key index, atLeast
 * Evaluates every step first against the keys plus the batch's own pending writes, then applies the
 * writes, so a batch that fails (a non-integer counter) writes nothing. Returns 4 entries per step that
 * ran: applied (0/1), present (0/1), value ('' when absent), and 0 (reserved).
 */
export const atomicScript = `${decimalFunctions}
local pending, order = {}, {}
local function read(key)
  local write = pending[key]
  if write then return write[1] end
  local value = redis.call('GET', key)
  if value == false then return nil end
  return value
end
local function store(key, value, ttl)
  if not pending[key] then order[#order + 1] = key end
  pending[key] = { value, ttl }
end
local function counter(key)
  local raw = read(key)
  if raw == nil then return false, '0' end
  local negative, digits = parse(raw)
  if digits == nil then return nil end
  return negative, digits
end
local out = {}
local completed = true
local count = tonumber(ARGV[1])
for step = 1, count do
  local base = 1 + (step - 1) * 6
  local op, key = ARGV[base + 1], KEYS[tonumber(ARGV[base + 2])]
  local a, b, c, d = ARGV[base + 3], ARGV[base + 4], ARGV[base + 5], ARGV[base + 6]
  local stop = false
  if op == 'k' or op == 'c' then
    local value = read(key)
    local matches
    if a == '1' then matches = (value == b) else matches = (value == nil) end
    if op == 'c' and matches then
      store(key, c, d)
      value = c
    end
    local present = 1
    if value == nil then present = 0; value = '' end
    out[#out + 1] = matches and 1 or 0
    out[#out + 1] = present
    out[#out + 1] = value
    out[#out + 1] = 0
    stop = not matches
  elseif op == 'i' then
    local currentNegative, current = counter(key)
    if current == nil then return redis.error_reply('${notIntegerMarker} counter holds a non-integer value') end
    local deltaNegative, delta = parse(a)
    local nextNegative, next = add(currentNegative, current, deltaNegative, delta)
    local inBounds = true
    if c ~= '' then
      local minNegative, min = parse(c)
      if compare(nextNegative, next, minNegative, min) < 0 then inBounds = false end
    end
    if d ~= '' then
      local maxNegative, max = parse(d)
      if compare(nextNegative, next, maxNegative, max) > 0 then inBounds = false end
    end
    if inBounds then
      local value = format(nextNegative, next)
      store(key, value, b)
      out[#out + 1] = 1
      out[#out + 1] = 1
      out[#out + 1] = value
    else
      out[#out + 1] = 0
      out[#out + 1] = 1
      out[#out + 1] = format(currentNegative, current)
    end
    out[#out + 1] = 0
    stop = not inBounds
  elseif op == 's' then
    local haveNegative, have = counter(KEYS[tonumber(c)])
    if have == nil then return redis.error_reply('${notIntegerMarker} counter holds a non-integer value') end
    local atLeastNegative, atLeast = parse(d)
    local applied = compare(haveNegative, have, atLeastNegative, atLeast) >= 0
    if applied then store(key, a, b) end
    out[#out + 1] = applied and 1 or 0
    out[#out + 1] = 0
    out[#out + 1] = ''
    out[#out + 1] = 0
  else
    return redis.error_reply('ERR unknown atomic step')
  end
  if stop then
    completed = false
    break
  end
end
for _, key in ipairs(order) do
  redis.call('SET', key, pending[key][1], 'PX', pending[key][2])
end
if completed then table.insert(out, 1, 1) else table.insert(out, 1, 0) end
return out
`
