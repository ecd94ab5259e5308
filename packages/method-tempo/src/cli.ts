import { Challenge, PolicyError, type Receipt } from '@mppkit/core'
import { commandUrl, describeError, printable, printableJson } from '@mppkit/core/cli'
import { create as createClient, receipt as receiptOf } from '@mppkit/core/client'
import { type Address, erc20Abi, type Hex, type LocalAccount, zeroAddress } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { readContract } from 'viem/actions'
import { findOpenChannels, type OpenChannel } from './client/Channels.js'
import { chargeClient } from './client/Charge.js'
import { fileChannelStore } from './client/node.js'
import { type Reclaim, reclaimChannel } from './client/Reclaim.js'
import {
  type ChannelState,
  type SessionClient,
  type SkippedChannel,
  sessionClient,
  type TopUpIntent,
} from './client/Session.js'
import { baseUnits, formatUnits, type OptionSpec, parseArgs, UsageError } from './internal/cliArgs.js'
import { escrowAbi } from './internal/escrow.js'
import { knownEscrows } from './internal/escrows.js'
import { publicClientFor } from './internal/rpc.js'
import { type GuardLimits, guard, tip20Decimals } from './internal/spendGuard.js'

/** Largest payment (and session deposit) paid without `--max-amount` / `--max-deposit`: 1.00 of a TIP-20. */
export const defaultCap = 1_000_000n
/** Above this (0.10 of a TIP-20), a person at a terminal is asked first unless `--yes`. */
export const defaultConfirmAbove = 100_000n

const usage = `mppkit pay <url> [options]     pay for a URL with Tempo (charge or session) and print the body

Options:
  --key <0x…>            payer private key            (env MPPKIT_PRIVATE_KEY)
  --rpc <url>            Tempo JSON-RPC URL            (env MPPKIT_RPC_URL)
  -X, --method <method>  HTTP method (default GET, or POST with --data)
  -d, --data <body>      request body
  -H, --header <k: v>    extra request header (repeatable)
  --mode <pull|push>     charge mode (default pull)
  --currency <0x…>       pay only in this TIP-20 token (all have 6 decimals: the caps need no --currency)
  --max-amount <units>   largest payment, in base units (default ${defaultCap} = ${formatUnits(defaultCap, tip20Decimals)})
  --max-deposit <units>  largest session deposit and total, in base units (default ${defaultCap})
  --deposit <units>      session deposit in base units
  --escrow <0x…>         deposit only into this session escrow contract (repeatable; without it, only
                         the known escrows of Tempo mainnet and Moderato, or on another chain any
                         escrow address holding contract code)
  --keep-open            do not close a session channel after the request
  --channel-file <path>  keep session channels in this file (owner-only JSON, no key) and pay on the
                         one saved for this server instead of opening a new channel; with --keep-open
                         the next run reuses it, without it the run closes it; \`mppkit close\` closes
                         them without paying again; one run at a time per file
  -y, --yes              do not ask before paying more than ${formatUnits(defaultConfirmAbove, tip20Decimals)}

Before paying it prints what it pays (amount, currency, recipient, realm) on stderr; at a terminal it
asks first above ${formatUnits(defaultConfirmAbove, tip20Decimals)}, and once when top-ups (a metered stream's, or a saved channel's that ran
out) would commit more than that (or than the opening deposit it asked about); every top-up is shown. The body goes to stdout; the decoded Payment-Receipt to stderr.
Exit codes: 0 paid (2xx), 1 refused, failed or unpaid, 2 usage error.`

/**
 * The options of `mppkit pay` for Tempo: `mppkit pay` reads the URL to probe with them, so that a flag's
 * value (`--rpc <url>`) is never taken for the URL.
 */
export const options = {
  '--key': { name: 'key', value: true },
  '--rpc': { name: 'rpc', value: true },
  '-X': { name: 'method', value: true },
  '--method': { name: 'method', value: true },
  '-d': { name: 'data', value: true },
  '--data': { name: 'data', value: true },
  '-H': { name: 'header', value: true, repeat: true },
  '--header': { name: 'header', value: true, repeat: true },
  '--mode': { name: 'mode', value: true },
  '--currency': { name: 'currency', value: true },
  '--max-amount': { name: 'maxAmount', value: true },
  '--max-deposit': { name: 'maxDeposit', value: true },
  '--deposit': { name: 'deposit', value: true },
  '--escrow': { name: 'escrow', value: true, repeat: true },
  '--keep-open': { name: 'keepOpen', value: false },
  '--channel-file': { name: 'channelFile', value: true },
  '-y': { name: 'yes', value: false },
  '--yes': { name: 'yes', value: false },
  '-h': { name: 'help', value: false },
  '--help': { name: 'help', value: false },
} as const satisfies OptionSpec

/** Where `pay` writes, and how it asks a question (`confirm` is absent when nobody can answer). */
export type Io = {
  stdout: (text: string) => void
  stderr: (text: string) => void
  confirm?: ((question: string) => Promise<boolean>) | undefined
}

async function askOnTerminal(question: string): Promise<boolean> {
  const { createInterface } = await import('node:readline/promises')
  const rl = createInterface({ input: process.stdin, output: process.stderr })
  try {
    return /^y(es)?$/i.test((await rl.question(`${question}? [y/N] `)).trim())
  } finally {
    rl.close()
  }
}

const processIo = (): Io => ({
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  confirm: process.stdin.isTTY ? askOnTerminal : undefined,
})

/** An RPC URL as errors show it: its origin only (hosted RPC URLs carry API keys in the path or query). */
function originOf(url: string): string {
  try {
    return new URL(url).origin
  } catch {
    return 'the RPC URL'
  }
}

