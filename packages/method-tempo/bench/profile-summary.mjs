// Summarizes a `node --cpu-prof` profile of session-server.mjs (MPPKIT_BENCH_PROFILE=dir) into the
// per-step breakdown of a paid request: self time per step, as a share of all sampled time.
//   node packages/method-tempo/bench/profile-summary.mjs <file.cpuprofile> [top]
import { readFileSync } from 'node:fs'

const [file, top = '25'] = process.argv.slice(2)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const self = new Map()
const deltas = profile.timeDeltas
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i]
  self.set(id, (self.get(id) ?? 0) + (deltas[i] ?? 0))
}
const total = [...self.values()].reduce((a, b) => a + b, 0)

// First match wins: the function name or its script URL.
const steps = [
  ['idle', /^\(idle\)$/],
  ['garbage collection', /^\(garbage collector\)$/],
  ['signature recovery (secp256k1)', /secp256k1|ecdsaRecover|ecdsa|noble/i],
  ['keccak / EIP-712 digest', /keccak|sha3|Voucher|digest|typedData|hashStruct/i],
  ['HMAC / challenge id', /createHmac|Hmac|hmac|Digest/],
  ['JCS / JSON', /Jcs|JSON|stringify|parse$/],
  ['base64url', /base64|Base64/],
  ['hex / BigInt / address', /hex|Hex|BigInt|Address|checksum/i],
  ['zod / schemas', /zod|safeParse|_parse|schema/i],
  ['store', /Store|store/],
  [
    'node:http / streams / net',
    /node:(_http|http|net|stream|internal\/streams|internal\/http)|_http_|Socket|stream/,
  ],
  ['WHATWG Request/Response (undici)', /undici|Request|Response|Headers|fetch/],
  ['server core (authorize, receipts)', /packages\/core|@mppkit\/core/],
  ['tempo session method', /method-tempo/],
  ['(program) / native', /^\(program\)$/],
]
const totals = new Map()
const functions = new Map()
for (const [id, time] of self) {
  const node = byId.get(id)
  const { functionName, url } = node.callFrame
  const label = `${functionName || '(anonymous)'} ${url.replace(/^.*\/(node_modules|packages)\//, '$1/')}`
  functions.set(label, (functions.get(label) ?? 0) + time)
  let step = 'other'
  for (const [name, pattern] of steps)
    if (pattern.test(functionName) || pattern.test(url)) {
      step = name
      break
    }
  totals.set(step, (totals.get(step) ?? 0) + time)
}
const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)}%`
console.log(`total sampled ${(total / 1e6).toFixed(2)} s`)
for (const [name, time] of [...totals].sort((a, b) => b[1] - a[1])) console.log(`${pct(time)}  ${name}`)
console.log('\ntop functions (self time):')
for (const [name, time] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, Number(top)))
  console.log(`${pct(time)}  ${name}`)
