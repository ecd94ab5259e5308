import type { Challenge } from '@mppkit/core'
import { type Address, encodeFunctionData, erc20Abi, type Hex, recoverAddress } from 'viem'
import { challengeHash, payerOf, sameAddress } from '../Authorization.js'
import type { EvmChargeRequest, Permit2Payload } from '../Methods.js'
import * as Permit2 from '../Permit2.js'
import { hasTransfers, transferEvent } from '../Transfer.js'
import {
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
} from './Shared.js'

/** What the Permit2 checks need from the method's configuration. */
export type Permit2Context = {
  reader: Reader
  wallet: Wallet
  permit2: Address
  timeout: number
  minValidity: number
  /** Longest validity, in seconds from now, a permit may have beyond the challenge's `expires`. */
  maxValidity: number
  now: () => number
}

/** The transfers a request asks for, primary first, then the splits in array order. */
function expectedTransfers(request: EvmChargeRequest): { to: string; amount: bigint }[] {
  const splits = request.methodDetails.splits ?? []
  const total = BigInt(request.amount)
  const shares = splits.reduce((sum, split) => sum + BigInt(split.amount), 0n)
  // "The sum of splits[].amount MUST be strictly less than amount."
  if (splits.length > 0 && shares >= total)
    throw refuse('The splits add up to the whole amount or more.', 'invalid-splits')
  return [
    { to: request.recipient, amount: total - shares },
    ...splits.map((split) => ({ to: split.recipient, amount: BigInt(split.amount) })),
  ]
}

/**
 * Checks a Permit2 credential before anything is submitted (draft-evm-charge-00 §"Permit2
 * Verification", steps 1, 2 and 5–10; 3–4 are read by the settlement); returns the owner (the signer
 * named by `source`).
 */
export async function verifyPermit2(
  context: Permit2Context,
  input: {
    challenge: Challenge.Challenge
    request: EvmChargeRequest
    payload: Permit2Payload
    source?: string | undefined
  },
): Promise<Address> {
  const { request, payload, challenge } = input
  const { chainId } = request.methodDetails
  const { permitted } = payload.permit
  const details = payload.transferDetails
  const expected = expectedTransfers(request)
  // 5. "The witness.challengeHash matches the expected value derived from the challenge id and realm"
  if (payload.witness.challengeHash.toLowerCase() !== challengeHash(challenge).toLowerCase())
    throw refuse('The permit witness is not bound to this challenge.', 'witness-mismatch')
  // "When externalId is absent from the challenge request, PaymentWitness.externalId is the empty string."
  const externalId = request.externalId ?? ''
  if (payload.witness.externalId !== undefined && payload.witness.externalId !== externalId)
    throw refuse('The permit witness names another externalId.', 'witness-mismatch')
  // 6. "permitted and transferDetails arrays have equal length" (one per transfer: primary + splits).
  if (permitted.length !== details.length || details.length !== expected.length)
    throw refuse('The permit does not list one transfer per payee.', 'wrong-transfers')
  for (const [index, want] of expected.entries()) {
    const permission = permitted[index]!
    const detail = details[index]!
    // 7. "Each permitted[i].token matches currency"
    if (!sameAddress(permission.token, request.currency))
      throw refuse('The permit moves another token.', 'wrong-asset')
    // 8–10. transferDetails[0] is the primary transfer, transferDetails[i+1] is splits[i].
    if (!sameAddress(detail.to, want.to))
      throw refuse('The permit pays another recipient.', 'wrong-recipient')
    if (BigInt(detail.requestedAmount) !== want.amount)
      throw refuse('The permit moves another amount.', 'wrong-amount')
    if (BigInt(permission.amount) < want.amount)
      throw refuse('The permitted amount is below the transfer.', 'wrong-amount')
  }
  // 2. "The deadline has not passed" (with the margin the settlement needs).
  const nowSeconds = Math.floor(context.now() / 1000)
  if (BigInt(payload.permit.deadline) < BigInt(nowSeconds + context.minValidity))
    throw refuse('The permit deadline has passed.', 'permit-expired')
  // Its replay claim lives until the deadline: a far-future one is refused, not claimed for ever.
  if (BigInt(payload.permit.deadline) > latestValidity(challenge, nowSeconds, context.maxValidity))
    throw refuse('The permit deadline is too far in the future.', 'validity-too-long')
  // 1. "The EIP-712 signature is valid and recovers to the source address"
  const owner = payerOf(input.source, chainId)
  if (!owner) throw refuse('A permit2 credential needs a did:pkh source on this chain.', 'source-missing')
  const hash = Permit2.digest({
    chainId,
    permit2: context.permit2,
    spender: context.wallet.account!.address,
    permit: payload.permit,
    witness: { challengeHash: payload.witness.challengeHash as Hex, externalId },
  })
  let signer: Address | undefined
  try {
    signer = await recoverAddress({ hash, signature: payload.signature as Hex })
  } catch {}
  if (!signer || !sameAddress(signer, owner))
    throw refuse('The permit signature is invalid or not the source’s.', 'invalid-signature')
  // 3–4. (balance and allowance) are read in the settlement, before submitting: see {@link funded}.
  return owner
}

/**
 * 3–4. "The signer has sufficient token balance for the total amount (primary + all splits)" and "The
 * signer has sufficient Permit2 allowance". Read inside the settlement's claim, not in `verify`: a
 * permit that already landed (its answer lost) used that balance and allowance up, and its payer must
 * still reach the lookup that serves it (see landedPermit2) rather than be refused as unfunded.
 */
