import type { Method } from '@mppkit/core'
import {
  type Command,
  commandUrl,
  type Defaults,
  depositOptions,
  describeError,
  guard,
  type Io,
  type OptionSpec,
  type Parsed,
  parseArgs,
  parseCommand,
  printable,
  printableJson,
  printResponse,
  processIo,
  runCommand,
  UsageError,
} from '@mppkit/core/cli'
import {
  create as createClient,
  PaymentFailedError,
  PolicyError,
  receipt as receiptOf,
} from '@mppkit/core/client'
import { type AuthenticatedLnd, authenticatedLndGrpc } from 'lightning'
import { chargeClient, feeLimit } from './client/Charge.js'
import { type FileSessionStore, fileSessionStore } from './client/node.js'
import { lostTopUpKey, originOf as savedOrigin } from './client/Saved.js'
import {
  type PendingOpen,
  type SessionClient,
  type SessionState,
  type SkippedSession,
  sessionClient,
} from './client/Session.js'
import { lndWallet, type Wallet } from './client/Wallet.js'
import * as Invoice from './Invoice.js'
import type { LightningNetwork } from './Methods.js'

/**
 * Defaults of `mppkit pay` for Lightning: at most 10,000 sat per payment unless `--max-amount`, and a
 * session deposit (with its top-ups) of at most 10,000 sat unless `--max-deposit`, plus routing fees of at
 * most `--max-fee` (as the library's `maxAmount` leaves fees to `maxFeeSats`), and a question at a terminal
 * above 1,000 sat (a charge, or a session's deposit). Any other currency than `sat` has no default and is
 * refused until `--max-amount` names a cap.
 *
 * @example
 * ```ts
 * defaults.cap({ amount: 250n, currency: 'sat' }) // 10000n
 * ```
 */
export const defaults: Defaults = {
  cap: (quote: Method.Quote) => (quote.currency === 'sat' ? 10_000n : undefined),
  depositCap: (quote: Method.Quote) => (quote.currency === 'sat' ? 10_000n : undefined),
  confirmAbove: (quote: Method.Quote) => (quote.currency === 'sat' ? 1_000n : 0n),
}

/**
 * The options of `mppkit pay` for Lightning besides `@mppkit/core/cli`'s `commonOptions`: `mppkit pay` reads
 * the URL to probe with them, so that a flag's value is never taken for the URL.
 *
 * @example
 * ```ts
 * options['--session-file'] // { name: 'sessionFile', value: true }
 * ```
 */
export const options = {
  '--lnd-socket': { name: 'lndSocket', value: true },
  '--lnd-cert': { name: 'lndCert', value: true },
  '--lnd-macaroon': { name: 'lndMacaroon', value: true },
  '--network': { name: 'network', value: true },
  '--max-fee': { name: 'maxFee', value: true },
  ...depositOptions,
  '--keep-open': { name: 'keepOpen', value: false },
  '--session-file': { name: 'sessionFile', value: true },
} as const satisfies OptionSpec

const usage = `mppkit pay <url> [options]     pay for a URL with Lightning (a BOLT11 charge, or a session) and print the body

Options:
  --lnd-socket <host:port>   the payer's LND gRPC socket         (env MPPKIT_PAYER_LND_SOCKET)
  --lnd-cert <base64>        its tls.cert, base64                 (env MPPKIT_PAYER_LND_CERT)
  --lnd-macaroon <hex>       a macaroon that may pay, hex         (env MPPKIT_PAYER_LND_MACAROON)
  --network <name>           mainnet, regtest or signet (default mainnet; env MPPKIT_LIGHTNING_NETWORK)
  --max-amount <sat>         largest payment (a charge, or a session's price per request), routing fees
                             apart (default 10000)
  --max-deposit <sat>        largest session deposit, its top-ups included (default 10000)
  --max-fee <sat>            routing fee limit per payment in satoshis, on top (default 1% of the amount,
                             at least 10)
  --keep-open                do not close the session after the request
  --session-file <path>      keep sessions in this file (owner-only JSON holding each session's secret
                             preimage: keep it like a key) and pay on the one saved for this server
                             instead of paying a new deposit; with --keep-open the next run reuses it,
                             without it the run closes it; \`mppkit close --session-file <path>\` closes
                             them without paying again; one run at a time per file
  -X, --method <method>      HTTP method (default GET, or POST with --data)
  -d, --data <body>          request body
  -H, --header <k: v>        extra request header (repeatable)
  -y, --yes                  do not ask before paying more than 1000 sat

A lightning/session challenge opens a session: its deposit invoice is paid from the payer's node, the
request is paid from it, and the session is closed after the request (the server refunds what it did
not spend to a return invoice of the payer's node) unless --keep-open; a paid open or top-up its server
has not taken is sent again first, and while it cannot be, the session is not closed: it is named (kept
in --session-file) and the run exits 1. A paid top-up its server refuses for good (or whose challenge
expired first) is reported, its proof of payment kept in --session-file, and the run exits 1. A record
of --session-file that is not valid, or of another network, is named and left in the file as it is;
other servers are paid all the same, its own server not (a new session would be saved over it). A server
offering both intents is paid a charge, unless --session-file or --keep-open asks for a session.
Before paying it prints what it pays and its routing fee limit on stderr; at a terminal it asks first
above 1000 sat (a charge, or a session's deposit), and once when top-ups (a saved session's that ran
out, or a metered stream's) would commit more than that; every top-up is shown.
The body goes to stdout; the decoded Payment-Receipt to stderr.
Exit codes: 0 paid (2xx), 1 refused, failed or unpaid, 2 usage error.`

