export { svm } from '../svm/Client.js'
export { charge } from './Charge.js'
export { x402 } from './X402.js'
