export { create, type Options, type PaymentCapability, type Payments } from './Payments.js'
export {
  argumentsDigest,
  compile,
  coveredMethods,
  type Gate,
  type Paywall,
  type Price,
  type Prices,
} from './Paywall.js'
