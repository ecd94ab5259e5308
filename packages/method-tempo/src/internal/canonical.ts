import { VerificationFailedError } from '@mppkit/core'
import type { Hex } from 'viem'
import { Transaction } from 'viem/tempo'

const secp256k1HalfOrder = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n

const notCanonical = (detail: string) =>
  new VerificationFailedError({ detail, reason: 'invalid-transaction' })

/**
 * Refuses any encoding of a signed transaction other than the one its fields serialize to. The node
 * accepts some malleable forms (found by the fuzz test: a signature `v` byte of `0xdc` instead of
 * `0x1c` recovers the same sender), and each such form is a different byte string with a different
 * hash, so one signed payment could otherwise pass the replay check (keyed by hash) more than once
 * where the nonce does not stop it (expiring-nonce lane).
 */
export async function assertCanonical(serialized: Hex, decoded: Record<string, unknown>): Promise<void> {
  const { from: _from, hash: _hash, signature, ...fields } = decoded
  // EIP-2: a secp256k1 signature with s above n/2 is the mirror of a valid one (same signer, other bytes).
  const inner = (signature as { signature?: { s?: unknown } } | undefined)?.signature
  if (typeof inner?.s === 'bigint' && inner.s > secp256k1HalfOrder)
    throw notCanonical('The transaction signature is not in canonical (low-s) form.')
  let again = ''
  try {
    const sponsored = serialized.slice(0, 4).toLowerCase() === '0x78'
    again = (await Transaction.serialize(
      { ...fields, ...(sponsored ? { feePayer: true } : {}) } as never,
      signature as never,
    )) as string
  } catch {}
  if (again.toLowerCase() !== serialized.toLowerCase())
    throw notCanonical('The transaction is not in canonical encoding.')
}
