import {
  ConfigurationError,
  type Method,
  PaymentError,
  ServiceUnavailableError,
  VerificationFailedError,
} from '@mppkit/core'
import { type Address, encodeFunctionData, type Hex, parseSignature, verifyTypedData } from 'viem'
import { challengeHash, pkh, sameAddress, typedData } from '../Authorization.js'
import { type AuthorizationPayload, type EvmChargeRequest, evmCharge } from '../Methods.js'
import { relayed } from './Relayed.js'

/** The x402 facilitator calls the `evm` method needs (an `@x402/core` `FacilitatorClient` fits). */
export type Facilitator = {
  verify(
    payload: any,
    requirements: any,
  ): Promise<{ isValid: boolean; invalidReason?: string; invalidMessage?: string }>
  settle(
    payload: any,
    requirements: any,
  ): Promise<{ success: boolean; transaction: string; errorReason?: string; errorMessage?: string }>
}

/** A viem wallet client with public actions, whose account pays gas for settlement. */
export type Wallet = {
  account: { address: Address } | undefined
  sendTransaction(args: any): Promise<Hex>
  waitForTransactionReceipt(args: {
    hash: Hex
    timeout?: number
  }): Promise<{ status: 'success' | 'reverted' }>
}

/**
 * Options of {@link charge}.
 *
 * @example
 * ```ts
 * const options: charge.Options = { chainId: 8453, currency: usdc, recipient, domain: { name: 'USD Coin', version: '2' }, facilitator }
 * ```
 */
export declare namespace charge {
  type Options = {
    chainId: number
    /** The EIP-3009 token. */
    currency: Address
    recipient: Address
    /** The token's EIP-712 domain name and version. */
    domain: { name: string; version: string }
    /** The token's decimals, advertised to clients for their spend policy. */
    decimals?: number
    /** Settles through an x402 facilitator (in-process or `HTTPFacilitatorClient`)… */
    facilitator?: Facilitator
    /** …or broadcasts `transferWithAuthorization` itself, paying gas from this wallet. */
    wallet?: Wallet
    /** Milliseconds a facilitator or the chain may take before the request is a 503 (default 15 000). */
    timeout?: number
    /** Seconds of validity an authorization must have left when it arrives (default 6). */
    minValiditySeconds?: number
  }
}

function withTimeout<value>(promise: Promise<value>, ms: number): Promise<value> {
  let timer: ReturnType<typeof setTimeout> | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ServiceUnavailableError({ detail: 'The settlement timed out.', retryAfter: 1 })),
        ms,
      )
    }),
  ]).finally(() => clearTimeout(timer))
}

/** The x402 requirement an `evm` charge request corresponds to (what x402 clients sign against). */
export function requirementOf(request: EvmChargeRequest, maxTimeoutSeconds: number) {
  const extra: Record<string, unknown> = { ...(request.methodDetails.eip712 ?? {}) }
  return {
    scheme: 'exact',
    network: `eip155:${request.methodDetails.chainId}`,
    asset: request.currency,
    amount: request.amount,
    payTo: request.recipient,
    maxTimeoutSeconds,
    extra,
  }
}

/**
 * The server half of the `evm` charge (`type="authorization"`): checks the EIP-3009 authorization
 * against the challenge (recipient, amount, time window, signature), claims (from, nonce) once in the
 * Store, then settles through an x402 facilitator or its own wallet.
 *
 * @example
 * ```ts
 * import { charge } from '@mppkit/x402-compat/server'
 * Server.create({ realm, secrets, methods: [charge({ chainId, currency, recipient, domain, facilitator })] })
 * ```
 * @see draft-evm-charge-00 §"Authorization Verification", §"Authorization Settlement"
 */
export function charge(options: charge.Options): Method.Server<typeof evmCharge> {
  if (!options.facilitator && !options.wallet)
    throw new ConfigurationError('evm charge: give a facilitator or a wallet to settle with')
  const timeout = options.timeout ?? 15_000
  const minValidity = options.minValiditySeconds ?? 6
  const methodDetails: EvmChargeRequest['methodDetails'] = {
    chainId: options.chainId,
    credentialTypes: ['authorization'],
    eip712: options.domain,
  }
  if (options.decimals !== undefined) methodDetails.decimals = options.decimals

  return {
    definition: evmCharge,
    defaults: { currency: options.currency, recipient: options.recipient, methodDetails },
    async verify({ challenge, request, payload, credential }) {
      const refuse = (detail: string, reason: string) => new VerificationFailedError({ detail, reason })
      const { chainId } = request.methodDetails
      if (chainId !== options.chainId || !sameAddress(request.currency, options.currency))
        throw refuse('The challenge names another chain or token.', 'wrong-asset')
      // "Servers MUST reject type="authorization" credentials when the challenge includes splits."
      if (request.methodDetails.splits?.length) throw refuse('Splits need a permit2 credential.', 'splits')
      // "`to` MUST match the challenge `recipient`." "`value` MUST match the challenge `amount`."
      if (!sameAddress(payload.to, request.recipient))
        throw refuse('The authorization pays another recipient.', 'wrong-recipient')
      if (payload.value !== request.amount)
        throw refuse('The authorization moves another amount.', 'wrong-amount')
      // The nonce is the challenge hash ("MUST be set to challengeHash"), except for credentials relayed
      // from x402, whose clients pick random nonces; those were matched to the route by the adapter.
      if (!relayed.has(credential) && payload.nonce.toLowerCase() !== challengeHash(challenge).toLowerCase())
        throw refuse('The authorization nonce is not the challenge hash.', 'nonce-mismatch')
      const now = Math.floor(Date.now() / 1000)
      if (BigInt(payload.validAfter) > BigInt(now))
        throw refuse('The authorization is not valid yet.', 'not-yet-valid')
      if (BigInt(payload.validBefore) < BigInt(now + minValidity))
        throw refuse('The authorization has expired.', 'authorization-expired')
      if (credential.source !== undefined && credential.source !== pkh(chainId, payload.from as Address))
        throw refuse('The credential source is not the payer.', 'source-mismatch')
      let valid = false
      try {
        valid = await verifyTypedData({
          address: payload.from as Address,
          ...typedData({ ...options.domain, chainId, token: request.currency }, payload),
          signature: payload.signature as Hex,
        })
      } catch {}
      if (!valid) throw refuse('The authorization signature is invalid.', 'invalid-signature')
      return undefined
    },
    async settle({ request, payload, credential, store }) {
      // "the same authorization settles at most once": claimed in the Store before any settlement, so
      // concurrent copies (or other processes) are refused while the first settles.
      const key = `auth:${payload.from.toLowerCase()}:${payload.nonce.toLowerCase()}`
      const ttl = Math.max(60_000, (Number(payload.validBefore) - Math.floor(Date.now() / 1000) + 60) * 1000)
      if (!(await store.putIfAbsent(key, 'settling', ttl)))
        throw new VerificationFailedError({
          detail: 'This authorization was already used.',
          reason: 'authorization-used',
        })
      try {
        const reference = options.facilitator
          ? await settleWithFacilitator(options.facilitator, request, payload, credential, timeout)
          : await settleWithWallet(options.wallet!, request, payload, timeout)
        await store.set(key, reference, ttl).catch(() => {})
        return {
          reference,
          receipt: { network: `eip155:${request.methodDetails.chainId}`, payer: payload.from },
        }
      } catch (cause) {
        // Nothing settled: release the claim so the payer may retry.
        await store.delete(key).catch(() => {})
        throw cause
      }
    },
  }
}

