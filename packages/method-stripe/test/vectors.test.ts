import { Challenge, Credential, Receipt } from '@mppkit/core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import vector from './fixtures/stripe-external-id-binding.json' with { type: 'json' }
import { problem, rig, type StripeDevnet, sdk, startStripe, url } from './helpers.js'

// The conformance vector stripe-external-id-binding (copied into fixtures/, see its README), run against
// the simulator: a request-bound externalId must be echoed exactly, a payload-only one is ignored, and
// the receipt's externalId is always the server-bound one.

let node: StripeDevnet
beforeAll(async () => {
  node = await startStripe()
})
afterAll(async () => {
  await node?.stop()
})

describe('vector: stripe-external-id-binding', () => {
  for (const scenario of vector.scenarios) {
    it(scenario.name, async () => {
      const { request: vectorRequest, payload } = scenario.input
      // The vector omits the REQUIRED methodDetails.networkId: the simulator's profile id is added.
      const request = {
        ...vectorRequest,
        methodDetails: { ...vectorRequest.methodDetails, networkId: node.info.networkId },
      }
      const r = rig(node, { offer: { request } })
      const unpaid = await r.handler(new Request(url))
      const [challenge] = Challenge.parseAll(unpaid.headers.get('www-authenticate') ?? '')
      // A real SPT for the vector's amount and currency stands in for `spt_conformance_123`.
      const token = await sdk(node).rawRequest('POST', '/v1/shared_payment/issued_tokens', {
        payment_method: 'pm_card_visa',
        usage_limits: { currency: request.currency.toLowerCase(), max_amount: Number(request.amount) },
        seller_details: { network_business_profile: node.info.networkId },
      })
      const response = await r.submit(
        Credential.format({ challenge: challenge!, payload: { ...payload, spt: token.id } }),
      )
      if (scenario.expected.ok) {
        expect(response.status, await response.clone().text()).toBe(200)
        const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
        const expected = scenario.expected.receipt as Record<string, unknown>
        expect(receipt.status).toBe(expected.status)
        expect(receipt.method).toBe(expected.method)
        expect(receipt.externalId).toBe(expected.externalId)
        expect(receipt.reference).toMatch(/^pi_/)
      } else {
        expect(response.status).toBe(402)
        const body = await problem(response)
        expect(body.type).toBe(
          `https://paymentauth.org/problems/${scenario.expected.errorType?.replace('_', '-')}`,
        )
        expect(body.reason).toBe('external-id-mismatch')
        expect(r.runs()).toBe(0)
      }
    })
  }
})
