import { type Method, PaymentFailedError } from '@mppkit/core/client'
import type { Account, Address } from 'viem'
import { challengeHash, pkh, sameAddress, typedData } from '../Authorization.js'
import { type EvmChargeRequest, evmCharge } from '../Methods.js'

/**
 * Options of {@link charge}.
 *
 * @example
 * ```ts
 * const options: charge.Options = { account, domains: { [usdc]: { name: 'USD Coin', version: '2' } } }
 * ```
 */
export declare namespace charge {
  type Options = {
    /** The payer: any viem account that can sign typed data (a local account, a JSON-RPC account). */
    account: Account & { signTypedData?: unknown }
    /** Chain ids this client pays on (default: any the challenge names). */
    chainIds?: readonly number[]
    /**
     * EIP-712 domain name/version per token address, for challenges that do not carry one in
     * `methodDetails.eip712` (configuration wins over the challenge).
     */
    domains?: Readonly<Record<string, { name: string; version: string }>>
    /** Seconds an authorization stays valid when the challenge has no `expires` (default 300). */
    validitySeconds?: number
    /** Clock (epoch ms; default `Date.now`). */
    now?: () => number
  }
}

/**
 * The client half of the `evm` charge: signs an EIP-3009 `transferWithAuthorization` whose nonce is
 * the challenge hash, for the exact amount and recipient the challenge asks.
 *
 * @example
 * ```ts
 * import { charge } from '@mppkit/x402-compat/client'
 * const client = Client.create({ methods: [charge({ account })] })
 * ```
 * @see draft-evm-charge-00 §"Authorization Payload (type="authorization")"
 */
export function charge(options: charge.Options): Method.Client<typeof evmCharge> {
  const { account } = options
  const now = options.now ?? Date.now
  const domainOf = (request: EvmChargeRequest) => {
    const configured = Object.entries(options.domains ?? {}).find(([token]) =>
      sameAddress(token, request.currency),
    )
    return configured?.[1] ?? request.methodDetails.eip712
  }
  return {
    definition: evmCharge,
    quote(request) {
      const quote: Method.Quote = {
        amount: BigInt(request.amount),
        currency: request.currency,
        network: `eip155:${request.methodDetails.chainId}`,
      }
      if (request.methodDetails.decimals !== undefined) quote.decimals = request.methodDetails.decimals
      return quote
    },
    async createPayload({ challenge, request }) {
      const { chainId, credentialTypes, splits } = request.methodDetails
      if (options.chainIds && !options.chainIds.includes(chainId))
        throw new PaymentFailedError(`evm: chain ${chainId} is not one this client pays on`, {
          code: 'unsupported-chain',
        })
      // "Servers MUST NOT advertise "authorization" … unless the currency token is known to implement
      // EIP-3009": without it listed, an authorization would be refused.
      if (!credentialTypes?.includes('authorization'))
        throw new PaymentFailedError('evm: the challenge does not accept authorization credentials', {
          code: 'unsupported-credential-type',
        })
      // "Servers MUST reject type="authorization" credentials when the challenge includes splits."
      if (splits && splits.length > 0)
        throw new PaymentFailedError('evm: splits need permit2, which this client does not implement', {
          code: 'unsupported-credential-type',
        })
      const domain = domainOf(request)
      if (!domain)
        throw new PaymentFailedError(`evm: no EIP-712 domain known for token ${request.currency}`, {
          code: 'unknown-domain',
        })
      if (typeof account.signTypedData !== 'function')
        throw new PaymentFailedError('evm: the account cannot sign typed data', { code: 'account' })
      const nowSeconds = Math.floor(now() / 1000)
      // "validBefore SHOULD correspond to the challenge expires timestamp."
      const validBefore = challenge.expires
        ? Math.floor(Date.parse(challenge.expires) / 1000)
        : nowSeconds + (options.validitySeconds ?? 300)
      // validAfter 0: a payer clock ahead of the chain's can never make the authorization not yet valid.
      const authorization = {
        from: account.address as Address,
        to: request.recipient,
        value: request.amount,
        validAfter: '0',
        validBefore: String(validBefore),
        nonce: challengeHash(challenge),
      }
      const signature = await (
        account as Account & { signTypedData: (data: unknown) => Promise<string> }
      ).signTypedData(typedData({ ...domain, chainId, token: request.currency }, authorization))
      return {
        payload: { type: 'authorization' as const, ...authorization, signature },
        source: pkh(chainId, account.address),
      }
    },
  }
}
