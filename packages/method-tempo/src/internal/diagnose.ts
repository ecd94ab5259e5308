import { VerificationFailedError } from '@mppkit/core'
import type { Address } from 'viem'
import { isAddressEqual } from 'viem'
import type { TempoChargeRequest } from '../Methods.js'
import { type ExpectedTransfer, isBound, match, type TransferEffect } from './transfers.js'

const same = (a: string, b: string) => {
  try {
    return isAddressEqual(a as Address, b as Address)
  } catch {
    return false
  }
}

/**
 * Checks observed transfer effects against a charge and throws a `VerificationFailedError` with a
 * stable reason (`token-mismatch`, `recipient-mismatch`, `amount-mismatch`, `memo-mismatch`) when they
 * do not pay it, or when no matched transfer binds the challenge.
 */
export function assertPays(parameters: {
  request: TempoChargeRequest
  expected: readonly ExpectedTransfer[]
  effects: readonly TransferEffect[]
  sender?: string | undefined
  /** Absent: only the amounts are checked (no challenge binding), e.g. a sponsor policy pre-check. */
  challenge: { id: string; realm: string } | undefined
  /** Wording for the detail: "transaction" (pull) or "receipt" (push). */
  subject: string
}): TransferEffect[] {
  const { request, expected, effects, sender, challenge, subject } = parameters
  const matched = match(expected, effects, request.currency, sender)
  if (!matched) {
    const onToken = effects.filter((e) => same(e.token, request.currency))
    const primary = expected[0]!
    const toRecipient = onToken.filter((e) => same(e.recipient, primary.recipient))
    const [reason, detail] =
      onToken.length === 0
        ? ['token-mismatch', `The ${subject} moves no ${request.currency} tokens.`]
        : toRecipient.length === 0
          ? ['recipient-mismatch', `The ${subject} pays no transfer to the requested recipient.`]
          : !toRecipient.some((e) => e.amount === primary.amount)
            ? ['amount-mismatch', `The ${subject} does not pay the requested amount.`]
            : [
                'memo-mismatch',
                `The ${subject} has no matching payment call found for the requested memo or splits.`,
              ]
    throw new VerificationFailedError({ detail, reason })
  }
  if (challenge && !isBound(request, matched, challenge))
    throw new VerificationFailedError({
      detail: `Payment verification failed: the ${subject} memo is not bound to this challenge (no matching payment call found).`,
      reason: 'memo-mismatch',
    })
  return matched
}
