import { expect, it } from 'vitest'
import * as Binding from '../Binding.js'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import * as Expires from '../Expires.js'
import { expectedProblem, expectProblem, type ProblemCase } from './expectedProblems.js'
import type { MethodFixture } from './MethodFixture.js'
import { type ChallengeIdCheck, kitSecret, kitUrl, type MethodHarness } from './MethodHarness.js'
import { expectRefusedOrReplayed, expectReplayOf } from './replays.js'

/** What the case registrations read once the suite's `beforeAll` ran. */
export type KitState = {
  fixture: MethodFixture
  harness: MethodHarness
  challengeId: ChallengeIdCheck
  concurrency: number
}

/**
 * Asserts a receipt's `challengeId`: equal to the paid challenge's id when present, and present when
 * `check` is strict.
 */
export function expectChallengeId(receipt: Record<string, unknown>, paid: string[], check: ChallengeIdCheck) {
  if (receipt.challengeId === undefined && check === 'when-present') return
  expect(paid, 'the receipt names a challenge this client paid').toContain(receipt.challengeId)
}

const defaultWrongAmount = (request: Record<string, unknown>) => {
  const amount = request.amount
  if (typeof amount !== 'string' || !/^\d+$/.test(amount) || amount === '0') return undefined
  return { ...request, amount: String(BigInt(amount) - 1n) }
}

/**
 * Registers the single-payment cases: 402 shape, round trip and receipt, replay, tampered id, expiry,
 * malformed payload, wrong amount, and concurrent double submission.
 *
 * @example
 * ```ts
 * describe('conformance', () => singleUseCases(() => state))
 * ```
 * @see draft-httpauth-payment-00 §5.1.3, §11.3 (Replay Protection), §11.6 (Concurrent Request Handling)
 */
