import { describe, expect, it } from 'vitest'
import { BaseError, VerificationFailedError } from '../Errors.js'
import { MemoryStore } from '../MemoryStore.js'
import { describeMethod } from './describeMethod.js'
import { defaultProblems, expectedProblem, expectProblem } from './expectedProblems.js'
import { createTestRail, type TestRail } from './TestMethod.js'

const offer = { method: 'test', request: { amount: '1000', currency: 'usd', recipient: 'merchant' } }

// The kit on the core's test rail, over an injected store, with a flow and a rail outage.
let rail: TestRail
let down = false
let lost = false
let store: MemoryStore | undefined
describeMethod({
  name: 'test/charge (injected MemoryStore, flow, outage)',
  store: () => {
    store = new MemoryStore()
    return store
  },
  setup: async () => {
    rail = createTestRail()
    return {
      server: rail.server({
        failWith: () => (down ? new BaseError('rail down', { code: 'test-rail-down' }) : undefined),
        confirmationLost: () => lost,
      }),
      client: () => rail.client(),
      offer,
      problems: { wrongAmount: { type: 'verification-failed', reason: 'amount-mismatch' } },
      outage: {
        start: () => {
          down = true
        },
        stop: () => {
          down = false
        },
        settlements: () => rail.settlements(),
      },
      outageAfterPayment: {
        start: () => {
          lost = true
        },
        stop: () => {
          lost = false
        },
        settlements: () => rail.settlements(),
      },
    }
  },
  flows: [
    {
      name: 'three paid requests, each settled once',
      steps: [{ name: 'first' }, { name: 'second' }, { name: 'third', receipt: { method: 'test' } }],
      async verify({ receipts, settles }) {
        expect(settles).toBe(3)
        // Each receipt names its own transfer, and the rail recorded each one.
        expect(new Set(receipts.map((r) => r.reference)).size).toBe(3)
        for (const r of receipts) expect(rail.transfers.has(r.reference)).toBe(true)
        // The injected store is the one the server used: it holds the consumed challenges.
        expect(store?.size).toBeGreaterThanOrEqual(3)
      },
    },
  ],
})

// The kit on a test rail that answers a consumed credential presented again with the original response
// (`replaysConsumed`, as the lightning session spec asks): replay, concurrency and outage cases expect
// that stored response instead of a refusal.
let replayRail: TestRail
let replayDown = false
describeMethod({
  name: 'test/charge (replaysConsumed, outage)',
  setup: async () => {
    replayRail = createTestRail()
    return {
      server: {
        ...replayRail.server({
          failWith: () => (replayDown ? new BaseError('rail down', { code: 'test-rail-down' }) : undefined),
        }),
        replaysConsumed: true,
      },
      client: () => replayRail.client(),
      offer,
      problems: { wrongAmount: { type: 'verification-failed', reason: 'amount-mismatch' } },
      outage: {
        start: () => {
          replayDown = true
        },
        stop: () => {
          replayDown = false
        },
        settlements: () => replayRail.settlements(),
      },
    }
  },
})

describe('expectedProblem', () => {
  it('falls back to the core default, takes a bare type, and turns a case off with false', () => {
    expect(expectedProblem(undefined, 'expired')).toEqual(defaultProblems.expired)
    expect(expectedProblem({ replay: 'session/challenge-not-found' }, 'replay')).toEqual({
      type: 'session/challenge-not-found',
    })
    expect(expectedProblem({ malformed: false }, 'malformed')).toBeUndefined()
    expect(defaultProblems).toMatchInlineSnapshot(`
      {
        "expired": {
          "type": "payment-expired",
        },
        "malformed": {
          "type": "malformed-credential",
        },
        "replay": {
          "type": "invalid-challenge",
        },
        "tamperedId": {
          "type": "invalid-challenge",
        },
        "wrongAmount": {
          "type": "verification-failed",
        },
      }
    `)
  })
})

describe('expectProblem', () => {
  const response = () =>
    new Response(
      JSON.stringify(
        new VerificationFailedError({ detail: 'Amount mismatch.', reason: 'amount-mismatch' }).toProblem(),
      ),
      { status: 402, headers: { 'content-type': 'application/problem+json' } },
    )
  it('accepts the declared type and reason, relative or absolute', async () => {
    await expectProblem(response(), { type: 'verification-failed', reason: 'amount-mismatch' })
    await expectProblem(response(), { type: 'https://paymentauth.org/problems/verification-failed' })
  })
  it('fails on another type, reason or status, and on a receipt', async () => {
    await expect(expectProblem(response(), { type: 'invalid-challenge' })).rejects.toThrow()
    await expect(
      expectProblem(response(), { type: 'verification-failed', reason: 'other' }),
    ).rejects.toThrow()
    await expect(expectProblem(response(), { type: 'verification-failed', status: 410 })).rejects.toThrow()
    const withReceipt = response()
    withReceipt.headers.set('payment-receipt', 'x')
    await expect(expectProblem(withReceipt, { type: 'verification-failed' })).rejects.toThrow()
  })
})
