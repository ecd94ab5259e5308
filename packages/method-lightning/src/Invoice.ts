import { ParseError } from '@mppkit/core/client'
import { decode as decodeBolt11 } from 'light-bolt11-decoder'

/** A BOLT11 invoice's fields a payment method checks. */
export type Invoice = {
  /** The payment hash, lowercase hex. */
  paymentHash: string
  /** The network of the human-readable prefix (`lnbc` mainnet, `lnbcrt` regtest, `lntbs` signet, `lntb` testnet). */
  network: 'mainnet' | 'regtest' | 'signet' | 'testnet'
  /** The encoded amount in millisatoshis, or undefined for an amountless invoice. */
  amountMsat: bigint | undefined
  /** Creation time (epoch ms). */
  createdAt: number
  /** Expiry time (epoch ms): creation time plus the `x` field (3600 s when absent). */
  expiresAt: number
  /** The `d` field. */
  description: string | undefined
}

// Longest prefix first: `lnbcrt` before `lnbc`, `lntbs` before `lntb`.
const prefixes = [
  ['lnbcrt', 'regtest'],
  ['lnbc', 'mainnet'],
  ['lntbs', 'signet'],
  ['lntb', 'testnet'],
] as const

/**
 * Decodes a BOLT11 invoice (checksum and fields; the signature is the paying node's to check) and
 * throws `ParseError` for anything else, without echoing the input.
 *
 * @example
 * ```ts
 * Invoice.decode('lnbcrt1u1p…').paymentHash
 * ```
 * @see BOLT #11 (Human-Readable Part, Tagged Fields); draft-lightning-charge-00 §"Method Details"
 */
export function decode(text: string): Invoice {
  if (typeof text !== 'string' || text.length > 7_089) throw new ParseError('not a BOLT11 invoice')
  const lower = text.toLowerCase()
  const prefix = prefixes.find(([p]) => lower.startsWith(p) && /^[0-9]*[munp]?1/.test(lower.slice(p.length)))
  if (!prefix) throw new ParseError('not a BOLT11 invoice of a known network')
  let decoded: ReturnType<typeof decodeBolt11>
  try {
    decoded = decodeBolt11(lower)
  } catch (cause) {
    throw new ParseError('not a BOLT11 invoice', { cause })
  }
  let paymentHash: string | undefined
  let amount: string | undefined
  let timestamp: number | undefined
  let description: string | undefined
  for (const section of decoded.sections) {
    if (section.name === 'payment_hash') paymentHash = section.value
    else if (section.name === 'amount') amount = section.value
    else if (section.name === 'timestamp') timestamp = section.value
    else if (section.name === 'description') description = section.value
  }
  if (!paymentHash || !/^[0-9a-f]{64}$/.test(paymentHash) || timestamp === undefined)
    throw new ParseError('the BOLT11 invoice has no payment hash or timestamp')
  if (amount !== undefined && !/^\d+$/.test(amount)) throw new ParseError('the BOLT11 amount is invalid')
  const expiry = Number.isSafeInteger(decoded.expiry) ? decoded.expiry : 3600
  return {
    paymentHash,
    network: prefix[1],
    amountMsat: amount === undefined ? undefined : BigInt(amount),
    createdAt: timestamp * 1000,
    expiresAt: (timestamp + expiry) * 1000,
    description,
  }
}

/**
 * Like {@link decode}, but undefined instead of throwing.
 *
 * @example
 * ```ts
 * Invoice.tryDecode(untrusted)?.network
 * ```
 * @see BOLT #11
 */
export function tryDecode(text: unknown): Invoice | undefined {
  try {
    return typeof text === 'string' ? decode(text) : undefined
  } catch {
    return undefined
  }
}
