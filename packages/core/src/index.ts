export * as AcceptPayment from './AcceptPayment.js'
export { type AtomicView, runAtomicSteps } from './AtomicSteps.js'
export * as Base64url from './Base64url.js'
export * as Binding from './Binding.js'
export * as Challenge from './Challenge.js'
export * as Credential from './Credential.js'
export * as Digest from './Digest.js'
export * from './Errors.js'
export * as Expires from './Expires.js'
export * as IdempotencyCache from './IdempotencyCache.js'
export * as Jcs from './Jcs.js'
export { MemoryStore, type MemoryStoreOptions } from './MemoryStore.js'
export * as Method from './Method.js'
export * as Receipt from './Receipt.js'
export * as Registry from './Registry.js'
export type {
  AtomicResult,
  AtomicStep,
  AtomicStepResult,
  IncrementOptions,
  IncrementResult,
  Store,
} from './Store.js'
