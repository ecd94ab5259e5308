// Summarizes the server CPU profiles of session-http.bench.mjs (MPPKIT_BENCH_PROFILE=dir writes round
// 2's unpaid and paid requests to separate files) into the per-step breakdown of a request: self time
// per step in µs per request (each profiled round is 400 requests on each of 4 connections).
//   node packages/method-tempo/bench/profile-summary.mjs <paid.cpuprofile> [unpaid.cpuprofile] [top]
// With two files, the third column is what a paid request costs more than an unpaid one, per step.
import { readFileSync } from 'node:fs'

const args = process.argv.slice(2)
const files = args.filter((a) => a.endsWith('.cpuprofile'))
const top = Number(args.find((a) => /^\d+$/.test(a)) ?? 25)
const requests = 1600

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
  ['syscalls (writev, read)', /^(writev|writeUtf8String|writeBuffer|readv?)$/],
  [
    'node:http / streams / net',
    /node:(_http|http|net|stream|internal\/streams|internal\/http)|_http_|Socket|stream/,
  ],
  ['WHATWG Request/Response (undici)', /undici|Request|Response|Headers|fetch/],
  ['server core (authorize, receipts)', /packages\/core|@mppkit\/core/],
  ['tempo session method', /method-tempo/],
  ['(program) / native', /^\(program\)$/],
]

function summarize(file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'))
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const self = new Map()
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  const totals = new Map()
  const functions = new Map()
  for (const [id, time] of self) {
    const { functionName, url } = byId.get(id).callFrame
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
  return { totals, functions }
}

const [paid, unpaid] = files.map(summarize)
const perRequest = (t) => (t / requests).toFixed(1).padStart(7)
const busy = (s) => [...s.totals].filter(([n]) => n !== 'idle').reduce((a, [, t]) => a + t, 0)
console.log(`µs per request${unpaid ? '      paid   unpaid     more' : ''}`)
const names = [...new Set([...paid.totals.keys(), ...(unpaid?.totals.keys() ?? [])])]
const rows = names.map((name) => [name, paid.totals.get(name) ?? 0, unpaid?.totals.get(name) ?? 0])
for (const [name, p, u] of rows.sort((a, b) => b[1] - b[2] - (a[1] - a[2])))
  console.log(`${name.padEnd(36)} ${perRequest(p)}${unpaid ? ` ${perRequest(u)} ${perRequest(p - u)}` : ''}`)
console.log(
  `${'busy (all but idle)'.padEnd(36)} ${perRequest(busy(paid))}${unpaid ? ` ${perRequest(busy(unpaid))} ${perRequest(busy(paid) - busy(unpaid))}` : ''}`,
)
console.log('\ntop functions of the paid requests (self time, µs per request):')
for (const [name, time] of [...paid.functions].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`${perRequest(time)}  ${name}`)
