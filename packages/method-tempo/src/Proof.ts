import type { Address } from 'viem'

/**
 * Versions of the zero-amount proof's EIP-712 typed data:
 * - `1`: the draft's text (`Proof(string challengeId)`, domain version "1");
 * - `2`: the conformance vector `tempo-proof.json` (`Proof(string challengeId,string realm)`, version "2");
 * - `3`: what mppx@0.11 signs and verifies (`Proof(address account,string challengeId,string realm)`,
 *   version "3"), which also binds the payer account.
 *
 * Servers accept all three; clients sign version 3 by default so that mppx servers accept them too.
 *
 * @example
 * ```ts
 * const version: Proof.Version = 3
 * ```
 * @see draft-tempo-charge-00 §"Proof Payload (type="proof")"
 */
export type Version = 1 | 2 | 3

/** Versions a server accepts, newest first. */
export const versions: readonly Version[] = [3, 2, 1]

const typesByVersion = {
  1: { Proof: [{ name: 'challengeId', type: 'string' }] },
  2: {
    Proof: [
      { name: 'challengeId', type: 'string' },
      { name: 'realm', type: 'string' },
    ],
  },
  3: {
    Proof: [
      { name: 'account', type: 'address' },
      { name: 'challengeId', type: 'string' },
      { name: 'realm', type: 'string' },
    ],
  },
} as const

/**
 * The EIP-712 typed data a zero-amount proof signs.
 *
 * @example
 * ```ts
 * const signature = await account.signTypedData(Proof.typedData({ version: 3, chainId, challengeId, realm, account: account.address }))
 * ```
 * @see draft-tempo-charge-00 §"EIP-712 Domain and Types": "The `challengeId` in the message MUST be the
 *   `id` from the challenge that was issued to the client."
 */
export function typedData(parameters: {
  version?: Version
  chainId: number
  challengeId: string
  realm: string
  account: Address
}) {
  const version = parameters.version ?? 3
  const message: Record<string, string> = { challengeId: parameters.challengeId }
  if (version >= 2) message.realm = parameters.realm
  if (version === 3) message.account = parameters.account
  return {
    domain: { name: 'MPP', version: String(version), chainId: parameters.chainId },
    types: typesByVersion[version],
    primaryType: 'Proof' as const,
    message,
  }
}

/**
 * The `did:pkh` source a proof (and any Tempo credential) names its payer with.
 *
 * @example
 * ```ts
 * Proof.source({ chainId: 42431, address }) // 'did:pkh:eip155:42431:0x…'
 * ```
 * @see draft-tempo-charge-00 §"Credential Structure"
 */
export function source(parameters: { chainId: number; address: Address }): string {
  return `did:pkh:eip155:${parameters.chainId}:${parameters.address}`
}

/**
 * Parses a `did:pkh:eip155:<chainId>:<address>` source, or `undefined`.
 *
 * @example
 * ```ts
 * Proof.parseSource('did:pkh:eip155:4217:0x…')?.chainId // 4217
 * ```
 */
export function parseSource(value: string | undefined): { chainId: number; address: Address } | undefined {
  if (!value) return undefined
  const match = /^did:pkh:eip155:(0|[1-9]\d{0,15}):(0x[0-9a-fA-F]{40})$/.exec(value)
  if (!match) return undefined
  const chainId = Number(match[1])
  if (!Number.isSafeInteger(chainId)) return undefined
  return { chainId, address: match[2] as Address }
}
