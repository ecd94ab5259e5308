/**
 * Keccak-256 (the pre-standard padding Ethereum uses, not FIPS SHA3-256) on 32-bit lane halves, with
 * Keccak-f[1600]'s round unrolled over local variables. About five times faster than the generic sponge
 * on the short, single-block inputs of voucher digests (two hashes per voucher), and equal to it on every
 * input (property-tested against `@noble/hashes` in test/voucher-keccak.test.ts).
 *
 * The unrolled round follows from the tables of the specification: θ (column parities), ρ (lane `x + 5y`
 * rotated by its triangular-number offset) and π (moved to `(y, 2x + 3y)`), χ (row nonlinearity), ι
 * (round constant from the LFSR `x^8 + x^6 + x^5 + x^4 + 1`).
 *
 * @see https://keccak.team/keccak_specs_summary.html (Keccak-f[1600], pad10*1 with suffix 0x01)
 */

const rate = 136
const rounds = 24

const constantsHi = new Int32Array(rounds)
const constantsLo = new Int32Array(rounds)
{
  let lfsr = 1
  for (let round = 0; round < rounds; round++) {
    for (let j = 0; j < 7; j++) {
      if (lfsr & 1) {
        const bit = (1 << j) - 1
        if (bit < 32) constantsLo[round]! ^= 1 << bit
        else constantsHi[round]! ^= 1 << (bit - 32)
      }
      lfsr = lfsr & 0x80 ? ((lfsr << 1) ^ 0x71) & 0xff : lfsr << 1
    }
  }
}

/** The sponge state: 25 lanes as (high, low) 32-bit halves, lane `i` at `[2i, 2i + 1]`. */
const state = new Int32Array(50)

