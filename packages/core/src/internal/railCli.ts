import * as Challenge from '../Challenge.js'
import { baseUnits, type OptionSpec, parseArgs, UsageError } from '../cli/args.js'
import { printable } from '../cli/guard.js'
import { type Command, commonOptions, parseCommand } from '../cli/rail.js'
import { same } from '../client/Currency.js'
import { describeError } from './describeError.js'

/** Where `mppkit pay` writes; `confirm` is passed on to rails that ask before paying. */
export type PayIo = {
  stdout: (text: string) => void
  stderr: (text: string) => void
  confirm?: ((question: string) => Promise<boolean>) | undefined
}

/**
 * What a rail package exports as `@mppkit/method-<name>/cli`: `pay`, and `options`, its option spec, with
 * which `mppkit pay --rail <name>` reads the URL and request exactly as the rail will. `pay` reads
 * `commonOptions` (`--max-amount`, `--currency`, `--yes`, …) as `parseCommand` does: for a rail that shows
 * and asks nothing itself (no `defaults`), `mppkit pay` confirms the offers and then passes what was
 * confirmed as `--max-amount` and `--currency`, which `pay` must not exceed.
 */
export type RailCli = {
  pay: (argv: string[], io?: PayIo) => Promise<number>
  options?: OptionSpec | undefined
  /** `mppkit reclaim`: takes a session deposit back without the server (Tempo's forced close). */
  reclaim?: ((argv: string[], io?: PayIo) => Promise<number>) | undefined
  /**
   * `mppkit close`: closes the sessions `mppkit pay` kept in a file (Tempo: `--channel-file`, Lightning:
   * `--session-file`), without paying again.
   */
  close?: ((argv: string[], io?: PayIo) => Promise<number>) | undefined
}

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
  mppkit pay --rail lightning --help
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

/** One line for a challenge: what it asks, in its own units, to whom, for which realm. */
export function describeOffer(challenge: Challenge.Challenge): string {
  const { amount, currency, recipient, suggestedDeposit, depositAmount } = challenge.request as Record<
    string,
    unknown
  >
  // A session's deposit (Tempo's `suggestedDeposit`, Lightning's `depositAmount`) is money it moves too.
  const deposit = suggestedDeposit ?? depositAmount
  return (
    `${printable(challenge.method)}/${printable(challenge.intent)} asks ${printable(amount ?? '?')}` +
    `${currency !== undefined ? ` ${printable(currency)}` : ''} (smallest unit)` +
    `${deposit !== undefined ? `, deposit ${printable(deposit)}` : ''}` +
    `${recipient !== undefined ? ` to ${printable(recipient)}` : ''} (realm ${printable(challenge.realm)})`
  )
}

/** The cap a confirmation of `offers` gives a rail: their currency and largest amount, or why none can be given. */
function confirmedCaps(
  offers: readonly Challenge.Challenge[],
): { currency: string; maxAmount: bigint } | { refused: string } {
  const currencies: string[] = []
  let maxAmount = 0n
  for (const offer of offers) {
    // `--max-amount` caps one payment of a charge; a session (or any other intent) moves more than its
    // amount (a deposit, top-ups), which no cap passed here would hold.
    if (offer.intent !== 'charge')
      return {
        refused: `a ${printable(offer.intent, 32)} offer pays more than its amount (a deposit, top-ups), which --max-amount does not cap`,
      }
    const { amount, currency } = offer.request as Record<string, unknown>
    // The values the rail's command line takes (`--currency`'s printable ASCII, base units): anything else
    // cannot be passed as a cap.
    if (typeof currency !== 'string' || !/^[\x21-\x7e]{1,128}$/.test(currency))
      return { refused: 'an offer names no currency that can be passed as --currency' }
    const units =
      typeof amount === 'string' && /^\d{1,78}$/.test(amount)
        ? BigInt(amount)
        : typeof amount === 'number' && Number.isSafeInteger(amount) && amount >= 0
          ? BigInt(amount)
          : undefined
    if (units === undefined)
      return { refused: 'an offer names no amount in base units to pass as --max-amount' }
    if (!currencies.some((known) => same(known, currency))) currencies.push(currency)
    if (units > maxAmount) maxAmount = units
  }
  if (currencies.length !== 1)
    return {
      refused: `the offers are in ${currencies.length} currencies (${currencies.map((c) => printable(c, 64)).join(', ')}): choose one with --currency <id>`,
    }
  return { currency: currencies[0]!, maxAmount }
}

