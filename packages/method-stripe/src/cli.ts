import { PolicyError } from '@mppkit/core'
import { create as createClient, type Policy, receipt as receiptOf } from '@mppkit/core/client'
import Stripe from 'stripe'
import { chargeClient } from './client/Charge.js'
import { issuedTokens } from './client/IssuedTokens.js'

const usage = `mppkit pay <url> [options]     pay for a URL with Stripe (a Shared Payment Token) and print the body

Options:
  --stripe-key <sk_…>        the agent platform's Stripe secret key  (env STRIPE_SECRET_KEY)
  --payment-method <pm_…>    the saved PaymentMethod to share         (env STRIPE_PAYMENT_METHOD)
  --api-base <url>           Stripe API base, e.g. the devnet simulator (env STRIPE_API_BASE)
  --api-version <version>    Stripe-Version for the token call (SPTs need a .preview version on Stripe)
  -X, --method <method>      HTTP method (default GET)
  -d, --data <body>          request body
  -H, --header <k: v>        extra request header (repeatable)
  --max-amount <units>       largest payment in the smallest currency unit (spend policy)

The body goes to stdout; the decoded Payment-Receipt goes to stderr.`

type Io = { stdout: (text: string) => void; stderr: (text: string) => void }

/**
 * Runs `mppkit pay <url>` for Stripe: issues an SPT limited to the challenge from the platform's saved
 * PaymentMethod, pays, prints the body on stdout and the decoded receipt on stderr. Returns the exit code
 * (0 on a 2xx response).
 *
 * @example
 * ```ts
 * process.exitCode = await pay(['http://localhost:3000/paid', '--payment-method', 'pm_card_visa'])
 * ```
 * @see draft-stripe-charge-00
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
  const key = flags.get('--stripe-key') ?? process.env.STRIPE_SECRET_KEY
  const paymentMethod = flags.get('--payment-method') ?? process.env.STRIPE_PAYMENT_METHOD
  const missing = !url
    ? 'missing <url>'
    : !key
      ? 'missing --stripe-key or STRIPE_SECRET_KEY'
      : !paymentMethod
        ? 'missing --payment-method or STRIPE_PAYMENT_METHOD'
        : undefined
  if (missing) {
    io.stderr(`${missing}\n\n${usage}\n`)
    return 2
  }
  const apiBase = flags.get('--api-base') ?? process.env.STRIPE_API_BASE
  let base: URL | undefined
  try {
    base = apiBase ? new URL(apiBase) : undefined
  } catch {
    io.stderr('--api-base must be a URL\n')
    return 2
  }
  const stripe = new Stripe(key as string, {
    ...(base
      ? {
          host: base.hostname,
          port: Number(base.port || (base.protocol === 'https:' ? 443 : 80)),
          protocol: base.protocol === 'https:' ? 'https' : 'http',
        }
      : {}),
  })
  const apiVersion = flags.get('--api-version')
  const policy: Policy = {}
  const maxAmount = flags.get('--max-amount')
  if (maxAmount) {
    if (!/^\d+$/.test(maxAmount)) {
      io.stderr('--max-amount must be an integer in the smallest currency unit\n')
      return 2
    }
    policy.maxAmount = BigInt(maxAmount)
  }
  const client = createClient({
    methods: [
      chargeClient({
        createToken: issuedTokens({
          client: stripe,
          paymentMethod: paymentMethod as string,
          ...(apiVersion ? { apiVersion } : {}),
        }),
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
    // Messages of this package and Stripe's never carry the token.
    io.stderr(`mppkit pay: ${(error as Error).message}\n`)
    return 1
  }
  io.stdout(await response.text())
  const receipt = receiptOf(response)
  if (receipt) io.stderr(`receipt: ${JSON.stringify(receipt, null, 2)}\n`)
  if (!response.ok) io.stderr(`HTTP ${response.status}\n`)
  return response.ok ? 0 : 1
}
