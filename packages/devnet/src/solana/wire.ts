import { DevnetError } from '../errors.js'

/**
 * The wire format of Solana transactions (legacy and v0), decoded by hand so that the node records
 * exactly what arrived: signatures, header, static keys, blockhash, compiled instructions and lookups.
 */

/** One compiled instruction as it sits in a message. */
export type CompiledInstruction = {
  programIdIndex: number
  accounts: number[]
  data: Uint8Array
}

/** One address-table lookup of a v0 message. */
export type AddressTableLookup = {
  accountKey: string
  writableIndexes: number[]
  readonlyIndexes: number[]
}

/** A decoded message. */
export type Message = {
  version: 'legacy' | 0
  header: {
    numRequiredSignatures: number
    numReadonlySignedAccounts: number
    numReadonlyUnsignedAccounts: number
  }
  staticAccountKeys: string[]
  recentBlockhash: string
  instructions: CompiledInstruction[]
  addressTableLookups: AddressTableLookup[]
}

/** A decoded transaction plus the bytes it came from. */
export type WireTransaction = {
  signatures: string[]
  signatureBytes: Uint8Array[]
  message: Message
  messageBytes: Uint8Array
  bytes: Uint8Array
}

const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
const digitOf = new Int8Array(128).fill(-1)
for (let index = 0; index < alphabet.length; index++) digitOf[alphabet.charCodeAt(index)] = index
// Both directions work on limbs of five base-58 digits (58^5 < 2^30) against 16-bit limbs, so every
// product stays below 2^53 and exact in a double: several times fewer steps than digit by digit, and
// no bigint (the node converts every key of every transaction and account it touches).
const limbBase = 58 ** 5
const chunkScale = [1, 58, 58 ** 2, 58 ** 3, 58 ** 4, limbBase]

/**
 * Bytes → base58 text (Bitcoin alphabet; each leading zero byte is a '1').
 *
 * @example
 * ```ts
 * toBase58(new Uint8Array(32)) // '11111111111111111111111111111111'
 * ```
 */
export function toBase58(bytes: Uint8Array): string {
  let zeros = 0
  while (zeros < bytes.length && bytes[zeros] === 0) zeros++
  // Little-endian limbs of base 58^5, fed 16 bits at a time (8 for an odd first byte).
  const limbs: number[] = []
  for (let index = zeros; index < bytes.length; ) {
    let carry: number
    let scale: number
    if ((bytes.length - index) % 2 === 1) {
      carry = bytes[index]!
      scale = 256
      index += 1
    } else {
      carry = bytes[index]! * 256 + bytes[index + 1]!
      scale = 65536
      index += 2
    }
    for (let limb = 0; limb < limbs.length; limb++) {
      const value = limbs[limb]! * scale + carry
      carry = Math.floor(value / limbBase)
      limbs[limb] = value - carry * limbBase
    }
    while (carry > 0) {
      const next = Math.floor(carry / limbBase)
      limbs.push(carry - next * limbBase)
      carry = next
    }
  }
  let text = ''
  for (let limb = 0; limb < limbs.length; limb++) {
    let value = limbs[limb]!
    const top = limb === limbs.length - 1
    for (let digit = 0; digit < 5 && (!top || value > 0); digit++) {
      const next = Math.floor(value / 58)
      text = alphabet[value - next * 58] + text
      value = next
    }
  }
  return '1'.repeat(zeros) + text
}

/**
 * Base58 text → bytes (Bitcoin alphabet; each leading '1' is a zero byte). Throws on a character
 * outside the alphabet.
 *
 * @example
 * ```ts
 * fromBase58('11111111111111111111111111111111') // 32 zero bytes
 * ```
 */
export function fromBase58(text: string): Uint8Array {
  let zeros = 0
  while (zeros < text.length && text.charCodeAt(zeros) === 49) zeros++
  // Little-endian 16-bit limbs, fed five digits at a time (fewer for the first chunk).
  const limbs: number[] = []
  for (let index = zeros; index < text.length; ) {
    const size = (text.length - index) % 5 || 5
    let carry = 0
    for (const end = index + size; index < end; index++) {
      const code = text.charCodeAt(index)
      const digit = code < 128 ? digitOf[code]! : -1
      if (digit < 0)
        throw new DevnetError(`invalid base58 character ${JSON.stringify(text[index])}`, {
          code: 'solana_invalid_base58',
        })
      carry = carry * 58 + digit
    }
    const scale = chunkScale[size]!
    for (let limb = 0; limb < limbs.length; limb++) {
      const value = limbs[limb]! * scale + carry
      carry = Math.floor(value / 65536)
      limbs[limb] = value - carry * 65536
    }
    while (carry > 0) {
      limbs.push(carry % 65536)
      carry = Math.floor(carry / 65536)
    }
  }
  const top = limbs.length > 0 && limbs[limbs.length - 1]! < 256 ? 1 : 0
  const out = new Uint8Array(zeros + limbs.length * 2 - top)
  let at = out.length
  for (let limb = 0; limb < limbs.length; limb++) {
    out[--at] = limbs[limb]! & 0xff
    if (at > zeros) out[--at] = limbs[limb]! >> 8
  }
  return out
}