/** The payer's node settings of a command line (flags, else the environment); never printed. */
function nodeOf(args: Parsed): { socket: string; cert: string | undefined; macaroon: string } {
  const socket = args.values.get('lndSocket') ?? process.env.MPPKIT_PAYER_LND_SOCKET
  const cert = args.values.get('lndCert') ?? process.env.MPPKIT_PAYER_LND_CERT
  const macaroon = args.values.get('lndMacaroon') ?? process.env.MPPKIT_PAYER_LND_MACAROON
  if (!socket) throw new UsageError('missing --lnd-socket or MPPKIT_PAYER_LND_SOCKET')
  if (!macaroon) throw new UsageError('missing --lnd-macaroon or MPPKIT_PAYER_LND_MACAROON')
  return { socket, cert: cert || undefined, macaroon }
}

/** `--network` (or MPPKIT_LIGHTNING_NETWORK, default mainnet), checked. */
function networkOf(args: Parsed): LightningNetwork {
  const network = args.values.get('network') ?? process.env.MPPKIT_LIGHTNING_NETWORK ?? 'mainnet'
  if (network !== 'mainnet' && network !== 'regtest' && network !== 'signet')
    throw new UsageError('--network must be mainnet, regtest or signet')
  return network
}

/** The origin a session is kept under (the session client's key: one session per server origin). */
const originOf = (url: string) => new URL(url).origin

/**
 * The session file's failures, told without the store's error message (it may quote what it read): the
 * operation, the session and the error's code.
 */
const storeErrors =
  (io: Io, command: string, file: string) =>
  (error: unknown, info: { sessionId: string; operation: 'load' | 'save' | 'delete' }) => {
    const code = (error as { code?: unknown })?.code
    const name = typeof code === 'string' ? code : ((error as Error)?.name ?? 'error')
    io.stderr(
      `${command}: the session file ${file}: could not ${info.operation}` +
        `${info.sessionId ? ` session ${info.sessionId}` : ''} (${printable(name, 64)})\n`,
    )
  }

/** Whether `error` is the session client's report of lost sessions (the restore went on without them). */
const isLostReport = (error: unknown) => error instanceof PaymentFailedError && error.code === 'session-lost'

/** Whether `error` is the session client's report of a paid top-up its server will never credit. */
const isTopUpLost = (error: unknown) =>
  error instanceof PaymentFailedError && error.code === 'session-topup-lost'

/**
 * The lines telling of a paid top-up its server will never credit (the session client's report: the
 * sats, the session, why, and where its proof is kept; never the preimage), and where the session file
 * keeps that proof.
 */
function topUpLostLines(error: unknown, command: string, file: string | undefined): string {
  return (
    `${command}: ${printable(describeError(error), 1000)}\n` +
    (file === undefined
      ? ''
      : `${command}: ${file} keeps the proof of that payment (the top-up's preimage, not shown: a secret) ` +
        "until you delete it: show it to the server's operator\n")
  )
}

/**
 * One line naming a saved record the session client skipped: its key and what is wrong (the record's
 * fields, never their values: it holds preimages), and how to deal with it.
 */
function describeSkipped(record: SkippedSession, file: string): string {
  const what = record.key.startsWith('lost:') ? 'record' : 'session'
  const after =
    record.reason === 'network'
      ? `; \`mppkit close --session-file ${printable(file, 300)} --network ${record.network}\` closes it`
      : ' (fix or remove it)'
  // The key is the file's: shown without control characters, and cut.
  return `saved ${what} ${printable(JSON.stringify(record.key), 200)} in ${printable(file, 300)} ${record.problem}: skipped, left in the file as it is${after}`
}

/**
 * Reads the saved sessions back (`restore()`): the sessions still held, in the store's order. A report
 * of lost sessions (a deposit paid whose open can no longer be sent; its record kept as proof) is printed
 * (it names sessions, never a preimage) and the run goes on with the other sessions, which the restore
 * read all the same; `lost` is then true. Records it could not use are skipped (`skipped()`), not
 * thrown. Any other failure (a file unreadable) is thrown: nothing is paid while saved sessions could
 * not be read.
 */
async function restoreSessions(
  sessions: SessionClient,
  io: Io,
  command: string,
): Promise<{ restored: SessionState[]; lost: boolean }> {
  try {
    return { restored: await sessions.restore(), lost: false }
  } catch (error) {
    if (!isLostReport(error)) throw error
    io.stderr(`${command}: ${printable(describeError(error), 1000)}\n`)
    return { restored: [...sessions.sessions.values()], lost: true }
  }
}

/**
 * Runs `mppkit pay <url>` for Lightning: a `lightning/charge` challenge's invoice is decoded, checked and
 * paid from the payer's LND; a `lightning/session` challenge opens a session (its deposit invoice paid,
 * an amountless return invoice sent for the refund), pays the request from it, and closes it after the
 * request unless `--keep-open`; `--session-file` keeps the sessions in a file and pays on the one saved
 * for this server instead of a new deposit. Every payment stays within the caps (`--max-amount` per
 * payment or request, `--max-deposit` for a session's deposit and top-ups together, `--max-fee` for
 * routing fees) and is shown before it is paid (asked at a terminal above 1,000 sat unless `--yes`).
 * Prints the body on stdout and the decoded receipt on stderr. Returns the exit code: 0 on a paid 2xx, 1
 * when refused, failed or unpaid, 2 on a usage error. Never prints a preimage or macaroon.
 *
 * @example
 * ```ts
 * process.exitCode = await pay(['http://localhost:3000/weather', '--network', 'regtest'])
 * process.exitCode = await pay([url, '--session-file', '.mppkit/sessions.json', '--keep-open'])
 * ```
 * @see draft-lightning-charge-00, draft-lightning-session-00
 */