// Where options end in `argv` as `spec` reads it: the index of the `--` that ends them, else the length.
function optionsEnd(argv: readonly string[], spec: OptionSpec): number {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') return i
    if (!arg.startsWith('-') || arg === '-' || arg.includes('=')) continue
    if (Object.hasOwn(spec, arg) && spec[arg]!.value) i++
  }
  return argv.length
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

/**
 * The options of this repository's rail CLIs besides {@link commonOptions} (each rail's tests check that
 * its `options` are here). Before a 402 names the rail, `mppkit pay` must still know which flags take a
 * value: the value of `--rpc <url>` is not the URL to probe.
 */
export const railOptions = {
  // tempo
  '--key': { name: 'key', value: true },
  '--rpc': { name: 'rpc', value: true },
  '--mode': { name: 'mode', value: true },
  '--max-deposit': { name: 'maxDeposit', value: true },
  '--deposit': { name: 'deposit', value: true },
  '--keep-open': { name: 'keepOpen', value: false },
  '--channel-file': { name: 'channelFile', value: true },
  '--escrow': { name: 'escrow', value: true, repeat: true },
  // stripe
  '--stripe-key': { name: 'stripeKey', value: true },
  '--payment-method': { name: 'paymentMethod', value: true },
  '--api-base': { name: 'apiBase', value: true },
  '--api-version': { name: 'apiVersion', value: true },
  // solana (and --mode)
  '--keypair': { name: 'keypair', value: true },
  '--rpc-url': { name: 'rpcUrl', value: true },
  '--network': { name: 'network', value: true },
  // lightning (and --network)
  '--lnd-socket': { name: 'lndSocket', value: true },
  '--lnd-cert': { name: 'lndCert', value: true },
  '--lnd-macaroon': { name: 'lndMacaroon', value: true },
  '--max-fee': { name: 'maxFee', value: true },
  '--session-file': { name: 'sessionFile', value: true },
} as const satisfies OptionSpec

// Only the URL and the request are read here; the rail applies its own caps.
const noDefaults = { cap: () => undefined, confirmAbove: () => undefined }

/** Which argument is the URL cannot be told: `mppkit pay` says so itself, whichever rail is chosen. */
class Ambiguous extends UsageError {}

// The arguments `spec` can read. A flag it does not know may or may not take a value, so the argument after
// it is left out; when that argument would be the URL (no positional before it), which one is the URL
// cannot be told.
function knownArguments(argv: readonly string[], spec: OptionSpec): string[] {
  const kept: string[] = []
  let unsure: string | undefined
  let positional = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const unknown = unsure
    unsure = undefined
    if (arg === '--' || arg === '-' || !arg.startsWith('-')) {
      if (unknown !== undefined && (arg === '--' || !positional))
        throw new Ambiguous(
          `cannot tell whether ${printable(unknown, 64)} takes a value or the argument after it is <url>: ` +
            `write ${printable(unknown, 64)}=<value>, or give <url> before it`,
        )
      if (unknown !== undefined) continue
      if (arg === '--') {
        kept.push(...argv.slice(i))
        break
      }
      kept.push(arg)
      positional = true
      continue
    }
    const equals = arg.startsWith('--') ? arg.indexOf('=') : -1
    const flag = equals === -1 ? arg : arg.slice(0, equals)
    const option = Object.hasOwn(spec, flag) ? spec[flag] : undefined
    if (!option) {
      if (equals === -1) unsure = arg
      continue
    }
    kept.push(arg)
    if (option.value && equals === -1 && i + 1 < argv.length) kept.push(argv[++i]!)
  }
  return kept
}

/**
 * The request the probe sends, which must be the one the rail pays: the URL and -X/-d/-H (in every
 * spelling, `--header=…` too) read by the rails' own parser, not guessed (the first http(s) argument once
 * was the value of `--rpc <url>`, which then received the probe and the user's -H headers). With `strict`,
 * `options` are the rail's own and an unknown option is a usage error, the rail's to report. `undefined`
 * when there is no URL.
 */
