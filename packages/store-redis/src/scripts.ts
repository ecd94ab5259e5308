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

/**
 * KEYS[1] = key; ARGV[1] = delta, ARGV[2] = TTL in ms, ARGV[3] = min or '', ARGV[4] = max or ''
 * (all integers as canonical decimal strings). Returns { applied (0/1), value as a decimal string }.
 */
export const incrementScript = `
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
