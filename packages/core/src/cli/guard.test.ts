import { describe, expect, it } from 'vitest'
import { create as createClient } from '../client/Client.js'
import { create as createServer } from '../server/Server.js'
import { createTestRail } from '../testing/index.js'
import { describePayment, guard, printable, printableJson } from './guard.js'

describe('printable', () => {
  it('shows invisible and direction-changing characters, which could make a recipient look like another', () => {
    expect(printable('acct_\u200bmerchant\u200e\u200f\u061c\ufeff\u00ad\u2060\u180e')).toBe(
      'acct_?merchant???????',
    )
  })

  it('marks what it cuts off, so a shortened value never passes for the whole one', () => {
    expect(printable('a'.repeat(10), 10)).toBe('aaaaaaaaaa')
    expect(printable(`acct_good${' '.repeat(95)}evil`, 20)).toBe('acct_good           …')
  })
})

describe('printableJson', () => {
  it('escapes what JSON.stringify leaves (C1, bidi, invisible), keeps its own indenting, and bounds the length', () => {
    const value = { a: 'x\u200by\u061c\ufeff\u00ad', b: ['\u009b'] }
    const shown = printableJson(value, 2)
    expect(shown).toBe('{\n  "a": "x\\u200by\\u061c\\ufeff\\u00ad",\n  "b": [\n    "\\u009b"\n  ]\n}')
    expect(JSON.parse(shown)).toEqual(value)
    expect(printableJson('a'.repeat(10), undefined, 5)).toBe('"aaaa…')
    expect(printableJson(undefined)).toBe('null')
  })
})

describe('guard', () => {
  it('asks with the amount, recipient and realm the payment moves, escaped', async () => {
    const rail = createTestRail()
    const asked: string[] = []
    const method = guard(
      rail.client(),
      { maxAmount: () => 5_000n, maxDeposit: () => 5_000n, confirmAbove: () => 0n },
      {
        announce: () => {},
        confirm: async (line) => {
          asked.push(line)
          return false
        },
      },
    )
    const request = { amount: '1000', currency: 'usd', recipient: 'acct_\u202eliam\u200b' }
    const challenge = { id: 'x', realm: 'api\u001b[2K.example', method: 'test', intent: 'charge', request }
    await expect(
      method.createPayload({ challenge, request, url: 'https://api.example/' } as never),
    ).rejects.toMatchObject({ reason: 'declined' })
    expect(asked).toEqual([
      describePayment({ ...challenge, recipient: request.recipient }, { amount: 1000n, currency: 'usd' }),
    ])
    expect(asked[0]).toMatchInlineSnapshot(
      `"test/charge: pay 1000 base units of usd to acct_?liam? (realm api?[2K.example)"`,
    )
    expect(rail.transfers.size).toBe(0)
  })

  it('names the payee the method gives after "to", and the request\'s recipient only as the server\'s quoted label', async () => {
    const rail = createTestRail()
    const asked: string[] = []
    // A rail whose money goes to a party the request names elsewhere (Stripe: `methodDetails.networkId`).
    const method = guard(
      {
        ...rail.client(),
        payee: (request: Record<string, unknown>) => `account ${String(request.externalId)}`,
      },
      { maxAmount: () => 5_000n, maxDeposit: () => 5_000n, confirmAbove: () => 0n },
      {
        announce: () => {},
        confirm: async (line) => {
          asked.push(line)
          return false
        },
      },
    )
    const request = {
      amount: '1000',
      currency: 'usd',
      externalId: 'acct_real',
      recipient: 'Bank") (realm bank.example\u202e',
    }
    const challenge = { id: 'x', realm: 'api.example', method: 'test', intent: 'charge', request }
    await expect(
      method.createPayload({ challenge, request, url: 'https://api.example/' } as never),
    ).rejects.toMatchObject({ reason: 'declined' })
    expect(asked[0]).toMatchInlineSnapshot(
      `"test/charge: pay 1000 base units of usd to account acct_real (the server calls it "Bank\\") (realm bank.example?") (realm api.example)"`,
    )
  })

  it("hands the method's quote the challenge, through the client and through the guard", async () => {
    const rail = createTestRail()
    const seen: unknown[] = []
    const inner = rail.client()
    const quoting = {
      ...inner,
      quote(request: Record<string, unknown>, challenge?: unknown) {
        seen.push(challenge)
        return { amount: BigInt(String(request.amount)), currency: String(request.currency) }
      },
    }
    const method = guard(
      quoting as never,
      { maxAmount: () => 5_000n, maxDeposit: () => 5_000n, confirmAbove: () => undefined },
      { announce: () => {} },
    )
    const server = createServer({
      realm: 'api.example',
      secrets: ['guard-test-secret-0123456789abcdefghij'],
      methods: [rail.server()],
    })
    const handler = server.protect(
      { offers: [{ method: 'test', request: { amount: '500', currency: 'usd', recipient: 'acct_1' } }] },
      () => new Response('ok'),
    )
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof fetch
    const client = createClient({ methods: [method], fetch: fetcher })
    expect((await client.fetch('https://api.example/r')).status).toBe(200)
    // Once by the client's policy check (through the guard), once by the guard before it asks.
    expect(seen).toHaveLength(2)
    for (const challenge of seen) expect(challenge).toMatchObject({ realm: 'api.example', method: 'test' })
  })

  it('of several offers, pays one the caps allow, and announces the one it pays', async () => {
    for (const amounts of [
      ['5000', '500'],
      ['500', '5000'],
    ]) {
      const rail = createTestRail()
      const server = createServer({
        realm: 'api.example',
        secrets: ['guard-test-secret-0123456789abcdefghij'],
        methods: [rail.server()],
      })
      const handler = server.protect(
        {
          offers: amounts.map((amount) => ({
            method: 'test',
            request: { amount, currency: 'usd', recipient: 'acct_1' },
          })),
        },
        () => new Response('ok'),
      )
      const announced: string[] = []
      const client = createClient({
        fetch: async (input, init) => handler(new Request(input, init)),
        methods: [
          guard(
            rail.client(),
            { maxAmount: () => 1_000n, maxDeposit: () => 1_000n, confirmAbove: () => undefined },
            { announce: (line) => announced.push(line) },
          ),
        ],
      })
      const response = await client.fetch('https://api.example/paid')
      expect(response.status, amounts.join()).toBe(200)
      expect(announced).toEqual(['test/charge: pay 500 base units of usd to acct_1 (realm api.example)'])
      expect([...rail.transfers.values()].map((t) => t.amount)).toEqual(['500'])
    }
  })
})
