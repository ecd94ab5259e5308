import type { Challenge } from '@mppkit/core'
import { type SvmChargeRequest, SvmChargeRequest as SvmChargeRequestSchema } from './Methods.js'
import { solanaCaip2Of, v1NameOf } from './Networks.js'

/**
 * The x402 `exact` Solana requirement a `solana` charge request corresponds to (what x402 clients sign
 * against): the facilitator as fee payer in `extra.feePayer`.
 *
 * @example
 * ```ts
 * svmRequirementOf(request, 300) // { scheme: 'exact', network: 'solana:EtWT…', asset: mint, amount, payTo, maxTimeoutSeconds: 300, extra: { feePayer } }
 * ```
 */
export function svmRequirementOf(request: SvmChargeRequest, maxTimeoutSeconds: number) {
  const details = request.methodDetails
  const extra: Record<string, unknown> = { feePayer: details.feePayerKey }
  if (details.memo !== undefined && details.memo !== '') extra.memo = details.memo
  return {
    scheme: 'exact',
    network: details.caip2 ?? '',
    asset: request.currency,
    amount: request.amount,
    payTo: request.recipient,
    maxTimeoutSeconds,
    extra,
  }
}

/**
 * The server adapter's view of a `solana` charge challenge: its v2 requirement and, where the network has
 * a v1 name, its v1 requirement; none for a challenge x402 cannot express (no CAIP-2 id, no fee payer).
 */
export function svmEntries(
  challenge: Challenge.Challenge,
  url: string,
  maxTimeoutSeconds: number,
  networks: Readonly<Record<string, string>> = {},
) {
  const parsed = SvmChargeRequestSchema.safeParse(challenge.request)
  if (!parsed.success) return []
  const caip2 = parsed.data.methodDetails.caip2
  if (caip2 === undefined || solanaCaip2Of(caip2, networks) !== caip2) return []
  const requirement = svmRequirementOf(parsed.data, maxTimeoutSeconds)
  const name = v1NameOf(caip2, networks)
  const v1 =
    name === undefined
      ? undefined
      : {
          scheme: 'exact',
          network: name,
          maxAmountRequired: requirement.amount,
          resource: url,
          description: challenge.description ?? '',
          mimeType: '',
          payTo: requirement.payTo,
          maxTimeoutSeconds,
          asset: requirement.asset,
          extra: requirement.extra,
        }
  return [{ challenge, requirement, v1 }]
}

/** The transaction of an x402 `exact` Solana payment document (`payload.transaction`), or undefined. */
export function svmTransactionOf(document: Record<string, unknown>): string | undefined {
  const payload = document.payload as Record<string, unknown> | undefined
  if (typeof payload !== 'object' || payload === null) return undefined
  return typeof payload.transaction === 'string' && !('authorization' in payload)
    ? payload.transaction
    : undefined
}
