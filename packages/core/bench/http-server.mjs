// Child process of http.bench.mjs: an MPP server over loopback node:http (so the load generator does
// not share its event loop), plus the credentials the parent needs, issued by this server's own secret.
import http from 'node:http'
import { MemoryStore } from '../dist/index.js'
import { create as createServer, toNodeListener } from '../dist/server/index.js'
import { noopMethod } from '../dist/testing/index.js'

const request = { amount: '1000', currency: 'usd', recipient: 'merchant' }
const server = createServer({
  realm: 'bench.test',
  secrets: ['bench-http-secret-0123456789abcdefghijklmnop'],
  // A method with no checks: the bench measures the payment pipeline, not a rail.
  methods: [noopMethod()],
  store: new MemoryStore({ maxEntries: 2_000_000 }),
})
const route = { offers: [{ method: 'test', request }] }
// Both routes answer with the same small body.
const handler = server.protect(route, () => new Response('ok'))
const node = http.createServer({ keepAlive: true }, toNodeListener(handler))

// The echoed challenge as it appears on the wire (request stays base64url).
function wireChallenge(header) {
  const params = {}
  for (const m of header.matchAll(/([a-z]+)="((?:[^"\\]|\\.)*)"/g))
    params[m[1]] = m[2].replace(/\\(.)/g, '$1')
  return params
}

process.on('message', async (message) => {
  if (message.type === 'credentials') {
    const out = []
    for (let i = 0; i < message.count; i++) {
      const response = await handler(new Request('http://bench.test/r'))
      const challenge = wireChallenge(response.headers.get('www-authenticate'))
      const credential = { challenge, payload: { transfer: `tx${i}` } }
      out.push(`Payment ${Buffer.from(JSON.stringify(credential)).toString('base64url')}`)
    }
    process.send({ type: 'credentials', credentials: out })
  }
})

node.listen(0, '127.0.0.1', () => process.send({ type: 'ready', port: node.address().port }))
