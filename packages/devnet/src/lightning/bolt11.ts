import { createHash } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1'
import { DevnetError } from '../errors.js'

/**
 * The fields of a BOLT 11 payment request this simulator reads and writes.
 *
 * @example
 * ```ts
 * const request: PaymentRequest = decodePaymentRequest('lnbcrt10u1p…')
 * ```
 * @see https://github.com/lightning/bolts/blob/master/11-payment-encoding.md
 */
export interface PaymentRequest {
  /** Bech32 currency prefix: `bcrt` for regtest. */
  currency: string
  /** Amount in millisatoshis; `undefined` for an amountless ("any amount") invoice. */
  amountMsat: bigint | undefined
  /** Creation time, seconds since the Unix epoch. */
  timestamp: number
  /** `p`: SHA-256 of the preimage. */
  paymentHash: Buffer
  /** `s`: the payment secret (payment address). */
  paymentSecret: Buffer | undefined
  /** `d`: short description. */
  description: string | undefined
  /** `h`: SHA-256 of a long description. */
  descriptionHash: Buffer | undefined
  /** `x`: seconds until expiry (BOLT 11 default 3600). */
  expirySeconds: number
  /** `c`: `min_final_cltv_expiry_delta` (BOLT 11 default 18). */
  minFinalCltvExpiry: number
  /** `9`: feature bits set. */
  features: number[]
  /** The 33-byte compressed node key that signed the request (recovered, or from `n`). */
  payee: Buffer
}

const charset = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'
const generator = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]

const polymod = (values: readonly number[]) => {
  let checksum = 1
  for (const value of values) {
    const top = checksum >>> 25
    checksum = ((checksum & 0x1ffffff) << 5) ^ value
    for (let index = 0; index < 5; index++) if ((top >>> index) & 1) checksum ^= generator[index] ?? 0
  }
  return checksum >>> 0
}
const expandPrefix = (prefix: string) => [
  ...[...prefix].map((character) => character.charCodeAt(0) >> 5),
  0,
  ...[...prefix].map((character) => character.charCodeAt(0) & 31),
]

const convertBits = (data: ArrayLike<number>, from: number, to: number, pad: boolean): number[] => {
  let accumulator = 0
  let bits = 0
  const result: number[] = []
  const mask = (1 << to) - 1
  for (let index = 0; index < data.length; index++) {
    accumulator = (accumulator << from) | (data[index] ?? 0)
    bits += from
    while (bits >= to) {
      bits -= to
      result.push((accumulator >>> bits) & mask)
    }
    accumulator &= (1 << bits) - 1
  }
  if (pad && bits > 0) result.push((accumulator << (to - bits)) & mask)
  return result
}

const numberAsWords = (value: number): number[] => {
  const words: number[] = []
  for (let rest = value; rest > 0; rest = Math.floor(rest / 32)) words.unshift(rest % 32)
  return words
}
const wordsAsNumber = (words: readonly number[]) => words.reduce((total, word) => total * 32 + word, 0)

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest()

// BOLT 11: amount = digits × multiplier of one bitcoin (10^11 msat): m 10^-3, u 10^-6, n 10^-9, p 10^-12.
const multipliers: ReadonlyArray<readonly [string, bigint]> = [
  ['m', 100_000_000n],
  ['u', 100_000n],
  ['n', 100n],
]
const amountAsPrefix = (amountMsat: bigint) => {
  if (amountMsat % 100_000_000_000n === 0n) return `${amountMsat / 100_000_000_000n}`
  for (const [letter, msat] of multipliers)
    if (amountMsat % msat === 0n) return `${amountMsat / msat}${letter}`
  // "p" is a tenth of a millisatoshi: msat × 10.
  return `${amountMsat * 10n}p`
}

const fail = (message: string): never => {
  throw new DevnetError(message, { code: 'lightning_invalid_payment_request' })
}

