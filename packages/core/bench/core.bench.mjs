// Core benchmarks: (a) 402 challenge issuance, (b) verify + consume of a valid credential with a no-op
// method. mppkit and mppx@0.11.0 measured in the same process, same machine, same run.
import { Method as MppxMethod } from 'mppx'
import { Mppx } from 'mppx/server'
import * as z from 'zod/mini'
import { compare } from '../../../scripts/measure.mjs'
import { MemoryStore } from '../dist/index.js'
import { create as createServer } from '../dist/server/index.js'
import { noopMethod } from '../dist/testing/index.js'

const secretKey = 'bench-secret-key-0123456789abcdefghijklmnop'
const request = { amount: '1000', currency: 'usd', recipient: 'merchant' }
const url = 'http://bench.test/resource'

function ours() {
  const server = createServer({
    realm: 'bench.test',
    secrets: [secretKey],
    methods: [noopMethod()],
    store: new MemoryStore({ maxEntries: 1_000_000 }),
  })
  // Both sides answer paid requests with the same empty response: the bench measures the payment layer.
  const handler = server.protect({ offers: [{ method: 'test', request }] }, () => new Response(null))
  return {
    challenge: async (request) => {
      const response = await handler(request)
      if (response.status !== 402)
        throw new Error(`expected 402, got ${response.status} ${await response.text()}`)
      return response
    },
    credential: async () => {
      const response = await handler(new Request(url))
      const header = response.headers.get('www-authenticate')
      return `Payment ${Buffer.from(JSON.stringify({ challenge: wireChallenge(header), payload: { transfer: 'tx' } })).toString('base64url')}`
    },
    pay: async (request) => {
      const response = await handler(request)
      if (response.status !== 200) throw new Error(`expected 200, got ${response.status}`)
    },
  }
}

function theirs() {
  const method = MppxMethod.from({
    name: 'test',
    intent: 'charge',
    schema: {
      request: z.object({ amount: z.string(), currency: z.string(), recipient: z.string() }),
      credential: { payload: z.object({ transfer: z.string() }) },
    },
  })
  const server = MppxMethod.toServer(method, {
    verify: async ({ credential }) => ({
      method: 'test',
      reference: credential.payload.transfer,
      status: 'success',
      timestamp: new Date().toISOString(),
    }),
  })
  const mppx = Mppx.create({ methods: [server], secretKey, realm: 'bench.test' })
  const route = mppx['test/charge'](request)
  return {
    challenge: async (request) => {
      const result = await route(request)
      if (result.status !== 402) throw new Error('expected 402')
      return result.challenge
    },
    credential: async () => {
      const result = await route(new Request(url))
      const header = result.challenge.headers.get('www-authenticate')
      return `Payment ${Buffer.from(JSON.stringify({ challenge: wireChallenge(header), payload: { transfer: 'tx' } })).toString('base64url')}`
    },
    pay: async (request) => {
      const result = await route(request)
      if (result.status !== 200) throw new Error(`mppx: expected 200, got ${result.status}`)
      result.withReceipt(new Response(null))
    },
  }
}

// The echoed challenge as it appears on the wire (request stays base64url), parsed independently.
function wireChallenge(header) {
  const params = {}
  for (const m of header.matchAll(/([a-z]+)="((?:[^"\\]|\\.)*)"/g))
    params[m[1]] = m[2].replace(/\\(.)/g, '$1')
  return params
}

export async function run() {
  const sides = { mppkit: ours(), mppx: theirs() }
  // Requests arrive from the HTTP layer: both sides get them built outside the timed region.
  const requests = (n) => Array.from({ length: n }, () => new Request(url))
  const issuance = await compare(
    {
      mppkit: (request) => sides.mppkit.challenge(request),
      mppx: (request) => sides.mppx.challenge(request),
    },
    { iterations: 4000, prepare: { mppkit: requests, mppx: requests } },
  )
  const paid = (side) => async (n) => {
    const credentials = await Promise.all(Array.from({ length: n }, () => side.credential()))
    return credentials.map((authorization) => new Request(url, { headers: { authorization } }))
  }
  const verify = await compare(
    { mppkit: (request) => sides.mppkit.pay(request), mppx: (request) => sides.mppx.pay(request) },
    { iterations: 2500, prepare: { mppkit: paid(sides.mppkit), mppx: paid(sides.mppx) } },
  )
  return [
    { name: '402 challenge issuance', ...issuance, target: 5 },
    { name: 'verify + consume (no-op method)', ...verify, target: 8 },
  ]
}
