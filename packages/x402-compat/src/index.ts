export * as Authorization from './Authorization.js'
export {
  AuthorizationPayload,
  CredentialType,
  Eip712Domain,
  EvmChargePayload,
  EvmChargeRequest,
  evmCharge,
  HashPayload,
  Permit2Payload,
  TransactionPayload,
  X402Permit2Payload,
} from './Methods.js'
export * as Permit2 from './Permit2.js'
export { SvmChargeRequest, SvmTransactionPayload, svmCharge } from './svm/Methods.js'
export { solanaNetworks, v1SolanaNetworks } from './svm/Networks.js'
export * as Wire from './Wire.js'
export * as X402Permit2 from './X402Permit2.js'
