import type { Method } from '@mppkit/core'
import {
  type Defaults,
  guard,
  type Io,
  type OptionSpec,
  parseCommand,
  printResponse,
  processIo,
  runCommand,
  UsageError,
} from '@mppkit/core/cli'
import { create as createClient } from '@mppkit/core/client'
import { authenticatedLndGrpc } from 'lightning'
import { chargeClient, feeLimit } from './client/Charge.js'
import type { LightningNetwork } from './Methods.js'

/**
 * Defaults of `mppkit pay` for Lightning: at most 10,000 sat per payment unless `--max-amount`, plus
 * routing fees of at most `--max-fee` (as the library's `maxAmount` leaves fees to `maxFeeSats`), and a
 * question at a terminal above 1,000 sat. Any other currency than `sat` has no default and is refused until
 * `--max-amount` names a cap.
 */
export const defaults: Defaults = {
  cap: (quote: Method.Quote) => (quote.currency === 'sat' ? 10_000n : undefined),
  confirmAbove: (quote: Method.Quote) => (quote.currency === 'sat' ? 1_000n : 0n),
}

/**
 * The options of `mppkit pay` for Lightning besides `@mppkit/core/cli`'s `commonOptions`: `mppkit pay` reads
 * the URL to probe with them, so that a flag's value is never taken for the URL.
 */
export const options = {
  '--lnd-socket': { name: 'lndSocket', value: true },
  '--lnd-cert': { name: 'lndCert', value: true },
  '--lnd-macaroon': { name: 'lndMacaroon', value: true },
  '--network': { name: 'network', value: true },
  '--max-fee': { name: 'maxFee', value: true },
} as const satisfies OptionSpec

const usage = `mppkit pay <url> [options]     pay for a URL with Lightning (a BOLT11 charge) and print the body

Options:
  --lnd-socket <host:port>   the payer's LND gRPC socket         (env MPPKIT_PAYER_LND_SOCKET)
  --lnd-cert <base64>        its tls.cert, base64                 (env MPPKIT_PAYER_LND_CERT)
  --lnd-macaroon <hex>       a macaroon that may pay, hex         (env MPPKIT_PAYER_LND_MACAROON)
  --network <name>           mainnet, regtest or signet (default mainnet; env MPPKIT_LIGHTNING_NETWORK)
  --max-amount <sat>         largest payment in satoshis, routing fees apart (default 10000)
  --max-fee <sat>            routing fee limit in satoshis, on top (default 1% of the amount, at least 10)
  -X, --method <method>      HTTP method (default GET, or POST with --data)
  -d, --data <body>          request body
  -H, --header <k: v>        extra request header (repeatable)
  -y, --yes                  do not ask before paying more than 1000 sat

Pays lightning/charge challenges only (a session needs a close: use @mppkit/method-lightning/client).
Before paying it prints what it pays and its routing fee limit on stderr; at a terminal it asks
first above 1000 sat.
The body goes to stdout; the decoded Payment-Receipt to stderr.
Exit codes: 0 paid (2xx), 1 refused, failed or unpaid, 2 usage error.`

/**
 * Runs `mppkit pay <url>` for Lightning: decodes and checks the challenge's invoice, pays it from the
 * payer's LND within a per-payment cap (default 10,000 sat) and a fee limit, shows what it pays and that
 * limit (and asks at a terminal above 1,000 sat unless `--yes`), prints the body on stdout and the
 * decoded receipt on stderr. Returns the exit code: 0 on a paid 2xx, 1 when refused, failed or unpaid, 2
 * on a usage error. Never prints a preimage or macaroon.
 *
 * @example
 * ```ts
 * process.exitCode = await pay(['http://localhost:3000/weather', '--network', 'regtest'])
 * ```
 * @see draft-lightning-charge-00
 */
export async function pay(argv: string[], io: Io = processIo()): Promise<number> {
  return runCommand(io, usage, async () => {
    const command = parseCommand(argv, options, defaults)
    if (!command) {
      io.stdout(`${usage}\n`)
      return 0
    }
    const { args } = command
    const socket = args.values.get('lndSocket') ?? process.env.MPPKIT_PAYER_LND_SOCKET
    const cert = args.values.get('lndCert') ?? process.env.MPPKIT_PAYER_LND_CERT
    const macaroon = args.values.get('lndMacaroon') ?? process.env.MPPKIT_PAYER_LND_MACAROON
    const network = args.values.get('network') ?? process.env.MPPKIT_LIGHTNING_NETWORK ?? 'mainnet'
    if (!socket) throw new UsageError('missing --lnd-socket or MPPKIT_PAYER_LND_SOCKET')
    if (!macaroon) throw new UsageError('missing --lnd-macaroon or MPPKIT_PAYER_LND_MACAROON')
    if (network !== 'mainnet' && network !== 'regtest' && network !== 'signet')
      throw new UsageError('--network must be mainnet, regtest or signet')
    const rawFee = args.values.get('maxFee')
    if (rawFee !== undefined && !/^\d{1,15}$/.test(rawFee))
      throw new UsageError('--max-fee must be an integer number of satoshis')
    const { lnd } = authenticatedLndGrpc({ socket, macaroon, ...(cert ? { cert } : {}) })
    const maxFeeSats = rawFee !== undefined ? Number(rawFee) : undefined
    const charge = chargeClient({
      lnd,
      network: network as LightningNetwork,
      ...(maxFeeSats !== undefined ? { maxFeeSats } : {}),
    })
    // The line announced (and confirmed) names the routing fee limit too: what the payment may cost in all.
    // The guard quotes the challenge just before it speaks, and the command pays one challenge.
    let feeNote = ''
    const method: typeof charge = {
      ...charge,
      quote(request) {
        const quote = charge.quote!(request)
        feeNote = `, plus a routing fee of at most ${feeLimit(maxFeeSats, quote.amount)} sat (--max-fee)`
        return quote
      },
    }
    const client = createClient({
      methods: [
        guard(method, command.limits, {
          announce: (line) => io.stderr(`mppkit pay: ${line}${feeNote}\n`),
          confirm: io.confirm && ((line) => io.confirm!(`mppkit pay: ${line}${feeNote}`)),
          units: (quote) => (quote.currency === 'sat' ? { decimals: 0, symbol: 'sat' } : undefined),
        }),
      ],
    })
    // Messages of this package never carry a preimage (they name the failure only).
    return printResponse(await client.fetch(command.url, command.init), io)
  })
}
