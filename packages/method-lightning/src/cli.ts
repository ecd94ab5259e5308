import { PolicyError } from '@mppkit/core'
import { create as createClient, type Policy, receipt as receiptOf } from '@mppkit/core/client'
import { authenticatedLndGrpc } from 'lightning'
import { chargeClient } from './client/Charge.js'
import type { LightningNetwork } from './Methods.js'

const usage = `mppkit pay <url> [options]     pay for a URL with Lightning (a BOLT11 charge) and print the body

Options:
  --lnd-socket <host:port>   the payer's LND gRPC socket         (env MPPKIT_PAYER_LND_SOCKET)
  --lnd-cert <base64>        its tls.cert, base64                 (env MPPKIT_PAYER_LND_CERT)
  --lnd-macaroon <hex>       a macaroon that may pay, hex         (env MPPKIT_PAYER_LND_MACAROON)
  --network <name>           mainnet, regtest or signet (default mainnet; env MPPKIT_LIGHTNING_NETWORK)
  --max-amount <sat>         largest payment in satoshis (spend policy; default 10000)
  --max-fee <sat>            routing fee limit in satoshis (default 1% of the amount, at least 10)
  -X, --method <method>      HTTP method (default GET)
  -d, --data <body>          request body
  -H, --header <k: v>        extra request header (repeatable)

Pays lightning/charge challenges only (a session needs a close: use @mppkit/method-lightning/client).
The body goes to stdout; the decoded Payment-Receipt goes to stderr.`

type Io = { stdout: (text: string) => void; stderr: (text: string) => void }

/**
 * Runs `mppkit pay <url>` for Lightning: decodes and checks the challenge's invoice, pays it from the
 * payer's LND under a fee limit, prints the body on stdout and the decoded receipt on stderr. Returns the
 * exit code (0 on a 2xx response). Never prints a preimage or macaroon.
 *
 * @example
 * ```ts
 * process.exitCode = await pay(['http://localhost:3000/weather', '--network', 'regtest'])
 * ```
 * @see draft-lightning-charge-00
 */
export async function pay(
  argv: string[],
  io: Io = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) },
): Promise<number> {
  const flags = new Map<string, string>()
  const headers = new Headers()
  let url: string | undefined
  try {
    for (let i = 0; i < argv.length; i++) {
      const arg = argv[i] as string
      const value = () => {
        const next = argv[++i]
        if (next === undefined) throw new PolicyError('usage', `${arg} needs a value`)
        return next
      }
      if (arg === '--help' || arg === '-h') {
        io.stdout(`${usage}\n`)
        return 0
      }
      if (arg === '-H' || arg === '--header') {
        const header = value()
        const colon = header.indexOf(':')
        if (colon > 0) headers.append(header.slice(0, colon).trim(), header.slice(colon + 1).trim())
      } else if (arg === '-X') flags.set('--method', value())
      else if (arg === '-d') flags.set('--data', value())
      else if (arg.startsWith('--')) flags.set(arg, value())
      else url ??= arg
    }
  } catch (error) {
    io.stderr(`${(error as Error).message}\n\n${usage}\n`)
    return 2
  }
  const socket = flags.get('--lnd-socket') ?? process.env.MPPKIT_PAYER_LND_SOCKET
  const cert = flags.get('--lnd-cert') ?? process.env.MPPKIT_PAYER_LND_CERT
  const macaroon = flags.get('--lnd-macaroon') ?? process.env.MPPKIT_PAYER_LND_MACAROON
  const network = flags.get('--network') ?? process.env.MPPKIT_LIGHTNING_NETWORK ?? 'mainnet'
  const missing = !url
    ? 'missing <url>'
    : !socket
      ? 'missing --lnd-socket or MPPKIT_PAYER_LND_SOCKET'
      : !macaroon
        ? 'missing --lnd-macaroon or MPPKIT_PAYER_LND_MACAROON'
        : !['mainnet', 'regtest', 'signet'].includes(network)
          ? '--network must be mainnet, regtest or signet'
          : undefined
  if (missing) {
    io.stderr(`${missing}\n\n${usage}\n`)
    return 2
  }
  const numeric = (flag: string, fallback: bigint | undefined) => {
    const raw = flags.get(flag)
    if (raw === undefined) return fallback
    if (!/^\d{1,15}$/.test(raw))
      throw new PolicyError('usage', `${flag} must be an integer number of satoshis`)
    return BigInt(raw)
  }
  let maxAmount: bigint | undefined
  let maxFee: bigint | undefined
  try {
    maxAmount = numeric('--max-amount', 10_000n)
    maxFee = numeric('--max-fee', undefined)
  } catch (error) {
    io.stderr(`${(error as Error).message}\n`)
    return 2
  }
  const { lnd } = authenticatedLndGrpc({
    socket: socket as string,
    macaroon: macaroon as string,
    ...(cert ? { cert } : {}),
  })
  const policy: Policy = { currencies: ['sat'], maxAmount: { sat: maxAmount as bigint } }
  const client = createClient({
    methods: [
      chargeClient({
        lnd,
        network: network as LightningNetwork,
        ...(maxFee !== undefined ? { maxFeeSats: Number(maxFee) } : {}),
      }),
    ],
    policy,
  })
  const method = flags.get('--method') ?? (flags.has('--data') ? 'POST' : 'GET')
  const data = flags.get('--data')
  let response: Response
  try {
    response = await client.fetch(url as string, {
      method,
      headers,
      ...(data !== undefined ? { body: data } : {}),
    })
  } catch (error) {
    // Messages of this package never carry a preimage (they name the failure only).
    io.stderr(`mppkit pay: ${(error as Error).message}\n`)
    return 1
  }
  io.stdout(await response.text())
  const receipt = receiptOf(response)
  if (receipt) io.stderr(`receipt: ${JSON.stringify(receipt, null, 2)}\n`)
  if (!response.ok) io.stderr(`HTTP ${response.status}\n`)
  return response.ok ? 0 : 1
}
