export * as Client from './Client.js'
export { create, type Options, PaymentFailedError, receipt } from './Client.js'
export { Ledger, type Limit, type Policy } from './Policy.js'