/**
 * The RPC URL without its `user:password@` and the Basic `Authorization` header they stand for, as viem's
 * http transport sends them: fetch refuses a URL with credentials, and quotes the whole URL in its error.
 */
function withoutCredentials(rpcUrl: string): { url: string; headers: Record<string, string> } {
  let url: URL
  try {
    url = new URL(rpcUrl)
  } catch {
    return { url: rpcUrl, headers: {} }
  }
  if (url.username === '' && url.password === '') return { url: rpcUrl, headers: {} }
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
  url.username = ''
  url.password = ''
  return { url: url.href, headers: { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` } }
}

async function chainIdOf(rpcUrl: string): Promise<number> {
  let text: string
  const target = withoutCredentials(rpcUrl)
  try {
    const response = await fetch(target.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...target.headers },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(10_000),
    })
    text = await response.text()
  } catch (error) {
    throw new PolicyError(
      'rpc',
      `could not reach the Tempo RPC at ${originOf(rpcUrl)}: ${describeError(error)}`,
    )
  }
  let result: unknown
  try {
    result = (JSON.parse(text) as { result?: unknown }).result
  } catch {}
  if (typeof result !== 'string' || !/^0x[0-9a-f]+$/i.test(result))
    throw new PolicyError(
      'rpc',
      `${originOf(rpcUrl)} is not a Tempo JSON-RPC node: eth_chainId answered ${JSON.stringify(text.slice(0, 120))}`,
    )
  return Number(result)
}

/**
 * Throws a `UsageError` unless `value` is 0x and `digits` hex digits. The value is never echoed: a key
 * given in its place would be printed back.
 */
function checkHexArg(flag: string, value: string, digits: number, what: string): void {
  if (!new RegExp(`^0x[0-9a-fA-F]{${digits}}$`).test(value))
    throw new UsageError(
      `${flag} takes ${what} (0x and ${digits} hex digits); the ${value.length} characters given are not one (not shown)`,
    )
}

/**
 * The payer's private key and the RPC URL, from `--key`/`--rpc` or `MPPKIT_PRIVATE_KEY`/`MPPKIT_RPC_URL`;
 * undefined once a usage error is printed (exit 2). Neither is ever printed.
 */
function payerOf(
  args: ReturnType<typeof parseArgs>,
  command: string,
  usageText: string,
  io: Io,
): { key: Hex; rpcUrl: string } | undefined {
  const key = args.values.get('key') ?? process.env.MPPKIT_PRIVATE_KEY
  const rpcUrl = args.values.get('rpc') ?? process.env.MPPKIT_RPC_URL
  if (!key || !rpcUrl) {
    io.stderr(
      `${command}: ${!key ? 'missing --key or MPPKIT_PRIVATE_KEY' : 'missing --rpc or MPPKIT_RPC_URL'}\n\n${usageText}\n`,
    )
    return undefined
  }
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) {
    io.stderr(`${command}: the private key must be 32 bytes of hex with a 0x prefix\n`)
    return undefined
  }
  return { key: key as Hex, rpcUrl }
}

/**
 * Runs `mppkit pay <url>`: pays a Tempo charge or session challenge with a private key from flags or the
 * environment, within a per-payment cap (default {@link defaultCap}), prints the response body on stdout
 * and the decoded receipt on stderr. Metered SSE streams are paid voucher by voucher. Returns the exit
 * code: 0 on a paid 2xx, 1 when refused, failed or unpaid, 2 on a usage error.
 *
 * @example
 * ```ts
 * process.exitCode = await pay(['http://localhost:3000/paid', '--rpc', 'http://127.0.0.1:8545'])
 * ```
 * @see draft-tempo-charge-00, draft-tempo-session-00
 */
export async function pay(argv: string[], io: Io = processIo()): Promise<number> {
  let args: ReturnType<typeof parseArgs>
  let url: string
  let limits: GuardLimits
  let deposit: bigint | undefined
  let currency: string | undefined
  try {
    args = parseArgs(argv, options)
    if (args.switches.has('help')) {
      io.stdout(`${usage}\n`)
      return 0
    }
    // Never echoes a positional: a key given without --key would be printed back.
    url = commandUrl(args.positionals)
    const mode = args.values.get('mode')
    if (mode !== undefined && mode !== 'pull' && mode !== 'push')
      throw new UsageError(`--mode is pull or push, got "${mode}"`)
    const maxAmount = baseUnits('--max-amount', args.values.get('maxAmount')) ?? defaultCap
    const maxDeposit = baseUnits('--max-deposit', args.values.get('maxDeposit')) ?? defaultCap
    deposit = baseUnits('--deposit', args.values.get('deposit'))
    currency = args.values.get('currency')
    // Never echoed: a key given in its place would be printed back.
    if (currency !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(currency))
      throw new UsageError(
        `--currency takes a TIP-20 token address (0x and 40 hex digits); the ${currency.length} characters given are not one (not shown)`,
      )
    if (deposit !== undefined && deposit > maxDeposit)
      throw new UsageError(`--deposit ${deposit} is above --max-deposit ${maxDeposit}`)
    for (const escrow of args.lists.get('escrow') ?? [])
      checkHexArg('--escrow', escrow, 40, 'a contract address')
    limits = {
      maxAmount,
      maxDeposit,
      confirmAbove: args.switches.has('yes') ? maxDeposit + maxAmount : defaultConfirmAbove,
    }
    // The value is never echoed: it is often a credential (`Authorization: Bearer …`).
    for (const header of args.lists.get('header') ?? [])
      if (header.indexOf(':') <= 0)
        throw new UsageError('-H takes "Name: value" (a value without ":" was given; not shown)')
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr(`mppkit pay: ${error.message}\n\n${usage}\n`)
    return 2
  }
  const payer = payerOf(args, 'mppkit pay', usage, io)
  if (!payer) return 2
  try {
    return await payUrl({ url, ...payer, args, limits, deposit, currency, io })
  } catch (error) {
    // An error's message may carry a server's or an RPC's words.
    io.stderr(`mppkit pay: ${printable(describeError(error), 1000)}\n`)
    return 1
  }
}

async function payUrl(parameters: {
  url: string
  key: Hex
  rpcUrl: string
  args: ReturnType<typeof parseArgs>
  limits: GuardLimits
  deposit: bigint | undefined
  currency: string | undefined
  io: Io
}): Promise<number> {
  const { rpcUrl, args, deposit, io } = parameters
  const chainId = await chainIdOf(rpcUrl)
  const account = privateKeyToAccount(parameters.key)
  const mode = args.values.get('mode') === 'push' ? 'push' : 'pull'
  const escrows = args.lists.get('escrow') as Address[] | undefined
  // The flag only: a file in the environment would make every run take its lock and pay on its channels.
  const channelFile = args.values.get('channelFile')
  const channelStore = channelFile === undefined ? undefined : fileChannelStore(channelFile)
  // Set once the run's consent exists (payWith): every top-up is shown, and asked as the usage says.
  const gate: { beforeTopUp?: (topUp: TopUpIntent) => Promise<void> } = {}
  try {
    const sessions = sessionClient({
      account,
      rpcUrl,
      chainId,
      ...(deposit ? { deposit } : {}),
      ...(escrows?.length ? { escrows } : {}),
      ...(channelStore ? { channelStore } : {}),
      beforeTopUp: async (topUp) => gate.beforeTopUp?.(topUp),
    })
    // Before the first payment, so the policy's quote sees a saved channel (no new deposit).
    const restored = await sessions.restore()
    for (const channel of restored)
      io.stderr(
        `mppkit pay: saved session channel ${channel.channelId} (${new URL(channel.url).origin}, deposit ${formatUnits(channel.deposit, tip20Decimals)}) from ${channelFile}\n`,
      )
    for (const record of sessions.skipped())
      io.stderr(`mppkit pay: ${describeSkipped(record, channelFile as string)}\n`)
    return await payWith({ ...parameters, account, chainId, mode, sessions, channelFile, gate })
  } finally {
    channelStore?.close()
  }
}

async function payWith(
  parameters: Parameters<typeof payUrl>[0] & {
    account: ReturnType<typeof privateKeyToAccount>
    chainId: number
    mode: 'pull' | 'push'
    sessions: SessionClient
    channelFile: string | undefined
    gate: { beforeTopUp?: (topUp: TopUpIntent) => Promise<void> }
  },
): Promise<number> {
  const { url, rpcUrl, args, limits, io, account, chainId, mode, sessions, channelFile, gate } = parameters
  const reader = publicClientFor({}, rpcUrl, chainId)
  const symbols = new Map<string, Promise<string | undefined>>()
  const hooks = {
    announce: (line: string) => io.stderr(`mppkit pay: ${line}\n`),
    confirm: async (line: string) => {
      if (!io.confirm) return true
      return io.confirm(`mppkit pay: ${line}`)
    },
    symbolOf: (currency: string) => {
      let symbol = symbols.get(currency.toLowerCase())
      if (!symbol) {
        symbol = readContract(reader, { address: currency as Address, abi: erc20Abi, functionName: 'symbol' })
          .then((s) => (/^[\w.-]{1,16}$/.test(s) ? s : undefined))
          .catch(() => undefined)
        symbols.set(currency.toLowerCase(), symbol)
      }
      return symbol
    },
  }
  const headers = new Headers()
  for (const header of args.lists.get('header') ?? []) {
    const colon = header.indexOf(':')
    headers.append(header.slice(0, colon).trim(), header.slice(colon + 1).trim())
  }
  const data = args.values.get('data')
  const method = args.values.get('method') ?? (data !== undefined ? 'POST' : 'GET')
  const init = { method, headers, ...(data !== undefined ? { body: data } : {}) }
  const printReceipt = (label: string, receipt: Receipt.Receipt | undefined) => {
    if (receipt) io.stderr(`${label}: ${printableJson(receipt, 2)}\n`)
  }
  // An unpaid look first: a free resource is just printed, and a 402 names the currencies that the
  // client's spend policy then limits per currency (the caps below), besides the guard on each payment.
  const probe = await fetch(url, init)
  if (probe.status !== 402) {
    io.stdout(await probe.text())
    if (!probe.ok) io.stderr(`mppkit pay: HTTP ${probe.status} ${printable(probe.statusText)}\n`)
    return probe.ok ? 0 : 1
  }
  await probe.body?.cancel()
  const offered = [
    ...new Set(
      Challenge.parseAll(probe.headers.get('www-authenticate') ?? '')
        .filter((c) => c.method === 'tempo')
        .map((c) => (c.request as { currency?: unknown }).currency)
        .filter((c): c is string => typeof c === 'string' && /^0x[0-9a-fA-F]{40}$/.test(c)),
    ),
  ]
  // `--currency`: the spend policy pins that token alone, so an offer in any other is refused.
  const only = parameters.currency
  const currencies = only === undefined ? offered : [only]
  if (only !== undefined && !offered.some((c) => c.toLowerCase() === only.toLowerCase())) {
    io.stderr(
      `mppkit pay: ${url} offers no tempo payment in ${only} (--currency)` +
        `${offered.length > 0 ? `; it offers ${offered.join(', ')}` : ''}\n`,
    )
    return 1
  }
  const perCurrency = (amount: bigint) => Object.fromEntries(currencies.map((c) => [c, amount]))
  // biome-ignore lint/complexity/useMathMinMax: bigints, which Math.max does not take
  const total = limits.maxAmount > limits.maxDeposit ? limits.maxAmount : limits.maxDeposit
  const client = createClient({
    methods: [
      guard(chargeClient({ account, rpcUrl, chainId, mode }), limits, hooks),
      guard(sessions, limits, hooks),
    ],
    policy: {
      currencies,
      maxAmount: perCurrency(limits.maxAmount),
      maxDeposit: perCurrency(limits.maxDeposit),
      budget: perCurrency(total),
    },
  })
  // One consent for the run: a top-up (a channel saved by an earlier run running out, or a metered stream)
  // taking the run's deposits past the threshold, or past what the person said yes to, is asked once.
  const consent: Consent = {
    approved: limits.confirmAbove,
    // `--yes`, or nobody to answer (not a terminal): within the caps, unasked.
    confirm:
      args.switches.has('yes') || !io.confirm ? undefined : (line) => io.confirm!(`mppkit pay: ${line}`),
    symbolOf: hooks.symbolOf,
  }
  gate.beforeTopUp = async (topUp) => {
    const symbol = await hooks.symbolOf(topUp.currency).catch(() => undefined)
    const units = (amount: bigint) =>
      `${formatUnits(amount, tip20Decimals)} ${symbol !== undefined ? printable(symbol) : printable(topUp.currency)}`
    if (topUp.resend) {
      // Signed (and asked about) before; its outcome unknown: the same transaction again, nothing new.
      io.stderr(
        `mppkit pay: sending again the top-up of tempo session channel ${topUp.channelId} signed earlier ` +
          `(deposit ${units(topUp.deposit)} → ${units(topUp.newDeposit)} if it lands)\n`,
      )
      return
    }
    const line =
      `top up tempo session channel ${topUp.channelId}: deposit ${units(topUp.deposit)} → ${units(topUp.newDeposit)}` +
      (topUp.recipient ? ` (to ${printable(topUp.recipient)})` : '')
    const total = committed(sessions) - topUp.deposit + topUp.newDeposit
    if (total > consent.approved) {
      if (consent.confirm && !(await consent.confirm(line)))
        throw new PolicyError('declined', 'top-up declined')
      consent.approved = total
    }
    io.stderr(`mppkit pay: ${line}\n`)
  }
  // A payment that failed or was refused still ends the run as usual: the channel closed (without
  // --keep-open) or named.
  let response: Response | undefined
  try {
    response = await client.fetch(url, init)
  } catch (error) {
    // An error's message may carry a server's or an RPC's words.
    io.stderr(`mppkit pay: ${printable(describeError(error), 1000)}\n`)
  }
  let code = response?.ok ? 0 : 1
  if (response === undefined) {
    // Said above.
  } else if (response.status === 402) {
    code = 1
    io.stderr(`mppkit pay: ${url} still asks for payment (402): ${await unpaidReason(response)}\n`)
  } else if (response.ok && /text\/event-stream/i.test(response.headers.get('content-type') ?? '')) {
    printReceipt('receipt', receiptOf(response))
    // What the request committed so far was at most the threshold, or was asked about when it opened.
    const now = committed(sessions)
    if (now > consent.approved) consent.approved = now
    code = await readMeteredStream(response, url, sessions, limits, consent, io)
  } else {
    io.stdout(await response.text())
    printReceipt('receipt', receiptOf(response))
    if (!response.ok) io.stderr(`mppkit pay: HTTP ${response.status} ${printable(response.statusText)}\n`)
  }
  // This URL's channel (one restored from --channel-file for another server stays as it is).
  const origin = new URL(url).origin
  const paidHere = [...sessions.channels.values()].some((channel) => new URL(channel.url).origin === origin)
  if (!args.switches.has('keepOpen') && paidHere) {
    const closed = await sessions.close(url).catch((error: unknown) => {
      io.stderr(`mppkit pay: closing the session failed: ${printable(describeError(error), 1000)}\n`)
      return undefined
    })
    if (closed?.ok) printReceipt('close receipt', receiptOf(closed))
    else if (closed) io.stderr(`mppkit pay: closing the session failed: HTTP ${closed.status}\n`)
  }
  // A channel left open holds the payer's deposit in the escrow: say which, and how to take it back.
  for (const channel of sessions.channels.values()) {
    // An open no receipt confirmed (answered 5xx, or not at all) may not be mined yet: the escrow holds
    // no such channel, and `mppkit reclaim --channel` would fail, while the open may still be mined and
    // lock the deposit. Read on chain to tell.
    if (channel.opening && !(await onChain(reader, channel))) {
      io.stderr(
        `mppkit pay: session channel ${channel.channelId} (escrow ${channel.escrow}, chain ${channel.chainId}): ` +
          `its open is not mined yet, and may still be: once mined, it locks its deposit of ` +
          `${formatUnits(channel.deposit, tip20Decimals)} in the escrow until a close by the server or the payer's ` +
          `forced close. Nothing can be taken back before then: later, \`mppkit reclaim --list --escrow ${channel.escrow}\` ` +
          `finds it once mined, and \`mppkit reclaim --channel ${channel.channelId} --escrow ${channel.escrow}\` then takes it back` +
          (channelFile === undefined
            ? '; pass `--channel-file <path>` next time to keep such a channel and close it later with `mppkit close`'
            : `; saved in ${channelFile}: \`mppkit close --channel-file ${channelFile}\` closes it once mined`) +
          '\n',
      )
      continue
    }
    io.stderr(
      `mppkit pay: session channel ${channel.channelId} stays open in escrow ${channel.escrow} on chain ${channel.chainId} ` +
        `(deposit ${formatUnits(channel.deposit, tip20Decimals)}): a close by the server refunds what it did not ` +
        `spend; without the server, \`mppkit reclaim --channel ${channel.channelId} --escrow ${channel.escrow}\` ` +
        `(or reclaimChannel() of @mppkit/method-tempo/client) takes it back: a forced close, withdrawable 15 ` +
        `minutes after it is requested` +
        (channelFile === undefined ? '' : `; saved in ${channelFile}: \`--channel-file\` pays on it again`) +
        '\n',
    )
  }
  return code
}

