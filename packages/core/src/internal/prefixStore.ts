import type { AtomicStep, Store } from '../Store.js'

/** Prefixed keys remembered per view (past it, the memo starts over). */
const memoSize = 4_096

/**
 * A view of a Store whose keys all carry a prefix (method-scoped state).
 *
 * The prefixed form of a key is remembered (bounded): a method that names the same keys on every request
 * (a session's channel keys) then hands the store the same flat string each time, whose hash the engine
 * keeps, instead of a new concatenation to flatten and hash again at every lookup.
 *
 * @example
 * ```ts
 * const scoped = prefixStore(store, 'mppkit:m:tempo/session:')
 * await scoped.get('ch:0xabc') // reads 'mppkit:m:tempo/session:ch:0xabc'
 * ```
 */
export function prefixStore(store: Store, prefix: string): Store {
  const memo = new Map<string, string>()
  const full = (key: string): string => {
    let prefixed = memo.get(key)
    if (prefixed === undefined) {
      prefixed = prefix + key
      if (memo.size >= memoSize) memo.clear()
      memo.set(key, prefixed)
    }
    return prefixed
  }
  // Each step is rebuilt with a literal of its own shape (no object spread per step on the hot path).
  const scoped = (step: AtomicStep): AtomicStep => {
    switch (step.op) {
      case 'check':
        return { op: 'check', key: full(step.key), equals: step.equals }
      case 'compareAndSet':
        return {
          op: 'compareAndSet',
          key: full(step.key),
          expected: step.expected,
          next: step.next,
          ttlMs: step.ttlMs,
        }
      case 'increment': {
        const out: AtomicStep = { op: 'increment', key: full(step.key), delta: step.delta, ttlMs: step.ttlMs }
        if ('min' in step) out.min = step.min
        if ('max' in step) out.max = step.max
        return out
      }
      case 'setIfAtLeast':
        return {
          op: 'setIfAtLeast',
          key: full(step.key),
          value: step.value,
          ttlMs: step.ttlMs,
          counter: full(step.counter),
          atLeast: step.atLeast,
        }
      default:
        // An op this version does not know: passed on as is (the store refuses it), key prefixed.
        return { ...(step as AtomicStep), key: full((step as AtomicStep).key) }
    }
  }
  return {
    putIfAbsent: (key, value, ttlMs) => store.putIfAbsent(full(key), value, ttlMs),
    get: (key) => store.get(full(key)),
    set: (key, value, ttlMs) => store.set(full(key), value, ttlMs),
    delete: (key) => store.delete(full(key)),
    compareAndSet: (key, expected, next, ttlMs) => store.compareAndSet(full(key), expected, next, ttlMs),
    increment: (key, delta, options) => store.increment(full(key), delta, options),
    // The optional capability is forwarded only when the store has it (callers test for it).
    ...(store.atomic ? { atomic: (steps) => store.atomic!(steps.map(scoped)) } : {}),
  }
}
