// Public API of @mppkit/devnet: the four local nodes (one folder each) and the orchestration that
// starts them together. Each rail's names are re-exported unchanged; none clash today (the Tempo
// helpers carry a `tempo` prefix, Solana's program table is `solanaPrograms`).

export {
  type ContainerPlan,
  type ContainerPort,
  type ContainerWait,
  containerImages,
  planContainers,
} from './containers/plan.js'
export { hasContainerRuntime } from './containers/start.js'
export {
  type DevnetInfo,
  type DevnetLightningInfo,
  type DevnetRail,
  type DevnetSolanaInfo,
  type DevnetStripeInfo,
  type DevnetTempoInfo,
  type DevnetTimings,
  devnetRails,
  type RunningDevnet,
  type StartDevnetOptions,
  startDevnet,
} from './devnet.js'
export { DevnetError } from './errors.js'
export {
  type DevnetProvider,
  type ExternalLndNode,
  type ExternalNodes,
  planDevnet,
  type RailPlan,
  readExternalNodes,
} from './external.js'
export * from './lightning/index.js'
export * from './solana/index.js'
export * from './stripe/index.js'
export * from './tempo/index.js'
export {
  type DevnetGlobalSetupOptions,
  devnetGlobalSetup,
  devnetInfoEnvironmentVariable,
  devnetProvideKey,
  readDevnetInfo,
} from './vitest.js'