export async function pay(argv: string[], io: Io = processIo()): Promise<number> {
  return runCommand(io, usage, async () => {
    const command = parseCommand(argv, options, defaults)
    if (!command) {
      io.stdout(`${usage}\n`)
      return 0
    }
    const { args } = command
    const node = nodeOf(args)
    const network = networkOf(args)
    const rawFee = args.values.get('maxFee')
    if (rawFee !== undefined && !/^\d{1,15}$/.test(rawFee))
      throw new UsageError('--max-fee must be an integer number of satoshis')
    // The flag only (as Tempo's --channel-file): a file in the environment would make every run take its
    // lock and pay on its sessions.
    const sessionFile = args.values.get('sessionFile')
    if (sessionFile === '') throw new UsageError('--session-file takes a path')
    const { lnd } = authenticatedLndGrpc({
      socket: node.socket,
      macaroon: node.macaroon,
      ...(node.cert ? { cert: node.cert } : {}),
    })
    const store = sessionFile === undefined ? undefined : fileSessionStore(sessionFile)
    try {
      return await payUrl({
        command,
        lnd,
        network,
        maxFeeSats: rawFee !== undefined ? Number(rawFee) : undefined,
        store,
        io,
      })
    } finally {
      store?.close()
    }
  })
}

/**
 * What the run's top-ups may commit without asking: a question is due once a top-up would take the
 * run's session deposits past the threshold, or past what the person said yes to.
 */
type Consent = { approved: bigint | undefined }

