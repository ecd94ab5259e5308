import { PaymentFailedError } from '@mppkit/core/client'

/** The `@solana/kit` module (an optional peer of this package). */
export type Kit = typeof import('@solana/kit')

let loaded: Promise<Kit> | undefined

/**
 * Loads `@solana/kit` on first use. It is an optional peer: EVM payments never load it, and a Solana offer
 * chosen without it fails with a `PaymentFailedError` saying what to install (never a bare module error).
 *
 * @example
 * ```ts
 * const kit = await loadKit()
 * ```
 */
export function loadKit(): Promise<Kit> {
  loaded ??= import('@solana/kit').catch((cause: unknown) => {
    loaded = undefined
    throw new PaymentFailedError(
      'x402 svm: paying a Solana offer needs @solana/kit; install it (or @mppkit/method-solana, which brings it)',
      { code: 'missing-peer', cause },
    )
  })
  return loaded
}
