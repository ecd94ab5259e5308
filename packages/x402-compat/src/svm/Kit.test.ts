import { afterEach, describe, expect, it, vi } from 'vitest'

afterEach(() => {
  vi.doUnmock('@solana/kit')
  vi.resetModules()
})

describe('loadKit', () => {
  it('loads @solana/kit when it is installed', async () => {
    const { loadKit } = await import('./Kit.js')
    expect(typeof (await loadKit()).partiallySignTransactionMessageWithSigners).toBe('function')
  })

  it('without @solana/kit, a Solana offer fails with a PaymentFailedError naming what to install', async () => {
    vi.resetModules()
    vi.doMock('@solana/kit', () => {
      throw new Error("Cannot find package '@solana/kit'")
    })
    const { loadKit } = await import('./Kit.js')
    const failure = await loadKit().catch((error: unknown) => error)
    expect(failure).toMatchObject({ name: 'PaymentFailedError', code: 'missing-peer' })
    expect((failure as Error).message).toMatch(/needs @solana\/kit; install it/)
  })
})
