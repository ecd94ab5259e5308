import { readFile } from 'node:fs/promises'
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
  type Units,
  UsageError,
} from '@mppkit/core/cli'
import { create as createClient } from '@mppkit/core/client'
import { createKeyPairSignerFromBytes } from '@solana/kit'
import { chargeClient } from './client/Charge.js'

/** The wrapped SOL mint: SOL as an SPL token, capped as SOL is (not as "1.00 of a token"). */
const wrappedSol = 'So11111111111111111111111111111111111111112'
const isSol = (quote: Method.Quote) => quote.currency === 'sol' || quote.currency === wrappedSol

/** SOL has 9 decimals (lamports); a mint's come from the challenge (`methodDetails.decimals`). */
const units: Units = (quote) =>
  quote.currency === 'sol'
    ? { decimals: 9, symbol: 'SOL' }
    : quote.currency === wrappedSol
      ? { decimals: 9, symbol: 'wrapped SOL' }
      : quote.decimals !== undefined
        ? { decimals: quote.decimals, symbol: `of mint ${quote.currency}` }
        : undefined

/**
 * US-dollar stablecoin mints whose unit is worth about a dollar, so that "1.00" is a safe default cap:
 * USDC (mainnet and Circle's devnet mint), USDT (mainnet), PYUSD (mainnet and devnet). Any other mint's
 * unit may be worth anything (a wrapped bitcoin's is): it has no default cap.
 */
const dollarMints = new Set([
  'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v',
  '4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU',
  'Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB',
  '2b1kV6DkPAnxd5ixfnxCpjxmKwqjjaYmCZfHsFu24GXo',
  'CXk2AMBfi3TwaEL2468s6zP8xq9NxTXjp9gjMgzeUynM',
])

/**
 * Defaults of `mppkit pay` for Solana: at most 0.01 SOL (10,000,000 lamports; wrapped SOL too) or 1.00
 * of a US-dollar stablecoin (USDC, USDT, PYUSD) per payment unless `--max-amount`, and a question at a
 * terminal above 0.001 SOL or 0.10 of a token. Any other mint, and a mint without decimals in its
 * challenge, has no default: it is refused until `--max-amount` names a cap (the CLI refuses rather than
 * guess what a unit of an unknown token is worth). (The decimals are the mint's: the transfer
 * instruction is checked against them on chain.) Mints have 0 to 9 decimals, so a `--max-amount` in base
 * units is refused without `--currency sol` or `--currency <mint>`, the currency it is in (250000 is 0.25
 * of a 6-decimal mint, but 250,000 whole tokens of a 0-decimal one).
 */
export const defaults: Defaults = {
  uniformUnits: false,
  currencyId: (given) => {
    if (/^sol$/i.test(given)) return 'sol'
    // A base58 public key (32 bytes: 32 to 44 characters); case matters. Never echoed otherwise.
    if (/^[1-9A-HJ-NP-Za-km-z]{32,44}$/.test(given)) return given
    throw new UsageError(
      `--currency takes sol or a mint address (base58); the ${given.length} characters given are not one (not shown)`,
    )
  },
  cap: (quote: Method.Quote) =>
    isSol(quote)
      ? 10_000_000n
      : quote.decimals !== undefined && dollarMints.has(quote.currency)
        ? 10n ** BigInt(quote.decimals)
        : undefined,
  confirmAbove: (quote: Method.Quote) =>
    isSol(quote)
      ? 1_000_000n
      : quote.decimals !== undefined && quote.decimals > 0
        ? 10n ** BigInt(quote.decimals - 1)
        : 0n,
}

/**
 * The options of `mppkit pay` for Solana besides `@mppkit/core/cli`'s `commonOptions`: `mppkit pay` reads
 * the URL to probe with them, so that a flag's value is never taken for the URL.
 */
export const options = {
  '--keypair': { name: 'keypair', value: true },
  '--rpc-url': { name: 'rpcUrl', value: true },
  '--network': { name: 'network', value: true },
  '--mode': { name: 'mode', value: true },
} as const satisfies OptionSpec

