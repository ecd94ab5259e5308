export {
  create,
  type LateRegistration,
  liftMeta,
  type Options,
  type PaymentCapability,
  type Payments,
  type Unchecked,
} from './Payments.js'
export {
  argumentsDigest,
  compile,
  coveredMethods,
  type Gate,
  normalizedUri,
  type Paywall,
  type Price,
  type Priced,
  type Prices,
} from './Paywall.js'
export { liftMetaLines } from './Stdio.js'
