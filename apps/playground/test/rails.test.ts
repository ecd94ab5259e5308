// The Solana and x402 rails of the playground's server, without a browser: what reaches the page, and
// clear answers to bad input (problems, never a 500 or a stack trace).
import { type RunningDevnet, startDevnet } from '@mppkit/devnet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { playgroundHandler } from '../src/server/playground.js'

describe('the playground server: Solana and x402 rails', () => {
  let devnet: RunningDevnet
  let handle: (request: Request) => Promise<Response>
  const get = (path: string, init?: RequestInit) => handle(new Request(`http://127.0.0.1${path}`, init))
  const rpc = (method: string, params: unknown[] = []) =>
    get('/api/solana/rpc', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    })

  beforeAll(async () => {
    devnet = await startDevnet({ rails: ['solana', 'tempo'], tempo: { accounts: 8 } })
    handle = playgroundHandler({ devnet: devnet.info, page: '' })
  }, 60_000)
  afterAll(async () => {
    await devnet?.stop()
  })

  it('hands the page only its own devnet keys: never the devnet authority that minted the token', async () => {
    const config = await (await get('/api/config')).json()
    expect(config.solana.payer.secretKey).toHaveLength(64)
    expect(config.solana.rpcUrl).toBe('/api/solana/rpc')
    expect(config.x402.servicePayer.privateKey).toMatch(/^0x[0-9a-f]{64}$/)
    const text = JSON.stringify(config)
    const authority = (devnet.info.solana as { payer: { address: string; secretKey: number[] } }).payer
    expect(text).not.toContain(JSON.stringify(authority.secretKey))
    // The facilitator's key pays gas on the server; the page gets its address only.
    const tempo = devnet.info.tempo as { accounts: { address: string; privateKey: string }[] }
    expect(text).not.toContain(tempo.accounts[5]!.privateKey)
    expect(config.x402.facilitator).toBe(tempo.accounts[5]!.address)
    // x402 on Solana: the page gets its two payers' devnet keys and the fee payer's address only.
    expect(config.x402Solana.servicePayer.secretKey).toHaveLength(64)
    expect(config.x402Solana.clientPayer.secretKey).toHaveLength(64)
    expect(config.x402Solana.rpcUrl).toBe('/api/x402-solana/rpc')
    expect(config.x402Solana.facilitator).toMatch(/^[1-9A-HJ-NP-Za-km-z]{32,44}$/)
    expect(Object.keys(config.x402Solana).sort()).toEqual([
      'clientPayer',
      'facilitator',
      'network',
      'payee',
      'price',
      'routes',
      'rpcUrl',
      'servicePayer',
      'token',
    ])
  })

  it('the RPC proxy forwards the calls of a paying client and refuses the others', async () => {
    const blockhash = await rpc('getLatestBlockhash', [{ commitment: 'confirmed' }])
    expect(blockhash.status).toBe(200)
    expect((await blockhash.json()).result.value.blockhash).toMatch(/^[1-9A-HJ-NP-Za-km-z]{32,44}$/)
    const airdrop = await rpc('requestAirdrop', ['11111111111111111111111111111111', 1])
    expect(airdrop.status).toBe(400)
    expect((await airdrop.json()).error.message).toBe('not available to the page')
    const garbage = await get('/api/solana/rpc', { method: 'POST', body: 'not json' })
    expect(garbage.status).toBe(400)
    // The x402-on-Solana views' proxy allows the same calls.
    const x402Airdrop = await get('/api/x402-solana/rpc', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'requestAirdrop', params: [] }),
    })
    expect(x402Airdrop.status).toBe(400)
  })

  it('answers bad credentials with a problem, not a 500', async () => {
    const solana = await get('/api/demo/solana/sol', {
      headers: { authorization: 'Payment not-a-credential' },
    })
    expect(solana.status).toBeGreaterThanOrEqual(400)
    expect(solana.status).toBeLessThan(500)
    expect(solana.headers.get('content-type')).toMatch(/problem\+json/)
    const dual = await get('/api/demo/x402/dual', { headers: { 'payment-signature': 'bm90LWpzb24' } })
    expect(dual.status).toBeGreaterThanOrEqual(400)
    expect(dual.status).toBeLessThan(500)
    const service = await get('/api/demo/x402/service', { headers: { 'payment-signature': 'bm90LWpzb24' } })
    expect(service.status).toBeGreaterThanOrEqual(400)
    expect(service.status).toBeLessThan(500)
    expect(await service.text()).not.toMatch(/at .*\.(ts|js):\d+/)
    for (const path of ['/api/demo/x402-solana/dual', '/api/demo/x402-solana/service']) {
      const answer = await get(path, { headers: { 'payment-signature': 'bm90LWpzb24' } })
      expect(answer.status, path).toBeGreaterThanOrEqual(400)
      expect(answer.status, path).toBeLessThan(500)
      expect(await answer.text(), path).not.toMatch(/at .*\.(ts|js):\d+/)
    }
    const record = await get('/api/x402-solana/record/not-a-signature')
    expect(record.status).toBe(404)
  })

  it('quotes each demo route in a 402 with its price', async () => {
    const sol = await get('/api/demo/solana/sol')
    expect(sol.status).toBe(402)
    expect(sol.headers.get('www-authenticate')).toMatch(/method="solana", intent="charge"/)
    const service = await get('/api/demo/x402/service')
    expect(service.status).toBe(402)
    const required = JSON.parse(atob(service.headers.get('payment-required')!))
    expect(required.accepts[0]).toMatchObject({ scheme: 'exact', amount: '2000' })
    const dual = await get('/api/demo/x402/dual')
    expect(dual.status).toBe(402)
    expect(dual.headers.get('www-authenticate')).toMatch(/method="evm"/)
    expect(dual.headers.get('payment-required')).toBeTruthy()
    const solanaService = await get('/api/demo/x402-solana/service')
    expect(solanaService.status).toBe(402)
    const solanaRequired = JSON.parse(atob(solanaService.headers.get('payment-required')!))
    expect(solanaRequired.accepts[0]).toMatchObject({
      scheme: 'exact',
      amount: '2000',
      network: expect.stringMatching(/^solana:/),
    })
    const solanaDual = await get('/api/demo/x402-solana/dual')
    expect(solanaDual.status).toBe(402)
    expect(solanaDual.headers.get('www-authenticate')).toMatch(/method="solana", intent="charge"/)
    expect(solanaDual.headers.get('payment-required')).toBeTruthy()
  })
})
