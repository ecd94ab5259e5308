import type { Credential } from '@mppkit/core'

/** What an x402 credential carried, kept beside the MPP credential the adapter built from it. */
export type Relayed = {
  /** The requirement the x402 client accepted (exactly as it sent it). */
  requirement: Record<string, unknown>
  /** The x402 payment payload document, forwarded to a facilitator as it came. */
  document: Record<string, unknown>
}

/**
 * Credentials the x402 adapter built from a `PAYMENT-SIGNATURE`/`X-PAYMENT` (an x402 client picks its
 * own EIP-3009 nonce, so the method does not require the challenge hash for these). Only this package
 * can add to it: a client cannot mark its own credential as relayed.
 */
export const relayed: WeakMap<Credential.Credential, Relayed> = new WeakMap()
