import { type Method, PaymentFailedError } from '@mppkit/core/client'
import type { Instruction, TransactionSigner } from '@solana/kit'
import { rpcFetch } from '../internal/rpcFetch.js'
import { loadKit } from './Kit.js'
import { svmCharge } from './Methods.js'
import { mintMetadata } from './Mint.js'

/**
 * Options of {@link svm}.
 *
 * @example
 * ```ts
 * const options: svm.Options = { signer, rpcUrl: 'https://api.devnet.solana.com', feePayers: [facilitatorKey] }
 * ```
 */
export declare namespace svm {
  /**
   * A `@solana/kit` `TransactionSigner`, declared by the one member read here so that these declarations
   * never load @solana/kit's types (an optional peer, whose RPC transport types pull in Node's): the
   * client entry stays usable from browser projects without @types/node.
   */
  type Signer = { readonly address: string }
  type Options = {
    /**
     * The paying key: a `@solana/kit` signer, the same object `@mppkit/method-solana`'s `solana({ signer })`
     * takes (e.g. `await createKeyPairSignerFromBytes(secret)`).
     */
    signer: svm.Signer
    /**
     * JSON-RPC URL of the cluster (recent blockhash and mint lookups). A `user:password@` in it is sent as
     * `Authorization: Basic`, never in the URL; errors name no part of it.
     */
    rpcUrl: string
    /** CAIP-2 ids this client pays on (default: any the challenge names). */
    networks?: readonly string[]
    /** Accept only these payees, when given. */
    recipients?: readonly string[]
    /** Accept only these facilitator fee payer keys, when given. */
    feePayers?: readonly string[]
    /** Compute-unit limit set on the transaction (default 20 000, what x402's own client sets). */
    computeUnitLimit?: number
    /** Priority fee in micro-lamports per compute unit (default 1; the facilitator pays it). */
    computeUnitPrice?: bigint
    /** Per-RPC-call timeout in ms (default 10 000). */
    timeout?: number
  }
}

// Program ids of the x402 `exact` SVM transaction layout.
const computeBudgetProgram = 'ComputeBudget111111111111111111111111111111'
const associatedTokenProgram = 'ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL'
// x402's facilitator accepts memos of Memo v2 only, at most 256 bytes.
const memoProgram = 'MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr'
const maxMemoBytes = 256

function littleEndian(value: bigint, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes)
  for (let index = 0; index < bytes; index++) out[index] = Number((value >> BigInt(8 * index)) & 0xffn)
  return out
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0))
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}

/**
 * The client half of a `solana` charge paid through x402 `exact` on Solana: builds the transaction the x402
 * SVM scheme defines (SetComputeUnitLimit, SetComputeUnitPrice, TransferChecked from the payer's to the
 * recipient's associated token account, one Memo), with the facilitator's key as fee payer, and signs it
 * partially (the payer signs as transfer authority; the facilitator adds the fee payer signature when it
 * settles). `@solana/kit` is loaded on first use.
 *
 * @example
 * ```ts
 * import { svm, x402 } from '@mppkit/x402-compat/client'
 * const client = Client.create({ methods: [svm({ signer, rpcUrl })], protocols: [Protocol.mpp, x402({ svm: { rpcUrl } })] })
 * ```
 * @see draft-solana-charge-00 §"Client Transaction Construction"
 */
