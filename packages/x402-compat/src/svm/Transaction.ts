/**
 * Wire-level reading of a base64 Solana transaction (no `@solana/*` needed): the signature count, the
 * message bytes, and a replay key.
 */

/** The message bytes of a wire transaction (after the compact-u16 signature count and the signatures), or undefined. */
export function messageBytes(base64: string): Uint8Array | undefined {
  let bytes: Uint8Array
  try {
    bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))
  } catch {
    return undefined
  }
  const read = compactU16(bytes, 0)
  if (!read) return undefined
  const [count, offset] = read
  const start = offset + count * 64
  if (count === 0 || start >= bytes.length) return undefined
  return bytes.subarray(start)
}

/**
 * Reads a compact-u16 (7 bits per byte, at most 3 bytes) at `offset`: the value and the offset after it,
 * or undefined when the bytes end first.
 */
export function compactU16(bytes: Uint8Array, offset: number): [value: number, next: number] | undefined {
  let value = 0
  for (let index = 0; index < 3; index++) {
    const byte = bytes[offset + index]
    if (byte === undefined) return undefined
    value |= (byte & 0x7f) << (7 * index)
    if ((byte & 0x80) === 0) return [value, offset + index + 1]
  }
  return [value, offset + 3]
}

/**
 * The replay key of a transaction: SHA-256 of its message, hex. The payer's signature covers the message,
 * so two copies of one payment (whatever the fee payer slot holds) share a key.
 *
 * @example
 * ```ts
 * await messageKey(payload.transaction) // 'a3f1…'
 * ```
 */
export async function messageKey(base64: string): Promise<string | undefined> {
  const message = messageBytes(base64)
  if (!message) return undefined
  const digest = new Uint8Array(await globalThis.crypto.subtle.digest('SHA-256', new Uint8Array(message)))
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('')
}