async function payUrl(parameters: {
  command: Command
  lnd: AuthenticatedLnd
  network: LightningNetwork
  maxFeeSats: number | undefined
  store: FileSessionStore | undefined
  io: Io
}): Promise<number> {
  const { command, lnd, network, maxFeeSats, store, io } = parameters
  const { url, init, args, limits } = command
  const origin = originOf(url)
  const keepOpen = args.switches.has('keepOpen')
  const sat: Method.Quote = { amount: 0n, currency: 'sat' }
  // Opening deposits (by payment hash): announced, and asked about, by the guard before they are paid.
  const openings = new Set<string>()
  // `--yes` (or no threshold): never asked; nobody to answer: within the caps, unasked.
  const consent: Consent = { approved: limits.confirmAbove(sat) }
  let declined: string | undefined
  const payer = lndWallet(lnd)
  // Every deposit and top-up of a session leaves the node here: a top-up (any payment but an opening
  // deposit the guard showed) is shown first, and asked about as the usage says. The session client has
  // booked it against the policy (its session's deposits within --max-deposit) before it gets here.
  const wallet: Wallet = {
    ...payer,
    async pay(invoice, options) {
      const decoded = Invoice.tryDecode(invoice)
      if (!decoded || openings.has(decoded.paymentHash)) return payer.pay(invoice, options)
      const sats = (decoded.amountMsat ?? 0n) / 1000n
      const state = sessions.sessions.get(origin)
      const line =
        `top up lightning session ${state?.sessionId ?? '(unknown)'} (${printable(origin)}): deposit ` +
        `${state?.deposit ?? 0n} sat → ${(state?.deposit ?? 0n) + sats} sat, plus a routing fee of at most ` +
        `${options.maxFeeSats} sat (--max-fee)`
      const total = committed(sessions) + sats
      if (consent.approved !== undefined && total > consent.approved) {
        if (io.confirm && !(await io.confirm(`mppkit pay: ${line}`))) {
          declined = 'top-up declined: nothing was paid for it'
          throw new PaymentFailedError('top-up declined')
        }
        consent.approved = total
      }
      io.stderr(`mppkit pay: ${line}\n`)
      return payer.pay(invoice, options)
    },
  }
  const sessions: SessionClient = sessionClient({
    wallet,
    network,
    ...(maxFeeSats !== undefined ? { maxFeeSats } : {}),
    ...(store ? { sessionStore: store, onStoreError: storeErrors(io, 'mppkit pay', store.path) } : {}),
  })
  // Before the first payment, so that the quote sees a saved session (no new deposit). A lost session
  // reported is printed; the run goes on with the others.
  const { restored } = await restoreSessions(sessions, io, 'mppkit pay')
  // Records it could not use: named, left in the file; a server's is not paid (nothing saved over it).
  for (const record of sessions.skipped())
    io.stderr(`mppkit pay: ${describeSkipped(record, store?.path ?? '')}\n`)
  for (const state of restored)
    io.stderr(
      `mppkit pay: saved lightning session ${state.sessionId} (${printable(originOf(state.url))}, deposit ` +
        `${state.deposit} sat, ${state.deposit - state.spent} sat left as counted here) from ${store?.path}\n`,
    )
  for (const open of sessions.pending.values())
    io.stderr(
      `mppkit pay: saved lightning session ${open.sessionId} (${printable(originOf(open.url))}, deposit ` +
        `${open.deposit} sat, paid) from ${store?.path} is pending: its open has not reached its server ` +
        `(${printable(open.reason, 300)}); it is sent again before paying that server\n`,
    )

  // The line announced (and confirmed) names the routing fee limit too: what the payment may cost in all.
  // The guard quotes the challenge just before it speaks, and the command pays one challenge at a time.
  let feeNote = ''
  const charge = chargeClient({ lnd, network, ...(maxFeeSats !== undefined ? { maxFeeSats } : {}) })
  const chargeMethod: typeof charge = {
    ...charge,
    quote(request) {
      const quote = charge.quote!(request)
      feeNote = `, plus a routing fee of at most ${feeLimit(maxFeeSats, quote.amount)} sat (--max-fee)`
      return quote
    },
  }
  // The session's quote names the deposit whenever this server has no session here (the client's own
  // names it only while it has none at all, a saved session of another server included): the guard then
  // checks it against --max-deposit and asks about it.
  const sessionMethod: Method.Client<typeof sessions.definition> = {
    definition: sessions.definition,
    quote(request, challenge) {
      const { deposit: _, ...price } = sessions.quote!(request, challenge)
      if (sessions.sessions.has(origin)) {
        feeNote = ''
        return price
      }
      const deposit = BigInt(request.depositAmount ?? '0')
      feeNote = `, plus a routing fee of at most ${feeLimit(maxFeeSats, deposit)} sat (--max-fee)`
      return { ...price, deposit }
    },
    createPayload(context) {
      const hash = context.request.paymentHash
      if (!sessions.sessions.has(origin) && hash !== undefined) openings.add(hash)
      return sessions.createPayload(context)
    },
    onReceipt: (receipt, challenge) => sessions.onReceipt?.(receipt, challenge),
  }
  const hooks = {
    announce: (line: string) => io.stderr(`mppkit pay: ${line}${feeNote}\n`),
    confirm: io.confirm && ((line: string) => io.confirm!(`mppkit pay: ${line}${feeNote}`)),
    units: (quote: Method.Quote) => (quote.currency === 'sat' ? { decimals: 0, symbol: 'sat' } : undefined),
  }
  const guardedCharge = guard(chargeMethod, limits, hooks)
  // A bearer refused because the server closed the session: dropped, and the fresh challenge paid (a new
  // deposit, shown and capped again).
  const guardedSession: Method.Client = {
    ...guard(sessionMethod, limits, hooks),
    retryRefused: (refusal, challenge) => sessions.retryRefused?.(refusal, challenge) ?? false,
  }
  // The core client pays the first of its methods offered (then in the server's order): a charge, unless
  // the command asks for a session.
  const wantsSession = store !== undefined || keepOpen
  const perSat = (limit: bigint | undefined) => (limit === undefined ? undefined : { sat: limit })
  const maxAmount = perSat(limits.maxAmount(sat))
  const maxDeposit = perSat(limits.maxDeposit(sat))
  const client = createClient({
    methods: wantsSession ? [guardedSession, guardedCharge] : [guardedCharge, guardedSession],
    // The session client books each deposit and top-up against maxDeposit (its session's total), as the
    // guard checked the opening one: a top-up past --max-deposit is refused, nothing paid.
    policy: {
      currencies: ['sat'],
      ...(maxAmount ? { maxAmount } : {}),
      ...(maxDeposit ? { maxDeposit } : {}),
    },
  })

  // A payment that failed or was refused still ends the run as usual: the session closed (without
  // --keep-open) or named.
  let response: Response | undefined
  try {
    response = await client.fetch(url, init)
  } catch (error) {
    // An error's message may carry a server's words; never a preimage (this package's errors name the failure).
    const said = declined ?? printable(describeError(error), 1000)
    // The policy's deposit cap is met by a top-up only (the guard checked the opening deposit first).
    const topUp = error instanceof PolicyError && error.reason === 'max-deposit'
    io.stderr(
      topUp
        ? `mppkit pay: refusing to top up the session: ${said}; --max-deposit caps a session's deposit and ` +
            'top-ups together (raise it, or close the session)\n'
        : isTopUpLost(error)
          ? topUpLostLines(error, 'mppkit pay', store?.path)
          : `mppkit pay: ${said}\n`,
    )
  }
  let code = 1
  if (response) {
    const stream = /text\/event-stream/i.test(response.headers.get('content-type') ?? '')
    if (response.ok && stream && sessions.sessions.has(origin)) {
      const receipt = receiptOf(response)
      if (receipt) io.stderr(`receipt: ${printableJson(receipt, 2)}\n`)
      // What the request committed so far was at most the threshold, or was asked about when it opened.
      const now = committed(sessions)
      if (consent.approved !== undefined && now > consent.approved) consent.approved = now
      code = await readStream(response, url, sessions, io, () => declined)
    } else code = await printResponse(response, io)
  }
  // This URL's session (one restored from --session-file for another server stays as it is). Its open
  // unconfirmed, the close sends it again first; a paid top-up still pending, the close sends it first.
  // While the server cannot take either, the session is not closed (a close would lose that money): it
  // is kept, named below, and the run fails.
  if (!keepOpen && sessions.sessions.has(origin)) {
    const closed = await sessions.close(url).catch((error: unknown) => {
      const held = error instanceof PaymentFailedError ? error.code : undefined
      if (
        held === 'session-open-pending' ||
        held === 'session-topup-pending' ||
        held === 'session-lost' ||
        held === 'session-topup-lost'
      )
        code = 1
      // A paid top-up its server will never credit: the session was closed all the same (or, if its
      // server did not close it, it is named below as open); the top-up's proof stays in the file.
      if (held === 'session-topup-lost') io.stderr(topUpLostLines(error, 'mppkit pay', store?.path))
      // A pending open is named below, with what to do about it.
      else if (held !== 'session-open-pending')
        io.stderr(`mppkit pay: closing the session failed: ${printable(describeError(error), 1000)}\n`)
      return undefined
    })
    if (closed && !sessions.sessions.has(origin)) {
      const receipt = receiptOf(closed)
      if (receipt) io.stderr(`close receipt: ${printableJson(receipt, 2)}\n`)
      else io.stderr('mppkit pay: the server had closed the session already\n')
    } else if (closed) io.stderr(`mppkit pay: closing the session failed: HTTP ${closed.status}\n`)
  }
  // A session left open holds the payer's deposit at its server: say which, and how it ends.
  // One whose open its server has not confirmed (answered 5xx, or not at all: kept with --keep-open) is
  // not open there: named as pending, and the run fails, as below.
  for (const state of sessions.sessions.values())
    if (sessions.confirmed(state)) io.stderr(`mppkit pay: ${stillOpen(state, store?.path)}\n`)
    else {
      const { sessionId, realm, url, deposit } = state
      const open = { sessionId, realm, url, deposit, reason: 'its open has not been confirmed by its server' }
      io.stderr(`mppkit pay: ${stillPending(open, store?.path)}\n`)
      code = 1
    }
  // This server's paid open that has not reached it: never dropped, named, and the run fails.
  for (const open of sessions.pending.values())
    if (originOf(open.url) === origin) {
      io.stderr(`mppkit pay: ${stillPending(open, store?.path)}\n`)
      code = 1
    }
  return code
}

