import type { Challenge, Protocol, Receipt } from '@mppkit/core/client'
import { x402Offers } from '../internal/x402Offers.js'
import type { Eip2612Permit, EvmChargeRequest } from '../Methods.js'
import * as Permit2 from '../Permit2.js'
import { isSolanaNetwork } from '../svm/Networks.js'
import type { SvmOfferOptions } from '../svm/Offer.js'
import { svmChallenge } from '../svm/Plug.js'
import * as Wire from '../Wire.js'
import * as X402Eip2612 from '../X402Eip2612.js'
import * as X402Permit2 from '../X402Permit2.js'

/**
 * Options of {@link x402}.
 *
 * @example
 * ```ts
 * const options: x402.Options = { decimals: { 'eip155:8453:0x8335…2913': 6 }, onSkip: ({ reason }) => console.warn(reason) }
 * ```
 */
export declare namespace x402 {
  type Options = {
    /** x402 versions to read (default both: v2's `PAYMENT-REQUIRED` header first, else a v1 JSON body). */
    versions?: readonly (1 | 2)[]
    /** More v1 network names → EVM chain ids, beside {@link Wire.v1Networks}. */
    networks?: Readonly<Record<string, number>>
    /**
     * Decimals of assets, keyed `eip155:<chainId>:<address>` or `<address>`, for decimal-aware spend
     * policies. x402 requirements carry no decimals: without this (or a numeric `extra.decimals`) the
     * quote has none; never guessed.
     */
    decimals?: Readonly<Record<string, number>>
    /** Seconds an offer must stay payable for (default 6: x402 facilitators refuse less). */
    minValiditySeconds?: number
    /**
     * Longest validity, in seconds from now, of what it signs (default 600): an EIP-3009 authorization's
     * `validBefore` is now plus the requirement's `maxTimeoutSeconds`, at most this. A server naming a
     * longer timeout (a year) would otherwise hold a payment it can settle for that long.
     */
    maxValiditySeconds?: number
    /** Told about each `accepts[]` entry that is not offered to the client's methods, and why. */
    onSkip?: (skip: { version: 1 | 2; requirement: unknown; reason: string }) => void
    /** Clock (epoch ms; default `Date.now`). */
    now?: () => number
    /**
     * x402 `exact` on Solana: more networks, and the RPC to read mint decimals from (beside `decimals`,
     * keyed `solana:<ref>:<mint>` or `<mint>`). Offers become `solana` charges, paid by `svm({ signer })`.
     */
    svm?: Omit<SvmOfferOptions, 'decimals'>
  }
}

type Origin = {
  version: 1 | 2
  requirement: Record<string, unknown>
  resource?: unknown
  extensions?: unknown
}

const addressRule = /^0x[0-9a-fA-F]{40}$/
const amountRule = /^(0|[1-9]\d{0,77})$/

