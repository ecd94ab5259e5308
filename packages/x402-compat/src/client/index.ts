export { svm } from '../svm/Client.js'
export { charge, type Wallet } from './Charge.js'
export { x402 } from './X402.js'
