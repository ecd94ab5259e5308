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
import Stripe from 'stripe'
import { chargeClient } from './client/Charge.js'
import { issuedTokens } from './client/IssuedTokens.js'

// ISO 4217 minor units of the currencies Stripe charges without (or with three) decimals.
const zeroDecimal = new Set('bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf'.split(' '))
const threeDecimal = new Set('bhd jod kwd omr tnd'.split(' '))

/** Decimals of an ISO 4217 currency code as Stripe counts them; `undefined` for anything else. */
function decimalsOf(currency: string): number | undefined {
  const code = currency.toLowerCase()
  if (!/^[a-z]{3}$/.test(code)) return undefined
  return zeroDecimal.has(code) ? 0 : threeDecimal.has(code) ? 3 : 2
}

/**
 * Whether a URL hostname names this machine (`localhost`, 127.0.0.0/8, `[::1]`). Not `*.localhost`:
 * Node.js resolves such a name through the system resolver (no hosts entry: DNS), so a resolver on the
 * network would choose where the secret key goes in cleartext.
 */
function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname)
}

const units: Units = (quote) => {
  const decimals = decimalsOf(quote.currency)
  return decimals === undefined ? undefined : { decimals, symbol: quote.currency.toUpperCase() }
}

/**
 * Defaults of `mppkit pay` for Stripe: at most 1.00 of the charged currency per payment (100 cents, 1 yen,
 * 1.000 dinar) unless `--max-amount`, and a question at a terminal above 0.10. A currency that is not an
 * ISO 4217 code has no default: it is refused until `--max-amount` names a cap. Minor units differ
 * between currencies (100 yen is 100 yen, 100 cents one dollar), so a `--max-amount` is refused without
 * `--currency <code>`, the currency it is in.
 */
export const defaults: Defaults = {
  uniformUnits: false,
  currencyId: (given) => {
    if (!/^[a-z]{3}$/i.test(given))
      throw new UsageError(
        `--currency takes an ISO 4217 currency code such as usd; the ${given.length} characters given are not one (not shown)`,
      )
    return given.toLowerCase()
  },
  cap: (quote: Method.Quote) => {
    const decimals = decimalsOf(quote.currency)
    return decimals === undefined ? undefined : 10n ** BigInt(decimals)
  },
  confirmAbove: (quote: Method.Quote) => {
    const decimals = decimalsOf(quote.currency)
    return decimals === undefined ? 0n : decimals === 0 ? 0n : 10n ** BigInt(decimals - 1)
  },
}

/**
 * The options of `mppkit pay` for Stripe besides `@mppkit/core/cli`'s `commonOptions`: `mppkit pay` reads
 * the URL to probe with them, so that a flag's value is never taken for the URL.
 */
export const options = {
  '--stripe-key': { name: 'stripeKey', value: true },
  '--payment-method': { name: 'paymentMethod', value: true },
  '--api-base': { name: 'apiBase', value: true },
  '--api-version': { name: 'apiVersion', value: true },
} as const satisfies OptionSpec

const usage = `mppkit pay <url> [options]     pay for a URL with Stripe (a Shared Payment Token) and print the body

Options:
  --stripe-key <sk_…>        the agent platform's Stripe secret key    (env STRIPE_SECRET_KEY)
  --payment-method <pm_…>    the saved PaymentMethod to share           (env STRIPE_PAYMENT_METHOD)
  --api-base <url>           Stripe API base: https: (http: on loopback or with sk_test_) (env STRIPE_API_BASE)
  --api-version <version>    Stripe-Version for the token call (SPTs need a .preview version on Stripe)
  -X, --method <method>      HTTP method (default GET, or POST with --data)
  -d, --data <body>          request body
  -H, --header <k: v>        extra request header (repeatable)
  --currency <code>          pay only in this ISO 4217 currency (e.g. usd)
  --max-amount <units>       largest payment in the smallest unit of --currency, which it needs
                             (default 1.00 of the currency: 100 cents)
  -y, --yes                  do not ask before paying more than 0.10

Before paying it prints what it pays (amount, currency, realm) on stderr; at a terminal it asks first
above 0.10. The body goes to stdout; the decoded Payment-Receipt to stderr.
Exit codes: 0 paid (2xx), 1 refused, failed or unpaid, 2 usage error.`

/**
 * Runs `mppkit pay <url>` for Stripe: issues an SPT limited to the challenge from the platform's saved
 * PaymentMethod, within a per-payment cap (default 1.00 of the currency), shows what it pays (and asks at
 * a terminal above 0.10 unless `--yes`), prints the body on stdout and the decoded receipt on stderr.
 * Returns the exit code: 0 on a paid 2xx, 1 when refused, failed or unpaid, 2 on a usage error.
 *
 * @example
 * ```ts
 * process.exitCode = await pay(['http://localhost:3000/paid', '--payment-method', 'pm_card_visa'])
 * ```
 * @see draft-stripe-charge-00
 */
export async function pay(argv: string[], io: Io = processIo()): Promise<number> {
  return runCommand(io, usage, async () => {
    const command = parseCommand(argv, options, defaults)
    if (!command) {
      io.stdout(`${usage}\n`)
      return 0
    }
    const { args } = command
    const key = args.values.get('stripeKey') ?? process.env.STRIPE_SECRET_KEY
    const paymentMethod = args.values.get('paymentMethod') ?? process.env.STRIPE_PAYMENT_METHOD
    if (!key) throw new UsageError('missing --stripe-key or STRIPE_SECRET_KEY')
    if (!paymentMethod) throw new UsageError('missing --payment-method or STRIPE_PAYMENT_METHOD')
    const apiBase = args.values.get('apiBase') ?? process.env.STRIPE_API_BASE
    let base: URL | undefined
    try {
      base = apiBase ? new URL(apiBase) : undefined
    } catch {
      throw new UsageError('--api-base must be a URL')
    }
    // "All communication MUST use TLS 1.2 or higher" (draft-stripe-charge-00 §HTTPS Requirement), and
    // every call to the API base carries the platform's secret key (`Authorization: Bearer sk_…`): a
    // live key never travels in cleartext beyond this machine. Plain http: is for a simulator: on
    // loopback, or with a test-mode key (stripe-mock in a container on another host).
    if (
      base &&
      !(
        base.protocol === 'https:' ||
        (base.protocol === 'http:' && (isLoopback(base.hostname) || /^[sr]k_test_/.test(key)))
      )
    )
      throw new UsageError(
        '--api-base must be an https: URL (http: only on loopback or with a test-mode key): it receives the Stripe secret key',
      )
    const stripe = new Stripe(key, {
      ...(base
        ? {
            host: base.hostname,
            port: Number(base.port || (base.protocol === 'https:' ? 443 : 80)),
            protocol: base.protocol === 'https:' ? 'https' : 'http',
          }
        : {}),
    })
    const apiVersion = args.values.get('apiVersion')
    const method = chargeClient({
      createToken: issuedTokens({ client: stripe, paymentMethod, ...(apiVersion ? { apiVersion } : {}) }),
    })
    const client = createClient({
      methods: [
        guard(method, command.limits, {
          announce: (line) => io.stderr(`mppkit pay: ${line}\n`),
          confirm: io.confirm && ((line) => io.confirm!(`mppkit pay: ${line}`)),
          units,
        }),
      ],
    })
    // Messages of this package and Stripe's never carry the token.
    return printResponse(await client.fetch(command.url, command.init), io)
  })
}
