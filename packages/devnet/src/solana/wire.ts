import { getBase58Decoder, getBase58Encoder } from '@solana/kit'
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

const base58Decoder = getBase58Decoder()
const base58Encoder = getBase58Encoder()

/**
 * Bytes → base58 text.
 *
 * @example
 * ```ts
 * toBase58(new Uint8Array(32)) // '11111111111111111111111111111111'
 * ```
 */
export const toBase58 = (bytes: Uint8Array): string => base58Decoder.decode(bytes)
/**
 * Base58 text → bytes.
 *
 * @example
 * ```ts
 * fromBase58('11111111111111111111111111111111') // 32 zero bytes
 * ```
 */
export const fromBase58 = (text: string): Uint8Array => new Uint8Array(base58Encoder.encode(text))

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