/**
 * Whether a value is a base58 address: 32 to 44 characters that decode to exactly 32 bytes (what
 * @solana/kit's `isAddress` accepts, without its bigint arithmetic).
 *
 * @example
 * ```ts
 * isBase58Address('11111111111111111111111111111111') // true
 * ```
 */
export function isBase58Address(value: unknown): value is string {
  if (typeof value !== 'string' || value.length < 32 || value.length > 44) return false
  try {
    return fromBase58(value).length === 32
  } catch {
    return false
  }
}

class Reader {
  offset = 0
  constructor(readonly bytes: Uint8Array) {}
  byte(): number {
    const value = this.bytes[this.offset]
    if (value === undefined) throw malformed('unexpected end of data')
    this.offset += 1
    return value
  }
  take(length: number): Uint8Array {
    if (this.offset + length > this.bytes.length) throw malformed('unexpected end of data')
    const slice = this.bytes.subarray(this.offset, this.offset + length)
    this.offset += length
    return slice
  }
  // Solana's "compact-u16" (short_vec) length prefix: 7 bits per byte, at most 3 bytes.
  compactU16(): number {
    let value = 0
    for (let index = 0; index < 3; index++) {
      const byte = this.byte()
      value |= (byte & 0x7f) << (7 * index)
      if ((byte & 0x80) === 0) return value
    }
    throw malformed('compact-u16 too long')
  }
}

const malformed = (detail: string) =>
  new DevnetError(`failed to deserialize transaction: ${detail}`, { code: 'solana_malformed_transaction' })

/**
 * Decodes a message (legacy or v0); other versions are refused because the node cannot report them.
 *
 * @example
 * ```ts
 * const message = decodeMessage(messageBytes)
 * ```
 */
export function decodeMessage(bytes: Uint8Array): Message {
  const reader = new Reader(bytes)
  let version: 'legacy' | 0 = 'legacy'
  const first = bytes[0]
  if (first === undefined) throw malformed('empty message')
  if (first & 0x80) {
    reader.byte()
    const number = first & 0x7f
    if (number !== 0) throw malformed(`unsupported transaction version ${number}`)
    version = 0
  }
  const header = {
    numRequiredSignatures: reader.byte(),
    numReadonlySignedAccounts: reader.byte(),
    numReadonlyUnsignedAccounts: reader.byte(),
  }
  const staticAccountKeys: string[] = []
  const keyCount = reader.compactU16()
  for (let index = 0; index < keyCount; index++) staticAccountKeys.push(toBase58(reader.take(32)))
  const recentBlockhash = toBase58(reader.take(32))
  const instructions: CompiledInstruction[] = []
  const instructionCount = reader.compactU16()
  for (let index = 0; index < instructionCount; index++) {
    const programIdIndex = reader.byte()
    const accounts = Array.from(reader.take(reader.compactU16()))
    const data = new Uint8Array(reader.take(reader.compactU16()))
    instructions.push({ programIdIndex, accounts, data })
  }
  const addressTableLookups: AddressTableLookup[] = []
  if (version === 0) {
    const lookupCount = reader.compactU16()
    for (let index = 0; index < lookupCount; index++) {
      const accountKey = toBase58(reader.take(32))
      const writableIndexes = Array.from(reader.take(reader.compactU16()))
      const readonlyIndexes = Array.from(reader.take(reader.compactU16()))
      addressTableLookups.push({ accountKey, writableIndexes, readonlyIndexes })
    }
  }
  if (reader.offset !== bytes.length) throw malformed('trailing bytes after message')
  return { version, header, staticAccountKeys, recentBlockhash, instructions, addressTableLookups }
}

/**
 * Decodes a signed wire transaction.
 *
 * @example
 * ```ts
 * const transaction = decodeTransaction(Buffer.from(base64, 'base64'))
 * ```
 */
export function decodeTransaction(bytes: Uint8Array): WireTransaction {
  const reader = new Reader(bytes)
  const signatureCount = reader.compactU16()
  const signatureBytes: Uint8Array[] = []
  for (let index = 0; index < signatureCount; index++) signatureBytes.push(new Uint8Array(reader.take(64)))
  const messageBytes = new Uint8Array(bytes.subarray(reader.offset))
  const message = decodeMessage(messageBytes)
  if (message.header.numRequiredSignatures !== signatureCount)
    throw malformed('signature count does not match the message header')
  return { signatures: signatureBytes.map(toBase58), signatureBytes, message, messageBytes, bytes }
}

/**
 * Whether the account at `index` of the full key list is writable, by the header rules of a message.
 *
 * @example
 * ```ts
 * isWritable(message, 0) // the fee payer: true
 * ```
 */
export function isWritable(message: Message, index: number, loadedWritableCount = 0): boolean {
  const { numRequiredSignatures, numReadonlySignedAccounts, numReadonlyUnsignedAccounts } = message.header
  const staticCount = message.staticAccountKeys.length
  if (index < numRequiredSignatures) return index < numRequiredSignatures - numReadonlySignedAccounts
  if (index < staticCount) return index < staticCount - numReadonlyUnsignedAccounts
  // Loaded addresses come writable first, then read-only.
  return index - staticCount < loadedWritableCount
}
