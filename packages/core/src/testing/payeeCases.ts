import { expect } from 'vitest'
import * as Credential from '../Credential.js'
import { expectRefusal } from './expectedProblems.js'
import { kitUrl } from './MethodHarness.js'
import { refusalCase } from './refusalCase.js'
import type { KitState } from './singleUseCases.js'

/** `value` with its last character changed within its class (hex stays hex, a digit stays a digit). */
function otherString(text: string): string | undefined {
  // A mixed-case 0x address carries an EIP-55 checksum the change would break; lowercase is unchecked.
  const value = /^0x[0-9a-fA-F]+$/.test(text) ? text.toLowerCase() : text
  const last = value.at(-1)
  if (last === undefined) return undefined
  const next = /[0-9a-fA-F]/.test(last) ? (last === '1' ? '2' : '1') : last === 'x' ? 'y' : 'x'
  return value.slice(0, -1) + next
}

/** The default change of a string request field, or undefined when the request has none. */
const changeField = (field: string) => (request: Record<string, unknown>) => {
  const value = request[field]
  const changed = typeof value === 'string' ? otherString(value) : undefined
  return changed === undefined ? undefined : { ...request, [field]: changed }
}

/**
 * Registers the cases where the client pays the challenge's amount to another recipient, or in another
 * currency, and presents that payload with the challenge: the rail must refuse it and settle nothing.
 *
 * @example
 * ```ts
 * describe('conformance', () => payeeCases(() => state))
 * ```
 * @see draft-httpauth-payment-00 §5.2 (Credential verification)
 */
export function payeeCases(get: () => KitState): void {
  const cases = [
    { kind: 'wrongRecipient', field: 'recipient', name: 'rejects a payload that pays another recipient' },
    { kind: 'wrongCurrency', field: 'currency', name: 'rejects a payload that pays in another currency' },
  ] as const
  for (const { kind, field, name } of cases) {
    refusalCase(get, kind, name, async (state, expected, skip) => {
      const { harness, fixture } = state
      const { challenge } = await harness.challenge()
      const method = harness.clientMethod()
      const parsed = method.definition.request.safeParse(challenge.request)
      expect(parsed.success, 'the challenge request parses for the client method').toBe(true)
      if (!parsed.success) return
      // A currency the route does not pin (a method default such as `sat`) may not change what the client
      // pays, so the default change only applies to a pinned one.
      const pinned = (fixture.offer.request as Record<string, unknown> | undefined)?.[field] !== undefined
      if (!fixture[kind] && field === 'currency' && !pinned)
        return skip(`the route does not pin a currency and the fixture gives no ${kind}`)
      const change = fixture[kind] ?? changeField(field)
      const changed = change(parsed.data as Record<string, unknown>)
      if (!changed) return skip(`the request has no string ${field} and the fixture gives no ${kind}`)
      let paid: Awaited<ReturnType<typeof method.createPayload>>
      try {
        paid = await method.createPayload({ challenge, request: changed, url: kitUrl })
      } catch (cause) {
        return skip(`the client cannot pay the changed ${field} (${String(cause)}); give ${kind}`)
      }
      const { payload, source } = paid
      const before = { runs: harness.handlerRuns(), settles: harness.settles() }
      const activity = await fixture.payerActivity?.()
      const authorization = Credential.format({ challenge, payload, ...(source ? { source } : {}) })
      await expectRefusal(await harness.submit(authorization), expected)
      expect(harness.handlerRuns()).toBe(before.runs)
      expect(harness.settles()).toBe(before.settles)
      // A pull rail that sent the payload and only then refused it moved the payer's value all the same.
      if (fixture.payerActivity)
        expect(await fixture.payerActivity(), 'the refused payload moved nothing of the payer').toEqual(
          activity,
        )
    })
  }
}
