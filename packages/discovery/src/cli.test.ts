import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, test } from 'vitest'
import { node } from './Adapters.js'
import { main } from './cli.js'
import { create } from './Discovery.js'

function capture() {
  const lines: string[] = []
  return { lines, io: { out: (l: string) => lines.push(l), err: (l: string) => lines.push(`! ${l}`) } }
}

describe('main', () => {
  test('inspect <origin> over real HTTP lists the paid operations', async () => {
    const discovery = create({
      info: { title: 'Weather', version: '1' },
      operations: [{ path: '/weather', route: { offers: [{ method: 'tempo', request: { amount: '5' } }] } }],
    })
    const middleware = node(discovery)
    const server = createServer((req, res) => middleware(req, res, () => res.end()))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    try {
      const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const { lines, io } = capture()
      expect(await main(['inspect', origin], io)).toBe(0)
      expect(lines.join('\n').replace(origin, 'ORIGIN')).toMatchInlineSnapshot(`
        "ORIGIN/openapi.json: valid discovery document
        GET /weather
          tempo/charge: 5"
      `)
    } finally {
      server.close()
    }
  })

  test('bad usage and unreadable documents: a one-line error and exit code 2', async () => {
    const { lines, io } = capture()
    expect(await main([], io)).toBe(2)
    expect(
      await main(['inspect', 'https://x.example'], io, {
        fetch: async () => new Response('nope', { status: 500 }),
      }),
    ).toBe(2)
    expect(lines).toMatchInlineSnapshot(`
      [
        "! usage: mppkit-discovery inspect <origin>",
        "! mppkit-discovery: https://x.example/openapi.json answered 500",
      ]
    `)
  })
})

describe('main: hostile origins', () => {
  test('credentials in the origin are neither sent nor printed; a cross-origin redirect is one line', async () => {
    const { lines, io } = capture()
    const sent: string[] = []
    const spy: typeof fetch = async (input) => {
      sent.push(String(input))
      return new Response(null, { status: 302, headers: { location: 'http://169.254.169.254/latest' } })
    }
    expect(await main(['inspect', 'https://admin:s3cret@api.example'], io, { fetch: spy })).toBe(2)
    expect(await main(['inspect', 'https://api.example'], io, { fetch: spy })).toBe(2)
    expect(sent).toEqual(['https://api.example/openapi.json'])
    expect(lines).toMatchInlineSnapshot(`
      [
        "! mppkit-discovery: the origin URL carries credentials; inspect sends none",
        "! mppkit-discovery: https://api.example/openapi.json redirects to another origin (not followed)",
      ]
    `)
  })
})
