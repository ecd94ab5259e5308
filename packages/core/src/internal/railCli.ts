import * as Challenge from '../Challenge.js'
import { describeError } from './describeError.js'

/** Where `mppkit pay` writes; `confirm` is passed on to rails that ask before paying. */
export type PayIo = {
  stdout: (text: string) => void
  stderr: (text: string) => void
  confirm?: ((question: string) => Promise<boolean>) | undefined
}

/** What a rail package exports as `@mppkit/method-<name>/cli`. */
export type RailCli = { pay: (argv: string[], io?: PayIo) => Promise<number> }

/** Loads `@mppkit/method-<name>/cli`; resolves undefined when that package is not installed. */
export type RailLoader = (name: string) => Promise<RailCli | undefined>

/** Rails tried, in this order, when there is no URL to read offers from (the rail reports the usage error). */
export const knownRails = ['tempo', 'stripe'] as const

// A method name comes from the server's 402: only a plain token may become part of a module specifier.
const railName = /^[a-z][a-z0-9-]{0,31}$/

const usage = `mppkit pay <url> [--rail <name>] [options]

Fetches <url> once unpaid, reads the payment methods its 402 offers, and pays with the first one whose
CLI package is installed (@mppkit/method-<name>), or with --rail <name>. Options are the rail's:
  mppkit pay --rail tempo --help
  mppkit pay --rail stripe --help`

async function askOnTerminal(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises')
  const rl = createInterface({ input: process.stdin, output: process.stderr })
  try {
    return /^y(es)?$/i.test((await rl.question(`${question}? [y/N] `)).trim())
  } finally {
    rl.close()
  }
}

// Header values are the server's: printed without control characters and at a bounded length.
const printable = (value: unknown) =>
  String(value)
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, '?')
    .slice(0, 100)

/** One line for a challenge: what it asks, in its own units, to whom, for which realm. */
export function describeOffer(challenge: Challenge.Challenge): string {
  const { amount, currency, recipient } = challenge.request as Record<string, unknown>
  return (
    `${printable(challenge.method)}/${printable(challenge.intent)} asks ${printable(amount ?? '?')}` +
    `${currency !== undefined ? ` ${printable(currency)}` : ''} (smallest unit)` +
    `${recipient !== undefined ? ` to ${printable(recipient)}` : ''} (realm ${printable(challenge.realm)})`
  )
}

/** Imports `@mppkit/method-<name>/cli` with Node's resolution from this package. */
export const importRail: RailLoader = async (name) => {
  const specifier = `@mppkit/method-${name}/cli`
  try {
    return (await import(specifier)) as RailCli
  } catch (error) {
    const code = (error as { code?: string }).code
    const missing =
      (code === 'ERR_MODULE_NOT_FOUND' || code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') &&
      String((error as Error).message).includes(`@mppkit/method-${name}`)
    if (missing) return undefined
    throw error
  }
}

function splitRail(argv: string[]): { rail: string | undefined; rest: string[] } | string {
  let rail: string | undefined
  const rest: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--rail' || arg.startsWith('--rail=')) {
      const value = arg === '--rail' ? argv[++i] : arg.slice('--rail='.length)
      if (value === undefined || !railName.test(value))
        return `--rail takes a method name such as tempo or stripe, got ${JSON.stringify(value ?? '')}`
      if (rail !== undefined && rail !== value) return `--rail given twice (${rail}, ${value})`
      rail = value
    } else rest.push(arg)
  }
  return { rail, rest }
}

// The request the probe repeats: the flags every rail CLI shares (-X, -d, -H). Values of other flags
// are never URLs, so the first http(s) argument is the URL.
function probeRequest(argv: string[]): { url: string | undefined; init: RequestInit } {
  let url: string | undefined
  let method: string | undefined
  let body: string | undefined
  const headers = new Headers()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    const next = argv[i + 1]
    if ((arg === '-X' || arg === '--method') && next !== undefined) {
      method = next
      i++
    } else if ((arg === '-d' || arg === '--data') && next !== undefined) {
      body = next
      i++
    } else if ((arg === '-H' || arg === '--header') && next !== undefined) {
      const colon = next.indexOf(':')
      if (colon > 0) {
        try {
          headers.append(next.slice(0, colon).trim(), next.slice(colon + 1).trim())
        } catch {}
      }
      i++
    } else if (url === undefined && /^https?:\/\//i.test(arg)) url = arg
  }
  return {
    url,
    init: {
      method: method ?? (body !== undefined ? 'POST' : 'GET'),
      headers,
      ...(body !== undefined ? { body } : {}),
      signal: AbortSignal.timeout(15_000),
    },
  }
}

