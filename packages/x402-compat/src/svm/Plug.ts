import type { Challenge } from '@mppkit/core/client'
import { isSolanaNetwork } from './Networks.js'
import { type SvmOfferOptions, svmRequest } from './Offer.js'

/**
 * The `solana` charge challenge of an x402 `exact` Solana offer for the client plug, the reason it is
 * skipped, or undefined when the entry is not a Solana offer (the EVM mapping then reads it).
 *
 * @example
 * ```ts
 * await svmChallenge(2, entry, { realm: 'api.example', id: 'x402v2-…', minValiditySeconds: 6, expiresAt: (s) => new Date(Date.now() + s * 1000).toISOString() }, {})
 * ```
 */
export async function svmChallenge(
  version: 1 | 2,
  entry: unknown,
  context: {
    realm: string
    id: string
    description?: unknown
    minValiditySeconds: number
    /** The challenge's `expires` for a requirement's `maxTimeoutSeconds` (capped by the plug). */
    expiresAt: (maxTimeoutSeconds: number) => string
  },
  options: SvmOfferOptions,
): Promise<Challenge.Challenge | string | undefined> {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return undefined
  const requirement = entry as Record<string, unknown>
  if (!isSolanaNetwork(requirement.network)) return undefined
  if (requirement.scheme !== 'exact') return `scheme ${String(requirement.scheme)} is not supported`
  const timeout = requirement.maxTimeoutSeconds
  if (typeof timeout !== 'number' || !Number.isSafeInteger(timeout) || timeout < context.minValiditySeconds)
    return `maxTimeoutSeconds must be an integer of at least ${context.minValiditySeconds}`
  const request = await svmRequest(version, requirement, options)
  if (typeof request === 'string') return request
  const challenge: Challenge.Challenge = {
    id: context.id,
    realm: context.realm,
    method: 'solana',
    intent: 'charge',
    request,
    expires: context.expiresAt(timeout),
  }
  if (typeof context.description === 'string' && context.description !== '')
    challenge.description = context.description
  return challenge
}
