export { svm } from '../svm/Server.js'
export { charge, type Facilitator, type Reader, requirementOf, type Wallet } from './Charge.js'
export { x402 } from './X402.js'
