import { bytesToHex, type Hex, hexToBytes, keccak256, stringToBytes } from 'viem'

/**
 * The MPP attribution memo: a `bytes32` carried by `transferWithMemo` that binds a Tempo transfer to one
 * challenge of one server. Layout (the reference SDK's, so both sides interoperate):
 *
 * | bytes  | content                                  |
 * |--------|------------------------------------------|
 * | 0..3   | tag `keccak256("mpp")[0..3]`             |
 * | 4      | version `0x01`                           |
 * | 5..14  | `keccak256(realm)[0..9]` (server)        |
 * | 15..24 | `keccak256(clientId)[0..9]` or zeros     |
 * | 25..31 | `keccak256(challengeId)[0..6]` (binding) |
 *
 * @see draft-tempo-charge-00 §"Method Details" (`methodDetails.memo`) and the conformance vectors
 *   `tempo-receipt-verification.json` / `tempo-transaction-verification.json` ("challenge-bound memo").
 */
export type Attribution = {
  version: number
  server: Hex
  client: Hex | undefined
  nonce: Hex
}

const tag = keccak256(stringToBytes('mpp')).slice(0, 10).toLowerCase()
const version = 0x01

function fingerprint(value: string, length: number): Uint8Array {
  return hexToBytes(keccak256(stringToBytes(value))).subarray(0, length)
}

/**
 * Encodes the attribution memo of a challenge.
 *
 * @example
 * ```ts
 * const memo = Attribution.encode({ challengeId: challenge.id, realm: challenge.realm })
 * ```
 * @see draft-tempo-charge-00 §"Method Details"
 */
export function encode(parameters: {
  challengeId: string
  realm: string
  clientId?: string | undefined
}): Hex {
  const bytes = new Uint8Array(32)
  bytes.set(hexToBytes(tag as Hex), 0)
  bytes[4] = version
  bytes.set(fingerprint(parameters.realm, 10), 5)
  if (parameters.clientId) bytes.set(fingerprint(parameters.clientId, 10), 15)
  bytes.set(fingerprint(parameters.challengeId, 7), 25)
  return bytesToHex(bytes)
}

/**
 * Decodes an attribution memo, or `undefined` when the value is not one.
 *
 * @example
 * ```ts
 * Attribution.decode(log.args.memo)?.nonce
 * ```
 */
export function decode(memo: string): Attribution | undefined {
  if (!/^0x[0-9a-fA-F]{64}$/.test(memo)) return undefined
  const lower = memo.toLowerCase()
  if (lower.slice(0, 10) !== tag || Number.parseInt(lower.slice(10, 12), 16) !== version) return undefined
  const client = `0x${lower.slice(32, 52)}` as Hex
  return {
    version,
    server: `0x${lower.slice(12, 32)}`,
    client: /^0x0+$/.test(client) ? undefined : client,
    nonce: `0x${lower.slice(52)}`,
  }
}

/**
 * True when `memo` is an attribution memo for this realm and challenge id.
 *
 * @example
 * ```ts
 * if (!Attribution.isBound(memo, { challengeId: challenge.id, realm: challenge.realm })) throw …
 * ```
 * @see conformance vectors `unrelated_challenge_memo_rejected`, `unrelated_realm_memo_rejected`
 */
export function isBound(memo: string, parameters: { challengeId: string; realm: string }): boolean {
  const decoded = decode(memo)
  if (!decoded) return false
  return (
    decoded.server === bytesToHex(fingerprint(parameters.realm, 10)) &&
    decoded.nonce === bytesToHex(fingerprint(parameters.challengeId, 7))
  )
}
