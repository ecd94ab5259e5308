import { BaseError, InvalidCounterError } from './Errors.js'
import type { AtomicResult, AtomicStep, AtomicStepResult } from './Store.js'

/** How a store shows its data to {@link runAtomicSteps}: the live value of a key (`undefined` = absent or expired). */
export type AtomicView = { read(key: string): string | undefined }

/** A write {@link runAtomicSteps} decided; the store applies them all, in order, as part of the same atomic operation. */
export type AtomicWrite = { key: string; value: string; ttlMs: number }

/** A counter is a decimal integer, as every store reads it (`BigInt` alone also takes '', ' 7 ', '0x10'). */
const decimalInteger = /^-?[0-9]+$/

/**
 * Parses a stored counter (absent: 0), with the same error as the Redis and PostgreSQL stores for
 * anything but a decimal integer.
 */
export function counter(value: string | undefined): bigint {
  if (value === undefined) return 0n
  if (!decimalInteger.test(value)) throw new InvalidCounterError()
  return BigInt(value)
}

/**
 * The semantics of {@link Store.atomic}, for stores that can hold their keys still while it runs (an
 * in-process map, rows locked in a transaction): evaluates `steps` against `view` (later steps see the
 * writes of earlier ones) and returns the result with the writes to apply. Redis runs the same steps in
 * a Lua script; the shared `describeStore` suite holds every store to the same answers.
 *
 * @example
 * ```ts
 * const { result, writes } = runAtomicSteps(steps, { read: (key) => map.get(key) })
 * for (const w of writes) map.set(w.key, w.value)
 * ```
 */
export function runAtomicSteps(
  steps: readonly AtomicStep[],
  view: AtomicView,
): { result: AtomicResult; writes: AtomicWrite[] } {
  const pending = new Map<string, AtomicWrite>()
  const read = (key: string) => (pending.has(key) ? pending.get(key)!.value : view.read(key))
  const write = (key: string, value: string, ttlMs: number) => {
    pending.delete(key)
    pending.set(key, { key, value, ttlMs })
  }
  const results: AtomicStepResult[] = []
  const done = (completed: boolean) => ({ result: { completed, results }, writes: [...pending.values()] })
  for (const step of steps) {
    switch (step.op) {
      case 'check': {
        const value = read(step.key)
        const applied = value === step.equals
        results.push({ op: 'check', applied, value })
        if (!applied) return done(false)
        break
      }
      case 'compareAndSet': {
        const value = read(step.key)
        if (value !== step.expected) {
          results.push({ op: 'compareAndSet', applied: false, value })
          return done(false)
        }
        write(step.key, step.next, step.ttlMs)
        results.push({ op: 'compareAndSet', applied: true, value: step.next })
        break
      }
      case 'increment': {
        const current = counter(read(step.key))
        const value = current + step.delta
        if ((step.max !== undefined && value > step.max) || (step.min !== undefined && value < step.min)) {
          results.push({ op: 'increment', applied: false, value: current })
          return done(false)
        }
        write(step.key, value.toString(), step.ttlMs)
        results.push({ op: 'increment', applied: true, value })
        break
      }
      case 'setIfAtLeast': {
        const applied = counter(read(step.counter)) >= step.atLeast
        if (applied) write(step.key, step.value, step.ttlMs)
        results.push({ op: 'setIfAtLeast', applied })
        break
      }
      default:
        throw new BaseError('Unknown atomic step', { code: 'store_invalid_step' })
    }
  }
  return done(true)
}
