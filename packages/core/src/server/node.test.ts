import { once } from 'node:events'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { afterAll, describe, expect, it } from 'vitest'
import { createTestRail } from '../testing/TestMethod.js'
import { toNodeListener } from './node.js'
import { create as createServer } from './Server.js'

const offer = { method: 'test', request: { amount: '100', currency: 'usd', recipient: 'acct' } }
const servers: http2.Http2Server[] = []
afterAll(() => Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve)))))

/** An unencrypted HTTP/2 server running `listener` (node:http2's compatibility API). */
async function listen(listener: ReturnType<typeof toNodeListener>) {
  const node = http2.createServer(listener as never)
  servers.push(node)
  node.listen(0, '127.0.0.1')
  await once(node, 'listening')
  return `http://127.0.0.1:${(node.address() as AddressInfo).port}`
}

/** One HTTP/2 request: its status, headers and body. */
async function request(origin: string, headers: http2.OutgoingHttpHeaders) {
  const client = http2.connect(origin)
  try {
    const stream = client.request(headers)
    stream.setEncoding('utf8')
    let body = ''
    stream.on('data', (chunk: string) => {
      body += chunk
    })
    const [response] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders]
    await once(stream, 'end')
    return { status: response[':status'], headers: response, body }
  } finally {
    client.close()
  }
}

describe('toNodeListener', () => {
  it('serves node:http2 requests: pseudo-headers are skipped and :authority is the host', async () => {
    const origin = await listen(
      toNodeListener(
        (request) => new Response(JSON.stringify({ url: request.url, headers: [...request.headers.keys()] })),
      ),
    )
    const echoed = await request(origin, { ':path': '/r?x=1', ':authority': 'api.test', 'x-test': 'a' })
    expect(echoed.status).toBe(200)
    expect(JSON.parse(echoed.body)).toEqual({ url: 'http://api.test/r?x=1', headers: ['x-test'] })

    const rail = createTestRail()
    const server = createServer({
      realm: 'api.test',
      secrets: ['node-test-secret-0123456789abcdefghijklmn'],
      methods: [rail.server()],
    })
    const paid = await listen(toNodeListener(server.protect({ offers: [offer] }, () => new Response('ok'))))
    const unpaid = await request(paid, { ':path': '/paid' })
    expect(unpaid.status).toBe(402)
    expect(unpaid.headers['www-authenticate']).toMatch(/^Payment /)
  })
})