function randomId(): string {
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

function lookupDecimals(
  table: Readonly<Record<string, number>>,
  chainId: number,
  asset: string,
): number | undefined {
  for (const [key, value] of Object.entries(table)) {
    const [, id, address] = /^(?:eip155:(\d+):)?(0x[0-9a-fA-F]{40})$/.exec(key) ?? []
    if (address?.toLowerCase() === asset.toLowerCase() && (id === undefined || Number(id) === chainId))
      return value
  }
  return undefined
}

/**
 * A protocol plug for the core client that reads x402 offers (v2 `PAYMENT-REQUIRED`, v1 JSON body),
 * offers each usable `exact` EVM requirement as an `evm` charge challenge beside any MPP challenge, and
 * sends the chosen one back as `PAYMENT-SIGNATURE` (v2) or `X-PAYMENT` (v1).
 *
 * @example
 * ```ts
 * import { charge, x402 } from '@mppkit/x402-compat/client'
 * const client = Client.create({ methods: [charge({ account })], protocols: [Protocol.mpp, x402()] })
 * ```
 * @see draft-evm-charge-00 §"Authorization Payload (type="authorization")"
 */
export function x402(options: x402.Options = {}): Protocol.Protocol {
  const versions = options.versions ?? [2, 1]
  const now = options.now ?? Date.now
  const minValidity = options.minValiditySeconds ?? 6
  const maxValidity = Math.max(minValidity, options.maxValiditySeconds ?? 600)
  /** When an offer of `maxTimeoutSeconds` expires, capped at `maxValidity` from now. */
  const expiresAt = (timeout: number) =>
    new Date(now() + Math.min(timeout, maxValidity) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')
  const origins = new WeakMap<Challenge.Challenge, Origin>()

  const map = (
    version: 1 | 2,
    entry: unknown,
    context: { realm: string; description?: string | undefined; extensions?: unknown },
  ): Challenge.Challenge | string => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry))
      return 'the entry is not an object'
    const requirement = entry as Record<string, unknown>
    const { scheme, network, asset, payTo, maxTimeoutSeconds } = requirement
    const extra = (requirement.extra ?? {}) as Record<string, unknown>
    // v1's `maxAmountRequired` is, for the `exact` scheme, the amount transferred (exactly, not at most).
    const amount = version === 2 ? requirement.amount : requirement.maxAmountRequired
    if (scheme !== 'exact') return `scheme ${String(scheme)} is not supported`
    if (typeof network !== 'string') return 'network is missing'
    const chainId = Wire.chainIdOf(network, options.networks)
    if (chainId === undefined) return `network ${network} is not a known EVM network`
    if (typeof asset !== 'string' || !addressRule.test(asset)) return 'asset is not an EVM address'
    if (typeof payTo !== 'string' || !addressRule.test(payTo)) return 'payTo is not an EVM address'
    if (typeof amount !== 'string' || !amountRule.test(amount))
      return 'amount is not a base-unit integer string'
    if (
      typeof maxTimeoutSeconds !== 'number' ||
      !Number.isSafeInteger(maxTimeoutSeconds) ||
      maxTimeoutSeconds < minValidity
    )
      return `maxTimeoutSeconds must be an integer of at least ${minValidity}`
    if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) return 'extra is not an object'
    const method = extra.assetTransferMethod ?? 'eip3009'
    if (method !== 'eip3009' && method !== 'permit2')
      return `asset transfer method ${String(method)} is not supported`
    // x402 v1 has no Permit2 transfer method (its EVM scheme signs EIP-3009 only).
    if (method === 'permit2' && version === 1) return 'asset transfer method permit2 is x402 v2 only'
    // The EIP-712 domain of the token: x402 names it in `extra`; without it no EIP-3009 signature can be
    // valid. A Permit2 payment signs Permit2's domain, so its offers may omit it.
    const domain =
      typeof extra.name === 'string' &&
      extra.name !== '' &&
      typeof extra.version === 'string' &&
      extra.version !== ''
        ? { name: extra.name, version: extra.version }
        : undefined
    if (method === 'eip3009' && !domain) return 'extra.name/extra.version (the EIP-712 domain) are missing'
    const decimals =
      lookupDecimals(options.decimals ?? {}, chainId, asset) ??
      (Number.isInteger(extra.decimals) &&
      (extra.decimals as number) >= 0 &&
      (extra.decimals as number) <= 255
        ? (extra.decimals as number)
        : undefined)
    const methodDetails: EvmChargeRequest['methodDetails'] =
      method === 'permit2'
        ? {
            chainId,
            credentialTypes: ['permit2'],
            // x402's Permit2 form: signed for x402's proxy, which moves the amount to the signed `to` only.
            permit2Address: Permit2.permit2Address,
            spender: X402Permit2.proxyAddress,
            permit2Witness: 'x402',
          }
        : { chainId, credentialTypes: ['authorization'], eip712: domain! }
    // x402's `eip2612GasSponsoring`, advertised beside a Permit2 offer naming the token's EIP-712 domain
    // (as `@x402/evm` clients need both): the `evm` client may add an EIP-2612 permit to Permit2.
    const declared = (context.extensions as Record<string, unknown> | undefined)?.[X402Eip2612.extensionKey]
    if (method === 'permit2' && domain && typeof declared === 'object' && declared !== null) {
      methodDetails.eip712 = domain
      methodDetails.eip2612 = true
    }
    if (decimals !== undefined) methodDetails.decimals = decimals
    const request: EvmChargeRequest = { amount, currency: asset, recipient: payTo, methodDetails }
    const description = version === 1 ? requirement.description : context.description
    const challenge: Challenge.Challenge = {
      // A fresh id per offer: the authorization nonce is derived from it, so it never repeats.
      id: `x402v${version}-${randomId()}`,
      realm: context.realm,
      method: 'evm',
      intent: 'charge',
      request,
      // `validBefore` follows `expires`: the requirement's timeout from now, at most `maxValidity`.
      expires: expiresAt(maxTimeoutSeconds),
    }
    if (typeof description === 'string' && description !== '') challenge.description = description
    return challenge
  }

  const offers = async (
    version: 1 | 2,
    accepts: unknown[],
    context: { realm: string; description?: string | undefined },
    origin: Omit<Origin, 'version' | 'requirement'>,
  ) => {
    const found: Challenge.Challenge[] = []
    for (const entry of accepts) {
      const description =
        version === 1 ? (entry as { description?: unknown } | null)?.description : context.description
      const solana = await svmChallenge(
        version,
        entry,
        {
          ...context,
          description,
          id: `x402v${version}-${randomId()}`,
          minValiditySeconds: minValidity,
          expiresAt,
        },
        { ...options.svm, decimals: options.decimals ?? {} },
      )
      const mapped = solana ?? map(version, entry, { ...context, extensions: origin.extensions })
      if (typeof mapped === 'string') {
        options.onSkip?.({ version, requirement: entry, reason: mapped })
        continue
      }
      origins.set(mapped, { version, requirement: entry as Record<string, unknown>, ...origin })
      x402Offers.add(mapped)
      found.push(mapped)
    }
    return found
  }

  const realmOf = (url: unknown, fallback: string) => {
    try {
      return new URL(typeof url === 'string' && url !== '' ? url : fallback).host
    } catch {
      return 'x402'
    }
  }

  return {
    name: 'x402',
    async challenges(response) {
      if (response.status !== 402) return []
      const header = response.headers.get(Wire.headers.paymentRequired)
      if (header !== null && versions.includes(2)) {
        const required = Wire.decode(header)
        if (required.x402Version !== 2 || !Array.isArray(required.accepts)) return []
        const resource = required.resource as Wire.Resource | undefined
        return offers(
          2,
          required.accepts,
          { realm: realmOf(resource?.url, response.url), description: resource?.description },
          { resource, extensions: required.extensions },
        )
      }
      if (!versions.includes(1)) return []
      const type = response.headers.get('content-type') ?? ''
      if (!/json/i.test(type) && type !== '') return []
      // A 402 whose body is not JSON carries no v1 offers (never a SyntaxError out of the client).
      const body = (await response.json().catch(() => null)) as Record<string, unknown> | null
      if (body?.x402Version !== 1 || !Array.isArray(body.accepts)) return []
      const first = body.accepts[0] as Record<string, unknown> | undefined
      return offers(1, body.accepts, { realm: realmOf(first?.resource, response.url) }, {})
    },
    headers(payment) {
      const origin = origins.get(payment.challenge)
      if (!origin) return { [payment.header]: payment.authorization }
      const {
        signature,
        type: _type,
        eip2612,
        ...authorization
      } = payment.credential.payload as Record<string, unknown>
      // x402 `exact` on Solana carries the partially signed transaction alone; x402's Permit2 form its
      // `permit2Authorization` beside the signature.
      const exact =
        payment.challenge.method === 'solana'
          ? { transaction: authorization.transaction }
          : authorization.permit2Authorization !== undefined
            ? { signature, permit2Authorization: authorization.permit2Authorization }
            : { signature, authorization }
      if (origin.version === 1) {
        const { scheme, network } = origin.requirement
        return { [Wire.headers.v1Payment]: Wire.encode({ x402Version: 1, scheme, network, payload: exact }) }
      }
      const document: Record<string, unknown> = { x402Version: 2 }
      if (origin.resource !== undefined) document.resource = origin.resource
      // The requirement is echoed exactly as received: servers match it by deep equality.
      document.accepted = origin.requirement
      document.payload = exact
      // Every advertised extension is echoed; an EIP-2612 permit joins the declaration's `info`.
      if (eip2612 !== undefined)
        document.extensions = X402Eip2612.withPermit(origin.extensions, eip2612 as Eip2612Permit)
      else if (origin.extensions !== undefined) document.extensions = origin.extensions
      return { [Wire.headers.paymentSignature]: Wire.encode(document) }
    },
    receipt(response) {
      const header =
        response.headers.get(Wire.headers.paymentResponse) ??
        response.headers.get(Wire.headers.v1PaymentResponse)
      if (header === null) return undefined
      let settled: Record<string, unknown>
      try {
        settled = Wire.decode(header)
      } catch {
        return undefined
      }
      if (settled.success !== true || typeof settled.transaction !== 'string') return undefined
      const receipt: Receipt.Receipt = {
        status: 'success',
        method: isSolanaNetwork(settled.network) ? 'solana' : 'evm',
        timestamp: new Date(now()).toISOString(),
        reference: settled.transaction,
      }
      if (typeof settled.network === 'string') receipt.network = settled.network
      if (typeof settled.payer === 'string') receipt.payer = settled.payer
      return receipt
    },
  }
}