/** Whether the escrow holds `channel` (its open mined); false too when the chain cannot be read. */
async function onChain(reader: ReturnType<typeof publicClientFor>, channel: ChannelState): Promise<boolean> {
  try {
    const held = await readContract(reader, {
      address: channel.escrow,
      abi: escrowAbi,
      functionName: 'getChannel',
      args: [channel.channelId],
    })
    return held.payer !== zeroAddress
  } catch {
    return false
  }
}

// The server's words, bounded and without control characters (they could rewrite the terminal's line).
async function unpaidReason(response: Response): Promise<string> {
  const body = (await response.json().catch(() => undefined)) as
    | { detail?: string; title?: string }
    | undefined
  if (body?.detail || body?.title) return printable(body.detail ?? body.title, 300)
  return response.headers.get('www-authenticate')
    ? 'no Tempo challenge this client can pay was offered'
    : 'the server sent no Payment challenge'
}

/** What this run's sessions committed: their deposits, top-ups included (a voucher is within its deposit). */
function committed(sessions: SessionClient): bigint {
  let total = 0n
  for (const channel of sessions.channels.values()) total += channel.deposit
  return total
}

/**
 * What a metered stream may commit without asking: a question is due once, when a top-up would take the
 * run's deposits past what needed none (the threshold) or what the person confirmed when the session
 * opened.
 */
