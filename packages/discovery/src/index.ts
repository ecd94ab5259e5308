export { hono, node, withDiscovery } from './Adapters.js'
export { create, type Discovery, type Manifest, paths } from './Discovery.js'
export {
  type DiscoveredOffer,
  type Operation,
  type Options,
  offersOf,
  openapi,
  type ServiceInfo,
} from './Document.js'
export { DiscoveryError, formatInspection, type Inspection, type InspectOptions, inspect } from './Inspect.js'
export { type Finding, limits, type PaidOperation, type Report, validate } from './Validate.js'
