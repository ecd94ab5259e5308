import { receipt as receiptOf } from '../client/Client.js'
import { same } from '../client/Currency.js'
import { describeError } from '../internal/describeError.js'
import type * as Method from '../Method.js'
import { baseUnits, type OptionSpec, type Parsed, parseArgs, UsageError } from './args.js'
import { type Limits, printable, printableJson } from './guard.js'
import type { Io } from './io.js'

/**
 * Options every paying rail CLI takes: the request (`-X`, `-d`, `-H`), the caps and the currency they are
 * in (`--currency`: offers in any other currency are refused), `--yes` and `--help`.
 */
export const commonOptions = {
  '-X': { name: 'method', value: true },
  '--method': { name: 'method', value: true },
  '-d': { name: 'data', value: true },
  '--data': { name: 'data', value: true },
  '-H': { name: 'header', value: true, repeat: true },
  '--header': { name: 'header', value: true, repeat: true },
  '--max-amount': { name: 'maxAmount', value: true },
  '--currency': { name: 'currency', value: true },
  '-y': { name: 'yes', value: false },
  '--yes': { name: 'yes', value: false },
  '-h': { name: 'help', value: false },
  '--help': { name: 'help', value: false },
} as const satisfies OptionSpec

/** `--max-deposit`, for rails whose CLI opens sessions. */
export const depositOptions = {
  '--max-deposit': { name: 'maxDeposit', value: true },
} as const satisfies OptionSpec

/**
 * The rail's defaults, per quote, in base units; `undefined` where no safe default is known.
 *
 * @example
 * ```ts
 * const defaults: Defaults = { cap: () => 1_000_000n, confirmAbove: () => 100_000n, uniformUnits: false }
 * ```
 */
export type Defaults = {
  cap(quote: Method.Quote): bigint | undefined
  depositCap?(quote: Method.Quote): bigint | undefined
  confirmAbove(quote: Method.Quote): bigint | undefined
  /**
   * `false` when the rail's currencies have base units of different sizes (Solana mints with 0 to 9
   * decimals, Stripe's ISO 4217 minor units): a cap given in base units (`--max-amount`, `--max-deposit`)
   * is then refused without `--currency` (250000 is 0.25 of a 6-decimal mint but 250,000 whole tokens of
   * a 0-decimal one), and refusals suggest the two together. Absent or `true`: every currency the rail
   * pays has the same base unit (Tempo's TIP-20s, 6 decimals; Lightning's sat), and a bare cap applies
   * to any of them.
   */
  uniformUnits?: boolean | undefined
  /**
   * The rail's spelling of a `--currency` value, as its quotes name currencies (Stripe's are lower case),
   * or a `UsageError` for a value that names none of its currencies. Absent: the value as given.
   */
  currencyId?(given: string): string
}

/** A parsed paying command: the URL, the request to repeat, the caps, the rail's own options. */
export type Command = {
  url: string
  init: RequestInit & { method: string; headers: Headers }
  limits: Limits
  args: Parsed
}

/**
 * The `<url>` of a paying command line, its only positional. Otherwise a `UsageError` that shows no
 * positional's value, only how many there were and their lengths: a key given without its flag
 * (`mppkit pay <url> 0x4c08…`, `sk_live_…`) must not be printed back to the terminal or a CI log. A URL
 * with credentials (`user:password@`) is refused the same way.
 *
 * @example
 * ```ts
 * commandUrl(['https://api.example/paid']) // 'https://api.example/paid'
 * ```
 */
export function commandUrl(positionals: readonly string[]): string {
  const [url, ...extra] = positionals
  if (extra.length > 0) {
    const lengths = extra.map((arg) => arg.length).join(', ')
    throw new UsageError(
      extra.length === 1
        ? `one <url> only, got 1 more argument (${lengths} characters; not shown, in case it is a secret)`
        : `one <url> only, got ${extra.length} more arguments (${lengths} characters; not shown, in case they are secrets)`,
    )
  }
  if (url === undefined) throw new UsageError('missing <url>')
  if (!/^https?:\/\//i.test(url) || !URL.canParse(url)) {
    // A scheme is safe to name (`ftp://…`); the rest may be a secret given in place of the URL.
    const scheme = /^([a-z][a-z0-9+.-]{0,15}):\/\//i.exec(url)?.[1]
    throw new UsageError(
      scheme !== undefined && !/^https?$/i.test(scheme)
        ? `<url> must be an http(s) URL, not a ${scheme}:// URL`
        : `<url> must be an http(s) URL; the ${url.length} characters given are not one (not shown, in case they are a secret)`,
    )
  }
  // `https://user:password@host`: fetch refuses it with an error that quotes the whole URL, and every line
  // naming the URL would print the password. Refused before anything is sent, never shown.
  const parsed = new URL(url)
  if (parsed.username !== '' || parsed.password !== '')
    throw new UsageError('<url> must not carry credentials (user:password@); not shown')
  return url
}

// `--currency`'s value as the rail spells currencies. Never echoed when it names none: a key given in its
// place must not reach the terminal.
function currencyOf(value: string | undefined, defaults: Defaults): string | undefined {
  if (value === undefined) return undefined
  if (!/^[\x21-\x7e]{1,128}$/.test(value))
    throw new UsageError(
      `--currency takes a currency id (e.g. usd, or a token's address); the ${value.length} characters given are not one (not shown)`,
    )
  return defaults.currencyId ? defaults.currencyId(value) : value
}