/**
 * Runs `mppkit pay`: picks the rail from the URL's 402 (the first offered method whose
 * `@mppkit/method-<name>/cli` is installed, or `--rail <name>`) and hands the other arguments to that
 * rail's `pay`, which applies its caps, display, prompt and `--yes`. Returns the exit code (2 on a usage
 * error, 1 when nothing offered can be paid).
 *
 * @example
 * ```ts
 * process.exitCode = await payCommand(['http://localhost:3000/paid', '--rail', 'stripe'])
 * ```
 * @see draft-httpauth-payment-00 §"WWW-Authenticate" (several challenges, one per method)
 */
export async function payCommand(
  argv: string[],
  options: { load?: RailLoader; io?: PayIo } = {},
): Promise<number> {
  const load = options.load ?? importRail
  const io: PayIo = options.io ?? {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
  }
  const confirm = options.io ? options.io.confirm : process.stdin.isTTY ? askOnTerminal : undefined
  const run = async (cli: RailCli, args: string[], name?: string) => {
    // The rails of this repository show what they pay and ask themselves (`@mppkit/core/cli`'s guard; they
    // export `defaults`, Tempo `defaultConfirmAbove`). A rail CLI without them gets both here: what each
    // offer of the chosen method asks is printed, and a terminal is asked unless -y/--yes.
    if (name !== undefined && !('defaults' in cli) && !('defaultConfirmAbove' in cli)) {
      const yes = args.includes('-y') || args.includes('--yes')
      args = args.filter((arg) => arg !== '-y' && arg !== '--yes')
      const asked = challenges.filter((challenge) => challenge.method === name).map(describeOffer)
      for (const line of new Set(asked)) io.stderr(`mppkit pay: ${line}\n`)
      if (!yes && confirm && asked.length > 0 && !(await confirm('mppkit pay: pay this'))) {
        io.stderr('mppkit pay: not paid\n')
        return 1
      }
    }
    return options.io ? cli.pay(args, options.io) : cli.pay(args)
  }
  const split = splitRail(argv)
  if (typeof split === 'string') {
    io.stderr(`mppkit pay: ${split}\n\n${usage}\n`)
    return 2
  }
  const { rail, rest } = split
  const notInstalled = (name: string) => {
    io.stderr(`mppkit pay: the ${name} rail is not installed\nhint: npm install @mppkit/method-${name}\n`)
    return 2
  }
  if (rail === undefined && (rest.includes('--help') || rest.includes('-h'))) {
    io.stdout(`${usage}\n`)
    return 0
  }
  const { url, init } = probeRequest(rest)
  // Without a URL the rail reports the usage error itself.
  if (rail !== undefined && (url === undefined || rest.includes('--help') || rest.includes('-h'))) {
    const cli = await load(rail)
    return cli ? run(cli, rest) : notInstalled(rail)
  }
  let offered: string[] | undefined
  let challenges: Challenge.Challenge[] = []
  if (url !== undefined) {
    let response: Response
    try {
      response = await fetch(url, init)
    } catch (error) {
      io.stderr(`mppkit pay: could not fetch ${url}: ${describeError(error)}\n`)
      return 1
    }
    if (response.status !== 402) {
      // Nothing to pay: the body is what was asked for.
      io.stdout(await response.text())
      if (!response.ok) io.stderr(`mppkit pay: HTTP ${response.status} ${response.statusText}\n`)
      return response.ok ? 0 : 1
    }
    await response.body?.cancel().catch(() => {})
    challenges = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')
    offered = [
      ...new Set(challenges.map((challenge) => challenge.method).filter((name) => railName.test(name))),
    ]
  }
  if (rail !== undefined) {
    if (offered && !offered.includes(rail)) {
      io.stderr(
        `mppkit pay: ${url} does not offer ${rail} (it offers ${offered.join(', ') || 'no payment method'})\n`,
      )
      return 1
    }
    const cli = await load(rail)
    return cli ? run(cli, rest, rail) : notInstalled(rail)
  }
  // No URL: the first installed rail prints its usage error.
  for (const name of offered ?? knownRails) {
    const cli = await load(name)
    if (cli) return run(cli, rest, offered ? name : undefined)
  }
  if (!offered) {
    io.stderr('mppkit pay: no payment method package is installed\nhint: npm install @mppkit/method-tempo\n')
    return 2
  }
  io.stderr(
    offered.length === 0
      ? `mppkit pay: ${url} answered 402 without a Payment challenge\n`
      : `mppkit pay: ${url} offers ${offered.join(', ')}; none of their CLIs is installed\n` +
          `hint: npm install @mppkit/method-${offered[0]}\n`,
  )
  return 1
}
