import { ConfigurationError } from '@mppkit/core/client'

// Option checks of the Tempo server factories: a misconfigured server must fail when it is created,
// naming the field, instead of issuing challenges nobody can pay (a `recipient` of `0x1234` once did).

const show = (value: unknown): string => {
  if (value === undefined) return 'nothing'
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value)
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}

const fail = (scope: string, field: string, expected: string, value: unknown): never => {
  throw new ConfigurationError(`${scope}: ${field} must be ${expected}, got ${show(value)}`)
}

const isAddress = (value: unknown) => typeof value === 'string' && /^0x[0-9a-fA-F]{40}$/.test(value)

/** Throws a `ConfigurationError` naming `field` unless `value` is a 0x-prefixed 20-byte address. */
export function checkAddress(scope: string, field: string, value: unknown, what = 'an address'): void {
  if (!isAddress(value)) fail(scope, field, `${what} (0x followed by 40 hex digits)`, value)
}

/** Same, for an optional field. */
export function checkOptionalAddress(scope: string, field: string, value: unknown): void {
  if (value !== undefined) checkAddress(scope, field, value)
}

/** A chain id is a positive safe integer (a `Number(process.env.X)` of a typo is NaN). */
export function checkChainId(scope: string, value: unknown): void {
  if (value === undefined) return
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0)
    fail(scope, 'chainId', 'a positive integer (e.g. 4217 for Tempo mainnet)', value)
}

/** `rpcUrl` is an http(s) or ws(s) URL (or a ready `client` is given). */
export function checkConnection(scope: string, options: { rpcUrl?: unknown; client?: unknown }): void {
  if (options.rpcUrl === undefined && options.client !== undefined) return
  const url = options.rpcUrl
  if (typeof url !== 'string' || url === '')
    throw new ConfigurationError(
      `${scope}: rpcUrl is required (the JSON-RPC URL of a Tempo node), got ${show(url)}`,
    )
  let protocol = ''
  try {
    protocol = new URL(url).protocol
  } catch {}
  if (!/^(https?|wss?):$/.test(protocol)) fail(scope, 'rpcUrl', 'an http(s) URL', url)
}

/** An optional base-unit amount (a non-negative integer bigint). */
export function checkAmount(scope: string, field: string, value: unknown, positive = false): void {
  if (value === undefined) return
  const ok =
    (typeof value === 'bigint' && (positive ? value > 0n : value >= 0n)) ||
    (typeof value === 'string' && (positive ? /^[1-9]\d{0,77}$/ : /^(0|[1-9]\d{0,77})$/).test(value))
  if (!ok) fail(scope, field, `a ${positive ? 'positive' : 'non-negative'} amount in base units`, value)
}

/** An optional non-negative finite number (durations, counts). */
export function checkNumber(scope: string, field: string, value: unknown, integer = false): void {
  if (value === undefined) return
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < 0 ||
    (integer && !Number.isInteger(value))
  )
    fail(scope, field, `a non-negative ${integer ? 'integer' : 'number'}`, value)
}

/** The largest delay a Node.js timer takes: longer ones overflow to 1 ms (a 32-bit signed int of ms). */
export const maxTimerMs = 2_147_483_647

/**
 * An optional timeout or interval in whole milliseconds, from 1 to `max` (default 2^31 − 1, the largest
 * delay a timer takes): 0 turns viem's RPC timeout off (a stalled node holds the request forever), a
 * longer delay overflows the timer and fires it at once (every RPC fails, a settlement timer spins).
 *
 * @example
 * ```ts
 * checkMilliseconds('tempo', 'timeout', options.timeout) // throws ConfigurationError for 0 or 3e9
 * ```
 */
export function checkMilliseconds(
  scope: string,
  field: string,
  value: unknown,
  max = maxTimerMs,
  why = '',
): void {
  if (value === undefined) return
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max)
    fail(scope, field, `a whole number of milliseconds from 1 to ${max}${why}`, value)
}

/**
 * An optional lifetime in whole seconds, from `min` to 1 000 000 000 (the bound the core puts on its own
 * TTLs, which keeps every TTL in ms a safe integer).
 *
 * @example
 * ```ts
 * checkSeconds('tempo session', 'stateTtlSeconds', options.stateTtlSeconds, 900) // throws for 0
 * ```
 */
export function checkSeconds(scope: string, field: string, value: unknown, min: number, why = ''): void {
  if (value === undefined) return
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > 1_000_000_000)
    fail(scope, field, `a whole number of seconds from ${min} to 1000000000${why}`, value)
}

/** An account that can sign (a viem local account). */
export function checkAccount(scope: string, field: string, value: unknown, required: boolean): void {
  if (value === undefined && !required) return
  const account = value as { address?: unknown; signTransaction?: unknown } | undefined
  if (!account || typeof account !== 'object' || !isAddress(account.address))
    fail(
      scope,
      field,
      'a viem account (e.g. privateKeyToAccount(key))',
      value === undefined ? undefined : '…',
    )
}

