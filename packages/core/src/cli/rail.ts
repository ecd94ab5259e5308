import { receipt as receiptOf } from '../client/Client.js'
import { describeError } from '../internal/describeError.js'
import type * as Method from '../Method.js'
import { baseUnits, type OptionSpec, type Parsed, parseArgs, UsageError } from './args.js'
import type { Limits } from './guard.js'
import type { Io } from './io.js'

/** Options every paying rail CLI takes: the request (`-X`, `-d`, `-H`), the caps, `--yes` and `--help`. */
export const commonOptions = {
  '-X': { name: 'method', value: true },
  '--method': { name: 'method', value: true },
  '-d': { name: 'data', value: true },
  '--data': { name: 'data', value: true },
  '-H': { name: 'header', value: true, repeat: true },
  '--header': { name: 'header', value: true, repeat: true },
  '--max-amount': { name: 'maxAmount', value: true },
  '-y': { name: 'yes', value: false },
  '--yes': { name: 'yes', value: false },
  '-h': { name: 'help', value: false },
  '--help': { name: 'help', value: false },
} as const satisfies OptionSpec

/** `--max-deposit`, for rails whose CLI opens sessions. */
export const depositOptions = {
  '--max-deposit': { name: 'maxDeposit', value: true },
} as const satisfies OptionSpec

/** The rail's defaults, per quote, in base units; `undefined` where no safe default is known. */
export type Defaults = {
  cap(quote: Method.Quote): bigint | undefined
  depositCap?(quote: Method.Quote): bigint | undefined
  confirmAbove(quote: Method.Quote): bigint | undefined
}

/** A parsed paying command: the URL, the request to repeat, the caps, the rail's own options. */
export type Command = {
  url: string
  init: RequestInit & { method: string; headers: Headers }
  limits: Limits
  args: Parsed
}

/**
 * Parses a rail CLI's command line: the rail's `options` plus {@link commonOptions}. Unknown options, a
 * second URL, a non-http(s) URL, a malformed `-H` or a cap that is not base units are a `UsageError`
 * (exit 2); `--help` resolves `undefined`. The caps are the flags' values or the rail's defaults, and
 * `--yes` turns the question off.
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
  const [url, extra] = args.positionals
  if (extra !== undefined)
    throw new UsageError(`one <url> only, got also ${JSON.stringify(extra.slice(0, 64))}`)
  if (url === undefined) throw new UsageError('missing <url>')
  if (!/^https?:\/\//i.test(url) || !URL.canParse(url))
    throw new UsageError(`<url> must be an http(s) URL, got ${JSON.stringify(url.slice(0, 64))}`)
  const maxAmount = baseUnits('--max-amount', args.values.get('maxAmount'))
  const maxDeposit = baseUnits('--max-deposit', args.values.get('maxDeposit'))
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
      maxAmount: (quote) => maxAmount ?? defaults.cap(quote),
      maxDeposit: (quote) => maxDeposit ?? defaults.depositCap?.(quote) ?? defaults.cap(quote),
      confirmAbove: (quote) => (yes ? undefined : defaults.confirmAbove(quote)),
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
    io.stderr(`mppkit pay: ${describeError(error)}\n`)
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
  return reason.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?').slice(0, 300)
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
  if (receipt) io.stderr(`receipt: ${JSON.stringify(receipt, null, 2)}\n`)
  if (!response.ok) io.stderr(`mppkit pay: HTTP ${response.status} ${response.statusText}\n`)
  return response.ok ? 0 : 1
}
