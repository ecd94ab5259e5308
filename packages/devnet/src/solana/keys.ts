import { randomBytes } from 'node:crypto'
import {
  createKeyPairSignerFromBytes,
  createKeyPairSignerFromPrivateKeyBytes,
  type KeyPairSigner,
} from '@solana/kit'
import { fromBase58 } from './wire.js'

/** A keypair in Solana's 64-byte format (seed then public key), as `solana-keygen` writes it. */
export type SolanaKeypair = {
  /** The base58 address (public key). */
  address: string
  /** The 64-byte secret key, JSON-friendly; `createKeyPairSignerFromBytes(new Uint8Array(secretKey))` loads it. */
  secretKey: number[]
}

/**
 * Creates a fresh keypair and its kit signer, with the secret key exportable as numbers.
 *
 * @example
 * ```ts
 * const { keypair, signer } = await createKeypair()
 * ```
 */
export async function createKeypair(secretKey?: Uint8Array | readonly number[]): Promise<{
  keypair: SolanaKeypair
  signer: KeyPairSigner
}> {
  if (secretKey) {
    const bytes = Uint8Array.from(secretKey)
    const signer = await createKeyPairSignerFromBytes(bytes)
    return { keypair: { address: signer.address, secretKey: Array.from(bytes) }, signer }
  }
  const seed = new Uint8Array(randomBytes(32))
  const signer = await createKeyPairSignerFromPrivateKeyBytes(seed)
  const full = new Uint8Array(64)
  full.set(seed, 0)
  full.set(fromBase58(signer.address), 32)
  return { keypair: { address: signer.address, secretKey: Array.from(full) }, signer }
}
