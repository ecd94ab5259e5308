import { ConfigurationError } from '../Errors.js'

/**
 * An exact fraction.
 *
 * @example
 * ```ts
 * const thirdOfACent: Rational = { numerator: 1n, denominator: 300n }
 * ```
 */
export type Rational = { readonly numerator: bigint; readonly denominator: bigint }

/**
 * An amount in the cross-rail unit: a number (read as its shortest decimal), a bigint, or a fraction.
 *
 * @example
 * ```ts
 * const prices: Value[] = [0.25, 3n, { numerator: 1n, denominator: 3n }]
 * ```
 */
export type Value = number | bigint | Rational

/**
 * Zero, exactly.
 *
 * @example
 * ```ts
 * Value.greater(price, Value.zero)
 * ```
 */
export const zero: Rational = { numerator: 0n, denominator: 1n }

const decimal = /^(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/

function gcd(a: bigint, b: bigint): bigint {
  let [x, y] = [a < 0n ? -a : a, b]
  while (y !== 0n) [x, y] = [y, x % y]
  return x
}

function reduced(numerator: bigint, denominator: bigint): Rational {
  const divisor = gcd(numerator, denominator)
  return divisor <= 1n
    ? { numerator, denominator }
    : { numerator: numerator / divisor, denominator: denominator / divisor }
}

/**
 * Reads a value exactly, or returns `undefined` when it is not a finite non-negative amount (NaN,
 * Infinity, a negative number, a zero or negative denominator, a promise…).
 *
 * @example
 * ```ts
 * from(0.1) // { numerator: 1n, denominator: 10n }: 0.1 as written, not its binary approximation
 * ```
 */
export function from(value: unknown): Rational | undefined {
  if (typeof value === 'bigint') return value < 0n ? undefined : { numerator: value, denominator: 1n }
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) return undefined
    const parts = decimal.exec(String(value))
    if (!parts) return undefined
    const [, whole = '0', fraction = '', exponent = '0'] = parts
    const shift = Number(exponent) - fraction.length
    const digits = BigInt(whole + fraction)
    return shift >= 0 ? reduced(digits * 10n ** BigInt(shift), 1n) : reduced(digits, 10n ** BigInt(-shift))
  }
  if (typeof value === 'object' && value !== null && 'numerator' in value && 'denominator' in value) {
    const { numerator, denominator } = value as Rational
    if (typeof numerator !== 'bigint' || typeof denominator !== 'bigint') return undefined
    if (numerator < 0n || denominator <= 0n) return undefined
    return reduced(numerator, denominator)
  }
  return undefined
}

/**
 * Like {@link from}, for configuration: an invalid value is a `ConfigurationError`.
 *
 * @example
 * ```ts
 * required(Number.NaN, 'crossRail.budget') // throws ConfigurationError
 * ```
 */
export function required(value: unknown, what: string): Rational {
  const rational = from(value)
  if (!rational)
    throw new ConfigurationError(`${what} must be a finite non-negative number, bigint or fraction`)
  return rational
}

/**
 * a + b, exactly.
 *
 * @example
 * ```ts
 * add(from(0.1)!, from(0.2)!) // { numerator: 3n, denominator: 10n }
 * ```
 */
export function add(a: Rational, b: Rational): Rational {
  return reduced(a.numerator * b.denominator + b.numerator * a.denominator, a.denominator * b.denominator)
}

/**
 * a − b, exactly (callers only subtract what they added).
 *
 * @example
 * ```ts
 * subtract(from(0.3)!, from(0.1)!) // { numerator: 1n, denominator: 5n }
 * ```
 */
export function subtract(a: Rational, b: Rational): Rational {
  return reduced(a.numerator * b.denominator - b.numerator * a.denominator, a.denominator * b.denominator)
}

/**
 * a > b.
 *
 * @example
 * ```ts
 * greater(from(0.3)!, from(0.1)!) // true
 * ```
 */
export function greater(a: Rational, b: Rational): boolean {
  return a.numerator * b.denominator > b.numerator * a.denominator
}

/**
 * A short decimal rendering for messages (exact when the fraction terminates within 6 digits).
 *
 * @example
 * ```ts
 * format({ numerator: 1n, denominator: 4n }) // '0.25'
 * ```
 */
export function format(value: Rational): string {
  const scaled = (value.numerator * 1_000_000n) / value.denominator
  const whole = scaled / 1_000_000n
  const fraction = (scaled % 1_000_000n).toString().padStart(6, '0').replace(/0+$/, '')
  const exact = (value.numerator * 1_000_000n) % value.denominator === 0n
  return `${exact ? '' : '~'}${whole}${fraction ? `.${fraction}` : ''}`
}
