import { expect, it } from 'vitest'
import type { Receipt } from '../Receipt.js'
import type { FlowContext, MethodFlow } from './MethodFixture.js'
import { kitUrl } from './MethodHarness.js'
import { expectChallengeId, type KitState } from './singleUseCases.js'

/**
 * Registers one case per fixture flow: the kit drives each step through the real server and client,
 * asserts a success receipt per step (method, reference, `challengeId` of a challenge paid in that step,
 * the step's declared fields), that only resource steps reach the handler, and then hands the receipts to
 * the fixture's `verify` to check that balances add up.
 *
 * @example
 * ```ts
 * describe('conformance', () => flowCases(options.flows ?? [], () => state))
 * ```
 * @see draft-httpauth-payment-00 §5.3 (Payment-Receipt)
 */
export function flowCases(flows: readonly MethodFlow[], get: () => KitState): void {
  for (const flow of flows) {
    it(`flow: ${flow.name}`, async () => {
      const { fixture, harness, challengeId } = get()
      const client = harness.clientMethod()
      const paying = harness.clientWith((request) => harness.handler(request), client)
      const context: FlowContext = {
        fixture,
        client,
        fetch: (url, init) => paying.fetch(url, init),
        url: kitUrl,
      }
      const receipts: Receipt[] = []
      const settlesBefore = harness.settles()
      for (const [index, step] of flow.steps.entries()) {
        const label = `step ${index + 1} (${step.name})`
        const paidBefore = harness.paidChallenges.length
        const runsBefore = harness.handlerRuns()
        const response = step.run ? await step.run(context) : await context.fetch(kitUrl)
        expect(response.status, `${label}: ${await response.clone().text()}`).toBe(200)
        const receipt = harness.receipt(response)
        expect(receipt, label).toMatchObject({
          status: 'success',
          method: fixture.server.definition.name,
          ...(step.receipt ?? {}),
        })
        expect(receipt.reference.length, label).toBeGreaterThan(0)
        expectChallengeId(receipt, harness.paidChallenges.slice(paidBefore), challengeId)
        const serves = step.servesResource ?? step.run === undefined
        expect(harness.handlerRuns() - runsBefore, `${label}: handler runs`).toBe(serves ? 1 : 0)
        receipts.push(receipt)
      }
      if (flow.sameReference)
        expect(new Set(receipts.map((r) => r.reference)).size, 'one reference for the whole flow').toBe(1)
      await flow.verify?.({ fixture, client, receipts, settles: harness.settles() - settlesBefore })
    })
  }
}