/** One line for a session whose paid open has not reached its server, and what can be done. Never its preimage. */
function stillPending(open: PendingOpen, file: string | undefined): string {
  return (
    `lightning session ${open.sessionId} (${printable(originOf(open.url))}) is pending: its deposit of ` +
    `${open.deposit} sat is paid but its open did not reach its server (${printable(open.reason, 300)}), so ` +
    'it was not closed: ' +
    (file === undefined
      ? 'not saved (no --session-file): nothing can send its open again or close it after this run; the ' +
        "session id is the deposit's payment hash, and the payer node's payment of it holds the preimage " +
        "(the proof of payment to show the server's operator)"
      : `it stays saved in ${file}: \`mppkit close --session-file ${file}\` sends its open again and ` +
        'closes it (refund to the return invoice), or, if its server is gone for good, ' +
        `\`mppkit close --session-file ${file} --abandon ${open.sessionId}\` gives it up (its proof of payment ` +
        'kept in the file)')
  )
}

/** One line for a session left open, and how it can end. Never its preimage. */
function stillOpen(state: SessionState, file: string | undefined): string {
  return (
    `lightning session ${state.sessionId} stays open at ${printable(originOf(state.url))} (deposit ${state.deposit} sat, ` +
    `${state.deposit - state.spent} sat left as counted here): ` +
    (file === undefined
      ? 'not saved (no --session-file): nothing can pay on it or close it after this run; its server closes it ' +
        'after its idle timeout and refunds what it did not spend to the return invoice'
      : `saved in ${file}: \`--session-file\` pays on it again, \`mppkit close --session-file ${file}\` closes it ` +
        '(refund to the return invoice)')
  )
}

/** What this run's sessions committed: their deposits, top-ups included (a request is within them). */
function committed(sessions: SessionClient): bigint {
  let total = 0n
  for (const state of sessions.sessions.values()) total += state.deposit
  return total
}

/**
 * Reads a session's SSE response billed per chunk (draft-lightning-session-00 §"Streaming and Per-Chunk
 * Billing"): data to stdout, a `payment-need-topup` answered by a top-up (shown, asked about and capped
 * as every top-up), the `payment-receipt` event to stderr. Returns 1 when the stream ends before it was
 * paid in full.
 */
async function readStream(
  response: Response,
  url: string,
  sessions: SessionClient,
  io: Io,
  declined: () => string | undefined,
): Promise<number> {
  let receipt = false
  let unpaid: string | undefined
  try {
    for await (const chunk of sessions.stream(response, url, (name, data) => {
      // The server's words, bounded and without control characters.
      const shown = printable(typeof data === 'string' ? data : JSON.stringify(data), 2000)
      if (name === 'payment-receipt') {
        receipt = true
        io.stderr(`stream receipt: ${shown}\n`)
      } else if (name !== 'payment-need-topup')
        io.stderr(`mppkit pay: stream event ${printable(name, 64)}: ${shown}\n`)
    }))
      io.stdout(`${chunk}\n`)
  } catch (error) {
    unpaid = declined() ?? describeError(error)
    // The server holds a paused stream open until its top-up timeout: this run no longer reads it.
    await response.body?.cancel().catch(() => {})
  }
  if (!unpaid && !receipt) unpaid = 'the stream ended without its payment-receipt event'
  if (unpaid) {
    io.stderr(`mppkit pay: the stream ended unpaid: ${printable(unpaid, 1000)}\n`)
    return 1
  }
  return 0
}

const closeUsage = `mppkit close --session-file <path> [<url>] [options]
                               close the Lightning sessions mppkit pay --session-file kept open
mppkit close --session-file <path> --abandon <sessionId> [options]
                               give up a pending session whose server is gone for good

Each session saved in the file (or the one of <url>'s origin) is closed at the URL it was last paid on:
its server refunds what it did not spend to the session's return invoice, on the payer's node, and the
session leaves the file. Different servers are closed at once (up to 4), each request within
--side-timeout: a server that does not answer holds up only its own session. A session whose server
refuses or does not answer stays saved: run this again later (a server also closes an idle session
itself, and refunds it the same way). A paid open or top-up its server has not taken yet is sent again
first; while it cannot be, the session is not closed (it stays saved). A paid top-up its server refuses
for good (or whose challenge expired first) is reported and its proof of payment kept in the file; the
session is closed all the same. A lost session (a deposit paid whose open can no longer be sent) is
reported, the others closed all the same. The payments the file keeps as lost (sessions lost or given
up, top-ups lost) are listed, each with where its proof of payment is kept (never the preimage). A
record that is not valid, or of another network, is named (its key and what is wrong, never what it
holds), left in the file as it is, and does not stop the others.
Closing pays nothing: no node connection is needed.

--abandon <sessionId> gives up a pending session (its deposit paid, its open never taken by its
server; its open is sent once more first): its open is no longer sent, nothing is refunded, and its
record moves to "lost:<sessionId>" in the file, which keeps its proof of payment (the deposit's
preimage) to show the server's operator. It closes nothing else.

Options:
  --session-file <path>  the session file                 (env MPPKIT_SESSION_FILE)
  --network <name>       the sessions' network: mainnet, regtest or signet (default mainnet;
                         env MPPKIT_LIGHTNING_NETWORK)
  --side-timeout <ms>    time limit of each request to a server, in milliseconds (default 10000)
  --abandon <sessionId>  give up that pending session instead of closing sessions

Exit codes: 0 every session closed (or none saved), or the pending session given up; 1 a close failed,
a session is pending or lost, a top-up was lost, a record could not be read or is of another network,
or --abandon named no pending session (nothing changed); 2 usage error.`

