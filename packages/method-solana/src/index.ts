export { programs } from './internal/programs.js'
export { charge, normalizeNetwork, SolanaChargePayload, SolanaChargeRequest, Split } from './Methods.js'
