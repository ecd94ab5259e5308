import {
  ConfigurationError,
  type Method,
  PaymentError,
  ServiceUnavailableError,
  VerificationFailedError,
} from '@mppkit/core'
import {
  type Address,
  encodeFunctionData,
  type Hex,
  isAddress,
  parseAbiItem,
  parseSignature,
  verifyTypedData,
} from 'viem'
import { challengeHash, pkh, sameAddress, typedData } from '../Authorization.js'
import {
  type AuthorizationPayload,
  type CredentialType,
  type EvmChargeRequest,
  evmCharge,
} from '../Methods.js'
import { permit2Address } from '../Permit2.js'
import { hasTransfers } from '../Transfer.js'
import { confirmedAuthorization, settledAuthorization } from './Facilitated.js'
import { settlePermit2, verifyPermit2 } from './Permit2.js'
import { relayed } from './Relayed.js'
import {
  facilitate,
  latestValidity,
  onChain,
  once,
  type Reader,
  receiptOf,
  recentLogs,
  refuse,
  sendFromWallet,
  settleOrFind,
  staleClaimMs,
  type Wallet,
  withTimeout,
} from './Shared.js'
import { settleHash, settleTransaction, verifyTransaction } from './Transaction.js'
import { settleX402Permit2, verifyX402Permit2 } from './X402Permit2.js'

export type { Reader, Wallet } from './Shared.js'

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
    /** The ERC-20 token (an EIP-3009 token when `authorization` is offered). */
    currency: Address
    recipient: Address
    /**
     * The credential types offered, in order of preference (default `['authorization']`). `authorization`
     * needs `domain` and a `facilitator` or `wallet`; `permit2` needs `wallet` (its account is the
     * Permit2 spender and pays gas); `transaction` and `hash` need `client` (or a `wallet` with public
     * actions).
     */
    credentialTypes?: readonly CredentialType[]
    /** The token's EIP-712 domain name and version (EIP-3009 `authorization` only). */
    domain?: { name: string; version: string }
    /** The token's decimals, advertised to clients for their spend policy. */
    decimals?: number
    /** Settles through an x402 facilitator (in-process or `HTTPFacilitatorClient`)… */
    facilitator?: Facilitator
    /** …or broadcasts `transferWithAuthorization` itself, paying gas from this wallet (also submits `permit2`). */
    wallet?: Wallet
    /**
     * Chain reads and raw broadcasts for `permit2`, `transaction` and `hash` (default: `wallet`). With
     * `authorization`, `permit2` and `x402Permit2`, also how a settlement whose answer was lost (a
     * facilitator or node timing out after the transfer landed) is found on chain, so its payer is
     * served once instead of refused; and how a facilitator's answer is checked against the chain.
     */
    client?: Reader
    /** The Permit2 contract (default the canonical `0x000000000022D473030F116dDEE9F6B43aC78BA3`). */
    permit2Address?: Address
    /** Oldest block age, in seconds, a `hash` credential may point at (default 3 600). */
    hashMaxAgeSeconds?: number
    /** Milliseconds a facilitator or the chain may take before the request is a 503 (default 15 000). */
    timeout?: number
    /**
     * Also take x402's Permit2 transfer method (`extra.assetTransferMethod: "permit2"`) from x402 clients,
     * settled by `facilitator` (required) through x402's Permit2 proxy: the x402 adapter advertises a
     * second `exact` requirement for it after the EIP-3009 one (default false). MPP clients never see it.
     */
    x402Permit2?: boolean
    /**
     * The token implements EIP-2612 `permit` under `domain` (default false). With `x402Permit2`, x402's
     * Permit2 requirement names the domain in `extra` and the 402 advertises x402's
     * `eip2612GasSponsoring` extension: an x402 client without a Permit2 allowance then adds a permit of
     * exactly the amount to Permit2, which the facilitator submits with the transfer
     * (`settleWithPermit`), paying its gas. A permit that arrives is checked either way (owner, token,
     * Permit2 as spender, the amount, its deadline, its signature) before the facilitator sees it.
     */
    eip2612?: boolean
    /** Seconds of validity an authorization must have left when it arrives (default 6). */
    minValiditySeconds?: number
    /**
     * Longest validity, in seconds from now, an authorization (`validBefore`) or permit (`deadline`)
     * may have, beyond the challenge's `expires` (default 3 600): each is claimed in the Store until it
     * lapses, so a longer one is refused.
     */
    maxValiditySeconds?: number
  }
}

