import { expect } from 'vitest'
import * as Credential from '../Credential.js'
import { expectRefusal } from './expectedProblems.js'
import { refusalCase } from './refusalCase.js'
import type { KitState } from './singleUseCases.js'

/** Values no payload field should hold: wrong types, empty, and strings no encoding accepts. */
const garbage: readonly unknown[] = [
  null,
  0,
  -1,
  true,
  [],
  {},
  '',
  ' ',
  '%%not-encoded%%',
  '0x',
  'z'.repeat(4096),
]

/**
 * Registers the malformed-fields case: each field of a valid payload, in turn, replaced by garbage
 * (wrong types, empty, undecodable strings) and presented with the payload's own challenge. The rail
 * must answer a 4xx problem (never a 5xx, which tells the client to retry, nor a stack trace) and settle
 * nothing.
 *
 * @example
 * ```ts
 * describe('conformance', () => malformedFieldsCase(() => state))
 * ```
 * @see draft-httpauth-payment-00 §8.2 (Problem Types)
 */
export function malformedFieldsCase(get: () => KitState): void {
  refusalCase(
    get,
    'malformedFields',
    'answers a payload with malformed fields with a 4xx problem, never a 5xx or a stack trace',
    async (state, expected, skip) => {
      const { harness } = state
      const { challenge, payload, source } = Credential.parse(await harness.credential())
      const fields = Object.keys(payload)
      if (fields.length === 0) return skip('the payload has no fields')
      const before = { runs: harness.handlerRuns(), settles: harness.settles() }
      for (const field of fields) {
        for (const value of garbage) {
          const changed = { ...payload, [field]: value }
          const authorization = Credential.format({
            challenge,
            payload: changed,
            ...(source ? { source } : {}),
          })
          const response = await harness.submit(authorization)
          await expect(
            expectRefusal(response, expected),
            `${field}: ${JSON.stringify(value).slice(0, 40)}`,
          ).resolves.toBeUndefined()
        }
      }
      expect(harness.handlerRuns()).toBe(before.runs)
      expect(harness.settles()).toBe(before.settles)
    },
  )
}
