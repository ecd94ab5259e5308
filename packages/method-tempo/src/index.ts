export * as Attribution from './Attribution.js'
export * as Channel from './Channel.js'
export {
  ChannelDescriptor,
  charge,
  Split,
  session,
  TempoChargePayload,
  TempoChargeRequest,
  TempoSessionPayload,
  TempoSessionRequest,
} from './Methods.js'
export * as Proof from './Proof.js'
export * as Voucher from './Voucher.js'
