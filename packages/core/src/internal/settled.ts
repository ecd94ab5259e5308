import { BaseError } from '../Errors.js'

/**
 * True when `error` says the payment may have settled (`PaymentFailedError.mayHaveSettled`: a rail
 * sent money and could not confirm it), from any copy of `@mppkit/core`. Re-exported by the client;
 * kept here so the CLI's error lines read it without importing the client.
 *
 * @example
 * ```ts
 * if (mayHaveSettled(error)) keepBooking()
 * ```
 */
export function mayHaveSettled(error: unknown): boolean {
  return BaseError.is(error) && (error as { mayHaveSettled?: unknown }).mayHaveSettled === true
}