/**
 * Encodes and signs a BOLT 11 payment request with the node's secp256k1 key (recoverable ECDSA
 * over SHA-256 of the human-readable part and data, low-S), the way LND's `zpay32` does.
 *
 * @example
 * ```ts
 * const request = encodePaymentRequest({ currency: 'bcrt', amountMsat: 10_000n, paymentHash, paymentSecret, description: 'coffee', expirySeconds: 3600, minFinalCltvExpiry: 80, features: [9, 14, 17], timestamp }, privateKey)
 * ```
 * @see https://github.com/lightning/bolts/blob/master/11-payment-encoding.md
 */
export function encodePaymentRequest(request: Omit<PaymentRequest, 'payee'>, privateKey: Uint8Array): string {
  const prefix = `ln${request.currency}${request.amountMsat === undefined || request.amountMsat === 0n ? '' : amountAsPrefix(request.amountMsat)}`
  const tagged = (type: number, words: readonly number[]) => {
    // "data_length (10 bits, big-endian)" then the data words.
    if (words.length >= 1024) fail('payment request field too long')
    return [type, words.length >> 5, words.length & 31, ...words]
  }
  const words: number[] = []
  const timestampWords = numberAsWords(request.timestamp)
  words.push(...new Array<number>(7 - timestampWords.length).fill(0), ...timestampWords)
  words.push(...tagged(1, convertBits(request.paymentHash, 8, 5, true)))
  if (request.paymentSecret) words.push(...tagged(16, convertBits(request.paymentSecret, 8, 5, true)))
  if (request.descriptionHash) words.push(...tagged(23, convertBits(request.descriptionHash, 8, 5, true)))
  else words.push(...tagged(13, convertBits(Buffer.from(request.description ?? '', 'utf8'), 8, 5, true)))
  words.push(...tagged(6, numberAsWords(request.expirySeconds)))
  words.push(...tagged(24, numberAsWords(request.minFinalCltvExpiry)))
  if (request.features.length > 0) {
    const featureWords = new Array<number>(Math.floor(Math.max(...request.features) / 5) + 1).fill(0)
    for (const bit of request.features) {
      const index = featureWords.length - 1 - Math.floor(bit / 5)
      featureWords[index] = (featureWords[index] ?? 0) | (1 << (bit % 5))
    }
    words.push(...tagged(5, featureWords))
  }
  // "signature: ... over the SHA2 256-bit hash of the human-readable part, represented as UTF-8
  // bytes, concatenated with the data part (excluding the signature) with 0 bits appended to pad
  // the data to the next byte boundary".
  const digest = sha256(
    Buffer.concat([Buffer.from(prefix, 'utf8'), Buffer.from(convertBits(words, 5, 8, true))]),
  )
  const signature = secp256k1.sign(digest, privateKey, { lowS: true })
  const signatureBytes = Buffer.concat([
    Buffer.from(signature.toCompactRawBytes()),
    Buffer.from([signature.recovery]),
  ])
  words.push(...convertBits(signatureBytes, 8, 5, true))
  const checksum = polymod([...expandPrefix(prefix), ...words, 0, 0, 0, 0, 0, 0]) ^ 1
  for (let index = 0; index < 6; index++) words.push((checksum >>> (5 * (5 - index))) & 31)
  return `${prefix}1${words.map((word) => charset[word]).join('')}`
}

const currencies = ['bcrt', 'tbs', 'bc', 'tb', 'sb']

/**
 * Decodes a BOLT 11 payment request, checking the bech32 checksum and the signature, and recovers
 * the payee's node key from the signature (or checks it against the `n` field).
 *
 * @example
 * ```ts
 * const { amountMsat, paymentHash, payee } = decodePaymentRequest(request)
 * ```
 * @see https://github.com/lightning/bolts/blob/master/11-payment-encoding.md
 */