const usage = `mppkit pay <url> [options]     pay for a URL with Solana (SOL or an SPL token) and print the body

Options:
  --keypair <file>           a solana-keygen JSON keypair file          (env SOLANA_KEYPAIR)
  --rpc-url <url>            Solana JSON-RPC URL                        (env SOLANA_RPC_URL)
  --network <name>           mainnet | devnet | localnet (challenges for another network are refused)
  --mode <pull|push>         pull (default): the server broadcasts; push: this client does
  -X, --method <method>      HTTP method (default GET, or POST with --data)
  -d, --data <body>          request body
  -H, --header <k: v>        extra request header (repeatable)
  --currency <sol|mint>      pay only in this currency: sol, or an SPL mint's address
  --max-amount <units>       largest payment in base units of --currency, which it needs (default
                             0.01 SOL = 10000000 lamports, or 1.00 of USDC, USDT or PYUSD; required
                             for any other mint)
  -y, --yes                  do not ask before paying more than 0.001 SOL or 0.10 of a token

Before paying it prints what it pays (amount, currency, recipient, realm) on stderr; at a terminal it
asks first above the threshold. The body goes to stdout; the decoded Payment-Receipt to stderr.
Exit codes: 0 paid (2xx), 1 refused, failed or unpaid, 2 usage error.`

/**
 * Runs `mppkit pay <url>` for Solana: loads a solana-keygen keypair, pays the charge (pull by default)
 * within a per-payment cap (default 0.01 SOL or 1.00 of a dollar stablecoin), shows what it pays (and asks at a
 * terminal above the threshold unless `--yes`), prints the body on stdout and the decoded receipt on
 * stderr. Returns the exit code: 0 on a paid 2xx, 1 when refused, failed or unpaid, 2 on a usage error.
 *
 * @example
 * ```ts
 * process.exitCode = await pay(['http://localhost:3000/paid', '--keypair', 'id.json', '--rpc-url', rpcUrl])
 * ```
 * @see draft-solana-charge-00
 */
export async function pay(argv: string[], io: Io = processIo()): Promise<number> {
  return runCommand(io, usage, async () => {
    const command = parseCommand(argv, options, defaults)
    if (!command) {
      io.stdout(`${usage}\n`)
      return 0
    }
    const { args } = command
    const keypairFile = args.values.get('keypair') ?? process.env.SOLANA_KEYPAIR
    const rpcUrl = args.values.get('rpcUrl') ?? process.env.SOLANA_RPC_URL
    const network = args.values.get('network')
    const mode = args.values.get('mode') ?? 'pull'
    if (!keypairFile) throw new UsageError('missing --keypair or SOLANA_KEYPAIR')
    if (!rpcUrl || !/^https?:\/\//.test(rpcUrl))
      throw new UsageError('missing --rpc-url or SOLANA_RPC_URL (an http(s) URL)')
    if (network !== undefined && network !== 'mainnet' && network !== 'devnet' && network !== 'localnet')
      throw new UsageError('--network must be mainnet, devnet or localnet')
    if (mode !== 'pull' && mode !== 'push') throw new UsageError('--mode must be pull or push')
    // Never echo the file's content: it is a private key.
    const badKeypair = () => new UsageError('--keypair must be a solana-keygen JSON file of 64 numbers')
    const bytes = await readFile(keypairFile, 'utf8')
      .then((text) => JSON.parse(text) as unknown)
      .catch(() => undefined)
    if (!Array.isArray(bytes) || bytes.length !== 64) throw badKeypair()
    const signer = await createKeyPairSignerFromBytes(Uint8Array.from(bytes as number[])).catch(() => {
      throw badKeypair()
    })
    const client = createClient({
      methods: [
        guard(chargeClient({ signer, rpcUrl, mode, ...(network ? { network } : {}) }), command.limits, {
          announce: (line) => io.stderr(`mppkit pay: ${line}\n`),
          confirm: io.confirm && ((line) => io.confirm!(`mppkit pay: ${line}`)),
          units,
        }),
      ],
    })
    return printResponse(await client.fetch(command.url, command.init), io)
  })
}
