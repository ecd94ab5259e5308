// `stateTtlSeconds` is how long the Store remembers what a channel's vouchers paid for. The audit
// (2026-12, config) set it to 0: a paid voucher credential resent five times was served five more
// times. On anvil: 0 is now refused at creation, and at the smallest lifetime accepted (900 s) the
// resent voucher is refused like with the default.

import { ConfigurationError } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { startTempo, type TempoDevnet } from '../../devnet/src/tempo/index.js'
import { sessionClient } from '../src/client/index.js'
import { sessionServer } from '../src/server/index.js'

let devnet: TempoDevnet
beforeAll(async () => {
  devnet = await startTempo({ accounts: 3 })
}, 120_000)
afterAll(async () => {
  await devnet?.stop()
})

it('stateTtlSeconds 0 is refused; at 900 s a resent paid voucher is not served again', async () => {
  const payee = privateKeyToAccount(devnet.info.accounts[0]!.privateKey)
  const options = {
    rpcUrl: devnet.info.rpcUrl,
    chainId: devnet.info.chainId,
    currency: devnet.info.tokens.pathUsd,
    account: payee,
    escrow: devnet.info.escrow,
    timeout: 5_000,
  }
  expect(() => sessionServer({ ...options, stateTtlSeconds: 0 })).toThrow(ConfigurationError)
  const method = sessionServer({ ...options, stateTtlSeconds: 900 })
  const server = createServer({
    realm: 'session.test',
    secrets: ['s'.repeat(32)],
    methods: [method],
    logger: false,
  })
  let served = 0
  const handler = server.protect(
    { offers: [{ method: 'tempo', intent: 'session', request: { amount: '1000', unitType: 'req' } }] },
    () => new Response(`served ${++served}`),
  )
  const authorizations: string[] = []
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const authorization = request.headers.get('authorization')
    if (authorization) authorizations.push(authorization)
    return handler(request)
  }) as typeof fetch
  const sessions = sessionClient({
    account: privateKeyToAccount(devnet.info.accounts[1]!.privateKey),
    rpcUrl: devnet.info.rpcUrl,
    chainId: devnet.info.chainId,
    deposit: 10_000n,
    fetch: fetcher,
  })
  const client = createClient({ methods: [sessions], fetch: fetcher, policy: { maxDeposit: 100_000n } })
  for (let i = 0; i < 2; i++) expect((await client.fetch('https://session.test/r')).status).toBe(200)
  expect(served).toBe(2)
  const voucher = authorizations.at(-1)!
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    statuses.push(
      (await handler(new Request('https://session.test/r', { headers: { authorization: voucher } }))).status,
    )
  }
  expect(statuses).toEqual([402, 402, 402])
  expect(served).toBe(2)
  await server.close()
}, 120_000)
