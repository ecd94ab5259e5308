// The browser-safe part of the core, so client code (and rails' client halves) need not import the
// root entry, which also holds the node-only server helpers (HMAC binding, digests).
export * as Challenge from '../Challenge.js'
export * as Credential from '../Credential.js'
export * from '../Errors.js'
export * as Method from '../Method.js'
export * as Receipt from '../Receipt.js'
export { anySignal, untilAborted } from './Abort.js'
export * as Client from './Client.js'
export {
  create,
  mayHaveSettled,
  type Options,
  type Payment,
  PaymentFailedError,
  type PayOptions,
  receipt,
} from './Client.js'
export * as Currency from './Currency.js'
export {
  type Amount,
  type CrossRailBudget,
  Ledger,
  type Limit,
  type Policy,
  type Reservation,
} from './Policy.js'
export * as Protocol from './Protocol.js'
export * as Value from './Value.js'
