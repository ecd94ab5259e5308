import { expect, it } from 'vitest'
import { expectedProblem, expectProblem, expectRefusal } from './expectedProblems.js'
import type { KitState } from './singleUseCases.js'

/**
 * Registers the `consumed` case: while the fixture's `outageAfterPayment` runs, the rail fails after
 * value moved (or may have). The answer is an error without a receipt and without `Retry-After` (the
 * method marked its error `consumed: true`), nothing is served, and the same credential presented again
 * afterwards is refused as used and charges nothing more.
 *
 * @example
 * ```ts
 * describe('conformance', () => consumedCase(() => state))
 * ```
 * @see draft-httpauth-payment-00 §11.3 (Replay Protection); Method.Server.settle
 */
export function consumedCase(get: () => KitState): void {
  it('a failure after value moved keeps the challenge used: no Retry-After, and no second charge', async (context) => {
    const { harness, fixture } = get()
    const outage = fixture.outageAfterPayment
    if (!outage) {
      console.warn(
        `[skip] failure after payment: ${fixture.noOutageAfterPayment ?? 'the fixture gives no outageAfterPayment control'}`,
      )
      return context.skip()
    }
    const authorization = await harness.credential()
    const settled = async () => (outage.settlements ? await outage.settlements() : harness.settles())
    const before = { runs: harness.handlerRuns(), settlements: await settled() }
    await outage.start()
    let failed: Response
    try {
      failed = await harness.submit(authorization)
    } finally {
      await outage.stop()
    }
    const text = await failed.clone().text()
    expect(failed.status, text).toBeGreaterThanOrEqual(400)
    expect(failed.headers.get('payment-receipt')).toBeNull()
    // A Retry-After asks the client to resend a credential whose value may already have moved.
    expect(failed.headers.get('retry-after'), `no Retry-After once value moved: ${text}`).toBeNull()
    expect(harness.handlerRuns()).toBe(before.runs)
    const afterFailure = await settled()
    expect(afterFailure).toBeLessThanOrEqual(before.settlements + 1)

    const again = await harness.submit(authorization)
    const replay = expectedProblem(fixture.problems, 'replay')
    if (replay) await expectProblem(again, replay)
    else await expectRefusal(again, 'any')
    expect(harness.handlerRuns()).toBe(before.runs)
    expect(await settled(), 'the same credential is never charged again').toBe(afterFailure)
  })
}
