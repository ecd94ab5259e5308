/**
 * A signal that aborts when any of `signals` does, with that signal's reason (`AbortSignal.any`, or
 * its equivalent on Node.js before 20.3, which lacks it).
 *
 * @example
 * ```ts
 * const signal = anySignal([AbortSignal.timeout(10_000), caller])
 * ```
 */
export function anySignal(signals: AbortSignal[]): AbortSignal {
  if (typeof AbortSignal.any === 'function') return AbortSignal.any(signals)
  const controller = new AbortController()
  for (const signal of signals) {
    if (signal.aborted) {
      controller.abort(signal.reason)
      break
    }
    signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true })
  }
  return controller.signal
}

/**
 * `promise`, or a rejection with `signal`'s reason once it aborts first: bounds a call that may not
 * honour the signal it was given (a caller's own `fetch`, say).
 *
 * @example
 * ```ts
 * const response = await untilAborted(signal, customFetch(url, { signal }))
 * ```
 */
export function untilAborted<T>(signal: AbortSignal, promise: Promise<T>): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}