export function decodePaymentRequest(text: string): PaymentRequest {
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) fail('mixed-case payment request')
  const lower = text.toLowerCase().replace(/^lightning:/, '')
  const separator = lower.lastIndexOf('1')
  if (separator < 3 || lower.length - separator - 1 < 6) fail('invalid bech32 string')
  const prefix = lower.slice(0, separator)
  const words = [...lower.slice(separator + 1)].map((character) => {
    const word = charset.indexOf(character)
    return word === -1 ? fail('invalid bech32 character') : word
  })
  if (polymod([...expandPrefix(prefix), ...words]) !== 1) fail('invalid bech32 checksum')
  const data = words.slice(0, -6)
  if (data.length < 7 + 104) fail('payment request too short')

  if (!prefix.startsWith('ln')) fail('prefix should be "ln"')
  const rest = prefix.slice(2)
  const currency =
    currencies.find((candidate) => rest.startsWith(candidate)) ?? fail('unknown currency prefix')
  const amountText = rest.slice(currency.length)
  let amountMsat: bigint | undefined
  if (amountText !== '') {
    const match = /^([1-9][0-9]*)([munp]?)$/.exec(amountText) ?? fail('invalid amount')
    const digits = BigInt(match[1] ?? '0')
    const letter = match[2] ?? ''
    if (letter === 'p') {
      // "A reader ... MUST fail if the last decimal of a `p` amount is not 0."
      if (digits % 10n !== 0n) fail('sub-millisatoshi amount')
      amountMsat = digits / 10n
    } else {
      amountMsat = digits * (multipliers.find(([name]) => name === letter)?.[1] ?? 100_000_000_000n)
    }
  }

  const fieldWords = data.slice(0, -104)
  const signatureWords = data.slice(-104)
  const request: PaymentRequest = {
    currency,
    amountMsat,
    timestamp: wordsAsNumber(fieldWords.slice(0, 7)),
    paymentHash: Buffer.alloc(0),
    paymentSecret: undefined,
    description: undefined,
    descriptionHash: undefined,
    expirySeconds: 3600,
    minFinalCltvExpiry: 18,
    features: [],
    payee: Buffer.alloc(0),
  }
  let explicitPayee: Buffer | undefined
  for (let offset = 7; offset < fieldWords.length; ) {
    const type = fieldWords[offset] ?? 0
    const length = ((fieldWords[offset + 1] ?? 0) << 5) | (fieldWords[offset + 2] ?? 0)
    const value = fieldWords.slice(offset + 3, offset + 3 + length)
    if (value.length !== length) fail('truncated tagged field')
    offset += 3 + length
    const bytes = () => Buffer.from(convertBits(value, 5, 8, false))
    // "A reader ... MUST skip over `p`, `h`, `s` or `n` fields that do NOT have data_lengths of 52, 52, 52 or 53."
    if (type === 1 && length === 52) request.paymentHash = bytes()
    else if (type === 16 && length === 52) request.paymentSecret = bytes()
    else if (type === 23 && length === 52) request.descriptionHash = bytes()
    else if (type === 19 && length === 53) explicitPayee = bytes()
    else if (type === 13) request.description = bytes().toString('utf8')
    else if (type === 6) request.expirySeconds = wordsAsNumber(value)
    else if (type === 24) request.minFinalCltvExpiry = wordsAsNumber(value)
    else if (type === 5) {
      value.forEach((word, index) => {
        for (let bit = 0; bit < 5; bit++)
          if ((word >> bit) & 1) request.features.push((value.length - 1 - index) * 5 + bit)
      })
      request.features.sort((left, right) => left - right)
    }
  }
  if (request.paymentHash.length !== 32) fail('payment request has no payment hash')

  const signatureBytes = Buffer.from(convertBits(signatureWords, 5, 8, false))
  const digest = sha256(
    Buffer.concat([Buffer.from(prefix, 'utf8'), Buffer.from(convertBits(fieldWords, 5, 8, true))]),
  )
  const recovery = signatureBytes[64] ?? 4
  if (recovery > 3) fail('invalid signature recovery id')
  let recovered: Buffer
  try {
    recovered = Buffer.from(
      secp256k1.Signature.fromCompact(signatureBytes.subarray(0, 64))
        .addRecoveryBit(recovery)
        .recoverPublicKey(digest)
        .toRawBytes(true),
    )
  } catch {
    return fail('invalid signature')
  }
  // "If a valid `n` field is provided, it MUST use the `n` field to validate the signature."
  if (explicitPayee && !explicitPayee.equals(recovered)) fail('signature does not match the payee key')
  request.payee = recovered
  return request
}