const closeOptions = {
  '--session-file': { name: 'sessionFile', value: true },
  '--network': { name: 'network', value: true },
  '--side-timeout': { name: 'sideTimeout', value: true },
  '--abandon': { name: 'abandon', value: true },
  '-h': { name: 'help', value: false },
  '--help': { name: 'help', value: false },
} as const satisfies OptionSpec

/** What a `mppkit close` command line asks for, checked. */
type CloseCommand = {
  sessionFile: string
  network: LightningNetwork
  url: string | undefined
  sideTimeoutMs: number | undefined
  /** The session id `--abandon` names (lower-case hex), if given. */
  abandon: string | undefined
}

/** Reads `mppkit close`'s command line; `undefined` for `--help`; a {@link UsageError} when it is wrong. */
function parseClose(argv: string[]): CloseCommand | undefined {
  const args = parseArgs(argv, closeOptions)
  if (args.switches.has('help')) return undefined
  // Never echoed: a secret given in place of the URL would be printed back.
  if (args.positionals.length > 1)
    throw new UsageError(`give at most one <url> (${args.positionals.length} given; not shown)`)
  const url = args.positionals.length === 1 ? commandUrl(args.positionals) : undefined
  const sessionFile = args.values.get('sessionFile') || process.env.MPPKIT_SESSION_FILE || undefined
  if (!sessionFile) throw new UsageError('missing --session-file or MPPKIT_SESSION_FILE')
  const network = networkOf(args)
  // Not echoed either (as a URL's place): a value pasted here by mistake may be a secret.
  const rawTimeout = args.values.get('sideTimeout')
  if (rawTimeout !== undefined && !(/^\d{1,10}$/.test(rawTimeout) && Number(rawTimeout) >= 1))
    throw new UsageError('--side-timeout takes a whole number of milliseconds (at least 1)')
  const sideTimeoutMs = rawTimeout === undefined ? undefined : Number(rawTimeout)
  if (sideTimeoutMs !== undefined && sideTimeoutMs > 2_147_483_647)
    throw new UsageError('--side-timeout takes at most 2147483647 milliseconds (about 24.8 days)')
  // A session id is its deposit's payment hash: 64 hex digits (a preimage looks the same, so the value is
  // never echoed unless it names a session).
  const rawAbandon = args.values.get('abandon')
  if (rawAbandon !== undefined && !/^[0-9a-f]{64}$/i.test(rawAbandon))
    throw new UsageError(
      '--abandon takes a session id: the 64 hex digits mppkit names a session by (not shown)',
    )
  if (rawAbandon !== undefined && url !== undefined)
    throw new UsageError('--abandon <sessionId> names its session: give no <url> with it')
  return { sessionFile, network, url, sideTimeoutMs, abandon: rawAbandon?.toLowerCase() }
}

// A close pays nothing and needs no invoice: the session client gets a wallet that refuses both.
const noPayments: Wallet = {
  pay: async () => {
    throw new PaymentFailedError('lightning: mppkit close pays nothing')
  },
  receive: async () => {
    throw new PaymentFailedError('lightning: mppkit close creates no invoice')
  },
}

/**
 * Runs `mppkit close --session-file <path> [<url>]`: closes the Lightning sessions a `mppkit pay
 * --session-file … --keep-open` left open (all of the file's on the network, those of different servers
 * at once, or the one of `<url>`'s server); each server refunds what it did not spend to the session's
 * return invoice. A session closed leaves the file; one whose close failed stays. A paid top-up its
 * server will never credit is reported (its proof of payment stays in the file) and its session closed
 * all the same. The lost payments the file keeps are listed, each with where its proof is kept. A
 * record that is not valid, or of another network, is named (its key and what is wrong, never its
 * contents), left in the file and skipped (`skipped()`). With `--abandon <sessionId>`, gives up that
 * pending session instead (`abandonPending`: its record moves to `lost:<sessionId>`, its proof of
 * payment kept). No node is needed (a close pays nothing). Returns 0 when every close succeeded (or none
 * was saved) or the session was given up, 1 when one failed, a session is pending or lost, a top-up was
 * lost, a record was skipped, or `--abandon` named no pending session, 2 on a usage error. Never prints
 * a preimage.
 *
 * @example
 * ```ts
 * process.exitCode = await close(['--session-file', '.mppkit/sessions.json', '--network', 'regtest'])
 * process.exitCode = await close(['--session-file', '.mppkit/sessions.json', '--abandon', sessionId])
 * ```
 * @see draft-lightning-session-00 §"Close"
 */