/** The largest timeout Node's timers take (2^31 - 1 ms); a longer one would fire at once. */
const maxTimeoutMs = 2_147_483_647
/** ERC-20 `decimals` is a uint8, but no token in use has more than 36: more is a configuration mistake. */
const maxDecimals = 36

/**
 * Refuses options every payment would fail on after the payer signed (each throws `ConfigurationError`
 * naming the option): addresses that are not 20-byte hex, a chain id that is not a positive integer,
 * timeouts outside what Node's timers take, and seconds that are not whole numbers.
 */
function checkOptions(options: charge.Options, missing: (what: string) => ConfigurationError): void {
  if (!options || typeof options !== 'object') throw missing('options are required')
  const whole = (value: unknown, min: number, max: number) =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= min && value <= max
  if (!whole(options.chainId, 1, Number.MAX_SAFE_INTEGER))
    throw missing('chainId must be a positive integer (the EIP-155 chain id)')
  for (const field of ['currency', 'recipient', 'permit2Address'] as const)
    if ((field !== 'permit2Address' || options[field] !== undefined) && !isEvmAddress(options[field]))
      throw missing(`${field} must be a 0x-prefixed 20-byte address`)
  if (options.decimals !== undefined && !whole(options.decimals, 0, maxDecimals))
    throw missing(`decimals must be an integer from 0 to ${maxDecimals}`)
  if (options.timeout !== undefined && !whole(options.timeout, 1, maxTimeoutMs))
    throw missing('timeout must be a whole number of milliseconds, 1 to 2147483647')
  if (options.minValiditySeconds !== undefined && !whole(options.minValiditySeconds, 0, 31_536_000))
    throw missing('minValiditySeconds must be a whole number of seconds, 0 or more')
  if (options.hashMaxAgeSeconds !== undefined && !whole(options.hashMaxAgeSeconds, 1, 31_536_000))
    throw missing('hashMaxAgeSeconds must be a positive whole number of seconds')
  if (
    options.domain !== undefined &&
    (typeof options.domain?.name !== 'string' || typeof options.domain?.version !== 'string')
  )
    throw missing('domain must have a string name and version (the token’s EIP-712 domain)')
  if (
    options.facilitator !== undefined &&
    (typeof options.facilitator?.verify !== 'function' || typeof options.facilitator?.settle !== 'function')
  )
    throw missing('facilitator must have verify and settle (an @x402/core FacilitatorClient)')
}

