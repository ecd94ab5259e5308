// Memory benchmark (not a timed test): 1,000,000 challenges issued and 100,000 credentials consumed by
// one Server on a MemoryStore, showing that the store stays bounded by its TTLs and its `maxEntries` cap
// while RSS and heap stay flat.
//
// Time is virtual: the Server and the MemoryStore share a clock that the bench advances, so that a minute
// of TTL passes in well under a second of wall time. A consumed challenge id is kept until its challenge
// expires plus 60 s (core's replay window), so with challenges valid 1 s and one credential per 10 ms
// of virtual time, about 6,100 ids are live at any moment: that, not the number consumed, is what the
// store holds. A final burst with the clock stopped fills the store to its cap, where it refuses new
// keys with a 503 instead of forgetting a consumed id (forgetting would allow a replay).
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Challenge, Credential, MemoryStore } from '../dist/index.js'
import { create as createServer } from '../dist/server/index.js'
import { noopMethod } from '../dist/testing/index.js'

const challenges = 1_000_000
const credentials = 100_000
const maxEntries = 10_000
const stepMs = 10
const burst = 6_000
const url = 'http://bench.test/resource'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc')

function memory() {
  gc()
  gc()
  const { rss, heapUsed } = process.memoryUsage()
  return { rss, heapUsed }
}
const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`
const delta = (after, before) => `${after >= before ? '+' : '-'}${mb(Math.abs(after - before))}`

export async function run() {
  let clock = Date.UTC(2030, 0, 1)
  const now = () => clock
  const store = new MemoryStore({ maxEntries, now })
  const server = createServer({
    realm: 'bench.test',
    secrets: ['bench-secret-key-0123456789abcdefghijklmnop'],
    methods: [noopMethod()],
    store,
    now,
    expiresIn: 1,
  })
  const route = {
    offers: [{ method: 'test', request: { amount: '1000', currency: 'usd', recipient: 'merchant' } }],
  }
  const handler = server.protect(route, () => new Response(null))

  const start = memory()
  const rows = []

  // 1. Issuance: the full protect() path of an unpaid GET. Building a Request costs more than issuing
  // its challenge (~14 µs vs ~8 µs here), so 1,024 requests are built once and reused round-robin: a
  // GET has no body, and issuance reads nothing else that a reuse could change.
  const requests = Array.from({ length: 1024 }, () => new Request(url))
  let started = performance.now()
  for (let i = 0; i < challenges; i++) {
    const response = await handler(requests[i & 1023])
    if (i % 100_000 === 0 && response.status !== 402) throw new Error(`expected 402, got ${response.status}`)
  }
  const issuanceSeconds = (performance.now() - started) / 1000
  const afterIssuance = memory()
  rows.push({
    name: 'memory: 1M challenges issued',
    text: `${(challenges / issuanceSeconds).toFixed(0)} /s; store size ${store.size} (issuance is stateless); RSS ${mb(start.rss)} → ${mb(afterIssuance.rss)} (${delta(afterIssuance.rss, start.rss)}), heapUsed ${mb(start.heapUsed)} → ${mb(afterIssuance.heapUsed)} (${delta(afterIssuance.heapUsed, start.heapUsed)})`,
  })

  // 2. 100,000 credentials, each a fresh challenge paid and consumed, 10 ms of virtual time apart.
  const pay = async () => {
    const issued = await handler(requests[0])
    const challenge = Challenge.parseAll(issued.headers.get('www-authenticate'))[0]
    const authorization = Credential.format({ challenge, payload: { transfer: 'tx' } })
    return handler(new Request(url, { headers: { authorization } }))
  }
  let largest = 0
  started = performance.now()
  for (let i = 0; i < credentials; i++) {
    const response = await pay()
    if (response.status !== 200) throw new Error(`expected 200, got ${response.status}`)
    clock += stepMs
    if (store.size > largest) largest = store.size
  }
  const consumeSeconds = (performance.now() - started) / 1000
  const afterConsume = memory()
  rows.push({
    name: 'memory: 100k credentials consumed',
    text: `${(credentials / consumeSeconds).toFixed(0)} /s; store size ${store.size} at the end, largest ${largest} (maxEntries ${maxEntries}; ~61 s of TTL at one credential per ${stepMs} ms ≈ ${Math.round(61_000 / stepMs)} live ids); RSS → ${mb(afterConsume.rss)} (${delta(afterConsume.rss, start.rss)} since start), heapUsed → ${mb(afterConsume.heapUsed)} (${delta(afterConsume.heapUsed, start.heapUsed)})`,
  })

  // 3. The clock stops: nothing expires, so the store fills to its cap and then refuses with a 503.
  let refused = 0
  for (let i = 0; i < burst; i++) {
    const response = await pay()
    if (response.status === 503) refused++
    else if (response.status !== 200) throw new Error(`expected 200 or 503, got ${response.status}`)
    if (store.size > largest) largest = store.size
  }
  rows.push({
    name: 'memory: cap',
    text: `${burst} more credentials with the clock stopped: store size ${store.size} (largest ever ${largest} ≤ maxEntries ${maxEntries}), ${refused} refused with 503 rather than forgetting a consumed id`,
  })
  // Once their TTL has passed, every id is swept.
  clock += 120_000
  store.sweep()
  const end = memory()
  rows.push({
    name: 'memory: after TTL',
    text: `2 virtual minutes later: store size ${store.size}; RSS ${mb(end.rss)} (${delta(end.rss, start.rss)} since start), heapUsed ${mb(end.heapUsed)} (${delta(end.heapUsed, start.heapUsed)})`,
  })
  return rows
}
