import { Expires, ServiceUnavailableError } from '@mppkit/core'
import { type AuthenticatedLnd, createInvoice } from 'lightning'
import * as Invoice from '../Invoice.js'
import { call } from './node.js'

/** A fresh invoice the node issued, checked against what was asked. */
export type Issued = { request: string; paymentHash: string; network: 'mainnet' | 'regtest' | 'signet' }

/**
 * Asks the node for a fresh invoice of `sats` expiring with the challenge, and checks what it returned
 * before it goes into a challenge: amount, hash and expiry. A node that is down, or gives no answer
 * within `timeoutMs`, throws `ServiceUnavailableError` (503 + Retry-After).
 *
 * "Servers MUST verify this consistency before issuing the challenge." / "The server MUST verify that
 * the amount encoded in the BOLT11 invoice matches the intended charge amount before issuing the
 * challenge." / "Each BOLT11 invoice MUST use a freshly generated random payment hash." (LND draws a
 * random 32-byte preimage for every AddInvoice.) (draft-lightning-charge-00)
 */
export async function issueInvoice(
  lnd: AuthenticatedLnd,
  parameters: { sats: bigint; description?: string | undefined; expires: string; timeoutMs: number },
): Promise<Issued> {
  const expiresAt = Expires.parse(parameters.expires)
  // "Servers MUST NOT set the `expires` auth-param to a time later than the invoice's BOLT11 expiry
  // time." BOLT11 expiries are whole seconds after a whole-second timestamp, and `lightning` rounds the
  // requested lifetime: ask for one second more so the invoice never ends before the challenge.
  const created = await call(
    () =>
      createInvoice({
        lnd,
        tokens: Number(parameters.sats),
        ...(parameters.description !== undefined ? { description: parameters.description } : {}),
        expires_at: new Date(expiresAt + 1_000).toISOString(),
      }),
    // A node that does not answer gets a 503, never a 402 held open.
    parameters.timeoutMs,
  )
  const decoded = Invoice.tryDecode(created.request)
  const broken = (detail: string) =>
    new ServiceUnavailableError({
      detail: `The Lightning node issued ${detail}.`,
      reason: 'invoice-mismatch',
    })
  if (!decoded) throw broken('an invoice that does not decode')
  if (decoded.paymentHash !== created.id) throw broken('an invoice with another payment hash')
  if (decoded.amountMsat !== parameters.sats * 1000n) throw broken('an invoice for another amount')
  if (decoded.expiresAt < expiresAt) throw broken('an invoice that expires before the challenge')
  if (decoded.network === 'testnet')
    throw broken('a testnet invoice (the specs name mainnet, regtest, signet)')
  return { request: created.request, paymentHash: created.id, network: decoded.network }
}