type Consent = {
  /** The run's committed total allowed without a question. */
  approved: bigint
  /** Asks the person at the terminal; absent with `--yes` or without a terminal. */
  confirm: ((line: string) => Promise<boolean>) | undefined
  symbolOf(currency: string): Promise<string | undefined>
}

/**
 * Reads a metered SSE response (draft-tempo-session-00 §"Metered Streaming"): data goes to stdout, each
 * `payment-need-voucher` is answered with a voucher within `limits.maxDeposit`, and the final
 * `payment-receipt` event to stderr. Returns 1 when the stream ends before it was paid in full.
 */
async function readMeteredStream(
  response: Response,
  url: string,
  sessions: SessionClient,
  limits: GuardLimits,
  consent: Consent,
  io: Io,
): Promise<number> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  let unpaid: string | undefined
  let receipt = false
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      buffer += value.replace(/\r\n?/g, '\n')
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const lines = buffer.slice(0, end).split('\n')
        buffer = buffer.slice(end + 2)
        const event =
          lines
            .find((l) => l.startsWith('event:'))
            ?.slice(6)
            .trim() ?? 'message'
        const data = lines
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(5).replace(/^ /, ''))
          .join('\n')
        if (event === 'payment-need-voucher') {
          unpaid = await answerVoucher(data, url, sessions, limits, consent, io)
          if (unpaid) {
            await reader.cancel().catch(() => {})
            break
          }
        } else if (event === 'payment-receipt') {
          receipt = true
          io.stderr(`stream receipt: ${printable(data, 2000)}\n`)
        } else {
          unpaid = undefined
          io.stdout(event === 'message' ? `${data}\n` : `event: ${event}\ndata: ${data}\n\n`)
        }
      }
      if (unpaid) break
    }
  } catch (error) {
    unpaid ??= `the stream broke: ${describeError(error)}`
  }
  if (!unpaid && !receipt) unpaid = 'the stream ended without its payment-receipt event'
  if (unpaid) {
    // It may quote the server (a voucher request it could not read, a broken stream's error).
    io.stderr(`mppkit pay: the stream ended unpaid: ${printable(unpaid, 1000)}\n`)
    return 1
  }
  return 0
}