async function funded(context: Permit2Context, currency: Address, owner: Address, total: bigint) {
  const read = (functionName: 'balanceOf' | 'allowance', args: readonly Address[]) =>
    onChain(
      context.reader.readContract({ address: currency, abi: erc20Abi, functionName, args }),
      context.timeout,
    ) as Promise<bigint>
  const [balance, allowance] = await Promise.all([
    read('balanceOf', [owner]),
    read('allowance', [owner, context.permit2]),
  ])
  if (balance < total) throw refuse('The payer’s balance is too low.', 'insufficient-balance')
  if (allowance < total)
    throw refuse('The payer has not approved Permit2 for this amount.', 'insufficient-allowance')
}

/**
 * Submits a verified Permit2 credential once (replay token: owner and Permit2 nonce), after an
 * `eth_call` simulation, and checks the receipt's `Transfer` logs. When a submission fails with an
 * unknown outcome (its answer lost after it landed, or a retry refused after such an attempt: then it
 * reverts on the used nonce), the chain is searched for this very permit before the failure is answered
 * (see landedPermit2 and settleOrFind); a definite refusal (balance, allowance, simulation) is not.
 *
 * @see draft-evm-charge-00 §"Permit2 Verification" steps 11–14
 */
export function settlePermit2(
  context: Permit2Context,
  input: {
    store: import('@mppkit/core').Store
    request: EvmChargeRequest
    payload: Permit2Payload
    owner: Address
  },
): Promise<string> {
  const { request, payload, owner } = input
  const externalId = request.externalId ?? ''
  const witness = Permit2.witnessHash({ challengeHash: payload.witness.challengeHash as Hex, externalId })
  const call = Permit2.call(payload, owner, witness)
  const key = `permit2:${owner.toLowerCase()}:${payload.permit.nonce}`
  const ttl = Math.max(
    60_000,
    (Number(payload.permit.deadline) - Math.floor(context.now() / 1000) + 60) * 1000,
  )
  const data = encodeFunctionData(call as never)
  // 14. "Verify Transfer event logs match all expected transfers"
  const transfers = payload.transferDetails.map((detail) => ({
    token: request.currency,
    to: detail.to,
    value: BigInt(detail.requestedAmount),
    from: owner,
  }))
  return once(
    input.store,
    key,
    ttl,
    (resumed) =>
      // The transfer may have landed without its answer reaching us (now, or on an earlier attempt
      // whose claim was released): the nonce is then used on chain and any new submission reverts.
      // When the outcome is unknown, the payer is served once if the chain holds this very permit,
      // submitted and successful; a definite refusal is answered without that search.
      settleOrFind(
        input.store,
        key,
        ttl,
        async (sending) => {
          await funded(context, request.currency as Address, owner, BigInt(request.amount))
          return submit(context, data, call, transfers, sending)
        },
        () => landedPermit2(context, data, request.currency as Address, transfers),
        resumed,
      ),
    { detail: 'This permit was already used.', reason: 'permit-used' },
    staleClaimMs(context.timeout),
  )
}

/** Simulates, submits and checks one Permit2 transfer; returns its transaction hash. */
async function submit(
  context: Permit2Context,
  data: Hex,
  call: ReturnType<typeof Permit2.call>,
  transfers: { token: string; to: string; value: bigint; from: Address }[],
  /** Called before the transaction is handed to the wallet: from then on it may land. */
  sending: () => void,
): Promise<string> {
  const account = context.wallet.account!
  // "Servers SHOULD simulate the transaction via eth_call before submitting": a permit that would
  // revert (nonce used, allowance gone) is refused without spending gas.
  if (context.reader.simulateContract)
    await onChain(
      context.reader.simulateContract({ account, address: context.permit2, ...call }),
      context.timeout,
      () =>
        refuse(
          'The permit would revert on chain (nonce used, allowance or balance too low).',
          'permit-reverts',
        ),
    )
  sending()
  const hash = await onChain(
    sendFromWallet(context.wallet, { account, to: context.permit2, data, gas: 400_000n }, context.timeout),
    context.timeout,
  )
  const receipt = await receiptOf(context.wallet, hash, context.timeout)
  // 13. "Verify the transaction receipt indicates success"
  if (receipt.status !== 'success') throw refuse('The permit transfer reverted.', 'transfer-reverted')
  if (!hasTransfers(receipt.logs ?? [], transfers))
    throw refuse('The receipt lacks the expected Transfer logs.', 'transfer-mismatch')
  return hash
}

/**
 * The transaction that carried this very permit (a call to Permit2 whose input is byte for byte the
 * one this credential makes: the payer's signature over this challenge's witness) and succeeded with
 * every expected `Transfer`; undefined when the chain shows none (or the reader cannot search logs).
 * Candidates are the token's `Transfer` logs from the payer to the primary recipient.
 */
async function landedPermit2(
  context: Permit2Context,
  data: Hex,
  currency: Address,
  transfers: { token: string; to: string; value: bigint; from: Address }[],
): Promise<string | undefined> {
  const { reader, timeout } = context
  const hashes = await recentLogs(reader, timeout, {
    address: currency,
    event: transferEvent[0],
    args: { from: transfers[0]!.from, to: transfers[0]!.to as Address },
  })
  const seen = new Set<string>()
  for (const transactionHash of hashes ?? []) {
    if (!transactionHash || seen.has(transactionHash)) continue
    seen.add(transactionHash)
    const transaction = await onChain(reader.getTransaction({ hash: transactionHash }), timeout)
    if (!transaction?.to || !sameAddress(transaction.to, context.permit2)) continue
    if (String(transaction.input).toLowerCase() !== data.toLowerCase()) continue
    const receipt = await onChain(reader.getTransactionReceipt({ hash: transactionHash }), timeout)
    if (receipt?.status === 'success' && hasTransfers(receipt.logs ?? [], transfers)) return transactionHash
  }
  return undefined
}