function permute(s: Int32Array): void {
  let h0 = s[0]!
  let l0 = s[1]!
  let h1 = s[2]!
  let l1 = s[3]!
  let h2 = s[4]!
  let l2 = s[5]!
  let h3 = s[6]!
  let l3 = s[7]!
  let h4 = s[8]!
  let l4 = s[9]!
  let h5 = s[10]!
  let l5 = s[11]!
  let h6 = s[12]!
  let l6 = s[13]!
  let h7 = s[14]!
  let l7 = s[15]!
  let h8 = s[16]!
  let l8 = s[17]!
  let h9 = s[18]!
  let l9 = s[19]!
  let h10 = s[20]!
  let l10 = s[21]!
  let h11 = s[22]!
  let l11 = s[23]!
  let h12 = s[24]!
  let l12 = s[25]!
  let h13 = s[26]!
  let l13 = s[27]!
  let h14 = s[28]!
  let l14 = s[29]!
  let h15 = s[30]!
  let l15 = s[31]!
  let h16 = s[32]!
  let l16 = s[33]!
  let h17 = s[34]!
  let l17 = s[35]!
  let h18 = s[36]!
  let l18 = s[37]!
  let h19 = s[38]!
  let l19 = s[39]!
  let h20 = s[40]!
  let l20 = s[41]!
  let h21 = s[42]!
  let l21 = s[43]!
  let h22 = s[44]!
  let l22 = s[45]!
  let h23 = s[46]!
  let l23 = s[47]!
  let h24 = s[48]!
  let l24 = s[49]!
  for (let round = 0; round < rounds; round++) {
    const c0h = h0 ^ h5 ^ h10 ^ h15 ^ h20
    const c0l = l0 ^ l5 ^ l10 ^ l15 ^ l20
    const c1h = h1 ^ h6 ^ h11 ^ h16 ^ h21
    const c1l = l1 ^ l6 ^ l11 ^ l16 ^ l21
    const c2h = h2 ^ h7 ^ h12 ^ h17 ^ h22
    const c2l = l2 ^ l7 ^ l12 ^ l17 ^ l22
    const c3h = h3 ^ h8 ^ h13 ^ h18 ^ h23
    const c3l = l3 ^ l8 ^ l13 ^ l18 ^ l23
    const c4h = h4 ^ h9 ^ h14 ^ h19 ^ h24
    const c4l = l4 ^ l9 ^ l14 ^ l19 ^ l24
    const d0h = c4h ^ ((c1h << 1) | (c1l >>> 31))
    const d0l = c4l ^ ((c1l << 1) | (c1h >>> 31))
    const d1h = c0h ^ ((c2h << 1) | (c2l >>> 31))
    const d1l = c0l ^ ((c2l << 1) | (c2h >>> 31))
    const d2h = c1h ^ ((c3h << 1) | (c3l >>> 31))
    const d2l = c1l ^ ((c3l << 1) | (c3h >>> 31))
    const d3h = c2h ^ ((c4h << 1) | (c4l >>> 31))
    const d3l = c2l ^ ((c4l << 1) | (c4h >>> 31))
    const d4h = c3h ^ ((c0h << 1) | (c0l >>> 31))
    const d4l = c3l ^ ((c0l << 1) | (c0h >>> 31))
    const b0h = h0 ^ d0h
    const b0l = l0 ^ d0l
    const a1h = h1 ^ d1h
    const a1l = l1 ^ d1l
    const b10h = (a1h << 1) | (a1l >>> 31)
    const b10l = (a1l << 1) | (a1h >>> 31)
    const a2h = l2 ^ d2l
    const a2l = h2 ^ d2h
    const b20h = (a2h << 30) | (a2l >>> 2)
    const b20l = (a2l << 30) | (a2h >>> 2)
    const a3h = h3 ^ d3h
    const a3l = l3 ^ d3l
    const b5h = (a3h << 28) | (a3l >>> 4)
    const b5l = (a3l << 28) | (a3h >>> 4)
    const a4h = h4 ^ d4h
    const a4l = l4 ^ d4l
    const b15h = (a4h << 27) | (a4l >>> 5)
    const b15l = (a4l << 27) | (a4h >>> 5)
    const a5h = l5 ^ d0l
    const a5l = h5 ^ d0h
    const b16h = (a5h << 4) | (a5l >>> 28)
    const b16l = (a5l << 4) | (a5h >>> 28)
    const a6h = l6 ^ d1l
    const a6l = h6 ^ d1h
    const b1h = (a6h << 12) | (a6l >>> 20)
    const b1l = (a6l << 12) | (a6h >>> 20)
    const a7h = h7 ^ d2h
    const a7l = l7 ^ d2l
    const b11h = (a7h << 6) | (a7l >>> 26)
    const b11l = (a7l << 6) | (a7h >>> 26)
    const a8h = l8 ^ d3l
    const a8l = h8 ^ d3h
    const b21h = (a8h << 23) | (a8l >>> 9)
    const b21l = (a8l << 23) | (a8h >>> 9)
    const a9h = h9 ^ d4h
    const a9l = l9 ^ d4l
    const b6h = (a9h << 20) | (a9l >>> 12)
    const b6l = (a9l << 20) | (a9h >>> 12)
    const a10h = h10 ^ d0h
    const a10l = l10 ^ d0l
    const b7h = (a10h << 3) | (a10l >>> 29)
    const b7l = (a10l << 3) | (a10h >>> 29)
    const a11h = h11 ^ d1h
    const a11l = l11 ^ d1l
    const b17h = (a11h << 10) | (a11l >>> 22)
    const b17l = (a11l << 10) | (a11h >>> 22)
    const a12h = l12 ^ d2l
    const a12l = h12 ^ d2h
    const b2h = (a12h << 11) | (a12l >>> 21)
    const b2l = (a12l << 11) | (a12h >>> 21)
    const a13h = h13 ^ d3h
    const a13l = l13 ^ d3l
    const b12h = (a13h << 25) | (a13l >>> 7)
    const b12l = (a13l << 25) | (a13h >>> 7)
    const a14h = l14 ^ d4l
    const a14l = h14 ^ d4h
    const b22h = (a14h << 7) | (a14l >>> 25)
    const b22l = (a14l << 7) | (a14h >>> 25)
    const a15h = l15 ^ d0l
    const a15l = h15 ^ d0h
    const b23h = (a15h << 9) | (a15l >>> 23)
    const b23l = (a15l << 9) | (a15h >>> 23)
    const a16h = l16 ^ d1l
    const a16l = h16 ^ d1h
    const b8h = (a16h << 13) | (a16l >>> 19)
    const b8l = (a16l << 13) | (a16h >>> 19)
    const a17h = h17 ^ d2h
    const a17l = l17 ^ d2l
    const b18h = (a17h << 15) | (a17l >>> 17)
    const b18l = (a17l << 15) | (a17h >>> 17)
    const a18h = h18 ^ d3h
    const a18l = l18 ^ d3l
    const b3h = (a18h << 21) | (a18l >>> 11)
    const b3l = (a18l << 21) | (a18h >>> 11)
    const a19h = h19 ^ d4h
    const a19l = l19 ^ d4l
    const b13h = (a19h << 8) | (a19l >>> 24)
    const b13l = (a19l << 8) | (a19h >>> 24)
    const a20h = h20 ^ d0h
    const a20l = l20 ^ d0l
    const b14h = (a20h << 18) | (a20l >>> 14)
    const b14l = (a20l << 18) | (a20h >>> 14)
    const a21h = h21 ^ d1h
    const a21l = l21 ^ d1l
    const b24h = (a21h << 2) | (a21l >>> 30)
    const b24l = (a21l << 2) | (a21h >>> 30)
    const a22h = l22 ^ d2l
    const a22l = h22 ^ d2h
    const b9h = (a22h << 29) | (a22l >>> 3)
    const b9l = (a22l << 29) | (a22h >>> 3)
    const a23h = l23 ^ d3l
    const a23l = h23 ^ d3h
    const b19h = (a23h << 24) | (a23l >>> 8)
    const b19l = (a23l << 24) | (a23h >>> 8)
    const a24h = h24 ^ d4h
    const a24l = l24 ^ d4l
    const b4h = (a24h << 14) | (a24l >>> 18)
    const b4l = (a24l << 14) | (a24h >>> 18)
    h0 = b0h ^ (~b1h & b2h)
    l0 = b0l ^ (~b1l & b2l)
    h1 = b1h ^ (~b2h & b3h)
    l1 = b1l ^ (~b2l & b3l)
    h2 = b2h ^ (~b3h & b4h)
    l2 = b2l ^ (~b3l & b4l)
    h3 = b3h ^ (~b4h & b0h)
    l3 = b3l ^ (~b4l & b0l)
    h4 = b4h ^ (~b0h & b1h)
    l4 = b4l ^ (~b0l & b1l)
    h5 = b5h ^ (~b6h & b7h)
    l5 = b5l ^ (~b6l & b7l)
    h6 = b6h ^ (~b7h & b8h)
    l6 = b6l ^ (~b7l & b8l)
    h7 = b7h ^ (~b8h & b9h)
    l7 = b7l ^ (~b8l & b9l)
    h8 = b8h ^ (~b9h & b5h)
    l8 = b8l ^ (~b9l & b5l)
    h9 = b9h ^ (~b5h & b6h)
    l9 = b9l ^ (~b5l & b6l)
    h10 = b10h ^ (~b11h & b12h)
    l10 = b10l ^ (~b11l & b12l)
    h11 = b11h ^ (~b12h & b13h)
    l11 = b11l ^ (~b12l & b13l)
    h12 = b12h ^ (~b13h & b14h)
    l12 = b12l ^ (~b13l & b14l)
    h13 = b13h ^ (~b14h & b10h)
    l13 = b13l ^ (~b14l & b10l)
    h14 = b14h ^ (~b10h & b11h)
    l14 = b14l ^ (~b10l & b11l)
    h15 = b15h ^ (~b16h & b17h)
    l15 = b15l ^ (~b16l & b17l)
    h16 = b16h ^ (~b17h & b18h)
    l16 = b16l ^ (~b17l & b18l)
    h17 = b17h ^ (~b18h & b19h)
    l17 = b17l ^ (~b18l & b19l)
    h18 = b18h ^ (~b19h & b15h)
    l18 = b18l ^ (~b19l & b15l)
    h19 = b19h ^ (~b15h & b16h)
    l19 = b19l ^ (~b15l & b16l)
    h20 = b20h ^ (~b21h & b22h)
    l20 = b20l ^ (~b21l & b22l)
    h21 = b21h ^ (~b22h & b23h)
    l21 = b21l ^ (~b22l & b23l)
    h22 = b22h ^ (~b23h & b24h)
    l22 = b22l ^ (~b23l & b24l)
    h23 = b23h ^ (~b24h & b20h)
    l23 = b23l ^ (~b24l & b20l)
    h24 = b24h ^ (~b20h & b21h)
    l24 = b24l ^ (~b20l & b21l)
    h0 ^= constantsHi[round]!
    l0 ^= constantsLo[round]!
  }
  s[0] = h0
  s[1] = l0
  s[2] = h1
  s[3] = l1
  s[4] = h2
  s[5] = l2
  s[6] = h3
  s[7] = l3
  s[8] = h4
  s[9] = l4
  s[10] = h5
  s[11] = l5
  s[12] = h6
  s[13] = l6
  s[14] = h7
  s[15] = l7
  s[16] = h8
  s[17] = l8
  s[18] = h9
  s[19] = l9
  s[20] = h10
  s[21] = l10
  s[22] = h11
  s[23] = l11
  s[24] = h12
  s[25] = l12
  s[26] = h13
  s[27] = l13
  s[28] = h14
  s[29] = l14
  s[30] = h15
  s[31] = l15
  s[32] = h16
  s[33] = l16
  s[34] = h17
  s[35] = l17
  s[36] = h18
  s[37] = l18
  s[38] = h19
  s[39] = l19
  s[40] = h20
  s[41] = l20
  s[42] = h21
  s[43] = l21
  s[44] = h22
  s[45] = l22
  s[46] = h23
  s[47] = l23
  s[48] = h24
  s[49] = l24
}