async function settleWithFacilitator(
  facilitator: Facilitator,
  request: EvmChargeRequest,
  payload: AuthorizationPayload,
  credential: { challenge: { expires?: string } },
  timeout: number,
): Promise<string> {
  const original = relayed.get(credential as never)
  const requirement = original?.requirement ?? requirementOf(request, 300)
  const { type: _type, signature, ...authorization } = payload
  const document = original?.document ?? {
    x402Version: 2,
    accepted: requirement,
    payload: { signature, authorization },
  }
  const unavailable = (cause: unknown) =>
    new ServiceUnavailableError({ detail: 'The x402 facilitator is unavailable.', retryAfter: 1, cause })
  let verified: Awaited<ReturnType<Facilitator['verify']>>
  try {
    verified = await withTimeout(facilitator.verify(document, requirement), timeout)
  } catch (cause) {
    throw PaymentError.is(cause) ? cause : unavailable(cause)
  }
  if (!verified.isValid)
    throw new VerificationFailedError({
      detail: `The facilitator refused the payment: ${verified.invalidReason ?? 'invalid'}.`,
      reason: verified.invalidReason ?? 'facilitator-refused',
    })
  let settled: Awaited<ReturnType<Facilitator['settle']>>
  try {
    settled = await withTimeout(facilitator.settle(document, requirement), timeout)
  } catch (cause) {
    throw PaymentError.is(cause) ? cause : unavailable(cause)
  }
  if (!settled.success)
    throw new VerificationFailedError({
      detail: `The facilitator could not settle the payment: ${settled.errorReason ?? 'failed'}.`,
      reason: settled.errorReason ?? 'settlement-failed',
    })
  return settled.transaction
}

const transferWithAuthorizationAbi = [
  {
    type: 'function',
    name: 'transferWithAuthorization',
    stateMutability: 'nonpayable',
    inputs: [
      { name: 'from', type: 'address' },
      { name: 'to', type: 'address' },
      { name: 'value', type: 'uint256' },
      { name: 'validAfter', type: 'uint256' },
      { name: 'validBefore', type: 'uint256' },
      { name: 'nonce', type: 'bytes32' },
      { name: 'v', type: 'uint8' },
      { name: 'r', type: 'bytes32' },
      { name: 's', type: 'bytes32' },
    ],
    outputs: [],
  },
] as const

async function settleWithWallet(
  wallet: Wallet,
  request: EvmChargeRequest,
  payload: AuthorizationPayload,
  timeout: number,
): Promise<string> {
  const { r, s, v, yParity } = parseSignature(payload.signature as Hex)
  const data = encodeFunctionData({
    abi: transferWithAuthorizationAbi,
    functionName: 'transferWithAuthorization',
    args: [
      payload.from as Address,
      payload.to as Address,
      BigInt(payload.value),
      BigInt(payload.validAfter),
      BigInt(payload.validBefore),
      payload.nonce as Hex,
      Number(v ?? BigInt(yParity + 27)),
      r,
      s,
    ],
  })
  let hash: Hex
  try {
    hash = await withTimeout(
      wallet.sendTransaction({ account: wallet.account, to: request.currency, data, gas: 300_000n }),
      timeout,
    )
  } catch (cause) {
    if (PaymentError.is(cause)) throw cause
    throw new ServiceUnavailableError({ detail: 'The chain is unavailable.', retryAfter: 1, cause })
  }
  const receipt = await withTimeout(wallet.waitForTransactionReceipt({ hash, timeout }), timeout)
  // "Servers MUST NOT return a receipt for a reverted transaction."
  if (receipt.status !== 'success')
    throw new VerificationFailedError({ detail: 'The transfer reverted.', reason: 'transfer-reverted' })
  return hash
}
