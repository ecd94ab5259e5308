// HTTP benchmarks: requests/s over loopback node:http (server in a child process, autocannon@9.0.0 as
// the load generator) for (a) an unpaid route (402 with a fresh challenge), (b) a paid route (a fresh
// valid credential per request, no-op charge method: the payment pipeline over HTTP), and the
// paid/unpaid ratio (goal ≥ 0.80: paying should cost little more than being asked to pay).
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

const connections = 16
// Fixed-duration runs: autocannon checks `amount` on a one-second tick, which quantizes short runs.
const duration = 2
const rounds = 3
// Credentials per paid round: above what 2 s at 25,000 req/s would use (the fastest paid rate seen here
// is ~14,000). Every round's batch is made before the warm-up, so the garbage of making them (a challenge
// issued per credential) is collected before any timed round, not during the paid ones.
const credentialCount = 50_000

function load(url, options = {}) {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections, duration, ...options }, (error, result) =>
      error ? reject(error) : resolve(result),
    )
  })
}

const seconds = (result) => (result.finish - result.start) / 1000
const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]

export async function run() {
  const child = fork(fileURLToPath(new URL('./http-server.mjs', import.meta.url)), { stdio: 'inherit' })
  try {
    const [{ port }] = await once(child, 'message')
    const url = `http://127.0.0.1:${port}/r`
    const batches = []
    for (let round = 0; round < rounds; round++) {
      child.send({ type: 'credentials', count: credentialCount })
      const [{ credentials }] = await once(child, 'message')
      batches.push(credentials)
    }
    let credentials = []
    let next = 0
    const paidRequests = [
      {
        setupRequest: (request) => ({
          ...request,
          headers: { ...request.headers, authorization: credentials[next++] },
        }),
      },
    ]
    // Warm-up: JIT and connections on both sides.
    await load(url, { duration: 1 })
    // Rounds alternate unpaid, paid, unpaid, paid… so background load hits both alike; medians reported.
    const unpaid = []
    const paid = []
    for (let round = 0; round < rounds; round++) {
      const a = await load(url)
      if (a['2xx'] !== 0) throw new Error(`unpaid: expected only 402s, got ${a['2xx']} 2xx`)
      unpaid.push(a.requests.total / seconds(a))
      credentials = batches[round]
      next = 0
      const b = await load(url, { requests: paidRequests })
      if (next > credentials.length) throw new Error('paid: ran out of credentials; raise credentialCount')
      if (b.non2xx !== 0) throw new Error(`paid: expected only 200s, got ${b.non2xx} others`)
      paid.push(b['2xx'] / seconds(b))
    }
    const ratio = median(paid) / median(unpaid)
    return [
      { name: 'HTTP unpaid route (402 + challenge)', mppkit: median(unpaid), unit: 'req/s' },
      { name: 'HTTP paid route (test charge)', mppkit: median(paid), unit: 'req/s' },
      {
        name: 'HTTP paid/unpaid',
        text: `${ratio.toFixed(2)}× (goal ≥ 0.80) ${ratio >= 0.8 ? '✓' : '✗'}`,
      },
      {
        name: 'HTTP paid route (tempo session voucher)',
        text: 'not measured here: a voucher needs a channel opened on a chain (anvil via @mppkit/devnet); see method-tempo/bench for voucher verification ops/s',
      },
    ]
  } finally {
    child.kill()
  }
}