/**
 * Parses a rail CLI's command line: the rail's `options` plus {@link commonOptions}. Unknown options, a
 * second URL, a non-http(s) URL, a malformed `-H` or a cap that is not base units are a `UsageError`
 * (exit 2); `--help` resolves `undefined`. The caps are the flags' values or the rail's defaults, and
 * `--yes` turns the question off. With `--currency`, only offers in that currency are paid and the flags'
 * caps are in its base units; a rail whose currencies differ in base units (`uniformUnits: false`)
 * refuses `--max-amount` / `--max-deposit` without it (exit 2).
 *
 * @example
 * ```ts
 * const command = parseCommand(argv, { '--rpc-url': { name: 'rpcUrl', value: true } }, defaults)
 * ```
 */
export function parseCommand(
  argv: readonly string[],
  options: OptionSpec,
  defaults: Defaults,
): Command | undefined {
  const args = parseArgs(argv, { ...options, ...commonOptions })
  if (args.switches.has('help')) return undefined
  const url = commandUrl(args.positionals)
  const maxAmount = baseUnits('--max-amount', args.values.get('maxAmount'))
  const maxDeposit = baseUnits('--max-deposit', args.values.get('maxDeposit'))
  const currency = currencyOf(args.values.get('currency'), defaults)
  if (defaults.uniformUnits === false && currency === undefined) {
    const flag =
      maxAmount !== undefined ? '--max-amount' : maxDeposit !== undefined ? '--max-deposit' : undefined
    if (flag !== undefined)
      throw new UsageError(
        `${flag} counts base units, whose size differs between this rail's currencies: ` +
          `name the currency it is in with --currency <id>`,
      )
  }
  // Given with --currency, the caps are in its base units: they apply to its offers only (the guard
  // refuses every other currency first).
  const given = (quote: Method.Quote, cap: bigint | undefined) =>
    currency === undefined || same(quote.currency, currency) ? cap : undefined
  const yes = args.switches.has('yes')
  const headers = new Headers()
  for (const header of args.lists.get('header') ?? []) {
    const colon = header.indexOf(':')
    // The value is never echoed: it is often a credential (`Authorization: Bearer …`).
    if (colon <= 0) throw new UsageError('-H takes "Name: value" (a value without ":" was given; not shown)')
    const name = header.slice(0, colon).trim()
    try {
      headers.append(name, header.slice(colon + 1).trim())
    } catch {
      throw new UsageError(`-H ${JSON.stringify(name.slice(0, 64))}: the name or value is not a valid header`)
    }
  }
  const data = args.values.get('data')
  const method = args.values.get('method') ?? (data !== undefined ? 'POST' : 'GET')
  return {
    url,
    init: { method, headers, ...(data !== undefined ? { body: data } : {}) },
    args,
    limits: {
      maxAmount: (quote) => given(quote, maxAmount) ?? defaults.cap(quote),
      maxDeposit: (quote) => given(quote, maxDeposit) ?? defaults.depositCap?.(quote) ?? defaults.cap(quote),
      confirmAbove: (quote) => (yes ? undefined : defaults.confirmAbove(quote)),
      ...(currency !== undefined ? { currency } : {}),
      ...(defaults.uniformUnits === false ? { uniformUnits: false } : {}),
    },
  }
}

/**
 * Runs a rail CLI's body with the shared exit codes: a `UsageError` prints the message and the usage
 * (2), any other error one line naming its cause (1), never a stack trace.
 *
 * @example
 * ```ts
 * return runCommand(io, usage, async () => { … return 0 })
 * ```
 */
export async function runCommand(io: Io, usage: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body()
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`mppkit pay: ${error.message}\n\n${usage}\n`)
      return 2
    }
    // An error's message may carry a server's words (a problem detail, an RPC's answer).
    io.stderr(`mppkit pay: ${printable(describeError(error), 1000)}\n`)
    return 1
  }
}

// The server's words, bounded and without control characters.
function unpaidReason(text: string): string {
  let reason = 'no challenge this client can pay was offered'
  try {
    const body = JSON.parse(text) as { detail?: unknown; title?: unknown; reason?: unknown }
    const said = body.detail ?? body.title
    if (typeof said === 'string' && said) reason = said
    if (typeof body.reason === 'string' && body.reason) reason += ` (${body.reason})`
  } catch {}
  return printable(reason, 300)
}

/**
 * Prints a paid response: the body on stdout, the decoded `Payment-Receipt` on stderr, and the status
 * when it is not a success. Returns the exit code (0 on a 2xx, else 1; a 402 says it is still unpaid).
 *
 * @example
 * ```ts
 * return printResponse(await client.fetch(url, init), io)
 * ```
 */
export async function printResponse(response: Response, io: Io): Promise<number> {
  const text = await response.text()
  if (response.status === 402) {
    io.stderr(`mppkit pay: still asks for payment (402): ${unpaidReason(text)}\n`)
    return 1
  }
  io.stdout(text)
  const receipt = receiptOf(response)
  if (receipt) io.stderr(`receipt: ${printableJson(receipt, 2)}\n`)
  if (!response.ok) io.stderr(`mppkit pay: HTTP ${response.status} ${printable(response.statusText)}\n`)
  return response.ok ? 0 : 1
}
