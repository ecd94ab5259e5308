import { ConfigurationError } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { x402Client } from '@x402/core/client'
import { toClientEvmSigner } from '@x402/evm'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import { privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { charge, type Facilitator, svm, x402 } from '../src/server/index.js'

// Options every payment would fail on (audit: accepted, then each payment answered 503 or refused) are
// refused when the method or adapter is created, naming the option.
const token = '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913'
const payTo = '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'
let settles = 0
const facilitator: Facilitator = {
  verify: async () => ({ isValid: true }),
  settle: async () => {
    settles++
    return { success: false, transaction: '', errorReason: 'not in this test' }
  },
}
const evm = {
  chainId: 8453,
  currency: token,
  recipient: payTo,
  domain: { name: 'USD Coin', version: '2' },
  facilitator,
}
const key = 'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v'
const sol = {
  network: 'solana-devnet',
  currency: key,
  decimals: 6,
  recipient: key,
  feePayer: key,
  facilitator,
}

const refuses = (create: () => unknown, option: string) => {
  let error: unknown
  try {
    create()
  } catch (caught) {
    error = caught
  }
  expect(error).toBeInstanceOf(ConfigurationError)
  expect((error as Error).message).toContain(option)
}

describe('evm charge options', () => {
  it.each([
    ['recipient', '0x1234'],
    ['recipient', 'not an address'],
    ['currency', 'USDC'],
    ['currency', '0x833589fcd6eDb6E08f4c7C32D4f71b54bdA02913'], // a broken EIP-55 checksum
    ['chainId', '8453'],
    ['chainId', 0],
    ['chainId', 1.5],
    ['decimals', 99],
    ['decimals', -1],
    ['decimals', 6.5],
    ['timeout', 0],
    ['timeout', Number.NaN],
    ['timeout', 2 ** 31],
    ['minValiditySeconds', Number.NaN],
    ['hashMaxAgeSeconds', -5],
    ['permit2Address', '0x22'],
  ])('refuses %s %j', (option, value) => refuses(() => charge({ ...evm, [option]: value } as never), option))

  it('accepts valid options', () => {
    for (const extra of [
      {},
      { decimals: 0 },
      { decimals: 18 },
      { timeout: 1 },
      { recipient: payTo.toLowerCase() },
    ])
      expect(() => charge({ ...evm, ...extra } as never)).not.toThrow()
  })
})

describe('svm options', () => {
  it.each([
    ['recipient', 'nope'],
    ['currency', '0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913'],
    ['feePayer', `${key}1`], // base58 of 33 bytes
    ['decimals', -1],
    ['decimals', 10],
    ['timeout', Number.NaN],
    ['timeout', 0],
    ['maxTimeoutSeconds', 0],
    ['rpcUrl', 'x'],
    ['facilitator', {}],
  ])('refuses %s %j', (option, value) => refuses(() => svm({ ...sol, [option]: value } as never), option))

  it('accepts valid options', () => {
    for (const extra of [{}, { decimals: 0 }, { decimals: 9 }, { rpcUrl: 'http://127.0.0.1:8899' }])
      expect(() => svm({ ...sol, ...extra } as never)).not.toThrow()
    expect(() => svm({ ...sol, currency: '11111111111111111111111111111111' } as never)).not.toThrow()
  })
})

describe('x402 adapter options', () => {
  const server = () =>
    createServer({
      realm: 'localhost',
      secrets: ['s'.repeat(32)],
      methods: [charge(evm as never)],
      logger: false,
    })

  it.each([0, -1, 1.5, Number.NaN, 31_536_001, '300'])('refuses maxTimeoutSeconds %j', (maxTimeoutSeconds) =>
    refuses(() => x402(server(), { maxTimeoutSeconds: maxTimeoutSeconds as number }), 'maxTimeoutSeconds'),
  )

  // Audit: `maxTimeoutSeconds: 7200` beside the evm charge's default `maxValiditySeconds` (3600) had every
  // real @x402/fetch payment refused as "valid too long". The operator is now told why, before anything moves.
  const pay = async (maxValiditySeconds?: number, hidden = false) => {
    const errors: unknown[] = []
    const method = charge({ ...evm, ...(maxValiditySeconds ? { maxValiditySeconds } : {}) } as never)
    const created = createServer({
      realm: 'localhost',
      secrets: ['s'.repeat(32)],
      methods: [method],
      logger: false,
      onError: (error) => errors.push(error),
    })
    // `hidden`: a Server whose methods the adapter cannot see (one built by hand around the pipeline).
    const mpp = hidden ? { ...created, methods: [] } : created
    let runs = 0
    const handler = x402(mpp, { maxTimeoutSeconds: 7200 }).protect(
      { offers: [{ method: 'evm', request: { amount: '1000' } }] },
      () => {
        runs++
        return new Response('paid')
      },
    )
    const network = 'eip155:8453' as const
    const account = privateKeyToAccount(`0x${'11'.repeat(32)}`)
    const client = x402Client.fromConfig({
      schemes: [{ network, client: new ExactEvmScheme(toClientEvmSigner(account)) }],
      spendControls: { allowedAssets: [{ network, asset: token, maxAmountPerPayment: '1000000' }] },
    })
    const paying = wrapFetchWithPayment(async (input, init) => handler(new Request(input, init)), client)
    settles = 0
    const response = await paying('http://localhost/paid')
    const configuration = errors.find((error) => error instanceof ConfigurationError) as Error | undefined
    return { status: response.status, runs, settles, configuration }
  }

  it('a maxTimeoutSeconds above the evm charge’s maxValiditySeconds is refused when the adapter is created', () => {
    const mpp = (maxValiditySeconds?: number) =>
      createServer({
        realm: 'localhost',
        secrets: ['s'.repeat(32)],
        methods: [charge({ ...evm, ...(maxValiditySeconds ? { maxValiditySeconds } : {}) } as never)],
        logger: false,
      })
    expect(() => x402(mpp(), { maxTimeoutSeconds: 7200 })).toThrow(ConfigurationError)
    expect(() => x402(mpp(), { maxTimeoutSeconds: 7200 })).toThrow(
      /maxTimeoutSeconds \(7200\).*maxValiditySeconds \(3600\)/,
    )
    expect(() => x402(mpp(7200), { maxTimeoutSeconds: 7200 })).not.toThrow()
    expect(() => x402(mpp(), { maxTimeoutSeconds: 3600 })).not.toThrow()
  })

  it('an evm method the adapter cannot see still refuses such a payment with a ConfigurationError, not a refused payer', async () => {
    const { status, runs, settles, configuration } = await pay(undefined, true)
    expect(status).toBe(503)
    expect(runs).toBe(0)
    expect(settles).toBe(0)
    expect(configuration?.message).toMatch(/maxTimeoutSeconds \(7200\).*maxValiditySeconds \(3600\)/)
  })

  it('takes the payment to settlement when maxValiditySeconds covers maxTimeoutSeconds', async () => {
    const { settles, configuration } = await pay(7200)
    expect(configuration).toBeUndefined()
    expect(settles).toBe(1)
  })
})