export function singleUseCases(get: () => KitState): void {
  /** Runs `body` unless the fixture turned `kind` off. */
  const problemCase = (
    kind: ProblemCase,
    name: string,
    body: (state: KitState, skip: (reason: string) => void) => Promise<void>,
  ) =>
    it(name, async (context) => {
      const state = get()
      if (!expectedProblem(state.fixture.problems, kind)) {
        console.warn(`[skip] ${name}: the fixture turned the ${kind} case off`)
        return context.skip()
      }
      await body(state, (reason) => {
        console.warn(`[skip] ${name}: ${reason}`)
        context.skip()
      })
    })
  const expected = (state: KitState, kind: ProblemCase) => expectedProblem(state.fixture.problems, kind)!

  it('answers 402 with a bound challenge and no-store', async () => {
    const { fixture, harness } = get()
    const response = await harness.handler(new Request(kitUrl))
    expect(response.status).toBe(402)
    expect(response.headers.get('cache-control')).toBe('no-store')
    expect(response.headers.get('payment-receipt')).toBeNull()
    const [challenge] = Challenge.parseAll(response.headers.get('www-authenticate') ?? '')
    expect(challenge?.method).toBe(fixture.server.definition.name)
    expect(challenge?.intent).toBe(fixture.server.definition.intent)
    expect(challenge?.id).toBe(Binding.computeId(challenge!, kitSecret))
  })

  it('round-trips a payment and returns a well-formed receipt', async () => {
    const { fixture, harness, challengeId } = get()
    const before = { runs: harness.handlerRuns(), settles: harness.settles() }
    const { response, authorization } = await harness.pay()
    expect(response.status, await response.clone().text()).toBe(200)
    expect(harness.handlerRuns()).toBe(before.runs + 1)
    expect(harness.settles()).toBe(before.settles + 1)
    const receipt = harness.receipt(response)
    expect(receipt.status).toBe('success')
    expect(receipt.method).toBe(fixture.server.definition.name)
    expect(typeof receipt.reference).toBe('string')
    expect(receipt.reference.length).toBeGreaterThan(0)
    expect(Expires.parse(receipt.timestamp)).toBeGreaterThan(0)
    expectChallengeId(receipt, [Credential.parse(authorization).challenge.id], challengeId)
    expect(response.headers.get('cache-control')).toContain('private')
  })

  problemCase('replay', 'rejects a replayed credential, or replays its response', async (state) => {
    const { harness, fixture } = state
    const { response, authorization } = await harness.pay()
    expect(response.status, await response.clone().text()).toBe(200)
    const before = { runs: harness.handlerRuns(), settles: harness.settles() }
    const replay = await harness.submit(authorization)
    // A method that `replaysConsumed` answers an identical resubmission with the original response,
    // acting again in nothing; any other method refuses it.
    if (fixture.server.replaysConsumed) await expectReplayOf(response, replay)
    else await expectProblem(replay, expected(state, 'replay'))
    expect(harness.handlerRuns()).toBe(before.runs)
    expect(harness.settles()).toBe(before.settles)
  })

  problemCase('tamperedId', 'rejects a tampered challenge id', async (state) => {
    const { harness } = state
    const client = harness.clientWith((request, authorization) => {
      const credential = Credential.parse(authorization)
      const { id } = credential.challenge
      credential.challenge.id = id.slice(0, -2) + (id.endsWith('AA') ? 'BB' : 'AA')
      const headers = new Headers(request.headers)
      headers.set('authorization', Credential.format(credential))
      return harness.handler(new Request(request.url, { headers }))
    })
    const before = { runs: harness.handlerRuns(), settles: harness.settles() }
    await expectProblem(await client.fetch(kitUrl), expected(state, 'tamperedId'))
    expect(harness.handlerRuns()).toBe(before.runs)
    expect(harness.settles()).toBe(before.settles)
  })

  problemCase('expired', 'rejects an expired challenge', async (state) => {
    const { harness } = state
    const client = harness.clientWith((request) => {
      // Time passes between the 402 and the paid retry.
      harness.advance(3_600_000)
      return harness.handler(request)
    })
    const before = { runs: harness.handlerRuns(), settles: harness.settles() }
    try {
      await expectProblem(await client.fetch(kitUrl), expected(state, 'expired'))
      expect(harness.handlerRuns()).toBe(before.runs)
      expect(harness.settles()).toBe(before.settles)
    } finally {
      harness.reset()
    }
  })

  problemCase('malformed', 'rejects a payload the method cannot decode', async (state) => {
    const { harness, fixture } = state
    const { challenge } = await harness.challenge()
    const before = { runs: harness.handlerRuns(), settles: harness.settles() }
    const payload = (fixture.malformedPayload ?? {}) as Record<string, unknown>
    await expectProblem(
      await harness.submit(Credential.format({ challenge, payload })),
      expected(state, 'malformed'),
    )
    expect(harness.handlerRuns()).toBe(before.runs)
    expect(harness.settles()).toBe(before.settles)
  })

  problemCase('wrongAmount', 'rejects a payload that pays another amount', async (state, skip) => {
    const { harness, fixture } = state
    const { challenge } = await harness.challenge()
    const method = harness.clientMethod()
    const parsed = method.definition.request.safeParse(challenge.request)
    if (!parsed.success) throw new Error('the challenge request does not parse for the client method')
    const changed = (fixture.wrongAmount ?? defaultWrongAmount)(parsed.data as Record<string, unknown>)
    if (!changed) return skip('the request has no decimal amount and the fixture gives no wrongAmount')
    const { payload, source } = await method.createPayload({ challenge, request: changed, url: kitUrl })
    const before = { runs: harness.handlerRuns(), settles: harness.settles() }
    const activity = await fixture.payerActivity?.()
    const authorization = Credential.format({ challenge, payload, ...(source ? { source } : {}) })
    await expectProblem(await harness.submit(authorization), expected(state, 'wrongAmount'))
    expect(harness.handlerRuns()).toBe(before.runs)
    expect(harness.settles()).toBe(before.settles)
    if (fixture.payerActivity)
      expect(await fixture.payerActivity(), 'the refused payload moved nothing of the payer').toEqual(
        activity,
      )
  })

  it('settles one of many concurrent submissions of one credential', async () => {
    const { harness, concurrency, fixture } = get()
    const authorization = await harness.credential()
    const before = { runs: harness.handlerRuns(), settles: harness.settles() }
    const responses = await Promise.all(
      Array.from({ length: concurrency }, () => harness.submit(authorization)),
    )
    expect(harness.handlerRuns()).toBe(before.runs + 1)
    expect(harness.settles()).toBe(before.settles + 1)
    // A method that `replaysConsumed` may answer a late duplicate with the first's stored response.
    if (fixture.server.replaysConsumed) return expectRefusedOrReplayed(responses)
    const ok = responses.filter((r) => r.status === 200)
    expect(ok).toHaveLength(1)
    for (const r of responses.filter((r) => r.status !== 200)) {
      expect(r.status).toBe(402)
      expect(r.headers.get('payment-receipt')).toBeNull()
    }
  })
}