async function answerVoucher(
  data: string,
  url: string,
  sessions: SessionClient,
  limits: GuardLimits,
  consent: Consent,
  io: Io,
): Promise<string | undefined> {
  let required: bigint
  try {
    const value = (JSON.parse(data) as { requiredCumulative?: unknown }).requiredCumulative
    if (typeof value !== 'string' || !/^\d{1,78}$/.test(value)) throw new Error()
    required = BigInt(value)
  } catch {
    return `the server asked for a voucher without a valid requiredCumulative (${data.slice(0, 120)})`
  }
  const entry = [...sessions.channels].find(([, c]) => new URL(c.url).origin === new URL(url).origin)
  if (!entry) return 'the server asked for a voucher, but no session channel is open'
  const [channelKey, channel] = entry
  // Paying more than the deposit tops it up by the deposit again: both stay within --max-deposit.
  const deposit = required > channel.deposit ? channel.deposit * 2n : channel.deposit
  if (required > limits.maxDeposit || deposit > limits.maxDeposit)
    return `the next voucher (cumulative ${required} base units) would take the session past --max-deposit ${limits.maxDeposit}`
  // The usage promises a question above the threshold: a top-up mid-stream commits more money than the
  // opening did (or than the person said yes to), so it is asked once, within the caps (checked above).
  const total = committed(sessions) - channel.deposit + (required > deposit ? required : deposit)
  if (total > consent.approved) {
    if (consent.confirm) {
      // The channel's key: realm|escrow|recipient|currency (lower case; only the realm may hold a `|`).
      const parts = channelKey.split('|')
      const [recipient, currency] = [parts.at(-2) ?? '', parts.at(-1) ?? '']
      const symbol = await consent.symbolOf(currency).catch(() => undefined)
      const units = (amount: bigint) =>
        `${formatUnits(amount, tip20Decimals)} ${symbol !== undefined ? printable(symbol) : printable(currency)}`
      const what =
        deposit > channel.deposit
          ? `top up its deposit from ${units(channel.deposit)} to ${units(deposit)}`
          : `use its deposit of ${units(deposit)}`
      const line =
        `keep paying the metered stream: ${what} and pay vouchers up to ${units(limits.maxDeposit)} (--max-deposit), ` +
        `to ${printable(recipient)} (realm ${printable(parts.slice(0, -3).join('|'))}; currency ${printable(currency)})`
      if (!(await consent.confirm(line)))
        return `payment declined (the next voucher, cumulative ${required} base units, needed a deposit of ${deposit})`
    }
    // Asked once: from here on the caps alone bound the stream.
    consent.approved = committed(sessions) - channel.deposit + limits.maxDeposit
  }
  io.stderr(
    `mppkit pay: voucher for cumulative ${formatUnits(required, tip20Decimals)} (${required} base units)\n`,
  )
  const answer = await sessions.voucher(url, required)
  if (!answer.ok) return `the voucher was refused (HTTP ${answer.status})`
  return undefined
}

