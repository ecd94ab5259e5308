import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import * as shim from '../src/page/x402-kit.js'

// The page resolves x402-compat's dynamic import of @solana/kit to src/page/x402-kit.ts (see build.mjs):
// a member its Solana payer reads but the shim does not export would be undefined in the page only.
describe("the page's @solana/kit shim for @mppkit/x402-compat", () => {
  it('exports every kit member the Solana payer reads, each one the kit itself', async () => {
    const source = readFileSync(
      new URL('../../../packages/x402-compat/src/svm/Client.ts', import.meta.url),
      'utf8',
    )
    const used = new Set([...source.matchAll(/\bkit\.([A-Za-z_$][\w$]*)/g)].map((match) => match[1]!))
    expect(used.size).toBeGreaterThan(5)
    const kit = (await import('@solana/kit')) as Record<string, unknown>
    for (const name of used) {
      expect(Object.keys(shim), name).toContain(name)
      expect((shim as Record<string, unknown>)[name], name).toBe(kit[name])
    }
  })
})