/** An optional 32-byte hex value. */
export function checkBytes32(scope: string, field: string, value: unknown): void {
  if (value !== undefined && !(typeof value === 'string' && /^0x[0-9a-fA-F]{64}$/.test(value)))
    fail(scope, field, 'a 32-byte hex value (0x followed by 64 hex digits)', value)
}

// Option checks of the Tempo client factories: a payer misconfigured (a `deposit` of 0n, a `mode` of
// 'Push', a `chainId` read from an env var as a string) must fail when it is created, naming the field,
// instead of failing every payment later, or after a deposit is locked in a channel.

/**
 * A viem local account that can sign: an `address` and the signing functions `needs` names
 * (`signTransaction` to pay on chain, `signTypedData` for vouchers and zero-amount proofs). The account
 * itself is never shown in the message.
 *
 * @example
 * ```ts
 * checkSigner('tempo session', 'signer', options.signer, ['signTypedData'], false)
 * ```
 */
export function checkSigner(
  scope: string,
  field: string,
  value: unknown,
  needs: readonly ('signTransaction' | 'signTypedData')[],
  required: boolean,
): void {
  if (value === undefined && !required) return
  const account = value as Record<string, unknown> | undefined
  const missing =
    !account || typeof account !== 'object'
      ? undefined
      : needs.filter((name) => typeof account[name] !== 'function')
  if (!account || typeof account !== 'object' || !isAddress(account.address) || (missing?.length ?? 0) > 0)
    throw new ConfigurationError(
      `${scope}: ${field} must be a viem local account (e.g. privateKeyToAccount(key)) with an address` +
        `${needs.length > 0 ? ` and ${needs.join(' and ')}` : ''}, got ${
          value === undefined
            ? 'nothing'
            : missing?.length
              ? `an account without ${missing.join(', ')}`
              : 'something else'
        }`,
    )
}

/**
 * An http(s) JSON-RPC URL (the clients send over HTTP). The URL is never shown in the message: it may
 * carry credentials (`user:password@`) or an API key in its path.
 *
 * @example
 * ```ts
 * checkHttpUrl('tempo session', 'rpcUrl', options.rpcUrl, true)
 * ```
 */
export function checkHttpUrl(scope: string, field: string, value: unknown, required: boolean): void {
  if (value === undefined && !required) return
  let protocol = ''
  if (typeof value === 'string')
    try {
      protocol = new URL(value).protocol
    } catch {}
  if (!/^https?:$/.test(protocol))
    throw new ConfigurationError(
      `${scope}: ${field} must be an http(s) URL of a Tempo node, got ${
        value === undefined
          ? 'nothing'
          : protocol
            ? `a ${protocol} URL`
            : typeof value === 'string'
              ? 'a string that is not a URL'
              : typeof value
      }`,
    )
}

/**
 * An optional positive base-unit amount given as a bigint (a deposit or top-up of 0n opens or tops up
 * nothing that can pay).
 *
 * @example
 * ```ts
 * checkPositiveBigint('tempo session', 'deposit', options.deposit) // throws for 0n, -5n or 1000
 * ```
 */
export function checkPositiveBigint(scope: string, field: string, value: unknown, what = 'amount'): void {
  if (value !== undefined && !(typeof value === 'bigint' && value > 0n))
    fail(scope, field, `a positive bigint ${what} in base units (e.g. 1_000_000n)`, value)
}

/**
 * An optional positive safe integer (a count or a number of seconds).
 *
 * @example
 * ```ts
 * checkPositiveInteger('tempo session', 'voucherAhead', options.voucherAhead, 'number of requests')
 * ```
 */
export function checkPositiveInteger(scope: string, field: string, value: unknown, what = 'integer'): void {
  if (value !== undefined && !(typeof value === 'number' && Number.isSafeInteger(value) && value > 0))
    fail(scope, field, `a positive whole ${what}`, value)
}

/**
 * An optional value among `choices` (compared exactly: 'Push' is not 'push').
 *
 * @example
 * ```ts
 * checkOneOf('tempo client', 'mode', options.mode, ['pull', 'push'])
 * ```
 */
export function checkOneOf(scope: string, field: string, value: unknown, choices: readonly unknown[]): void {
  if (value !== undefined && !choices.includes(value))
    fail(scope, field, `one of ${choices.map(show).join(', ')}`, value)
}

/**
 * An optional non-empty array of addresses (an empty one would refuse every challenge).
 *
 * @example
 * ```ts
 * checkAddressList('tempo session', 'escrows', options.escrows)
 * ```
 */
export function checkAddressList(scope: string, field: string, value: unknown): void {
  if (value === undefined) return
  if (!Array.isArray(value) || value.length === 0) fail(scope, field, 'a non-empty array of addresses', value)
  ;(value as unknown[]).forEach((item, index) => {
    checkAddress(scope, `${field}[${index}]`, item)
  })
}
