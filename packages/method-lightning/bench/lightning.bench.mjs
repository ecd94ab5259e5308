// Lightning benchmarks (no peer SDK has a Lightning rail to compare with: absolute figures), on the devnet
// LND simulator through the unmodified `lightning` client: (a) charge verification per second (a paid
// preimage checked against its invoice and LND's settled record, challenge consumed, 200), (b) bearer
// actions per second on one session, on the memory store and on Redis, and for each the per-request
// overhead over an unpaid route. Challenges (each with a fresh invoice) are issued before timing.
import { Challenge, Credential, MemoryStore } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { startLightning } from '@mppkit/devnet'
import { authenticatedLndGrpc, pay } from 'lightning'
import { sessionClient } from '../dist/client/index.js'
import { chargeServer, sessionServer } from '../dist/server/index.js'

const realm = 'bench.lightning'
const secrets = ['lightning-bench-secret-0123456789abcdef']
const url = 'https://bench.lightning/r'
const rounds = 200
/** The challenge of a 402 with `payload`, as an Authorization header value. */
function authorization(response, payload) {
  const [challenge] = Challenge.parseAll(response.headers.get('www-authenticate'))
  return { authorization: Credential.format({ challenge, payload }), request: challenge.request }
}

async function timed(count, run) {
  const started = performance.now()
  for (let i = 0; i < count; i++) await run(i)
  return count / ((performance.now() - started) / 1000)
}

async function unpaidBaseline() {
  const handler = (request) =>
    Promise.resolve(Response.json({ ok: true, path: new URL(request.url).pathname }))
  for (let i = 0; i < 1000; i++) await handler(new Request(url))
  return timed(20_000, () => handler(new Request(url)))
}

const overhead = (paid, unpaid) => `${(1000 / paid - 1000 / unpaid).toFixed(3)} ms`

async function charges(nodes, baseline) {
  const payee = authenticatedLndGrpc(nodes.payee).lnd
  const payer = authenticatedLndGrpc(nodes.payer).lnd
  const server = createServer({ realm, secrets, methods: [chargeServer({ lnd: payee })] })
  const handler = server.protect({ offers: [{ method: 'lightning', request: { amount: '10' } }] }, () =>
    Response.json({ ok: true }),
  )
  const credentials = []
  for (let i = 0; i < rounds; i++) {
    const response = await handler(new Request(url))
    const paid = authorization(response, {})
    const { secret } = await pay({ lnd: payer, request: paid.request.methodDetails.invoice })
    credentials.push(authorization(response, { preimage: secret }).authorization)
  }
  const opsPerSecond = await timed(rounds, async (i) => {
    const response = await handler(new Request(url, { headers: { authorization: credentials[i] } }))
    if (response.status !== 200) throw new Error(`charge verification answered ${response.status}`)
  })
  return {
    name: 'lightning charge verification',
    text: `${Math.round(opsPerSecond)} ops/s; overhead over an unpaid route ${overhead(opsPerSecond, baseline)} (one LookupInvoice per credential)`,
  }
}

async function bearers(nodes, baseline, storeName, store) {
  const payee = authenticatedLndGrpc(nodes.payee).lnd
  const server = createServer({
    realm,
    secrets,
    store,
    methods: [sessionServer({ lnd: payee, depositSats: rounds * 2 })],
  })
  const handler = server.protect(
    { offers: [{ method: 'lightning', intent: 'session', request: { amount: '1' } }] },
    () => Response.json({ ok: true }),
  )
  const fetch = (input, init) => handler(new Request(input, init))
  const sessions = sessionClient({ lnd: authenticatedLndGrpc(nodes.payer).lnd, network: 'regtest', fetch })
  const { create: createClient } = await import('@mppkit/core/client')
  const opened = await createClient({ methods: [sessions], fetch }).fetch(url)
  if (opened.status !== 200) throw new Error(`open answered ${opened.status}`)
  const state = [...sessions.sessions.values()][0]
  const payload = { action: 'bearer', sessionId: state.sessionId, preimage: state.preimage }
  const credentials = []
  for (let i = 0; i < rounds; i++)
    credentials.push(authorization(await handler(new Request(url)), payload).authorization)
  const opsPerSecond = await timed(rounds, async (i) => {
    const response = await handler(new Request(url, { headers: { authorization: credentials[i] } }))
    if (response.status !== 200) throw new Error(`bearer answered ${response.status}`)
  })
  await server.close()
  return {
    name: `lightning session bearer (${storeName})`,
    text: `${Math.round(opsPerSecond)} ops/s on one session; overhead over an unpaid route ${overhead(opsPerSecond, baseline)}`,
  }
}

export async function run() {
  const network = await startLightning({ channelBalanceSat: 10_000_000 })
  const results = []
  try {
    const baseline = await unpaidBaseline()
    results.push({ name: 'unpaid route (baseline)', text: `${Math.round(baseline)} ops/s` })
    results.push(await charges(network.info.nodes, baseline))
    results.push(await bearers(network.info.nodes, baseline, 'memory store', new MemoryStore()))
    let redis
    try {
      const { RedisStore } = await import('@mppkit/store-redis')
      redis = new RedisStore({
        url: process.env.MPPKIT_REDIS_URL ?? 'redis://127.0.0.1:6379',
        keyPrefix: `mppkit-bench:${Date.now()}:`,
      })
      results.push(await bearers(network.info.nodes, baseline, 'Redis', redis))
    } catch (error) {
      results.push({
        name: 'lightning session bearer (Redis)',
        text: `skipped: ${error.message.split('\n')[0]}`,
      })
    } finally {
      await redis?.close?.()
    }
  } finally {
    await network.stop()
  }
  return results
}
