// HTTP benchmarks: requests/s over loopback node:http (server in a child process, autocannon@9.0.0 as
// the load generator) for (a) an unpaid route (402 with a fresh challenge), (b) a paid route (a fresh
// valid credential per request, no-op charge method: the payment pipeline over HTTP), and the
// paid/unpaid ratio (goal ≥ 0.80: paying should cost little more than being asked to pay).
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

const connections = 16
const amount = 5_000
const rounds = 5

function load(url, options = {}) {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections, amount, ...options }, (error, result) =>
      error ? reject(error) : resolve(result),
    )
  })
}

const rate = (result) => result.requests.total / result.duration
const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]

export async function run() {
  const child = fork(fileURLToPath(new URL('./http-server.mjs', import.meta.url)), { stdio: 'inherit' })
  try {
    const [{ port }] = await once(child, 'message')
    const url = `http://127.0.0.1:${port}/r`
    child.send({ type: 'credentials', count: amount * rounds })
    const [{ credentials }] = await once(child, 'message')
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
    await load(url, { amount: 2_000 })
    // Rounds alternate unpaid, paid, unpaid, paid… so background load hits both alike; medians reported.
    const unpaid = []
    const paid = []
    for (let round = 0; round < rounds; round++) {
      const a = await load(url)
      if (a.non2xx !== amount) throw new Error(`unpaid: expected ${amount} 402s, got ${a.non2xx}`)
      unpaid.push(rate(a))
      const b = await load(url, { requests: paidRequests })
      if (b['2xx'] !== amount) throw new Error(`paid: expected ${amount} 200s, got ${b['2xx']}`)
      paid.push(rate(b))
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
