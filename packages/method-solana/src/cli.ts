import { readFile } from 'node:fs/promises'
import { PolicyError } from '@mppkit/core'
import { create as createClient, type Policy, receipt as receiptOf } from '@mppkit/core/client'
import { createKeyPairSignerFromBytes } from '@solana/kit'
import { chargeClient } from './client/Charge.js'

const usage = `mppkit pay <url> [options]     pay for a URL with Solana (SOL or an SPL token) and print the body

Options:
  --keypair <file>           a solana-keygen JSON keypair file          (env SOLANA_KEYPAIR)
  --rpc-url <url>            Solana JSON-RPC URL                        (env SOLANA_RPC_URL)
  --network <name>           mainnet | devnet | localnet (challenges for another network are refused)
  --mode <pull|push>         pull (default): the server broadcasts; push: this client does
  -X, --method <method>      HTTP method (default GET)
  -d, --data <body>          request body
  -H, --header <k: v>        extra request header (repeatable)
  --max-amount <units>       largest payment in base units (lamports or token base units)

The body goes to stdout; the decoded Payment-Receipt goes to stderr.`

type Io = { stdout: (text: string) => void; stderr: (text: string) => void }

/**
 * Runs `mppkit pay <url>` for Solana: loads a solana-keygen keypair, pays the charge (pull by default),
 * prints the body on stdout and the decoded receipt on stderr. Returns the exit code (0 on a 2xx).
 *
 * @example
 * ```ts
 * process.exitCode = await pay(['http://localhost:3000/paid', '--keypair', 'id.json', '--rpc-url', rpcUrl])
 * ```
 * @see draft-solana-charge-00
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
  const keypairFile = flags.get('--keypair') ?? process.env.SOLANA_KEYPAIR
  const rpcUrl = flags.get('--rpc-url') ?? process.env.SOLANA_RPC_URL
  const network = flags.get('--network')
  const mode = flags.get('--mode') ?? 'pull'
  const maxAmount = flags.get('--max-amount')
  const problem = !url
    ? 'missing <url>'
    : !keypairFile
      ? 'missing --keypair or SOLANA_KEYPAIR'
      : !rpcUrl || !/^https?:\/\//.test(rpcUrl)
        ? 'missing --rpc-url or SOLANA_RPC_URL (an http(s) URL)'
        : network !== undefined && !['mainnet', 'devnet', 'localnet'].includes(network)
          ? '--network must be mainnet, devnet or localnet'
          : mode !== 'pull' && mode !== 'push'
            ? '--mode must be pull or push'
            : maxAmount !== undefined && !/^\d+$/.test(maxAmount)
              ? '--max-amount must be an integer in base units'
              : undefined
  if (problem) {
    io.stderr(`${problem}\n\n${usage}\n`)
    return 2
  }
  let signer: Awaited<ReturnType<typeof createKeyPairSignerFromBytes>>
  try {
    const bytes = JSON.parse(await readFile(keypairFile as string, 'utf8')) as unknown
    if (!Array.isArray(bytes) || bytes.length !== 64) throw new Error()
    signer = await createKeyPairSignerFromBytes(Uint8Array.from(bytes as number[]))
  } catch {
    // Never echo the file's content: it is a private key.
    io.stderr('--keypair must be a solana-keygen JSON file of 64 numbers\n')
    return 2
  }
  const policy: Policy = {}
  if (maxAmount) policy.maxAmount = BigInt(maxAmount)
  const client = createClient({
    methods: [
      chargeClient({
        signer,
        rpcUrl: rpcUrl as string,
        mode: mode as 'pull' | 'push',
        ...(network ? { network: network as 'mainnet' | 'devnet' | 'localnet' } : {}),
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
    io.stderr(`mppkit pay: ${(error as Error).message}\n`)
    return 1
  }
  io.stdout(await response.text())
  const receipt = receiptOf(response)
  if (receipt) io.stderr(`receipt: ${JSON.stringify(receipt, null, 2)}\n`)
  if (!response.ok) io.stderr(`HTTP ${response.status}\n`)
  return response.ok ? 0 : 1
}
