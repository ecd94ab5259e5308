import { expect, it } from 'vitest'
import { expectReplayOf } from './replays.js'
import type { KitState } from './singleUseCases.js'

/**
 * Registers the rail outage case: while the rail is down a valid credential gets 503 with `Retry-After`
 * and nothing is served; the challenge is released, so the same credential succeeds once the rail is
 * back; and it is charged once (the fixture's settlement count, or the kit's count of `settle` calls).
 *
 * @example
 * ```ts
 * describe('conformance', () => outageCase(() => state))
 * ```
 * @see draft-httpauth-payment-00 §11.6; RFC 9110 §10.2.3 (Retry-After)
 */
export function outageCase(get: () => KitState): void {
  it('a rail outage answers 503 + Retry-After, releases the challenge and never charges twice', async (context) => {
    const { harness, fixture } = get()
    const { outage } = fixture
    if (!outage) {
      console.warn('[skip] rail outage: the fixture gives no outage control')
      return context.skip()
    }
    const authorization = await harness.credential()
    const settled = async () => (outage.settlements ? await outage.settlements() : harness.settles())
    const before = { runs: harness.handlerRuns(), settlements: await settled() }
    await outage.start()
    let down: Response
    try {
      down = await harness.submit(authorization)
    } finally {
      await outage.stop()
    }
    expect(down.status, await down.clone().text()).toBe(503)
    expect(down.headers.get('retry-after')).toMatch(/^\d+$/)
    expect(down.headers.get('payment-receipt')).toBeNull()
    expect(harness.handlerRuns()).toBe(before.runs)
    expect(await settled()).toBe(before.settlements)

    const up = await harness.submit(authorization)
    expect(up.status, await up.clone().text()).toBe(200)
    expect(harness.handlerRuns()).toBe(before.runs + 1)
    expect(await settled()).toBe(before.settlements + 1)

    // The credential is spent now: once more is a problem (or, for a method that `replaysConsumed`, the
    // stored response of the successful retry), and nothing moves.
    const again = await harness.submit(authorization)
    if (fixture.server.replaysConsumed) await expectReplayOf(up, again)
    else {
      expect(again.status).not.toBe(200)
      expect(again.headers.get('payment-receipt')).toBeNull()
    }
    expect(harness.handlerRuns()).toBe(before.runs + 1)
    expect(await settled()).toBe(before.settlements + 1)
  })
}
