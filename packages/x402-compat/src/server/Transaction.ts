import type { Store as MethodStore } from '@mppkit/core'
import {
  type Address,
  decodeFunctionData,
  erc20Abi,
  type Hex,
  keccak256,
  parseTransaction,
  recoverTransactionAddress,
} from 'viem'
import { payerOf, sameAddress } from '../Authorization.js'
import type { EvmChargeRequest, HashPayload, TransactionPayload } from '../Methods.js'
import { hasTransfers } from '../Transfer.js'
import { onChain, once, type Reader, receiptOf, refuse, staleClaimMs } from './Shared.js'

/** What the `transaction` and `hash` checks need from the method's configuration. */
export type ChainContext = {
  reader: Reader
  timeout: number
  now: () => number
  /** Oldest block age (seconds) a `hash` credential may point at. */
  hashMaxAgeSeconds: number
}

/**
 * Checks a client-signed transaction before it is broadcast (draft-evm-charge-00 §"Transaction
 * Verification", steps 1–5); returns its signer.
 */
export async function verifyTransaction(
  request: EvmChargeRequest,
  payload: TransactionPayload,
  source: string | undefined,
): Promise<Address> {
  const { chainId } = request.methodDetails
  // 1. "Deserialize the RLP-encoded transaction from payload.signature"
  let transaction: ReturnType<typeof parseTransaction>
  let signer: Address
  try {
    transaction = parseTransaction(payload.signature as Hex)
    signer = await recoverTransactionAddress({ serializedTransaction: payload.signature as never })
  } catch {
    throw refuse('The transaction is not a signed EVM transaction.', 'malformed-transaction')
  }
  // "The signature field contains an EIP-1559 (type 2) transaction"
  if (transaction.type !== 'eip1559') throw refuse('The transaction is not EIP-1559 (type 2).', 'wrong-type')
  // 2. "Verify the transaction chainId matches methodDetails.chainId"
  if (transaction.chainId !== chainId) throw refuse('The transaction is for another chain.', 'wrong-chain')
  // 3. "Verify the transaction to address matches the currency token contract"
  if (!transaction.to || !sameAddress(transaction.to, request.currency))
    throw refuse('The transaction calls another contract.', 'wrong-asset')
  if ((transaction.value ?? 0n) !== 0n) throw refuse('The transaction sends native value.', 'wrong-call')
  // 4. "Verify the transaction calldata begins with the transfer(address,uint256) function selector"
  if (!transaction.data?.toLowerCase().startsWith('0xa9059cbb'))
    throw refuse('The transaction is not an ERC-20 transfer.', 'wrong-call')
  // 5. "Decode the calldata and verify recipient and amount match the challenge request"
  let decoded: ReturnType<typeof decodeFunctionData<typeof erc20Abi>>
  try {
    decoded = decodeFunctionData({ abi: erc20Abi, data: transaction.data })
  } catch {
    throw refuse('The transfer calldata does not decode.', 'wrong-call')
  }
  if (decoded.functionName !== 'transfer')
    throw refuse('The transfer calldata does not decode.', 'wrong-call')
  const [to, value] = decoded.args as [Address, bigint]
  if (!sameAddress(to, request.recipient))
    throw refuse('The transfer pays another recipient.', 'wrong-recipient')
  if (value !== BigInt(request.amount)) throw refuse('The transfer moves another amount.', 'wrong-amount')
  if (source !== undefined && !sameAddress(payerOf(source, chainId) ?? '0x', signer))
    throw refuse('The credential source is not the signer.', 'source-mismatch')
  return signer
}

/**
 * Broadcasts a verified transaction once (replay token: its hash), waits for the receipt and checks the
 * `Transfer` log (steps 6–9).
 */
export function settleTransaction(
  context: ChainContext,
  input: { store: MethodStore; request: EvmChargeRequest; payload: TransactionPayload; signer: Address },
): Promise<string> {
  const serializedTransaction = input.payload.signature as Hex
  // "The transaction hash (derived after broadcast) serves as the replay token": the hash of the signed
  // bytes is that hash, known before broadcast, so copies are refused before any of them is sent.
  const hash = keccak256(serializedTransaction)
  return once(
    input.store,
    replayKey(hash),
    context.hashMaxAgeSeconds * 1000 + 60_000,
    async () => {
      // 6. "Broadcast the transaction via eth_sendRawTransaction"
      try {
        await onChain(context.reader.sendRawTransaction({ serializedTransaction }), context.timeout, () =>
          refuse('The chain refused the transaction (nonce, gas or balance).', 'transaction-rejected'),
        )
      } catch (error) {
        // Already broadcast (by the payer, or by an attempt that timed out): go on with its receipt, as
        // a `hash` credential would, block age included: its claim in the Store lasts only
        // `hashMaxAgeSeconds` (+ 1 min), so an older transaction presented again must not pay again.
        const known = await context.reader.getTransaction({ hash }).catch(() => undefined)
        if (!known) throw error
        return confirm(context, input.request, hash, input.signer, { fresh: true })
      }
      return confirm(context, input.request, hash, input.signer)
    },
    { detail: 'This transaction was already used.', reason: 'transaction-used' },
    // A claim left by a process that stopped is taken over by a retry, which runs these same steps:
    // broadcasting the same signed bytes again cannot pay twice (one hash, one sender nonce).
    staleClaimMs(context.timeout),
  )
}

