import { PolicyError, type Receipt } from '@mppkit/core'
import { create as createClient, type Policy, receipt as receiptOf } from '@mppkit/core/client'
import type { Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { chargeClient } from './client/Charge.js'
import { sessionClient } from './client/Session.js'

const usage = `mppkit pay <url> [options]     pay for a URL with Tempo (charge or session) and print the body

Options:
  --key <0x…>            payer private key            (env MPPKIT_PRIVATE_KEY)
  --rpc <url>            Tempo JSON-RPC URL            (env MPPKIT_RPC_URL)
  -X, --method <method>  HTTP method (default GET)
  -d, --data <body>      request body
  -H, --header <k: v>    extra request header (repeatable)
  --mode <pull|push>     charge mode (default pull)
  --max-amount <units>   largest payment in base units (spend policy)
  --max-deposit <units>  largest session deposit in base units (default 10000000)
  --deposit <units>      session deposit in base units
  --keep-open            do not close a session channel after the request

The body goes to stdout; the decoded Payment-Receipt goes to stderr.`

type Io = { stdout: (text: string) => void; stderr: (text: string) => void }

/**
 * Runs `mppkit pay <url>`: pays a Tempo charge or session challenge with a private key from flags or the
 * environment, prints the response body on stdout and the decoded receipt on stderr. Returns the exit
 * code (0 on a 2xx response).
 *
 * @example
 * ```ts
 * process.exitCode = await pay(['http://localhost:3000/paid', '--rpc', 'http://127.0.0.1:8545'])
 * ```
 * @see draft-tempo-charge-00, draft-tempo-session-00
 */
export async function pay(
  argv: string[],
  io: Io = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) },
): Promise<number> {
  const flags = new Map<string, string>()
  const headers = new Headers()
  let url: string | undefined
  let keepOpen = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = () => {
      const next = argv[++i]
      if (next === undefined) throw new PolicyError('usage', `${arg} needs a value`)
      return next
    }
    if (arg === '--help' || arg === '-h') {
      io.stdout(`${usage}\n`)
      return 0
    } else if (arg === '--keep-open') keepOpen = true
    else if (arg === '-H' || arg === '--header') {
      const header = value()
      const colon = header.indexOf(':')
      if (colon > 0) headers.append(header.slice(0, colon).trim(), header.slice(colon + 1).trim())
    } else if (arg === '-X') flags.set('--method', value())
    else if (arg === '-d') flags.set('--data', value())
    else if (arg.startsWith('--')) flags.set(arg, value())
    else url ??= arg
  }
  const key = flags.get('--key') ?? process.env.MPPKIT_PRIVATE_KEY
  const rpcUrl = flags.get('--rpc') ?? process.env.MPPKIT_RPC_URL
  if (!url || !key || !rpcUrl) {
    io.stderr(
      `${!url ? 'missing <url>' : !key ? 'missing --key or MPPKIT_PRIVATE_KEY' : 'missing --rpc or MPPKIT_RPC_URL'}\n\n${usage}\n`,
    )
    return 2
  }
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) {
    io.stderr('the private key must be 32 bytes of hex with a 0x prefix\n')
    return 2
  }
  let chainId: number
  try {
    const response = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(10_000),
    })
    chainId = Number(((await response.json()) as { result: string }).result)
  } catch {
    io.stderr(`could not reach the Tempo RPC at ${rpcUrl}\n`)
    return 1
  }
  const account = privateKeyToAccount(key as Hex)
  const mode = flags.get('--mode') === 'push' ? 'push' : 'pull'
  const deposit = flags.get('--deposit')
  const sessions = sessionClient({
    account,
    rpcUrl,
    chainId,
    ...(deposit ? { deposit: BigInt(deposit) } : {}),
  })
  const policy: Policy = { maxDeposit: BigInt(flags.get('--max-deposit') ?? '10000000') }
  const maxAmount = flags.get('--max-amount')
  if (maxAmount) policy.maxAmount = BigInt(maxAmount)
  const client = createClient({
    methods: [chargeClient({ account, rpcUrl, chainId, mode }), sessions],
    policy,
  })
  const method = flags.get('--method') ?? (flags.has('--data') ? 'POST' : 'GET')
  const data = flags.get('--data')
  const printReceipt = (label: string, receipt: Receipt.Receipt | undefined) => {
    if (receipt) io.stderr(`${label}: ${JSON.stringify(receipt, null, 2)}\n`)
  }
  let response: Response
  try {
    response = await client.fetch(url, { method, headers, ...(data !== undefined ? { body: data } : {}) })
  } catch (error) {
    io.stderr(`mppkit pay: ${(error as Error).message}\n`)
    return 1
  }
  io.stdout(await response.text())
  printReceipt('receipt', receiptOf(response))
  if (!response.ok) io.stderr(`HTTP ${response.status}\n`)
  if (!keepOpen && sessions.channels.size > 0) {
    const closed = await sessions.close(url).catch((error: Error) => {
      io.stderr(`mppkit pay: closing the session failed: ${error.message}\n`)
      return undefined
    })
    if (closed) printReceipt('close receipt', receiptOf(closed))
  }
  return response.ok ? 0 : 1
}
