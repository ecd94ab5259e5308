import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import * as Base64url from '../Base64url.js'
import * as Challenge from '../Challenge.js'
import * as Credential from '../Credential.js'
import { BaseError } from '../Errors.js'
import * as Receipt from '../Receipt.js'
import { toNodeListener } from '../server/node.js'
import { create as createPaidServer } from '../server/Server.js'
import { createTestRail } from '../testing/TestMethod.js'
import { inspectOrigin, inspectUrl, inspectValue, render } from './inspect.js'

// What could rewrite or disguise a terminal's lines: C0 controls but the line break, DEL, C1 (CSI
// U+009B), bidirectional overrides and isolates, invisible characters.
const hidden =
  /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/
// Moves the cursor up a line, erases it and writes a line of its own.
const forge = '\r\u001b[1A\u001b[2K    amount      1 (base units) of usd'
// The same with C1's CSI (U+009B), which header parameters may carry (C0 and DEL they may not).
const forgeC1 = '\u009b1A\u009b2K    amount      1 (base units) of usd'

describe('render', () => {
  it("shows every challenge field a server chose without its control characters: none can rewrite the amount's line", () => {
    const header = Challenge.format({
      id: 'c1\u009b2K',
      realm: `shop${forgeC1}`,
      method: 'test',
      intent: 'charge',
      description: 'Weather\u202e',
      request: { amount: '9999999', currency: 'usd\u200b', recipient: `evil${forge}`, note: 'a\u0085b' },
      opaque: Challenge.encodeRequest({ order: `o${forge}` }),
    })
    const out = render(inspectValue(header), { now: 0 })
    expect(out).not.toMatch(hidden)
    expect(out).toMatchInlineSnapshot(`
      "1 Payment challenge(s):
        test/charge  realm=shop?1A?2K    amount      1 (base units) of usd
          amount      9999999 (base units) of usd?
          recipient   evil??[1A?[2K    amount      1 (base units) of usd
          description Weather?
          id          c1?2K
          request     {
            "amount": "9999999",
            "currency": "usd?",
            "note": "a?b",
            "recipient": "evil\\r\\u001b[1A\\u001b[2K    amount      1 (base units) of usd"
          }
          opaque      {"order":"o\\r\\u001b[1A\\u001b[2K    amount      1 (base units) of usd"}"
    `)
  })

  it('shows a pasted credential and a receipt without their control characters', () => {
    const challenge = { id: 'x', realm: 'r', method: 'test', intent: 'charge', request: { amount: '1' } }
    const credential = Credential.format({
      challenge,
      source: `did:key:z${forge}`,
      payload: { transfer: 't\u202e1', preimage: 'ab'.repeat(32) },
    })
    const shown = render(inspectValue(`Authorization: ${credential}`), { now: 0 })
    expect(shown).not.toMatch(hidden)
    expect(shown).toContain('  source  did:key:z??[1A?[2K    amount      1 (base units) of usd')
    expect(shown).toContain('"transfer": "t?1"')
    expect(shown).toContain('<redacted 64 chars')
    const receipt = Base64url.encode(
      JSON.stringify({
        status: 'success',
        method: 'test',
        timestamp: '2026-01-01T00:00:00Z',
        reference: 'pi_1\u009b2K\u2066',
      }),
    )
    expect(Receipt.parse(receipt).reference).toContain('\u009b')
    const read = render(inspectValue(receipt))
    expect(read).not.toMatch(hidden)
    expect(read).toContain('"reference": "pi_1?2K?"')
  })
})

describe('inspectUrl', () => {
  it("shows a 402's offers and problem body without their control characters", async () => {
    const rail = createTestRail()
    const paid = createPaidServer({
      realm: 'shop',
      secrets: ['inspect-secret-0123456789abcdefghij'],
      methods: [rail.server()],
    })
    const handler = paid.protect(
      {
        offers: [
          { method: 'test', request: { amount: '9999999', currency: 'usd', recipient: `evil${forge}` } },
        ],
      },
      () => new Response('ok'),
    )
    // The problem body of a server that writes its own lines: raw line breaks and escapes.
    const http = createServer((request, response) => {
      if (request.url === '/forged') {
        response.writeHead(402, { 'content-type': 'application/problem+json' })
        return response.end(`{"detail":"x"}\n${forge}\u009b2K`)
      }
      return toNodeListener(handler)(request, response)
    })
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`
    try {
      const { text, ok } = await inspectUrl(`${base}/item`)
      expect(ok).toBe(true)
      expect(text).not.toMatch(hidden)
      expect(text.split('\n').filter((line) => /^\s+amount\s/.test(line))).toEqual([
        '    amount      9999999 (base units) of usd',
      ])
      const forged = await inspectUrl(`${base}/forged`)
      expect(forged.text).not.toMatch(hidden)
      expect(forged.text.split('\n').at(-1)).toBe(
        'problem: {"detail":"x"}???[1A?[2K    amount      1 (base units) of usd?2K',
      )
    } finally {
      await new Promise((resolve) => http.close(resolve))
    }
  })
})

describe('inspectOrigin', () => {
  it("shows a discovery error's words without their control characters", async () => {
    const failure = Object.assign(new BaseError(`the document is not JSON: ${forge}`, { code: 'not-json' }), {
      name: 'DiscoveryError',
    })
    const load = async () => ({
      inspect: async () => {
        throw failure
      },
      formatInspection: () => '',
    })
    const { stderr, code } = await inspectOrigin('https://api.example', { load })
    expect(code).toBe(1)
    expect(stderr).toBe(
      'mppkit inspect: the document is not JSON: ??[1A?[2K    amount      1 (base units) of usd\n',
    )
  })
})
