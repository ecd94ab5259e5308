export { svm } from '../svm/Server.js'
export { charge, type Facilitator, requirementOf, type Wallet } from './Charge.js'
export { x402 } from './X402.js'
