export { type DescribeMethodOptions, describeMethod } from './describeMethod.js'
export * from './describeStore.js'
export {
  defaultProblems,
  type ExpectedProblem,
  type ExpectedProblems,
  expectProblem,
  expectRefusal,
  type ProblemCase,
  type RefusalCase,
} from './expectedProblems.js'
export type {
  ClientFactory,
  FlowContext,
  FlowOutcome,
  FlowStep,
  MethodFixture,
  MethodFlow,
  RailOutage,
} from './MethodFixture.js'
export type { ChallengeIdCheck } from './MethodHarness.js'
export { payThroughServer } from './payThroughServer.js'
export { createTestRail, noopMethod, type TestRail, testCharge } from './TestMethod.js'
