/**
 * CAIP-2 ids of the Solana clusters x402 names (`solana:` + the first 32 characters of the genesis hash).
 *
 * @example
 * ```ts
 * solanaNetworks.devnet // 'solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1'
 * ```
 */
export const solanaNetworks = {
  mainnet: 'solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp',
  devnet: 'solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1',
  testnet: 'solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3z',
} as const

/**
 * x402 v1 Solana network names → CAIP-2 ids (v2 uses the CAIP-2 id itself). Names not listed are skipped.
 *
 * @example
 * ```ts
 * v1SolanaNetworks['solana-devnet'] // 'solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1'
 * ```
 */
export const v1SolanaNetworks: Readonly<Record<string, string>> = {
  solana: solanaNetworks.mainnet,
  'solana-devnet': solanaNetworks.devnet,
  'solana-testnet': solanaNetworks.testnet,
}

const caip2Rule = /^solana:[1-9A-HJ-NP-Za-km-z]{32}$/

/** Whether an x402 network names Solana (a `solana:` CAIP-2 id or a v1 name starting with `solana`). */
export function isSolanaNetwork(network: unknown): network is string {
  return typeof network === 'string' && /^solana(?:$|[:-])/.test(network)
}

/**
 * The CAIP-2 id an x402 Solana network names: a known CAIP-2 id, a v1 name from {@link v1SolanaNetworks},
 * or an entry of the caller's table (v1 name or CAIP-2 id → CAIP-2 id); otherwise undefined.
 *
 * @example
 * ```ts
 * solanaCaip2Of('solana-devnet') // 'solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1'
 * ```
 */
export function solanaCaip2Of(
  network: string,
  extra: Readonly<Record<string, string>> = {},
): string | undefined {
  const mapped = Object.hasOwn(extra, network)
    ? extra[network]
    : Object.hasOwn(v1SolanaNetworks, network)
      ? v1SolanaNetworks[network]
      : Object.values(solanaNetworks).includes(network as never)
        ? network
        : undefined
  return mapped !== undefined && caip2Rule.test(mapped) ? mapped : undefined
}

/**
 * The cluster name draft-solana-charge-00 spells (`mainnet`, `devnet`, `testnet`) of a CAIP-2 id, or the
 * CAIP-2 id itself for another cluster.
 *
 * @example
 * ```ts
 * clusterOf('solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1') // 'devnet'
 * ```
 */
export function clusterOf(caip2: string): string {
  for (const [name, id] of Object.entries(solanaNetworks)) if (id === caip2) return name
  return caip2
}

/**
 * The x402 v1 name of a CAIP-2 id (the first in {@link v1SolanaNetworks} or the caller's table), or undefined.
 *
 * @example
 * ```ts
 * v1NameOf('solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1') // 'solana-devnet'
 * ```
 */
export function v1NameOf(caip2: string, extra: Readonly<Record<string, string>> = {}): string | undefined {
  for (const [name, id] of Object.entries({ ...v1SolanaNetworks, ...extra }))
    if (id === caip2 && !name.includes(':')) return name
  return undefined
}
