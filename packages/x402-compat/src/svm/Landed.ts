/**
 * Finding on chain a transaction whose settlement answer was lost: the facilitator broadcast it, then
 * timed out or dropped the connection before answering. Plain JSON-RPC over fetch (no `@solana/*`).
 */
import { rpcFetch } from '../internal/rpcFetch.js'
import { compactU16, messageBytes } from './Transaction.js'

const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

/** Base58 of a public key's 32 bytes (Solana's address text). */
export function base58(bytes: Uint8Array): string {
  let value = 0n
  for (const byte of bytes) value = (value << 8n) | BigInt(byte)
  let text = ''
  while (value > 0n) {
    text = alphabet[Number(value % 58n)]! + text
    value /= 58n
  }
  for (const byte of bytes) {
    if (byte !== 0) break
    text = `1${text}`
  }
  return text
}

/**
 * The payer's address in a transaction message: the second signer when the fee payer (the first) is
 * someone else, as in x402 `exact` (the facilitator pays the fees), else the first. Undefined when the
 * message cannot be read.
 */
export function payerOfMessage(message: Uint8Array): string | undefined {
  // A versioned message starts with 0x80 | version; a legacy one with its header.
  const header = (message[0] ?? 0) & 0x80 ? 1 : 0
  const required = message[header]
  if (required === undefined || required === 0) return undefined
  const read = compactU16(message, header + 3)
  if (!read) return undefined
  const [count, offset] = read
  const index = required >= 2 ? 1 : 0
  if (index >= count) return undefined
  const start = offset + index * 32
  if (start + 32 > message.length) return undefined
  return base58(message.subarray(start, start + 32))
}

const equal = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((byte, i) => byte === b[i])

/** How many of the payer's latest transactions are read when looking for a lost one. */
const recentLimit = 25

/**
 * The signature of a confirmed, successful transaction whose message is byte for byte the one the payer
 * signed (so it is this very payment, whoever added the fee payer's signature), among the payer's
 * latest transactions and at most `maxAgeSeconds` old; undefined when there is none (not landed, failed,
 * too old, or the RPC cannot tell). The caller decides whether this transaction may be served at all.
 * A `user:password@` in `rpcUrl` is sent as `Authorization: Basic`; no error carries it.
 *
 * @example
 * ```ts
 * await landedTransaction('http://127.0.0.1:8899', payload.transaction, 5_000) // '5h3…' or undefined
 * ```
 */
export async function landedTransaction(
  rpcUrl: string,
  transaction: string,
  timeout: number,
  /** Only a transaction whose block is at most this old (seconds, by its block time) is taken. */
  maxAgeSeconds = 300,
  now: () => number = Date.now,
): Promise<string | undefined> {
  const message = messageBytes(transaction)
  const payer = message && payerOfMessage(message)
  if (!message || !payer) return undefined
  const call = async (method: string, params: unknown[]): Promise<any> => {
    // A `user:password@` in the URL goes out as Basic auth: plain fetch refuses it (and quotes the URL).
    const response = await rpcFetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
      signal: AbortSignal.timeout(timeout),
    })
    const body = (await response.json()) as { result?: unknown; error?: unknown }
    if (body.error !== undefined || !response.ok) throw new TypeError(`${method} failed`)
    return body.result
  }
  const recent = (await call('getSignaturesForAddress', [
    payer,
    { limit: recentLimit, commitment: 'confirmed' },
  ])) as { signature?: unknown; err?: unknown; blockTime?: unknown }[] | null
  const oldest = Math.floor(now() / 1000) - maxAgeSeconds
  for (const entry of recent ?? []) {
    if (typeof entry?.signature !== 'string' || entry.err !== null) continue
    // Older than the replay claim and the verification note could still say: never served from here.
    if (typeof entry.blockTime !== 'number' || entry.blockTime < oldest) continue
    const found = await call('getTransaction', [
      entry.signature,
      { encoding: 'base64', commitment: 'confirmed', maxSupportedTransactionVersion: 0 },
    ])
    const wire = found?.transaction?.[0]
    const landed = typeof wire === 'string' ? messageBytes(wire) : undefined
    if (landed && equal(landed, message) && found?.meta?.err === null) return entry.signature
  }
  return undefined
}
