import type { Store } from '../Store.js'

/** A view of a Store whose keys all carry a prefix (method-scoped state). */
export function prefixStore(store: Store, prefix: string): Store {
  return {
    putIfAbsent: (key, value, ttlMs) => store.putIfAbsent(prefix + key, value, ttlMs),
    get: (key) => store.get(prefix + key),
    set: (key, value, ttlMs) => store.set(prefix + key, value, ttlMs),
    delete: (key) => store.delete(prefix + key),
    compareAndSet: (key, expected, next, ttlMs) => store.compareAndSet(prefix + key, expected, next, ttlMs),
    increment: (key, delta, options) => store.increment(prefix + key, delta, options),
    // The optional capability is forwarded only when the store has it (callers test for it).
    ...(store.atomic
      ? {
          atomic: (steps) =>
            store.atomic!(
              steps.map((step) =>
                step.op === 'setIfAtLeast'
                  ? { ...step, key: prefix + step.key, counter: prefix + step.counter }
                  : { ...step, key: prefix + step.key },
              ),
            ),
        }
      : {}),
  }
}