/** A 0x-prefixed 20-byte address (mixed case only with a valid EIP-55 checksum). */
function isEvmAddress(value: unknown): value is Address {
  return typeof value === 'string' && isAddress(value)
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
 * The `maxValiditySeconds` of each `evm` charge method this module created: the x402 adapter checks its
 * `maxTimeoutSeconds` against the server's methods when it is created.
 */
export const maxValidityOf = new WeakMap<object, number>()

/**
 * The chain and token of each `evm` charge method this module created with `x402Permit2`: the x402
 * adapter advertises x402's Permit2 requirement for the offers of these, and with `eip2612` (the token's
 * EIP-712 domain here) x402's `eip2612GasSponsoring` beside it.
 */
export const x402Permit2Of = new WeakMap<
  object,
  { chainId: number; currency: string; eip2612?: { name: string; version: string } | undefined }
>()

/**
 * The server half of the `evm` charge, for the four credential types of draft-evm-charge-00:
 * `authorization` (EIP-3009, settled by an x402 facilitator or the server's wallet), `permit2` (the
 * server submits `permitWitnessTransferFrom`), `transaction` (the server broadcasts the client's signed
 * transfer) and `hash` (the server checks the receipt of the client's own transfer). Each credential's
 * replay token is claimed in the Store before it settles, so it settles at most once across processes.
 *
 * @example
 * ```ts
 * import { charge } from '@mppkit/x402-compat/server'
 * Server.create({ realm, secrets, methods: [charge({ chainId, currency, recipient, domain, facilitator })] })
 * ```
 * @see draft-evm-charge-00 §"Verification Procedure", §"Settlement Procedure"
 */
export function charge(options: charge.Options): Method.Server<typeof evmCharge> {
  const types = [...(options.credentialTypes ?? ['authorization'])]
  const timeout = options.timeout ?? 15_000
  const minValidity = options.minValiditySeconds ?? 6
  const maxValidity = options.maxValiditySeconds ?? 3_600
  const reader = options.client ?? (options.wallet as unknown as Reader | undefined)
  const permit2 = options.permit2Address ?? permit2Address
  const now = () => Date.now()
  const hashMaxAgeSeconds = options.hashMaxAgeSeconds ?? 3_600
  const missing = (what: string) => new ConfigurationError(`evm charge: ${what}`)
  checkOptions(options, missing)
  if (types.length === 0 || new Set(types).size !== types.length)
    throw missing('credentialTypes must list each offered type once')
  // Every Store claim lives at most this long (in ms): a Store (Redis) refuses TTLs past a safe integer.
  if (!Number.isSafeInteger(maxValidity) || maxValidity < 0 || maxValidity > 31_536_000)
    throw missing('maxValiditySeconds must be an integer from 0 to 31 536 000 (a year)')
  if (types.includes('authorization')) {
    // "Servers MUST only include "authorization" when the currency token is known to implement EIP-3009":
    // configuring its EIP-712 domain is how a server says it knows.
    if (!options.domain) throw missing('authorization needs the token’s EIP-712 domain (domain)')
    if (!options.facilitator && !options.wallet)
      throw missing('give a facilitator or a wallet to settle with')
  }
  if (options.x402Permit2 && !options.facilitator)
    throw missing('x402Permit2 needs a facilitator (x402 Permit2 payments are settled through one)')
  if (options.eip2612 && (!options.x402Permit2 || !options.domain))
    throw missing(
      'eip2612 needs x402Permit2 and the token’s EIP-712 domain (domain): the permit is x402’s, signed under that domain',
    )
  if (types.includes('permit2') && !options.wallet?.account)
    throw missing('permit2 needs a wallet with an account (the Permit2 spender, paying gas)')
  if (types.some((type) => type !== 'authorization') && typeof reader?.getTransactionReceipt !== 'function')
    throw missing(
      'permit2, transaction and hash need a client (a viem public client) or a wallet with public actions',
    )

  const methodDetails: EvmChargeRequest['methodDetails'] = {
    chainId: options.chainId,
    // "Servers that support Permit2 SHOULD include "permit2" as the first entry to indicate preference."
    credentialTypes: types,
  }
  if (options.domain) methodDetails.eip712 = options.domain
  if (types.includes('permit2')) {
    // permitWitnessTransferFrom checks the signature against msg.sender: clients must sign for our wallet.
    methodDetails.permit2Address = permit2
    methodDetails.spender = options.wallet!.account!.address
  }
  if (options.decimals !== undefined) methodDetails.decimals = options.decimals
  const chain = () => ({ reader: reader!, timeout, now, hashMaxAgeSeconds })
  const permit2Context = () => ({
    reader: reader!,
    wallet: options.wallet!,
    permit2,
    timeout,
    minValidity,
    maxValidity,
    now,
  })

  const x402Permit2Context = () => ({
    facilitator: options.facilitator!,
    reader,
    timeout,
    minValidity,
    maxValidity,
    now,
    domain: options.domain,
  })

  const method: Method.Server<typeof evmCharge> = {
    definition: evmCharge,
    defaults: { currency: options.currency, recipient: options.recipient, methodDetails },
    async verify({ challenge, request, payload, credential }) {
      const { chainId } = request.methodDetails
      if (chainId !== options.chainId || !sameAddress(request.currency, options.currency))
        throw refuse('The challenge names another chain or token.', 'wrong-asset')
      // x402's Permit2 form: relayed by the x402 adapter from a requirement it offered, never an MPP type.
      if (payload.type === 'x402-permit2') {
        if (!options.x402Permit2 || request.methodDetails.splits?.length)
          throw refuse('This challenge does not accept x402-permit2 credentials.', 'credential-type')
        return verifyX402Permit2(x402Permit2Context(), {
          challenge,
          request,
          payload,
          relayed: relayed.get(credential),
          source: credential.source,
        })
      }
      // "If omitted, servers MUST accept "transaction" and SHOULD accept "hash"."
      const accepted = request.methodDetails.credentialTypes ?? ['transaction', 'hash']
      if (!accepted.includes(payload.type) || !types.includes(payload.type))
        throw refuse(`This challenge does not accept ${payload.type} credentials.`, 'credential-type')
      // "If the challenge includes splits and payload.type is not "permit2", reject the request."
      if (request.methodDetails.splits?.length && payload.type !== 'permit2')
        throw refuse('Splits need a permit2 credential.', 'splits')
      if (payload.type === 'permit2')
        return verifyPermit2(permit2Context(), { challenge, request, payload, source: credential.source })
      if (payload.type === 'transaction') return verifyTransaction(request, payload, credential.source)
      if (payload.type === 'hash') return undefined
      // "`to` MUST match the challenge `recipient`." "`value` MUST match the challenge `amount`."
      if (!sameAddress(payload.to, request.recipient))
        throw refuse('The authorization pays another recipient.', 'wrong-recipient')
      if (payload.value !== request.amount)
        throw refuse('The authorization moves another amount.', 'wrong-amount')
      // The nonce is the challenge hash ("MUST be set to challengeHash"), except for credentials relayed
      // from x402, whose clients pick random nonces; those were matched to the route by the adapter.
      const original = relayed.get(credential)
      if (!original && payload.nonce.toLowerCase() !== challengeHash(challenge).toLowerCase())
        throw refuse('The authorization nonce is not the challenge hash.', 'nonce-mismatch')
      const nowSeconds = Math.floor(now() / 1000)
      // An x402 client signs `validBefore` = now + the requirement's `maxTimeoutSeconds`: an adapter that
      // offers more than this method takes would have every x402 payment refused as valid too long. The
      // operator is told (503, `onError`) before anything moves, rather than each payer refused.
      const offered = original?.requirement.maxTimeoutSeconds
      if (
        typeof offered === 'number' &&
        offered > maxValidity &&
        BigInt(nowSeconds + offered) > latestValidity(challenge, nowSeconds, maxValidity)
      )
        throw missing(
          `x402 maxTimeoutSeconds (${offered}) is above this method's maxValiditySeconds (${maxValidity}): raise maxValiditySeconds or lower maxTimeoutSeconds`,
        )
      // EIP-3009: `require(now > validAfter, "authorization is not yet valid")`.
      if (BigInt(payload.validAfter) >= BigInt(nowSeconds))
        throw refuse('The authorization is not valid yet.', 'not-yet-valid')
      if (BigInt(payload.validBefore) < BigInt(nowSeconds + minValidity))
        throw refuse('The authorization has expired.', 'authorization-expired')
      // Its replay claim lives until validBefore: a far-future one is refused, not claimed for ever.
      if (BigInt(payload.validBefore) > latestValidity(challenge, nowSeconds, maxValidity))
        throw refuse('The authorization is valid too far into the future.', 'validity-too-long')
      if (credential.source !== undefined && credential.source !== pkh(chainId, payload.from as Address))
        throw refuse('The credential source is not the payer.', 'source-mismatch')
      let valid = false
      try {
        valid = await verifyTypedData({
          address: payload.from as Address,
          ...typedData({ ...options.domain!, chainId, token: request.currency }, payload),
          signature: payload.signature as Hex,
        })
      } catch {}
      if (!valid) throw refuse('The authorization signature is invalid.', 'invalid-signature')
      return undefined
    },
    async settle({ request, payload, credential, store, verified }) {
      const network = `eip155:${request.methodDetails.chainId}`
      const settled = (reference: string, payer?: string) => {
        // Receipt fields of the spec: `reference` (the transaction hash) and `chainId`; mppkit adds
        // `network` and `payer` (as x402's settlement response names them).
        const receipt: Record<string, unknown> = { chainId: request.methodDetails.chainId, network }
        if (payer !== undefined) receipt.payer = payer
        const settlement: Method.Settlement = { reference, receipt }
        if (request.externalId !== undefined) settlement.externalId = request.externalId
        return settlement
      }
      if (payload.type === 'permit2') {
        const owner = verified as Address
        return settled(await settlePermit2(permit2Context(), { store, request, payload, owner }), owner)
      }
      if (payload.type === 'x402-permit2') {
        const original = relayed.get(credential)!
        const payer = payload.permit2Authorization.from
        return settled(
          await settleX402Permit2(x402Permit2Context(), { store, request, payload, relayed: original }),
          payer,
        )
      }
      if (payload.type === 'transaction') {
        const signer = verified as Address
        return settled(await settleTransaction(chain(), { store, request, payload, signer }), signer)
      }
      if (payload.type === 'hash')
        return settled(await settleHash(chain(), { store, request, payload, source: credential.source }))
      // "the same authorization settles at most once": claimed in the Store before any settlement, so
      // concurrent copies (or other processes) are refused while the first settles.
      const key = `auth:${payload.from.toLowerCase()}:${payload.nonce.toLowerCase()}`
      const ttl = Math.max(60_000, (Number(payload.validBefore) - Math.floor(now() / 1000) + 60) * 1000)
      const reference = await once(
        store,
        key,
        ttl,
        (resumed) =>
          // The transfer may have landed without its answer reaching us (now, on an earlier attempt
          // whose claim was released, or on one whose process stopped: its claim is taken over, and
          // `resumed`): the authorization is then used on chain and any new attempt is refused. When
          // the outcome is unknown, the payer is served once if the chain shows this authorization paid
          // this request; a definite refusal is answered without that search.
          settleOrFind(
            store,
            key,
            ttl,
            (sending) =>
              options.facilitator
                ? settleWithFacilitator(
                    options.facilitator,
                    reader,
                    request,
                    payload,
                    credential,
                    timeout,
                    sending,
                  )
                : settleWithWallet(options.wallet!, reader, request, payload, timeout, sending),
            () => landedAuthorization(reader, request, payload, timeout),
            resumed,
          ),
        { detail: 'This authorization was already used.', reason: 'authorization-used' },
        staleClaimMs(timeout),
      )
      return settled(reference, payload.from)
    },
  }
  maxValidityOf.set(method, maxValidity)
  if (options.x402Permit2)
    x402Permit2Of.set(method, {
      chainId: options.chainId,
      currency: options.currency,
      eip2612: options.eip2612 ? options.domain : undefined,
    })
  return method
}

const authorizationUsed = parseAbiItem(
  'event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)',
)

/**
 * The transaction that used this EIP-3009 authorization, when the chain shows one (its
 * `AuthorizationUsed` event) that succeeded with this authorization's own `Transfer` of the amount from
 * the payer to the recipient ({@link settledAuthorization}: not merely some such `Transfer` in the same
 * batch); undefined otherwise (not landed, cancelled, or no `reader` with `getLogs`).
 */
async function landedAuthorization(
  reader: Reader | undefined,
  request: EvmChargeRequest,
  payload: AuthorizationPayload,
  timeout: number,
): Promise<string | undefined> {
  if (!reader) return undefined
  const hashes = await recentLogs(reader, timeout, {
    address: request.currency,
    event: authorizationUsed,
    args: { authorizer: payload.from as Address, nonce: payload.nonce as Hex },
  })
  for (const transactionHash of hashes ?? []) {
    if (!transactionHash) continue
    const receipt = await onChain(reader.getTransactionReceipt({ hash: transactionHash }), timeout)
    if (
      receipt?.status === 'success' &&
      (await settledAuthorization(reader, {
        transaction: transactionHash,
        logs: receipt.logs ?? [],
        request,
        payload,
        timeout,
      }))
    )
      return transactionHash
  }
  return undefined
}

async function settleWithFacilitator(
  facilitator: Facilitator,
  reader: Reader | undefined,
  request: EvmChargeRequest,
  payload: AuthorizationPayload,
  credential: { challenge: { expires?: string } },
  timeout: number,
  /** Called once the facilitator is asked to settle: from then on the transfer may land. */
  sending: () => void,
): Promise<string> {
  const original = relayed.get(credential as never)
  const requirement = original?.requirement ?? requirementOf(request, 300)
  const { type: _type, signature, ...authorization } = payload
  const document = original?.document ?? {
    x402Version: 2,
    accepted: requirement,
    payload: { signature, authorization },
  }
  // The facilitator's word is checked against this payment (and, with a reader, the chain) before it
  // serves anyone; a contradicting answer is refused (the lookup in `settle` still finds a real transfer).
  const settled = await facilitate(facilitator, document, requirement, timeout, async () => sending())
  return confirmedAuthorization(settled, { request, payload, reader, timeout })
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

/**
 * Submits `transferWithAuthorization` from the server's wallet (it pays gas): simulated first, so an
 * authorization that would revert (no balance, nonce used, a signature the token refuses) costs the
 * server no gas; then the receipt must be this very transaction's and hold the expected `Transfer`.
 *
 * @see draft-evm-charge-00 §"Authorization Verification" steps 7–10
 */
async function settleWithWallet(
  wallet: Wallet,
  reader: Reader | undefined,
  request: EvmChargeRequest,
  payload: AuthorizationPayload,
  timeout: number,
  /** Called before the transaction is handed to the wallet: from then on it may land. */
  sending: () => void,
): Promise<string> {
  const { r, s, v, yParity } = parseSignature(payload.signature as Hex)
  const call = {
    abi: transferWithAuthorizationAbi,
    functionName: 'transferWithAuthorization' as const,
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
    ] as const,
  }
  // 7. "The signer has sufficient token balance"; "Servers SHOULD simulate the transaction via eth_call
  // before submitting to detect failures without spending gas." The simulation answers for the balance,
  // the nonce, the validity window and the signature as the token itself checks them.
  if (reader?.simulateContract)
    await onChain(
      reader.simulateContract({ account: wallet.account, address: request.currency, ...call }),
      timeout,
      () =>
        refuse(
          'The authorization would revert on chain (balance too low, nonce used or signature refused).',
          'authorization-reverts',
        ),
    )
  let hash: Hex
  sending()
  try {
    hash = await withTimeout(
      sendFromWallet(
        wallet,
        { account: wallet.account, to: request.currency, data: encodeFunctionData(call), gas: 300_000n },
        timeout,
      ),
      timeout,
    )
  } catch (cause) {
    if (PaymentError.is(cause)) throw cause
    throw new ServiceUnavailableError({ detail: 'The chain is unavailable.', retryAfter: 1, cause })
  }
  // 9. "Verify the transaction receipt indicates success" (of this very transaction, not a replacement).
  const receipt = await receiptOf(wallet, hash, timeout)
  // "Servers MUST NOT return a receipt for a reverted transaction."
  if (receipt.status !== 'success')
    throw new VerificationFailedError({ detail: 'The transfer reverted.', reason: 'transfer-reverted' })
  // 10. "Verify the Transfer event log matches the expected parameters"
  const expected = {
    token: request.currency,
    to: request.recipient,
    value: BigInt(request.amount),
    from: payload.from,
  }
  if (!hasTransfers(receipt.logs ?? [], [expected]))
    throw refuse('The receipt lacks the expected Transfer log.', 'transfer-mismatch')
  return hash
}