export async function close(argv: string[], io: Io = processIo()): Promise<number> {
  let command: CloseCommand | undefined
  try {
    command = parseClose(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    io.stderr(`mppkit close: ${error.message}\n\n${closeUsage}\n`)
    return 2
  }
  if (!command) {
    io.stdout(`${closeUsage}\n`)
    return 0
  }
  const { sessionFile, network, sideTimeoutMs } = command
  let store: FileSessionStore | undefined
  try {
    store = fileSessionStore(sessionFile)
    const sessions = sessionClient({
      wallet: noPayments,
      network,
      sessionStore: store,
      onStoreError: storeErrors(io, 'mppkit close', sessionFile),
      ...(sideTimeoutMs === undefined ? {} : { sideTimeoutMs }),
    })
    return command.abandon === undefined
      ? await closeSessions(sessions, command, io)
      : await abandonSession(sessions, command.abandon, command, io)
  } catch (error) {
    io.stderr(`mppkit close: ${printable(describeError(error), 1000)}\n`)
    return 1
  } finally {
    store?.close()
  }
}

/** `origin (of a URL)`, or the name a session was opened on when it has none; printable. */
const placeOf = (url: string) => printable(savedOrigin(url) ?? url, 200)

/** One session's close, as {@link SessionClient.closeAll} reports it. */
type Closed = Awaited<ReturnType<SessionClient['closeAll']>>[number]

/**
 * Closes the sessions of `mppkit close` (without `--abandon`), names the pending ones and lists the lost
 * payments the file keeps; the exit code.
 */
async function closeSessions(sessions: SessionClient, command: CloseCommand, io: Io): Promise<number> {
  const { sessionFile, network, url } = command
  // A lost session reported is printed, and the others are closed all the same (the run then fails).
  const { restored, lost } = await restoreSessions(sessions, io, 'mppkit close')
  const origin = url === undefined ? undefined : originOf(url)
  const targets = restored.filter((state) => origin === undefined || originOf(state.url) === origin)
  // Records it could not use: named and left in the file. With <url>, those of another server are not
  // this run's (one whose server cannot be told is named either way).
  const skipped = sessions
    .skipped()
    .filter((record) => origin === undefined || record.origin === undefined || record.origin === origin)
  for (const record of skipped) io.stderr(`mppkit close: ${describeSkipped(record, sessionFile)}\n`)
  // A paid open its server has not taken yet cannot be closed now: named, kept, and the run fails.
  const pending = [...sessions.pending.values()].filter(
    (open) => origin === undefined || originOf(open.url) === origin,
  )
  for (const open of pending)
    io.stderr(
      `mppkit close: lightning session ${open.sessionId} (${printable(originOf(open.url))}) cannot be closed ` +
        `yet: its deposit of ${open.deposit} sat is paid but its open has not reached its server ` +
        `(${printable(open.reason, 300)}); it stays saved: run this again later, or, if its server is gone ` +
        `for good, \`mppkit close --session-file ${sessionFile} --abandon ${open.sessionId}\` gives it up ` +
        '(its proof of payment kept in the file)\n',
    )
  let failed = 0
  let lostTopUps = 0
  if (targets.length === 0 && pending.length === 0 && !lost && skipped.length === 0)
    io.stdout(
      `no lightning session on ${network} is saved in ${sessionFile}` +
        `${origin === undefined ? '' : ` for ${printable(origin)}`}\n`,
    )
  else if (targets.length > 0) {
    const results = await closeTargets(sessions, targets, origin !== undefined)
    // As the file lists them, a failure not stopping the others.
    for (const state of targets) {
      const result = results.get(state)!
      const told = reportClose(state, result, sessionFile, io)
      if (told.failed) failed++
      if (told.topUpLost) lostTopUps++
    }
  }
  if (!(await listLost(sessions, origin, sessionFile, io))) failed++
  return failed > 0 || pending.length > 0 || lost || lostTopUps > 0 || skipped.length > 0 ? 1 : 0
}

/**
 * Closes `targets`: the one of a `<url>` by `close`, all of them by `closeAll` (different servers at
 * once: a server that does not answer holds up only its own session's close, each of its requests within
 * `sideTimeoutMs`). Each session's outcome, a failure in it rather than thrown.
 */
async function closeTargets(
  sessions: SessionClient,
  targets: SessionState[],
  one: boolean,
): Promise<Map<SessionState, Closed>> {
  const results = new Map<SessionState, Closed>()
  if (one) {
    for (const state of targets) {
      let response: Response | undefined
      let error: unknown
      try {
        response = await sessions.close(state.url)
      } catch (caught) {
        error = caught
      }
      // "Clients MUST NOT submit further actions on a closed session": the client drops (and forgets) a
      // session its server closed, now or before (an idle close, refunded then).
      const closed = !sessions.sessions.has(originOf(state.url))
      results.set(state, {
        sessionId: state.sessionId,
        url: state.url,
        closed,
        ...(response ? { response } : {}),
        ...(error === undefined ? {} : { error }),
      })
    }
    return results
  }
  const byId = new Map(targets.map((state) => [state.sessionId, state]))
  for (const result of await sessions.closeAll()) {
    const state = byId.get(result.sessionId)
    if (state) results.set(state, result)
  }
  // A session the close did not get to (none is expected: the client held each target): not closed.
  for (const state of targets)
    if (!results.has(state))
      results.set(state, {
        sessionId: state.sessionId,
        url: state.url,
        closed: !sessions.sessions.has(originOf(state.url)),
      })
  return results
}

/** Prints the outcome of one session's close (never its preimage); whether it failed, and whether it lost a top-up. */
function reportClose(
  state: SessionState,
  { closed, response, error }: Closed,
  sessionFile: string,
  io: Io,
): { failed: boolean; topUpLost: boolean } {
  const what = `lightning session ${state.sessionId} (${printable(originOf(state.url))})`
  // A paid top-up its server will never credit: reported, its proof kept in the file; the session's close
  // went on all the same.
  const topUpLost = isTopUpLost(error)
  if (topUpLost) io.stderr(topUpLostLines(error, 'mppkit close', sessionFile))
  if (closed) {
    const receipt = response && receiptOf(response)
    io.stdout(
      `closed ${what}${
        receipt
          ? `: ${printableJson(receipt)}`
          : topUpLost
            ? ' (its refund goes to the return invoice; its lost top-up is reported on stderr)'
            : ': its server had closed it already'
      }\n`,
    )
    return { failed: false, topUpLost }
  }
  const why = response
    ? `HTTP ${response.status}`
    : topUpLost
      ? 'its server did not close it (see above)'
      : printable(describeError(error ?? 'not closed'), 1000)
  // Its paid top-up not credited yet: an idle close would refund the deposit without it.
  const topUp = error instanceof PaymentFailedError && error.code === 'session-topup-pending'
  io.stderr(
    `mppkit close: closing ${what} failed: ${why}; it stays saved (deposit ${state.deposit} sat): run this ` +
      (topUp
        ? 'again later (the file keeps its paid top-up, sent again first)\n'
        : 'again later (its server also closes it after its idle timeout, refunding the return invoice)\n'),
  )
  return { failed: true, topUpLost }
}

/**
 * Names, once, each lost payment the file keeps (of `origin`'s server, or all): a session lost or given
 * up (its deposit's preimage) or a top-up lost (its preimage), with the record it is kept under; never
 * the preimage. False when the records could not be read (named, by the client's error).
 */
async function listLost(
  sessions: SessionClient,
  origin: string | undefined,
  sessionFile: string,
  io: Io,
): Promise<boolean> {
  let records: Awaited<ReturnType<SessionClient['lost']>>
  try {
    records = await sessions.lost()
  } catch (error) {
    io.stderr(`mppkit close: the lost records of ${sessionFile}: ${printable(describeError(error), 1000)}\n`)
    return false
  }
  const shown = records.filter((record) => origin === undefined || savedOrigin(record.url) === origin)
  for (const record of shown) {
    const session = `lightning session ${record.sessionId} (${placeOf(record.url)})`
    io.stderr(
      'kind' in record
        ? `mppkit close: lost top-up of ${session}: ${printable(record.sats, 32)} sat paid, never credited ` +
            `(${printable(record.reason, 300)}); ${sessionFile} keeps its proof of payment (the top-up's ` +
            `preimage, not shown: a secret) under "${lostTopUpKey(record.sessionId, record.paymentHash)}"\n`
        : `mppkit close: lost open of ${session}: its deposit of ${printable(record.deposit, 32)} sat paid, its ` +
            `open never taken by its server; ${sessionFile} keeps its proof of payment (the deposit's ` +
            `preimage, not shown: a secret) under "lost:${record.sessionId}"\n`,
    )
  }
  if (shown.length > 0)
    io.stderr(
      "mppkit close: show these proofs to the server's operator; the file keeps them until you delete them\n",
    )
  return true
}

/**
 * `mppkit close --abandon <sessionId>`: gives up that pending session (`abandonPending`), after the
 * restore has sent its open once more; the exit code. One not pending (open, lost already, or unknown) is
 * named, nothing changed.
 */
async function abandonSession(
  sessions: SessionClient,
  sessionId: string,
  { sessionFile, network }: CloseCommand,
  io: Io,
): Promise<number> {
  // The restore sends every pending open again first: one that gets through now is open, not given up.
  await restoreSessions(sessions, io, 'mppkit close')
  const open = () => [...sessions.sessions.values()].find((state) => state.sessionId === sessionId)
  const isOpen = (state: SessionState) => {
    const place = printable(originOf(state.url))
    io.stderr(
      `mppkit close: lightning session ${sessionId} (${place}) is open, not pending: nothing was given up; ` +
        `\`mppkit close --session-file ${sessionFile} ${place}\` closes it (refund to the return invoice)\n`,
    )
    return 1
  }
  const waiting = [...sessions.pending.values()].find((entry) => entry.sessionId === sessionId)
  if (!waiting) {
    const state = open()
    if (state) return isOpen(state)
    const kept = (await sessions.lost()).find(
      (record) => !('kind' in record) && record.sessionId === sessionId,
    )
    if (kept) {
      io.stderr(
        `mppkit close: lightning session ${sessionId} (${placeOf(kept.url)}) is lost or given up already: ` +
          `${sessionFile} keeps its proof of payment under "lost:${sessionId}"; nothing was changed\n`,
      )
      return 1
    }
    const ids = [...sessions.pending.values()].map((entry) => entry.sessionId)
    io.stderr(
      `mppkit close: no pending lightning session on ${network} in ${sessionFile} has the id --abandon ` +
        `gives (not shown); nothing was changed; ${ids.length === 0 ? 'none is pending' : `pending: ${ids.join(', ')}`}\n`,
    )
    return 1
  }
  // Rejected (`session-store-failed`) when the file cannot move it: told by the caller, nothing given up.
  const record = await sessions.abandonPending(sessionId)
  if (!record) {
    // Its open got through meanwhile (never given up then).
    const state = open()
    if (state) return isOpen(state)
    io.stderr(`mppkit close: lightning session ${sessionId} is no longer pending: nothing was given up\n`)
    return 1
  }
  io.stdout(
    `gave up lightning session ${sessionId} (${placeOf(waiting.url)}): its deposit of ${waiting.deposit} sat ` +
      `is paid but its open never reached its server (${printable(waiting.reason, 300)}); its open is no longer ` +
      `sent and nothing is refunded. ${sessionFile} keeps its proof of payment (the deposit's preimage, not ` +
      `shown: a secret) under "lost:${sessionId}": show it to the server's operator\n`,
  )
  return 0
}
