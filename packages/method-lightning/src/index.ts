export * as Invoice from './Invoice.js'
export {
  charge,
  LightningChargePayload,
  LightningChargeRequest,
  LightningNetwork,
  LightningSessionPayload,
  LightningSessionRequest,
  session,
} from './Methods.js'
export { LightningProblem, type ProblemName, problemTypes } from './Problems.js'