const reclaimUsage = `mppkit reclaim --channel <0x…> --escrow <0x…> [options]
mppkit reclaim --all [--escrow <0x…>] [options]
mppkit reclaim --list [--escrow <0x…>] [--payer <0x…>] [options]
                               take Tempo session deposits back without the server

The payer's forced close (draft-tempo-session-00): the first run requests it (requestClose), a run
before the escrow's grace period (15 minutes of chain time) has passed sends nothing and says when, and
a run after it withdraws the deposit less what the payee settled. Each run reads the channel first.
--all does that for every channel of the payer on the escrow that is not finalized (found from the
escrow's ChannelOpened events), which also ends sessions still in use; --list only prints them.

Options:
  --channel <0x…>        the channel id (mppkit pay prints it for a channel it leaves open)
  --escrow <0x…>         the escrow contract holding it (with --all or --list, default: the known
                         escrows of Tempo mainnet and Moderato)
  --all                  the next step for each of the payer's channels that still holds a deposit
  --list                 print those channels, send nothing (no key needed with --payer)
  --payer <0x…>          with --list: whose channels (default: the key's address)
  --from-block <n>       with --all or --list: search the escrow's events from this block (default 0)
  --key <0x…>            the channel's payer private key   (env MPPKIT_PRIVATE_KEY)
  --rpc <url>            Tempo JSON-RPC URL                 (env MPPKIT_RPC_URL)

Exit codes: 0 requested, waiting, withdrawn, already finalized or listed; 1 refused or failed (with
--all: any channel); 2 usage error.`

const reclaimOptions = {
  '--channel': { name: 'channel', value: true },
  '--escrow': { name: 'escrow', value: true },
  '--all': { name: 'all', value: false },
  '--list': { name: 'list', value: false },
  '--payer': { name: 'payer', value: true },
  '--from-block': { name: 'fromBlock', value: true },
  '--key': { name: 'key', value: true },
  '--rpc': { name: 'rpc', value: true },
  '-h': { name: 'help', value: false },
  '--help': { name: 'help', value: false },
} as const satisfies OptionSpec

const units = (amount: bigint) => `${formatUnits(amount, tip20Decimals)} (${amount} base units)`

/** One line for where a channel stands after `reclaimChannel`. */
function describeStep(step: Reclaim): string {
  const { channelId } = step
  if (step.status === 'closing')
    return (
      `${step.transactionHash ? `requested the forced close of channel ${channelId} (transaction ${step.transactionHash})` : `channel ${channelId} is closing`}; ` +
      `withdrawable from ${step.withdrawableAt.toISOString()} (chain time): run this command again then`
    )
  if (step.status === 'withdrawn')
    return `withdrew channel ${channelId}: ${units(step.refunded)} back to the payer, ${units(step.settled)} settled to the payee (transaction ${step.transactionHash})`
  return `channel ${channelId} is already finalized: nothing to reclaim (${units(step.settled)} settled to the payee)`
}

/** One line for a channel that still holds a deposit. */
function describeOpen(channel: OpenChannel): string {
  const state = channel.withdrawableAt
    ? `closing, withdrawable from ${channel.withdrawableAt.toISOString()} (chain time)`
    : 'open'
  return (
    `channel ${channel.channelId} (escrow ${channel.escrow}): ${state}; deposit ${units(channel.deposit)}, ` +
    `settled ${units(channel.settled)}; payee ${channel.payee}, token ${channel.token}, opened in block ${channel.openedInBlock}`
  )
}

/**
 * Runs `mppkit reclaim`: the next step of the payer's forced close of a session channel (see
 * `reclaimChannel`), with the payer's key from `--key` or `MPPKIT_PRIVATE_KEY`; `--all` takes that step
 * for every channel of the payer that still holds a deposit, `--list` prints them (see
 * `findOpenChannels`). Prints where each channel stands on stdout. Returns the exit code: 0 when the
 * steps are done (or nothing is left to do), 1 when one is refused or failed, 2 on a usage error. The key
 * and the RPC URL are never printed.
 *
 * @example
 * ```ts
 * process.exitCode = await reclaim(['--channel', channelId, '--escrow', escrow, '--rpc', rpcUrl])
 * process.exitCode = await reclaim(['--all', '--escrow', escrow, '--rpc', rpcUrl])
 * ```
 * @see draft-tempo-session-00 §"requestClose", §"withdraw"
 */
