import { describe, expect, it } from 'vitest'
import { LightningProblem } from './Problems.js'

describe('LightningProblem', () => {
  it('renders the spec problem types as 402 problem+json', () => {
    const problem = new LightningProblem(
      'invalid-preimage',
      'SHA-256 of the provided preimage does not match the stored payment hash',
    )
    expect(problem.status).toBe(402)
    expect(problem.toProblem()).toMatchInlineSnapshot(`
      {
        "detail": "SHA-256 of the provided preimage does not match the stored payment hash",
        "status": 402,
        "title": "Invalid Preimage",
        "type": "https://paymentauth.org/problems/lightning/invalid-preimage",
      }
    `)
    expect(new LightningProblem('session-closed', 'The session is closed.').typeUri).toMatchInlineSnapshot(
      `"https://paymentauth.org/problems/lightning/session-closed"`,
    )
  })
})
