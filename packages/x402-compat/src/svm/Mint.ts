/** The SPL Token and Token-2022 program ids (the owners a mint account may have). */
export const tokenPrograms = {
  token: 'TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA',
  token2022: 'TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb',
} as const

/** What a mint account says about itself. */
export type MintMetadata = { decimals: number; tokenProgram: string }

/**
 * Reads a mint's decimals and token program over JSON-RPC (`getAccountInfo`): the asset metadata x402
 * requirements do not carry. Undefined when the RPC does not answer, or the account is not a mint of a
 * known token program; never a guess.
 *
 * @example
 * ```ts
 * await mintMetadata('http://127.0.0.1:8899', mint) // { decimals: 6, tokenProgram: 'Tokenkeg…' }
 * ```
 */
export async function mintMetadata(
  rpcUrl: string,
  mint: string,
  options: { fetch?: typeof fetch; timeout?: number } = {},
): Promise<MintMetadata | undefined> {
  const call = options.fetch ?? globalThis.fetch
  try {
    const response = await call(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'getAccountInfo',
        params: [mint, { encoding: 'base64', commitment: 'confirmed' }],
      }),
      signal: AbortSignal.timeout(options.timeout ?? 10_000),
    })
    // A refusal (401 for a wrong password, say) is no answer, whatever its body says.
    if (!response.ok) return undefined
    const answer = (await response.json()) as {
      result?: { value?: { owner?: unknown; data?: unknown } | null }
    }
    const value = answer.result?.value
    const owner = value?.owner
    if (owner !== tokenPrograms.token && owner !== tokenPrograms.token2022) return undefined
    const data = Array.isArray(value?.data) ? value.data[0] : undefined
    if (typeof data !== 'string') return undefined
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0))
    // Mint layout: COption<authority> (36), supply u64 (8), decimals u8 at offset 44, is_initialized at 45.
    if (bytes.length < 82 || bytes[45] !== 1) return undefined
    return { decimals: bytes[44]!, tokenProgram: owner }
  } catch {
    return undefined
  }
}
