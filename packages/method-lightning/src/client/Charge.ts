import { ConfigurationError, type Method } from '@mppkit/core/client'
import type { AuthenticatedLnd } from 'lightning'
import { checkedFee } from '../internal/node.js'
import { charge, type LightningNetwork } from '../Methods.js'
import { bookFee } from './Fees.js'
import { checkInvoice, lndWallet, payInvoice, type Wallet } from './Wallet.js'

/** Options of {@link chargeClient}. */
export type ChargeClientOptions = ({ lnd: AuthenticatedLnd } | { wallet: Wallet }) & {
  /** The network this client pays on (default `mainnet`); invoices of other networks are refused. */
  network?: LightningNetwork
  /**
   * Routing fee limit per payment in satoshis (default: 1% of the amount, at least 10 sat). Booked against
   * the spend policy's `budget` (and cross-rail budget) before paying, then replaced by the fee paid; not
   * counted against `maxAmount`.
   */
  maxFeeSats?: number | ((amountSats: bigint) => number)
  /** The clock (epoch ms), for invoice expiry checks. */
  now?: () => number
  /**
   * Refuse, before paying, an invoice or challenge expiring within this many seconds (default 30:
   * the 25 s the `lightning` package gives a payment to find its route, plus time to send the
   * credential). A payment landing after the expiry is lost: the server refuses its credential. Applies
   * to every payment of the client, session top-ups included (which the core's policy
   * `minValiditySeconds` does not see, and which checks the challenge only, not its invoice).
   */
  minValiditySeconds?: number
}

/** Default of {@link ChargeClientOptions.minValiditySeconds}. */
const defaultMinValiditySeconds = 30

/** The safety margin of client options in ms; throws `ConfigurationError` unless 0 or more seconds. */
export function minValidityMs(options: Pick<ChargeClientOptions, 'minValiditySeconds'>): number {
  const seconds = options.minValiditySeconds ?? defaultMinValiditySeconds
  if (typeof seconds !== 'number' || !(seconds >= 0) || !Number.isFinite(seconds))
    throw new ConfigurationError('lightning: minValiditySeconds must be a number of seconds, 0 or more')
  return seconds * 1000
}

/** The wallet of client options (an LND object or a {@link Wallet}). */
export function walletOf(options: { lnd: AuthenticatedLnd } | { wallet: Wallet }): Wallet {
  if (options && 'wallet' in options && options.wallet) return options.wallet
  if (options && 'lnd' in options && options.lnd) return lndWallet(options.lnd)
  throw new ConfigurationError('lightning: give the client an `lnd` (authenticatedLndGrpc) or a `wallet`')
}

/**
 * The fee limit of client options for an amount. Throws `ConfigurationError` (before anything is paid)
 * unless it is a whole number of satoshis, 0 or more: `lightning`'s `pay` without a usable `max_fee`
 * lets the node spend up to `Number.MAX_SAFE_INTEGER` satoshis on routing fees.
 */
export function feeLimit(option: ChargeClientOptions['maxFeeSats'], sats: bigint): number {
  const limit: unknown =
    typeof option === 'function'
      ? option(sats)
      : option === undefined
        ? Math.max(10, Math.ceil(Number(sats) / 100))
        : option
  return checkedFee(limit, 'lightning: maxFeeSats')
}

/**
 * Creates the client side of `lightning/charge`: decodes and checks the invoice (network, amount,
 * expiry with a safety margin, convenience fields), books its routing fee limit against the spend policy,
 * pays it with `SendPaymentV2` under that limit, and sends the preimage. The policy's ledger then holds
 * the amount plus the routing fee actually paid.
 *
 * @example
 * ```ts
 * const client = Client.create({ methods: [chargeClient({ lnd, network: 'regtest' })], policy: { maxAmount: { sat: 1_000n } } })
 * const response = await client.fetch('https://api.example.com/paid')
 * ```
 * @see draft-lightning-charge-00 §"Credential Schema"
 */
export function chargeClient(options: ChargeClientOptions): Method.Client<typeof charge> {
  const wallet = walletOf(options)
  const network = options.network ?? 'mainnet'
  const now = options.now ?? Date.now
  const margin = minValidityMs(options)
  return {
    definition: charge,
    quote: (request) => ({
      amount: BigInt(request.amount),
      currency: request.currency,
      network: `lightning:${network}`,
      decimals: 0,
    }),
    async createPayload({ challenge, request, spend }) {
      const sats = BigInt(request.amount)
      const details = request.methodDetails
      const invoice = checkInvoice(details?.invoice, {
        network,
        sats,
        paymentHash: details?.paymentHash,
        networkField: details?.network,
        expires: challenge.expires,
        now: now(),
        minValidityMs: margin,
      })
      const fee = bookFee(spend, {
        limit: feeLimit(options.maxFeeSats, sats),
        currency: request.currency,
        network: `lightning:${network}`,
      })
      const preimage = await payInvoice(wallet, details!.invoice, invoice.paymentHash, { fee })
      return { payload: { preimage } }
    },
  }
}
