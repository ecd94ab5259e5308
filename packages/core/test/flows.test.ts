import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { z } from 'zod'
import { VerificationFailedError } from '../src/Errors.js'
import { handleRequest } from '../src/internal/conformanceAdapter.js'
import * as Method from '../src/Method.js'
import * as Receipt from '../src/Receipt.js'
import { create as createServer } from '../src/server/Server.js'

// The conformance flow cases (fixtures/conformance/flows.json) driven through the adapter's
// `http.payment_request` operation against a server built with this library, shaped like the
// ecosystem's compliance server: one route per case, a transaction payload whose signature must equal
// the case's expected signature.
const { cases } = JSON.parse(
  readFileSync(new URL('./fixtures/conformance/flows.json', import.meta.url), 'utf8'),
) as {
  cases: any[]
}

const flowCharge = Method.define({
  name: 'tempo',
  intent: 'charge',
  request: z.object({ amount: z.string(), currency: z.string(), recipient: z.string() }).passthrough(),
  payload: z.object({ type: z.literal('transaction'), signature: z.string().regex(/^0x[0-9a-fA-F]+$/) }),
})

describe('conformance flows through http.payment_request', () => {
  let settled = 0
  const handlers = new Map<string, (request: Request) => Promise<Response>>()
  for (const flow of cases.filter((c) => c.request)) {
    const server = createServer({
      realm: 'conformance',
      secrets: ['conformance-flow-secret-0123456789abcdef'],
      methods: [
        {
          definition: flowCharge,
          async verify({ payload }) {
            if (flow.fail_verification || payload.signature !== flow.expected_signature)
              throw new VerificationFailedError({ detail: 'Payment verification failed.' })
          },
          async settle() {
            settled++
            return { reference: flow.receipt?.reference ?? `ref-${flow.name}` }
          },
        },
      ],
    })
    const { expires: _expires, ...request } = flow.request
    handlers.set(
      flow.path,
      server.protect({ offers: [{ method: 'tempo', request }] }, () => Response.json({ ok: true })),
    )
  }
  const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    return handlers.get(new URL(request.url).pathname)!(request)
  }) as typeof fetch
  const flow = (name: string) => cases.find((c) => c.name === name)
  const run = async (name: string, mode?: string) => {
    const c = flow(name)
    const result = await handleRequest(
      {
        schema: 1,
        op: 'http.payment_request',
        input: {
          url: `http://127.0.0.1${c.path}`,
          payment: { payload: c.payload },
          ...(mode ? { mode } : {}),
        },
      },
      fetcher,
    )
    expect(result.ok).toBe(true)
    return (result as { value: { status: number; headers: Record<string, string>; body: string } }).value
  }
  const problem = (body: string) =>
    (JSON.parse(body) as { type: string }).type.replace('https://paymentauth.org/problems/', '')

  it('success_charge: 200 with a receipt', async () => {
    const response = await run('success_charge')
    expect(response.status).toBe(200)
    expect(Receipt.parse(response.headers['payment-receipt']!)).toMatchObject({
      status: 'success',
      method: 'tempo',
      reference: 'ref-success',
    })
  })
  it('verification_error: 402 verification-failed, no receipt', async () => {
    const response = await run('verification_error')
    expect(response.status).toBe(402)
    expect(problem(response.body)).toBe('verification-failed')
    expect(response.headers['payment-receipt']).toBeUndefined()
  })
  it('invalid_payload: 402 malformed-credential', async () => {
    const response = await run('invalid_payload', 'invalid_payload')
    expect(response.status).toBe(402)
    expect(problem(response.body)).toBe('malformed-credential')
  })
  it('missing_authorization (plain): 402 payment-required with a challenge', async () => {
    const response = await run('missing_authorization', 'plain')
    expect(response.status).toBe(402)
    expect(response.headers['www-authenticate']).toMatch(/^Payment /)
  })
  it('mismatched_request and invalid_challenge_id: 402 invalid-challenge, nothing settled', async () => {
    const before = settled
    for (const [name, mode] of [
      ['mismatched_request', 'mismatched_request'],
      ['invalid_challenge_id', 'invalid_challenge_id'],
    ] as const) {
      const response = await run(name, mode)
      expect(response.status).toBe(402)
      expect(problem(response.body)).toBe('invalid-challenge')
    }
    expect(settled).toBe(before)
  })
  it('reports an unreachable server as http_error', async () => {
    const result = await handleRequest({
      schema: 1,
      op: 'http.payment_request',
      input: { url: 'http://127.0.0.1:1/x' },
    })
    expect(result).toMatchObject({ ok: false, error: { type: 'http_error' } })
  })
})
