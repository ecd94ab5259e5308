export { type DescribeMethodOptions, describeMethod, type MethodFixture } from './describeMethod.js'
export * from './describeStore.js'
export { payThroughServer } from './payThroughServer.js'
export { createTestRail, noopMethod, type TestRail, testCharge } from './TestMethod.js'
