import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Store } from '../Store.js'
import { bindingCases } from './bindingCases.js'
import { consumedCase } from './consumedCase.js'
import { flowCases } from './flowCases.js'
import type { MethodFixture, MethodFlow } from './MethodFixture.js'
import { type ChallengeIdCheck, createHarness, type MethodHarness } from './MethodHarness.js'
import { malformedFieldsCase } from './malformedFieldsCase.js'
import { outageCase } from './outageCase.js'
import { payeeCases } from './payeeCases.js'
import { type KitState, singleUseCases } from './singleUseCases.js'

/** Options of {@link describeMethod}. */
export type DescribeMethodOptions = {
  /** Suite name, e.g. `tempo/charge`. */
  name: string
  /** Builds a fresh fixture (called once per suite). */
  setup: () => Promise<MethodFixture>
  /** The server's Store (default: the server's own MemoryStore); closed after the suite when it has `close()`. */
  store?: () => Store | Promise<Store>
  /** Parallel submissions in the double-submit test (default 16). */
  concurrency?: number
  /** Whether receipts must carry the paid challenge's `challengeId` (default `strict`). */
  challengeId?: ChallengeIdCheck
  /**
   * Multi-step flows the kit drives through the real server and client, one test each (declared here,
   * not on the fixture, because tests are registered before the fixture is built).
   */
  flows?: readonly MethodFlow[]
  /** A printed reason to skip the suite (e.g. a node is unavailable). */
  skip?: string | undefined
}

/**
 * The conformance kit every rail runs against a real server and client: a 402 → pay → 200 round trip
 * and its receipt, the failure cases (tampered id, expired, replay, malformed payload, wrong amount; each
 * with the problem the rail declares, else the core's), concurrent double submission of one credential,
 * a charge payload moved to other challenges (alone, spent, concurrently), payloads for another recipient
 * or currency, garbage in each payload field (a 4xx, never a 5xx), the fixture's multi-step flows, a rail
 * outage (503 + Retry-After, challenge released, one charge), a failure after value moved (`consumed`:
 * no Retry-After, never charged again), and
 * a clean `server.close()` (the method's background work stops without reporting an error).
 *
 * @example
 * ```ts
 * describeMethod({ name: 'tempo/charge', store: () => new RedisStore({ url }), setup: async () => ({ server, client, offer }) })
 * ```
 * @see draft-httpauth-payment-00 §5 (Challenge, Credential, Receipt), §11.3, §11.6
 */
export function describeMethod(options: DescribeMethodOptions): void {
  if (options.skip) console.warn(`[skip] ${options.name}: ${options.skip}`)
  describe.skipIf(!!options.skip)(`conformance: ${options.name}`, () => {
    let state: KitState | undefined
    beforeAll(async () => {
      const fixture = await options.setup()
      const harness: MethodHarness = await createHarness(fixture, options.store)
      state = {
        fixture,
        harness,
        challengeId: options.challengeId ?? 'strict',
        concurrency: options.concurrency ?? 16,
      }
    })
    afterAll(async () => {
      try {
        await state?.harness.close()
      } finally {
        await state?.fixture.teardown?.()
      }
    })
    const get = () => {
      if (!state) throw new Error('the fixture was not set up')
      return state
    }

    singleUseCases(get)
    bindingCases(get)
    payeeCases(get)
    malformedFieldsCase(get)
    flowCases(options.flows ?? [], get)
    outageCase(get)
    consumedCase(get)

    it('closes the server: the method stops its background work and reported no error from it', async () => {
      const { harness } = get()
      await harness.close()
      expect(harness.background).toEqual([])
    })
  })
}
