import { expect } from 'vitest'

/**
 * Asserts that `replay` is the stored answer of a consumed credential presented again (what a method
 * with `replaysConsumed` gives): the original status, body and `Payment-Receipt`, byte for byte. The
 * caller checks separately that nothing ran or settled again.
 *
 * @example
 * ```ts
 * await expectReplayOf(original, await harness.submit(authorization))
 * ```
 * @see Method.Server.replaysConsumed
 */
export async function expectReplayOf(original: Response, replay: Response): Promise<void> {
  expect(replay.status, await replay.clone().text()).toBe(original.status)
  expect(replay.headers.get('payment-receipt')).not.toBeNull()
  expect(replay.headers.get('payment-receipt')).toBe(original.headers.get('payment-receipt'))
  expect(await replay.clone().text()).toBe(await original.clone().text())
}

/**
 * What concurrent submissions of one credential may answer besides the one that settles, for a method
 * with `replaysConsumed`: a refusal (402, or the core's 409 while the first is still in progress)
 * without a receipt, or a replay of the first's response (same status, body and receipt).
 */
export async function expectRefusedOrReplayed(responses: readonly Response[]): Promise<void> {
  const served = responses.filter((r) => r.status === 200)
  expect(served.length).toBeGreaterThanOrEqual(1)
  for (const replay of served.slice(1)) await expectReplayOf(served[0]!, replay)
  for (const r of responses.filter((r) => r.status !== 200)) {
    expect([402, 409]).toContain(r.status)
    expect(r.headers.get('payment-receipt')).toBeNull()
  }
}
