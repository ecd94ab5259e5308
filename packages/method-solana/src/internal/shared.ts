/**
 * A read shared by its callers (single-flight): callers while it is in flight join it, and its answer is
 * reused for `maxAge` ms counted from when it came (not from when the read started, so a slow read does
 * not hand out an older answer; 0: shared while in flight only). A read that rejects is not kept.
 *
 * @example
 * ```ts
 * const slot = sharedRead(() => rpc<number>('getSlot', []), 0)
 * const [a, b] = await Promise.all([slot(), slot()]) // one getSlot call
 * ```
 */
export function sharedRead<T>(read: () => Promise<T>, maxAge: number): () => Promise<T> {
  type Entry = { answeredAt: number | undefined; value: Promise<T> }
  let current: Entry | undefined
  return () => {
    if (current && (current.answeredAt === undefined || Date.now() - current.answeredAt < maxAge))
      return current.value
    const entry: Entry = { answeredAt: undefined, value: Promise.resolve().then(read) }
    current = entry
    entry.value.then(
      () => {
        entry.answeredAt = Date.now()
      },
      () => {
        if (current === entry) current = undefined
      },
    )
    return entry.value
  }
}

/**
 * Waits for `promise` until `deadline` (a `Date.now()` time), then settles with `fallback` instead; the
 * promise itself goes on (an answer that comes later still fills the cache it feeds).
 *
 * @example
 * ```ts
 * const blockhash = await until(latestBlockhash(), Date.now() + 1_000, undefined)
 * ```
 */
export function until<T, F>(promise: Promise<T>, deadline: number, fallback: F): Promise<T | F> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const late = new Promise<F>((resolve) => {
    timer = setTimeout(resolve, Math.max(0, deadline - Date.now()), fallback)
  })
  return Promise.race([promise, late]).finally(() => clearTimeout(timer))
}
