import { createHmac, type KeyObject } from 'node:crypto'
import { bindingInput, type Challenge, type ChallengeFields } from './Challenge.js'
import { ConfigurationError } from './Errors.js'

// The HMAC half of challenges lives apart from the codecs (Challenge.ts) so that the client path, which
// parses challenges but never binds them, imports no `node:` module and runs in browsers.

/** Minimum HMAC secret length in bytes. */
export const minimumSecretBytes = 32

/**
 * Checks that a binding secret is at least 32 bytes; returns it as bytes.
 *
 * @example
 * ```ts
 * Binding.checkSecret(process.env.MPP_SECRET!)
 * ```
 */
export function checkSecret(secret: string | Uint8Array): Uint8Array {
  const bytes = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret
  if (bytes.byteLength < minimumSecretBytes)
    throw new ConfigurationError(`challenge secret must be at least ${minimumSecretBytes} bytes`)
  return bytes
}

/**
 * Computes the challenge id: base64url(HMAC-SHA256(secret, bindingInput)).
 *
 * @example
 * ```ts
 * const id = Binding.computeId({ realm: 'api', method: 'tempo', intent: 'charge', request: {} }, secret)
 * ```
 * @see draft-httpauth-payment-00 §5.1.3.1
 */
export function computeId(fields: ChallengeFields, secret: string | Uint8Array, requestB64?: string): string {
  return computeIdRaw(bindingInput(fields, requestB64), checkSecret(secret))
}

/**
 * A `node:crypto` `KeyObject` holding a secret, typed by shape so that these declarations need no
 * `@types/node`.
 */
export type SecretKeyObject = { readonly type: string; readonly symmetricKeySize?: number | undefined }

/** HMAC of a prepared binding input with an already checked secret (hot path of the server). */
export function computeIdRaw(input: string, secret: Uint8Array | SecretKeyObject): string {
  return createHmac('sha256', secret as Uint8Array | KeyObject)
    .update(input)
    .digest('base64url')
}

/**
 * Builds a challenge from its fields and binds its id with the secret.
 *
 * @example
 * ```ts
 * const challenge = Binding.create({ realm: 'api', method: 'tempo', intent: 'charge', request }, secret)
 * ```
 */
export function create(fields: ChallengeFields, secret: string | Uint8Array): Challenge {
  return { id: computeId(fields, secret), ...fields }
}