export async function reclaim(argv: string[], io: Io = processIo()): Promise<number> {
  let args: ReturnType<typeof parseArgs>
  let fromBlock: bigint | undefined
  try {
    args = parseArgs(argv, reclaimOptions)
    if (args.switches.has('help')) {
      io.stdout(`${reclaimUsage}\n`)
      return 0
    }
    // Never echoed: a key given in place of another value would be printed back.
    if (args.positionals.length > 0)
      throw new UsageError(`unexpected argument (${args.positionals.length} given; not shown)`)
    const modes = ['all', 'list'].filter((mode) => args.switches.has(mode))
    if (args.values.has('channel')) modes.push('channel')
    if (modes.length > 1)
      throw new UsageError(`--${modes.join(', --')}: give one of --channel, --all and --list`)
    if (modes.length === 0) throw new UsageError('missing --channel (or --all, or --list)')
    if (modes[0] === 'channel' && !args.values.has('escrow')) throw new UsageError('missing --escrow')
    if (args.values.has('payer') && modes[0] !== 'list') throw new UsageError('--payer goes with --list')
    if (args.values.has('fromBlock') && modes[0] === 'channel')
      throw new UsageError('--from-block goes with --all or --list')
    for (const [flag, name, digits, what] of [
      ['--channel', 'channel', 64, 'a channel id'],
      ['--escrow', 'escrow', 40, 'a contract address'],
      ['--payer', 'payer', 40, 'an address'],
    ] as const) {
      const value = args.values.get(name)
      if (value !== undefined) checkHexArg(flag, value, digits, what)
    }
    const from = args.values.get('fromBlock')
    if (from !== undefined) {
      if (!/^\d{1,19}$/.test(from)) throw new UsageError('--from-block takes a block number')
      fromBlock = BigInt(from)
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr(`mppkit reclaim: ${error.message}\n\n${reclaimUsage}\n`)
    return 2
  }
  const listOnly = args.switches.has('list')
  const payerAddress = args.values.get('payer') as Address | undefined
  let key: Hex | undefined
  let rpcUrl = args.values.get('rpc') ?? process.env.MPPKIT_RPC_URL
  if (!(listOnly && payerAddress)) {
    const payer = payerOf(args, 'mppkit reclaim', reclaimUsage, io)
    if (!payer) return 2
    ;({ key, rpcUrl } = payer)
  } else if (!rpcUrl) {
    io.stderr(`mppkit reclaim: missing --rpc or MPPKIT_RPC_URL\n\n${reclaimUsage}\n`)
    return 2
  }
  const account = key ? privateKeyToAccount(key) : undefined
  try {
    const chainId = await chainIdOf(rpcUrl as string)
    const channelId = args.values.get('channel') as Hex | undefined
    if (channelId) {
      const escrow = args.values.get('escrow') as Address
      const step = await reclaimChannel({
        account: account!,
        rpcUrl: rpcUrl as string,
        chainId,
        escrow,
        channelId,
      })
      io.stdout(`${describeStep(step)}\n`)
      return 0
    }
    const escrowArg = args.values.get('escrow') as Address | undefined
    const escrows = escrowArg ? [escrowArg] : (knownEscrows[chainId] ?? [])
    if (escrows.length === 0) {
      io.stderr(`mppkit reclaim: chain ${chainId} has no known session escrow: name it with --escrow\n`)
      return 2
    }
    const owner = payerAddress ?? (account as LocalAccount).address
    const found: OpenChannel[] = []
    for (const escrow of escrows)
      found.push(
        ...(await findOpenChannels({ payer: owner, rpcUrl: rpcUrl as string, chainId, escrow, fromBlock })),
      )
    if (found.length === 0) {
      io.stdout(
        `no channel of ${owner} holds a deposit on ${escrows.length === 1 ? `escrow ${escrows[0]}` : `escrows ${escrows.join(', ')}`}\n`,
      )
      return 0
    }
    if (listOnly) {
      for (const channel of found) io.stdout(`${describeOpen(channel)}\n`)
      return 0
    }
    // One channel at a time: each step waits for its transaction, so the payer's nonces stay in order,
    // and one channel's failure does not stop the others.
    let failed = 0
    for (const channel of found) {
      try {
        const step = await reclaimChannel({
          account: account!,
          rpcUrl: rpcUrl as string,
          chainId,
          escrow: channel.escrow,
          channelId: channel.channelId,
        })
        io.stdout(`${describeStep(step)}\n`)
      } catch (error) {
        failed++
        io.stderr(`mppkit reclaim: channel ${channel.channelId}: ${printable(describeError(error), 1000)}\n`)
      }
    }
    return failed > 0 ? 1 : 0
  } catch (error) {
    io.stderr(`mppkit reclaim: ${printable(describeError(error), 1000)}\n`)
    return 1
  }
}

/**
 * One line naming a saved record the session client skipped: its key and what is wrong (the record's
 * fields, never their values: it holds a signed transaction), and how to take its deposit back when it
 * names a channel.
 */
function describeSkipped(record: SkippedChannel, channelFile: string): string {
  const after =
    record.reason === 'invalid'
      ? ' (fix or remove it)'
      : record.reason === 'chain'
        ? `; with an RPC of chain ${record.chainId}, \`mppkit close\` closes it, or \`mppkit reclaim --channel ${record.channelId} --escrow ${record.escrow}\` takes its deposit back`
        : record.reason === 'duplicate'
          ? ' (remove this copy)'
          : ''
  // The key is the file's: shown without control characters, and cut.
  return `saved channel ${printable(JSON.stringify(record.key), 200)} in ${printable(channelFile, 300)} ${record.problem}: skipped, left in the file as it is${after}`
}

const closeUsage = `mppkit close --channel-file <path> [<url>] [options]
                               close the Tempo session channels mppkit pay --channel-file kept open

Each channel of the payer saved in the file (or every one of <url>'s origin) is closed cooperatively at
the URL it was last paid on: the server settles what it served and the escrow refunds the rest of the
deposit. Channels of different servers are closed at the same time (four servers at once). A channel
whose server refuses or does not answer stays saved, named with the mppkit reclaim command that takes it
back without the server. A saved record that is not valid, or is of another chain or escrow, is named,
left in the file as it is, and does not stop the others.

Options:
  --channel-file <path>  the channel file                (env MPPKIT_CHANNEL_FILE)
  --key <0x…>            the channels' payer private key   (env MPPKIT_PRIVATE_KEY)
  --rpc <url>            Tempo JSON-RPC URL                 (env MPPKIT_RPC_URL)

Exit codes: 0 every channel closed (or none saved), 1 a close failed or a record could not be closed,
2 usage error.`

const closeOptions = {
  '--channel-file': { name: 'channelFile', value: true },
  '--key': { name: 'key', value: true },
  '--rpc': { name: 'rpc', value: true },
  '-h': { name: 'help', value: false },
  '--help': { name: 'help', value: false },
} as const satisfies OptionSpec

/**
 * Runs `mppkit close --channel-file <path> [<url>]`: the cooperative close of the session channels a
 * `mppkit pay --channel-file … --keep-open` left open (all of the payer's, or the one of `<url>`'s
 * server), those of different servers concurrently (`closeAll`); a channel closed is removed from the
 * file, one whose close failed stays and is named with its `mppkit reclaim` command. A record that is
 * not valid, or of another chain or escrow, is named (its key and what is wrong, never its contents),
 * left in the file and skipped. Returns 0 when every close succeeded (or none was saved), 1 when one
 * failed or a record could not be closed, 2 on a usage error.
 *
 * @example
 * ```ts
 * process.exitCode = await close(['--channel-file', '.mppkit/channels.json'])
 * ```
 * @see draft-tempo-session-00 §"close"
 */
export async function close(argv: string[], io: Io = processIo()): Promise<number> {
  let args: ReturnType<typeof parseArgs>
  let url: string | undefined
  let channelFile: string | undefined
  try {
    args = parseArgs(argv, closeOptions)
    if (args.switches.has('help')) {
      io.stdout(`${closeUsage}\n`)
      return 0
    }
    if (args.positionals.length > 1)
      throw new UsageError(`give at most one <url> (${args.positionals.length} given; not shown)`)
    if (args.positionals.length === 1) url = commandUrl(args.positionals)
    channelFile = args.values.get('channelFile') || process.env.MPPKIT_CHANNEL_FILE || undefined
    if (!channelFile) throw new UsageError('missing --channel-file or MPPKIT_CHANNEL_FILE')
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr(`mppkit close: ${error.message}\n\n${closeUsage}\n`)
    return 2
  }
  const payer = payerOf(args, 'mppkit close', closeUsage, io)
  if (!payer) return 2
  let channelStore: ReturnType<typeof fileChannelStore> | undefined
  try {
    const chainId = await chainIdOf(payer.rpcUrl)
    channelStore = fileChannelStore(channelFile)
    const sessions = sessionClient({
      account: privateKeyToAccount(payer.key),
      rpcUrl: payer.rpcUrl,
      chainId,
      channelStore,
    })
    const restored = await sessions.restore()
    const origin = url === undefined ? undefined : new URL(url).origin
    const targets = restored.filter(
      (channel) => origin === undefined || new URL(channel.url).origin === origin,
    )
    // Records it could not restore: named and left in the file. With <url>, those of another server
    // are not this run's (one whose server cannot be read is named either way).
    const skipped = sessions
      .skipped()
      .filter((record) => origin === undefined || record.origin === undefined || record.origin === origin)
    if (targets.length === 0 && skipped.length === 0) {
      io.stdout(
        `no session channel of ${printable(privateKeyToAccount(payer.key).address)} is saved in ${printable(channelFile)}` +
          `${origin === undefined ? '' : ` for ${printable(origin)}`}\n`,
      )
      return 0
    }
    let failed = 0
    for (const record of skipped) {
      failed++
      io.stderr(`mppkit close: ${describeSkipped(record, channelFile)}\n`)
    }
    const describe = (channel: ChannelState) =>
      `channel ${channel.channelId} (${printable(new URL(channel.url).origin)})`
    for (const channel of targets)
      if (channel.opening) {
        // Its open is not mined yet (nor known gone): nothing to close or reclaim until it is.
        failed++
        io.stderr(
          `mppkit close: ${describe(channel)}: its open is not mined yet; it stays saved, run again later\n`,
        )
      }
    // Each close is one request to its server; the servers concurrently, a failure not stopping the others.
    const closing = new Set(targets.filter((channel) => !channel.opening))
    const results =
      closing.size === 0 ? [] : await sessions.closeAll({ filter: (channel) => closing.has(channel) })
    for (const result of results) {
      const channel = targets.find((target) => target.channelId === result.channelId)!
      if (result.ok && result.response) {
        const receipt = receiptOf(result.response)
        io.stdout(`closed ${describe(channel)}${receipt ? `: ${printableJson(receipt)}` : ''}\n`)
        continue
      }
      failed++
      const why = result.response
        ? `HTTP ${result.response.status}`
        : printable(describeError(result.error), 1000)
      io.stderr(
        `mppkit close: closing ${describe(channel)} failed: ${why}; it stays saved (deposit ${formatUnits(channel.deposit, tip20Decimals)}); ` +
          `without the server, \`mppkit reclaim --channel ${channel.channelId} --escrow ${channel.escrow}\` takes it back\n`,
      )
    }
    return failed > 0 ? 1 : 0
  } catch (error) {
    io.stderr(`mppkit close: ${printable(describeError(error), 1000)}\n`)
    return 1
  } finally {
    channelStore?.close()
  }
}
