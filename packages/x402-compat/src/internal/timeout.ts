/**
 * `promise`, or a rejection with `late()` once `ms` have passed (the timer is cleared either way): a call
 * that never answers must not hold a payment.
 *
 * @example
 * ```ts
 * await withTimeout(client.readContract(args), 10_000, () => new ServiceUnavailableError())
 * ```
 */
export function withTimeout<value>(promise: Promise<value>, ms: number, late: () => Error): Promise<value> {
  let timer: ReturnType<typeof setTimeout> | undefined
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(late()), ms)
    }),
  ]).finally(() => clearTimeout(timer))
}