/**
 * The Store key that consumes a transaction, whichever credential type presents it: a `transaction`
 * (its signed bytes, whose keccak256 is its hash) and a `hash` naming the same transaction are one
 * payment. "Before accepting a credential, the server MUST check whether its replay token has already
 * been consumed." (draft-evm-charge-00 §"Replay Protection")
 */
const replayKey = (hash: Hex) => `tx:${hash.toLowerCase()}`

/** Refuses a receipt in a block older than `hashMaxAgeSeconds` (its replay claim may have expired). */
async function checkAge(context: ChainContext, blockNumber: bigint): Promise<void> {
  const block = await onChain(context.reader.getBlock({ blockNumber }), context.timeout)
  if (Number(block.timestamp) < Math.floor(context.now() / 1000) - context.hashMaxAgeSeconds)
    throw refuse('The transaction is too old to pay this challenge.', 'transaction-too-old')
}

/**
 * Waits for a transaction's receipt and checks it paid the request (status and `Transfer` log; with
 * `fresh`, a block no older than `hashMaxAgeSeconds`).
 */
async function confirm(
  context: ChainContext,
  request: EvmChargeRequest,
  hash: Hex,
  payer: Address | undefined,
  options: { fresh?: boolean } = {},
): Promise<string> {
  // 7–8. "Wait for confirmation and fetch the transaction receipt"; "Verify the receipt status is 0x1"
  const receipt = await receiptOf(context.reader, hash, context.timeout)
  if (receipt.status !== 'success') throw refuse('The transfer reverted.', 'transfer-reverted')
  if (options.fresh) await checkAge(context, receipt.blockNumber)
  // 9. "Verify the receipt contains a Transfer event log matching the challenge parameters"
  const expected = {
    token: request.currency,
    to: request.recipient,
    value: BigInt(request.amount),
    from: payer,
  }
  if (!hasTransfers(receipt.logs ?? [], [expected]))
    throw refuse('The receipt has no Transfer matching the challenge.', 'transfer-mismatch')
  return hash
}

/**
 * Checks a transaction the client broadcast itself, once (replay token: the hash): its receipt must be
 * a success holding a `Transfer` of `currency` to `recipient` for `amount`, from the `source` when one
 * is given, in a block no older than `hashMaxAgeSeconds` (older hashes could outlive their Store entry).
 *
 * @see draft-evm-charge-00 §"Hash Verification"
 */
export function settleHash(
  context: ChainContext,
  input: { store: MethodStore; request: EvmChargeRequest; payload: HashPayload; source: string | undefined },
): Promise<string> {
  const hash = input.payload.hash.toLowerCase() as Hex
  const { chainId } = input.request.methodDetails
  const payer = input.source === undefined ? undefined : payerOf(input.source, chainId)
  if (input.source !== undefined && !payer)
    return Promise.reject(refuse('The credential source is not a did:pkh on this chain.', 'source-mismatch'))
  // 1. "Verify payload.hash has not been previously consumed"; 5. "Mark the hash as consumed"
  return once(
    input.store,
    replayKey(hash),
    context.hashMaxAgeSeconds * 1000 + 60_000,
    async () => {
      // 2. "Fetch the transaction receipt via eth_getTransactionReceipt" (waiting if it is still pending).
      const receipt = await onChain(context.reader.getTransactionReceipt({ hash }), context.timeout, () =>
        refuse('No confirmed transaction has this hash.', 'transaction-not-found'),
      )
      if (receipt.status !== 'success') throw refuse('The transfer reverted.', 'transfer-reverted')
      await checkAge(context, receipt.blockNumber)
      // 3–4. status 0x1 and a Transfer log of currency to recipient for amount.
      return confirmed(receipt, input.request, hash, payer)
    },
    { detail: 'This transaction hash was already used.', reason: 'transaction-used' },
    // Only chain reads: a retry that takes over a claim left by a process that stopped runs them again.
    staleClaimMs(context.timeout),
  )
}

function confirmed(
  receipt: { from?: string; logs?: readonly never[] },
  request: EvmChargeRequest,
  hash: Hex,
  payer: Address | undefined,
): string {
  // The client "signs and broadcasts a standard ERC-20 transfer transaction" and "pays gas" (§"Hash
  // Payload"): the Transfer must be from the transaction's sender. A transfer someone else submitted (this
  // server's own permit2 or authorization settlement, a facilitator's) paid for another credential: its
  // hash, claimed under no `tx:` key, would otherwise pay again for whoever presents it first.
  const sender = typeof receipt.from === 'string' ? receipt.from : undefined
  if (!sender || (payer !== undefined && !sameAddress(payer, sender)))
    throw refuse('The receipt has no Transfer matching the challenge.', 'transfer-mismatch')
  const expected = {
    token: request.currency,
    to: request.recipient,
    value: BigInt(request.amount),
    from: sender,
  }
  if (!hasTransfers(receipt.logs ?? [], [expected]))
    throw refuse('The receipt has no Transfer matching the challenge.', 'transfer-mismatch')
  return hash
}
