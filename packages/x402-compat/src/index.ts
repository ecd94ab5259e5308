export * as Authorization from './Authorization.js'
export { AuthorizationPayload, Eip712Domain, EvmChargeRequest, evmCharge } from './Methods.js'
export * as Wire from './Wire.js'