/** XORs `length` bytes of `input` from `offset` into the state, little-endian per lane. */
function absorb(input: Uint8Array, offset: number, length: number): void {
  for (let at = 0; at < length; at++) xorByte(at, input[offset + at]!)
}

function xorByte(at: number, byte: number): void {
  // Byte `at` is in lane `at >> 3`; bytes 0-3 of a lane are its low half, 4-7 its high half.
  state[((at >> 3) << 1) | (at & 4 ? 0 : 1)]! ^= byte << ((at & 3) << 3)
}

/**
 * Keccak-256 of `input`, written to `out` (32 bytes, default a new array).
 *
 * @example
 * ```ts
 * keccak256(new Uint8Array()) // c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470
 * ```
 * @see https://keccak.team/keccak_specs_summary.html
 */
export function keccak256(input: Uint8Array, out: Uint8Array = new Uint8Array(32)): Uint8Array {
  state.fill(0)
  let offset = 0
  for (; input.length - offset >= rate; offset += rate) {
    absorb(input, offset, rate)
    permute(state)
  }
  const tail = input.length - offset
  absorb(input, offset, tail)
  // pad10*1 with Keccak's suffix: 0x01 after the message, 0x80 in the last byte of the block.
  xorByte(tail, 0x01)
  xorByte(rate - 1, 0x80)
  permute(state)
  for (let at = 0; at < 32; at++)
    out[at] = (state[((at >> 3) << 1) | (at & 4 ? 0 : 1)]! >>> ((at & 3) << 3)) & 0xff
  return out
}
