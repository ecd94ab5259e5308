// HTTP benchmarks: requests/s over loopback node:http (server in a child process, autocannon@9.0.0 as
// the load generator) for (a) an unpaid route (402 with a fresh challenge), (b) a paid route (a fresh
// valid credential per request, no-op charge method: the payment pipeline over HTTP), and the
// paid/unpaid ratio (goal ≥ 0.80: paying should cost little more than being asked to pay).
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'

const connections = 16
const amount = 20_000

function load(url, options = {}) {
  return new Promise((resolve, reject) => {
    autocannon({ url, connections, amount, ...options }, (error, result) =>
      error ? reject(error) : resolve(result),
    )
  })
}

export async function run() {
  const child = fork(fileURLToPath(new URL('./http-server.mjs', import.meta.url)), { stdio: 'inherit' })
  try {
    const [{ port }] = await once(child, 'message')
    const url = `http://127.0.0.1:${port}/r`
    child.send({ type: 'credentials', count: amount * 2 })
    const [{ credentials }] = await once(child, 'message')
    // Warm-up: JIT and connection setup on both sides.
    await load(url, { amount: 4_000 })
    const unpaid = await load(url)
    if (unpaid.non2xx !== amount) throw new Error(`unpaid: expected ${amount} 402s, got ${unpaid.non2xx}`)
    let next = 0
    const paid = await load(url, {
      requests: [
        {
          setupRequest: (request) => ({
            ...request,
            headers: { ...request.headers, authorization: credentials[next++] },
          }),
        },
      ],
    })
    if (paid['2xx'] !== amount) throw new Error(`paid: expected ${amount} 200s, got ${paid['2xx']}`)
    const ratio = paid.requests.average / unpaid.requests.average
    return [
      { name: 'HTTP unpaid route (402 + challenge)', mppkit: unpaid.requests.average, unit: 'req/s' },
      { name: 'HTTP paid route (test charge)', mppkit: paid.requests.average, unit: 'req/s' },
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
