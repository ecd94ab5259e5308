export * as Connect from './Connect.js'
export { charge, SptId, StripeChargePayload, StripeChargeRequest } from './Methods.js'