function probeCommand(argv: readonly string[], options: OptionSpec, strict: boolean): Command | undefined {
  const spec = { ...options, ...commonOptions }
  const known = strict ? argv : knownArguments(argv, spec)
  if (parseArgs(known, spec).positionals.length === 0) return undefined
  return parseCommand(known, options, noDefaults)
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
  let challenges: Challenge.Challenge[] = []
  let command: Command | undefined
  const run = async (cli: RailCli, args: string[], name?: string) => {
    // The rails of this repository show what they pay and ask themselves (`@mppkit/core/cli`'s guard; they
    // export `defaults`, Tempo `defaultConfirmAbove`). A rail CLI without them gets both here: what each
    // offer of the chosen method asks is printed, and a terminal is asked unless -y/--yes.
    if (name !== undefined && !('defaults' in cli) && !('defaultConfirmAbove' in cli)) {
      const yes = args.includes('-y') || args.includes('--yes')
      args = args.filter((arg) => arg !== '-y' && arg !== '--yes')
      // The command line as the probe read it: a rail is only named once a probe answered.
      const given = command?.args.values
      const only = given?.get('currency')
      // Only the offers the rail may pay: those in `--currency`, when given.
      const offers = challenges.filter(
        (challenge) =>
          challenge.method === name &&
          (only === undefined || same(String((challenge.request as { currency?: unknown }).currency), only)),
      )
      if (offers.length === 0 && only !== undefined) {
        io.stderr(`mppkit pay: no ${name} offer is in ${printable(only, 64)} (--currency); not paid\n`)
        return 1
      }
      const asked = offers.map(describeOffer)
      for (const line of new Set(asked)) io.stderr(`mppkit pay: ${line}\n`)
      if (!yes && confirm && asked.length > 0) {
        // The rail fetches the URL again and pays what that 402 asks, which the server may have changed
        // since: what the person confirms is passed to the rail as its caps, so it pays no more. Where no
        // cap can be passed (a rail whose command line this cannot read, offers in several currencies),
        // nobody is asked a question whose answer would not bind.
        const caps = cli.options
          ? confirmedCaps(offers)
          : {
              refused: `the ${name} rail's CLI exports no \`options\` to pass --max-amount and --currency with`,
            }
        if ('refused' in caps) {
          io.stderr(
            `mppkit pay: not paid: a confirmation here could not cap what the rail pays (${caps.refused}); ` +
              'check the offer(s) above and run again with --yes\n',
          )
          return 1
        }
        if (!(await confirm('mppkit pay: pay this'))) {
          io.stderr('mppkit pay: not paid\n')
          return 1
        }
        const givenCap = baseUnits('--max-amount', given?.get('maxAmount'))
        const cap = givenCap !== undefined && givenCap < caps.maxAmount ? givenCap : caps.maxAmount
        // As `--flag=value` (a server's currency never becomes an argument of its own), before any `--`
        // that ends the options; the last value of an option wins (`parseArgs`).
        const flags = [`--max-amount=${cap}`, ...(only === undefined ? [`--currency=${caps.currency}`] : [])]
        const end = optionsEnd(args, { ...cli.options, ...commonOptions })
        args = [...args.slice(0, end), ...flags, ...args.slice(end)]
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
  let offered: string[] | undefined
  const chosen = rail !== undefined ? await load(rail) : undefined
  if (rail !== undefined && !chosen) return notInstalled(rail)
  if (chosen && (rest.includes('--help') || rest.includes('-h'))) return run(chosen, rest)
  try {
    // A rail chosen with --rail that exports its options reads the command line exactly as it will pay;
    // otherwise the options of this repository's rails tell which flags take a value.
    command = chosen?.options
      ? probeCommand(rest, chosen.options, true)
      : probeCommand(rest, railOptions, false)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    if (chosen?.options && !(error instanceof Ambiguous)) return run(chosen, rest)
    io.stderr(`mppkit pay: ${error.message}\n\n${usage}\n`)
    return 2
  }
  const url = command?.url
  // Without a URL the rail reports the usage error itself.
  if (chosen && !command) return run(chosen, rest)
  if (command) {
    let response: Response
    try {
      response = await fetch(command.url, { ...command.init, signal: AbortSignal.timeout(15_000) })
    } catch (error) {
      io.stderr(`mppkit pay: could not fetch ${url}: ${printable(describeError(error), 1000)}\n`)
      return 1
    }
    if (response.status !== 402) {
      // Nothing to pay: the body is what was asked for.
      io.stdout(await response.text())
      if (!response.ok) io.stderr(`mppkit pay: HTTP ${response.status} ${printable(response.statusText)}\n`)
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
    return run(chosen!, rest, rail)
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

/**
 * Runs `mppkit reclaim …` with the Tempo rail's CLI (`@mppkit/method-tempo/cli`): a payer takes a session
 * channel's deposit back without the server. Exit code 2 when that rail is not installed.
 *
 * @example
 * ```ts
 * process.exitCode = await reclaimCommand(['--channel', channelId, '--escrow', escrow])
 * ```
 * @see draft-tempo-session-00 §"requestClose", §"withdraw"
 */
export async function reclaimCommand(
  argv: string[],
  options: { load?: RailLoader; io?: PayIo } = {},
): Promise<number> {
  return railCommand('tempo', 'reclaim', argv, options)
}

const closeUsage = `mppkit close --channel-file <path> [<url>] [options]   close Tempo session channels (@mppkit/method-tempo)
mppkit close --session-file <path> [<url>] [options]   close Lightning sessions (@mppkit/method-lightning)

Each closes what mppkit pay kept open in that file, without paying again; add --help for its options.`

/**
 * The rail whose sessions `mppkit close` closes, by the file flag given: `--channel-file` (Tempo's
 * channels) or `--session-file` (Lightning's sessions); without either, `MPPKIT_SESSION_FILE` alone names
 * Lightning's, and anything else is Tempo's (which reports a missing file itself, as before Lightning had
 * the command). Both flags: a usage error.
 */
function closeRail(argv: readonly string[]): { rail: 'tempo' | 'lightning' } | { usage: string } {
  const given = (flag: string) => argv.some((arg) => arg === flag || arg.startsWith(`${flag}=`))
  const channels = given('--channel-file')
  const sessions = given('--session-file')
  if (channels && sessions)
    return { usage: 'give --channel-file (Tempo channels) or --session-file (Lightning sessions), not both' }
  if (sessions) return { rail: 'lightning' }
  if (channels) return { rail: 'tempo' }
  return { rail: process.env.MPPKIT_SESSION_FILE && !process.env.MPPKIT_CHANNEL_FILE ? 'lightning' : 'tempo' }
}

/**
 * Runs `mppkit close …` with the CLI of the rail whose file it names: `--channel-file <path>` with the
 * Tempo rail's (`@mppkit/method-tempo/cli`), the cooperative close of the session channels a `mppkit pay
 * --channel-file <path> --keep-open` left open; `--session-file <path>` with the Lightning rail's
 * (`@mppkit/method-lightning/cli`), the close of the sessions a `mppkit pay --session-file <path>
 * --keep-open` left open (refund to their return invoices). Neither pays again. Exit code 2 when both
 * flags are given, or when that rail is not installed (or predates the command).
 *
 * @example
 * ```ts
 * process.exitCode = await closeCommand(['--channel-file', '.mppkit/channels.json'])
 * process.exitCode = await closeCommand(['--session-file', '.mppkit/sessions.json', '--network', 'regtest'])
 * ```
 * @see draft-tempo-session-00 §"close", draft-lightning-session-00 §"Close"
 */
export async function closeCommand(
  argv: string[],
  options: { load?: RailLoader; io?: PayIo } = {},
): Promise<number> {
  const chosen = closeRail(argv)
  if ('usage' in chosen) {
    const stderr = options.io?.stderr ?? ((t: string) => process.stderr.write(t))
    stderr(`mppkit close: ${chosen.usage}\n\n${closeUsage}\n`)
    return 2
  }
  return railCommand(chosen.rail, 'close', argv, options)
}

/** Runs one of a rail CLI's own commands; exit code 2 when the rail (or that command) is missing. */
async function railCommand(
  rail: 'tempo' | 'lightning',
  name: 'reclaim' | 'close',
  argv: string[],
  options: { load?: RailLoader; io?: PayIo },
): Promise<number> {
  const load = options.load ?? importRail
  const stderr = options.io?.stderr ?? ((t: string) => process.stderr.write(t))
  const cli = await load(rail)
  const command = cli?.[name]
  if (!command) {
    stderr(
      cli
        ? `mppkit ${name}: the installed @mppkit/method-${rail} has no ${name} command\nhint: npm install @mppkit/method-${rail}@latest\n`
        : `mppkit ${name}: the ${rail} rail is not installed\nhint: npm install @mppkit/method-${rail}\n`,
    )
    return 2
  }
  return options.io ? command(argv, options.io) : command(argv)
}
