import { rpcFetch } from '../internal/rpcFetch.js'
import type { SvmChargeRequest } from './Methods.js'
import { mintMetadata } from './Mint.js'
import { clusterOf, solanaCaip2Of } from './Networks.js'

/** What the client plug knows to map x402 Solana offers. */
export type SvmOfferOptions = {
  /** More x402 Solana networks (v1 name or CAIP-2 id → CAIP-2 id), beside the known clusters. */
  networks?: Readonly<Record<string, string>>
  /** Decimals keyed `solana:<ref>:<mint>` or `<mint>` (the caller's asset metadata). */
  decimals?: Readonly<Record<string, number>>
  /** JSON-RPC URL to read a mint's decimals from when the table does not name them. */
  rpcUrl?: string
}

const keyRule = /^[1-9A-HJ-NP-Za-km-z]{32,44}$/
const amountRule = /^[1-9]\d{0,19}$/

function tableDecimals(
  table: Readonly<Record<string, number>>,
  caip2: string,
  mint: string,
): number | undefined {
  const value = table[`${caip2}:${mint}`] ?? table[mint]
  return Number.isInteger(value) && value! >= 0 && value! <= 255 ? value : undefined
}

/**
 * The `solana` charge request an x402 `exact` Solana requirement (v2, or v1 with `maxAmountRequired`)
 * becomes, or the reason it is skipped. Decimals come from the caller's table or the mint account on the
 * caller's RPC, never from a guess; the facilitator's `extra.feePayer` becomes the fee payer key.
 *
 * @example
 * ```ts
 * await svmRequest(2, entry, { rpcUrl }) // { amount: '1000', currency: mint, recipient, methodDetails: { … } }
 * ```
 */
export async function svmRequest(
  version: 1 | 2,
  requirement: Record<string, unknown>,
  options: SvmOfferOptions,
): Promise<SvmChargeRequest | string> {
  const { network, asset, payTo } = requirement
  const extra = (requirement.extra ?? {}) as Record<string, unknown>
  // v1's `maxAmountRequired` is, for the `exact` scheme, the amount transferred (exactly, not at most).
  const amount = version === 2 ? requirement.amount : requirement.maxAmountRequired
  const caip2 = solanaCaip2Of(String(network), options.networks)
  if (caip2 === undefined) return `network ${String(network)} is not a known Solana network`
  if (typeof asset !== 'string' || !keyRule.test(asset)) return 'asset is not a Solana mint address'
  if (typeof payTo !== 'string' || !keyRule.test(payTo)) return 'payTo is not a Solana address'
  if (typeof amount !== 'string' || !amountRule.test(amount) || BigInt(amount) > 18_446_744_073_709_551_615n)
    return 'amount is not a positive u64 base-unit integer string'
  if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) return 'extra is not an object'
  // "feePayer is required in paymentRequirements.extra for SVM transactions": the facilitator pays the fee.
  if (typeof extra.feePayer !== 'string' || !keyRule.test(extra.feePayer))
    return 'extra.feePayer (the facilitator fee payer) is missing'
  if (extra.memo !== undefined && typeof extra.memo !== 'string') return 'extra.memo is not a string'
  const decimals =
    tableDecimals(options.decimals ?? {}, caip2, asset) ??
    (options.rpcUrl
      ? // An rpcUrl with `user:password@` is sent as Basic auth (fetch refuses credentials in a URL).
        (
          await mintMetadata(options.rpcUrl, asset, {
            fetch: (input, init) => rpcFetch(String(input), init ?? {}),
          })
        )?.decimals
      : undefined)
  if (decimals === undefined)
    return options.rpcUrl
      ? `decimals of mint ${asset} are unknown: svm.rpcUrl did not give them (a refusal, no answer, or not a token mint there); name them in the decimals option`
      : `decimals of mint ${asset} are unknown: name them in the decimals option or give svm.rpcUrl`
  const methodDetails: SvmChargeRequest['methodDetails'] = {
    network: clusterOf(caip2),
    caip2,
    decimals,
    feePayer: true,
    feePayerKey: extra.feePayer,
  }
  if (typeof extra.memo === 'string' && extra.memo !== '') methodDetails.memo = extra.memo
  // x402 v1 facilitators (x402@1.2.0) accept exactly three instructions: no memo unless the offer asks one.
  else if (version === 1) methodDetails.memo = ''
  if (typeof extra.recentBlockhash === 'string' && keyRule.test(extra.recentBlockhash))
    methodDetails.recentBlockhash = extra.recentBlockhash
  return { amount, currency: asset, recipient: payTo, methodDetails }
}
