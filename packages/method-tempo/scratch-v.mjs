import { randomBytes } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1'

const Point = secp256k1.ProjectivePoint
const N = secp256k1.CURVE.n
function buildTable(base, w) {
  const windows = Math.ceil(256 / w) + 1,
    half = 1 << (w - 1)
  const rows = []
  let b = base
  for (let i = 0; i < windows; i++) {
    const row = [b]
    for (let j = 1; j < half; j++) row.push(row[j - 1].add(b))
    rows.push(Point.normalizeZ(row))
    b = row[half - 1].double()
  }
  return { w, rows }
}
function mul({ w, rows }, scalar) {
  let n = scalar,
    acc = Point.ZERO
  const W = BigInt(w),
    mask = (1n << W) - 1n,
    full = 1 << w,
    half = 1 << (w - 1)
  for (const row of rows) {
    if (n === 0n) break
    let digit = Number(n & mask)
    n >>= W
    if (digit > half) {
      digit -= full
      n += 1n
    }
    if (digit !== 0) acc = acc.add(digit > 0 ? row[digit - 1] : row[-digit - 1].negate())
  }
  return acc
}
const ks = Array.from({ length: 1000 }, () => BigInt('0x' + randomBytes(32).toString('hex')) % N)
for (const w of [6, 7, 8, 10]) {
  global.gc()
  const m0 = process.memoryUsage().heapUsed
  let t = performance.now()
  const P = Point.fromPrivateKey(randomBytes(32))
  const T = buildTable(P, w)
  const build = performance.now() - t
  global.gc()
  const mem = (process.memoryUsage().heapUsed - m0) / 1e6
  let bad = 0
  for (const k of ks.slice(0, 50)) if (!mul(T, k).equals(P.multiply(k))) bad++
  t = performance.now()
  for (const k of ks) mul(T, k)
  const per = performance.now() - t
  console.log(`w=${w} build ${build.toFixed(0)}ms mem ${mem.toFixed(2)}MB bad ${bad} mul ${per.toFixed(0)}us`)
}
