export { type CorsOptions, cors, corsHeaders, paymentRequestHeaders, paymentResponseHeaders } from './Cors.js'
export * as express from './express.js'
export { readBody } from './Http.js'
export * as hono from './hono.js'
export type { Logger } from './Logger.js'
export * as Mcp from './Mcp.js'
export { type NodeListenerOptions, toFetchRequest, toNodeListener, writeResponse } from './node.js'
export type {
  Authorization,
  ChallengeInput,
  Handler,
  Health,
  IssuedChallenge,
  Offer,
  Options,
  Outcome,
  Paid,
  Payment,
  PaymentInput,
  Phase,
  Problem,
  Replay,
  Route,
} from './Server.js'
export * as Server from './Server.js'
export { create } from './Server.js'
