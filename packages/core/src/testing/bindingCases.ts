import { expect } from 'vitest'
import * as Credential from '../Credential.js'
import { expectRefusal } from './expectedProblems.js'
import { refusalCase } from './refusalCase.js'
import type { KitState } from './singleUseCases.js'

/**
 * Registers the cases that move a charge payload to another challenge: a spent payload presented with a
 * fresh challenge (the proof is single-use, not only its challenge), and one payload presented
 * concurrently with many challenges (it settles once). The core consumes each challenge once; these
 * check what only the rail can: that its proof is spent once. (A payload not yet spent may pay another
 * challenge of the same route: the payer still pays once.)
 *
 * @example
 * ```ts
 * describe('conformance', () => bindingCases(() => state))
 * ```
 * @see draft-httpauth-payment-00 §11.3 (Replay Protection: "A payment proof MUST be usable exactly once"), §11.6
 */
export function bindingCases(get: () => KitState): void {
  /** The payload of `authorization` moved onto `challenge`. */
  const moved = (authorization: string, challenge: Credential.Credential['challenge']) => {
    const { payload, source } = Credential.parse(authorization)
    return Credential.format({ challenge, payload, ...(source ? { source } : {}) })
  }
  // Session payloads are metered against a channel's balance, not bound to a challenge (unless the
  // fixture says its rail binds them all the same).
  const chargeOnly = (state: KitState, skip: (reason: string) => void) => {
    const { intent } = state.fixture.server.definition
    if (intent === 'charge' || state.fixture.bindsPayloads === true) return false
    skip(`a ${intent} payload is accounted by the rail's own state, not bound to one challenge`)
    return true
  }

  refusalCase(
    get,
    'spentPayload',
    'refuses a spent payload presented with a fresh challenge',
    async (state, expected, skip) => {
      if (chargeOnly(state, skip)) return
      const { harness } = state
      const { response, authorization } = await harness.pay()
      expect(response.status, await response.clone().text()).toBe(200)
      const { challenge } = await harness.challenge()
      const before = { runs: harness.handlerRuns(), settles: harness.settles() }
      await expectRefusal(await harness.submit(moved(authorization, challenge)), expected)
      expect(harness.handlerRuns()).toBe(before.runs)
      expect(harness.settles()).toBe(before.settles)
    },
  )

  refusalCase(
    get,
    'otherChallenge',
    'settles one payload once when it is presented with many challenges at once',
    async (state, _expected, skip) => {
      if (chargeOnly(state, skip)) return
      const { harness, concurrency } = state
      const authorization = await harness.credential()
      const others = await Promise.all(
        Array.from(
          { length: Math.max(1, concurrency - 1) },
          async () => (await harness.challenge()).challenge,
        ),
      )
      const before = { runs: harness.handlerRuns(), settles: harness.settles() }
      const responses = await Promise.all([
        harness.submit(authorization),
        ...others.map((challenge) => harness.submit(moved(authorization, challenge))),
      ])
      expect(harness.settles(), 'settlements of one payload').toBe(before.settles + 1)
      expect(harness.handlerRuns()).toBe(before.runs + 1)
      expect(responses.filter((r) => r.status === 200)).toHaveLength(1)
      for (const r of responses.filter((r) => r.status !== 200))
        expect(r.headers.get('payment-receipt')).toBeNull()
    },
  )
}
