/**
 * How the client spend policy tells currencies apart. Identifiers are compared exactly (a base58
 * Solana mint is case-sensitive), except EVM addresses: `0x` + 40 hex digits, whose case is only an
 * EIP-55 checksum, so `0xAbC…` and `0xabc…` are the same token.
 *
 * @see draft-httpauth-payment-00 §11.7 ("Currency/asset is as expected")
 */

const evmAddress = /^0x[0-9a-fA-F]{40}$/

/**
 * A currency and, when the quote names it, the network it lives on (e.g. `tempo:4217`).
 *
 * @example
 * ```ts
 * const asset: Asset = { currency: '0x20c0…0001', network: 'tempo:4217' }
 * ```
 */
export type Asset = { currency: string; network?: string | undefined }

/**
 * The identity of a currency identifier: EVM addresses lowercased, everything else as it is.
 *
 * @example
 * ```ts
 * canonical('0x20C0000000000000000000000000000000000001') // '0x20c0000000000000000000000000000000000001'
 * canonical('EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v') // unchanged
 * ```
 */
export function canonical(currency: string): string {
  return evmAddress.test(currency) ? currency.toLowerCase() : currency
}

/**
 * True when two currency identifiers name the same currency.
 *
 * @example
 * ```ts
 * same('usd', 'USD') // false: identifiers are exact
 * ```
 */
export function same(a: string, b: string): boolean {
  return a === b || canonical(a) === canonical(b)
}

/**
 * How a policy key names an asset: `2` for `network:currency` (network exact), `1` for a bare
 * `currency` (any network), `0` when it does not name it.
 *
 * @example
 * ```ts
 * match('tempo:4217:0x20c0…0001', { network: 'tempo:4217', currency: '0x20C0…0001' }) // 2
 * ```
 */
export function match(key: string, asset: Asset): 0 | 1 | 2 {
  const { network, currency } = asset
  if (network !== undefined && key.startsWith(`${network}:`) && same(key.slice(network.length + 1), currency))
    return 2
  return same(key, currency) ? 1 : 0
}

/**
 * The asset as a policy key: `network:currency`, or the bare currency when the network is unknown.
 *
 * @example
 * ```ts
 * label({ network: 'tempo:4217', currency: '0x20c0…0001' }) // 'tempo:4217:0x20c0…0001'
 * ```
 */
export function label(asset: Asset): string {
  return asset.network === undefined ? asset.currency : `${asset.network}:${asset.currency}`
}

/**
 * One key per asset for the spend buckets (network-qualified, canonical currency).
 *
 * @example
 * ```ts
 * bucket({ currency: '0xAB…', network: 'tempo:4217' }) === bucket({ currency: '0xab…', network: 'tempo:4217' })
 * ```
 */
export function bucket(asset: Asset): string {
  return `${asset.network ?? ''}\u0000${canonical(asset.currency)}`
}