export function svm(options: svm.Options): Method.Client<typeof svmCharge> {
  const refuse = (message: string, code: string): never => {
    throw new PaymentFailedError(`x402 svm: ${message}`, { code })
  }
  const timeout = options.timeout ?? 10_000
  // Every RPC read goes through rpcFetch: a `user:password@` in rpcUrl is sent as Basic auth (plain fetch
  // refuses such a URL, and its error quotes it).
  const rpcCall: typeof fetch = (input, init) => rpcFetch(String(input), init ?? {})
  return {
    definition: svmCharge,
    quote: (request) => ({
      amount: BigInt(request.amount),
      currency: request.currency,
      network: request.methodDetails.caip2 ?? `solana:${request.methodDetails.network ?? 'mainnet'}`,
      decimals: request.methodDetails.decimals,
    }),
    async createPayload({ request }) {
      const details = request.methodDetails
      const network = details.caip2 ?? details.network
      if (options.networks && (network === undefined || !options.networks.includes(network)))
        refuse(`network ${network} is not one this client pays on`, 'unsupported-network')
      if (options.recipients && !options.recipients.includes(request.recipient))
        refuse('the offer pays an unexpected recipient', 'unexpected-recipient')
      if (options.feePayers && !options.feePayers.includes(details.feePayerKey))
        refuse('the offer names an unexpected fee payer', 'unexpected-fee-payer')
      if (details.feePayerKey === String(options.signer.address))
        refuse('the offer names this client as its own fee payer', 'unexpected-fee-payer')
      const memo = new TextEncoder().encode(details.memo ?? randomNonce())
      if (memo.length > maxMemoBytes) refuse(`the memo exceeds ${maxMemoBytes} bytes`, 'memo-too-long')
      const kit = await loadKit()
      // TransferChecked carries the decimals: read them from the mint, and refuse when they differ from
      // the ones the spend policy priced the offer with.
      const mint = await mintMetadata(options.rpcUrl, request.currency, { timeout, fetch: rpcCall })
      if (!mint) refuse(`asset ${request.currency} is not a token mint on this cluster`, 'unknown-asset')
      if (mint!.decimals !== details.decimals)
        refuse(
          `the mint has ${mint!.decimals} decimals, the offer was priced with ${details.decimals}`,
          'decimals-mismatch',
        )
      if (details.tokenProgram !== undefined && details.tokenProgram !== mint!.tokenProgram)
        refuse('the offer names another token program than the mint has', 'token-program-mismatch')
      const tokenProgram = mint!.tokenProgram
      const ata = async (owner: string) => {
        const encoder = kit.getAddressEncoder()
        const [found] = await kit.getProgramDerivedAddress({
          programAddress: kit.address(associatedTokenProgram),
          seeds: [
            encoder.encode(kit.address(owner)),
            encoder.encode(kit.address(tokenProgram)),
            encoder.encode(kit.address(request.currency)),
          ],
        })
        return found
      }
      const instructions: Instruction[] = [
        {
          programAddress: kit.address(computeBudgetProgram),
          data: concat(new Uint8Array([2]), littleEndian(BigInt(options.computeUnitLimit ?? 20_000), 4)),
        },
        {
          programAddress: kit.address(computeBudgetProgram),
          data: concat(new Uint8Array([3]), littleEndian(options.computeUnitPrice ?? 1n, 8)),
        },
        {
          programAddress: kit.address(tokenProgram),
          accounts: [
            { address: await ata(String(options.signer.address)), role: kit.AccountRole.WRITABLE },
            { address: kit.address(request.currency), role: kit.AccountRole.READONLY },
            { address: await ata(request.recipient), role: kit.AccountRole.WRITABLE },
            {
              address: options.signer.address,
              role: kit.AccountRole.READONLY_SIGNER,
              signer: options.signer as TransactionSigner,
            } as never,
          ],
          // TransferChecked (12): amount u64, decimals u8.
          data: concat(
            new Uint8Array([12]),
            littleEndian(BigInt(request.amount), 8),
            new Uint8Array([details.decimals]),
          ),
        },
      ]
      if (memo.length > 0) instructions.push({ programAddress: kit.address(memoProgram), data: memo })
      const blockhash = details.recentBlockhash ?? (await latestBlockhash())
      const message = kit.pipe(
        kit.createTransactionMessage({ version: 0 }),
        (draft) => kit.setTransactionMessageFeePayer(kit.address(details.feePayerKey), draft),
        (draft) =>
          kit.setTransactionMessageLifetimeUsingBlockhash(
            { blockhash: blockhash as never, lastValidBlockHeight: 0n },
            draft,
          ),
        (draft) => kit.appendTransactionMessageInstructions(instructions, draft),
      )
      // The facilitator is the fee payer: this client signs only as transfer authority.
      const signed = await kit.partiallySignTransactionMessageWithSigners(message)
      const transaction = kit.getBase64EncodedWireTransaction(signed)
      const payer = String(options.signer.address)
      return {
        payload: { type: 'transaction' as const, transaction },
        source: details.caip2 ? `did:pkh:${details.caip2}:${payer}` : payer,
      }
    },
  }

  async function latestBlockhash(): Promise<string> {
    try {
      const response = await rpcFetch(options.rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 1,
          method: 'getLatestBlockhash',
          params: [{ commitment: 'confirmed' }],
        }),
        signal: AbortSignal.timeout(timeout),
      })
      const answer = (await response.json()) as { result?: { value?: { blockhash?: unknown } } }
      const blockhash = answer.result?.value?.blockhash
      if (typeof blockhash === 'string') return blockhash
    } catch {}
    return refuse('the RPC node did not give a recent blockhash', 'rpc-unavailable')
  }
}

function randomNonce(): string {
  // x402's own client adds a random memo when the offer names none, so two payments never share bytes.
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16))
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}
