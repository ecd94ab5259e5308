import { Challenge, ConfigurationError, Credential, VerificationFailedError } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { type Address, encodeFunctionData, erc20Abi, type Hex, maxUint256 } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { Abis, Account, Transaction } from 'viem/tempo'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { Attribution } from '../src/index.js'
import { walletClientFor } from '../src/internal/rpc.js'
import { checkSponsorPolicy } from '../src/server/Charge.js'
import { chargeServer, cosign, type SponsorPolicy, sessionServer } from '../src/server/index.js'

// A fee payer co-signs the client's gas price: without caps a 0.001 USD sponsored charge with
// maxFeePerGas = maxPriorityFeePerGas = 1e16 made the sponsor pay 550 pathUSD.

const payerKey = '0x1111111111111111111111111111111111111111111111111111111111111111'
const accessKey = '0x3333333333333333333333333333333333333333333333333333333333333333'
const payer = privateKeyToAccount(payerKey)
const feePayer = privateKeyToAccount('0x2222222222222222222222222222222222222222222222222222222222222222')
const pathUsd = '0x20c0000000000000000000000000000000000000'
const recipient = '0x742d35Cc6634c0532925a3b844bC9e7595F8fE00'
const chainId = 4217
const challenge = { id: 'challenge-123', realm: 'api.example.com' }
const request = {
  amount: '1000000',
  currency: pathUsd,
  recipient,
  methodDetails: { feePayer: true, chainId },
}
const gwei = 1_000_000_000n

async function sign(overrides: Record<string, unknown> = {}): Promise<Hex> {
  const memo = Attribution.encode({ challengeId: challenge.id, realm: challenge.realm })
  const transaction = {
    type: 'tempo',
    chainId,
    maxFeePerGas: 25n * gwei,
    maxPriorityFeePerGas: 1n * gwei,
    gas: 200_000n,
    calls: [
      {
        to: pathUsd,
        data: encodeFunctionData({
          abi: Abis.tip20,
          functionName: 'transferWithMemo',
          args: [recipient, 1_000_000n, memo],
        }),
      },
    ],
    nonceKey: maxUint256,
    nonce: 0,
    validBefore: Math.floor(Date.now() / 1000) + 60,
    feePayer: true,
    ...overrides,
  }
  return (await payer.signTransaction(transaction as never, {
    serializer: Transaction.serialize as never,
  })) as Hex
}

async function refusal(serializedTransaction: Hex, policy?: SponsorPolicy) {
  const error = await cosign({
    serializedTransaction,
    feePayer,
    feeToken: pathUsd,
    check: { request, challenge, ...(policy ? { policy } : {}) },
  }).then(
    () => undefined,
    (e: unknown) => e,
  )
  if (error === undefined) return undefined
  expect(error).toBeInstanceOf(VerificationFailedError)
  const failed = error as VerificationFailedError
  return { reason: failed.reason, detail: String(failed.detail) }
}

describe('sponsor policy: fee caps', () => {
  it('refuses a maxFeePerGas above the cap (default 100 gwei); honest fees pass', async () => {
    // An honest viem client signs about 1.2 × the base fee (fixed 20 gwei on Tempo) + a tip.
    expect(await refusal(await sign())).toBeUndefined()
    expect(
      await refusal(await sign({ maxFeePerGas: 100n * gwei, maxPriorityFeePerGas: 10n * gwei })),
    ).toBeUndefined()
    const tx = await sign({ maxFeePerGas: 10n ** 16n, maxPriorityFeePerGas: 1n * gwei })
    expect(await refusal(tx)).toEqual({
      reason: 'sponsor-fee-too-high',
      detail: expect.stringContaining('maxFeePerGas exceeds sponsor policy'),
    })
    expect(await refusal(await sign({ maxFeePerGas: 100n * gwei + 1n }))).toMatchObject({
      reason: 'sponsor-fee-too-high',
    })
    expect(await refusal(tx, { maxFeePerGas: 10n ** 16n })).toBeUndefined()
  })

  it('refuses a maxPriorityFeePerGas above the cap (default 10 gwei)', async () => {
    const tx = await sign({ maxFeePerGas: 50n * gwei, maxPriorityFeePerGas: 10n * gwei + 1n })
    expect(await refusal(tx)).toEqual({
      reason: 'sponsor-fee-too-high',
      detail: expect.stringContaining('maxPriorityFeePerGas exceeds sponsor policy'),
    })
    expect(
      await refusal(await sign({ maxPriorityFeePerGas: 2n * gwei }), { maxPriorityFeePerGas: gwei }),
    ).toMatchObject({
      reason: 'sponsor-fee-too-high',
    })
    expect(await refusal(tx, { maxPriorityFeePerGas: 20n * gwei })).toBeUndefined()
  })

  it('refuses gas × maxFeePerGas above maxTotalFee when set', async () => {
    const tx = await sign({ gas: 200_000n, maxFeePerGas: 25n * gwei })
    expect(await refusal(tx, { maxTotalFee: 200_000n * 25n * gwei })).toBeUndefined()
    expect(await refusal(tx, { maxTotalFee: 200_000n * 25n * gwei - 1n })).toEqual({
      reason: 'sponsor-fee-too-high',
      detail: expect.stringContaining('total fee'),
    })
  })

  it('applies to session fee payers too (checkSponsorPolicy, as session open/topUp call it)', () => {
    const check =
      (tx: Parameters<typeof checkSponsorPolicy>[0], policy: SponsorPolicy = {}) =>
      () =>
        checkSponsorPolicy(tx, undefined, policy, false)
    expect(check({ gas: 1_000_000n, maxFeePerGas: 11n * gwei, maxPriorityFeePerGas: gwei })).not.toThrow()
    for (const tx of [
      { gas: 1_000_000n, maxFeePerGas: 10n ** 16n, maxPriorityFeePerGas: gwei },
      { gas: 1_000_000n, maxFeePerGas: 50n * gwei, maxPriorityFeePerGas: 11n * gwei },
    ])
      expect(check(tx)).toThrow(expect.objectContaining({ reason: 'sponsor-fee-too-high' }))
    // Moderato (42431) regularly needs higher tips: its default priority cap is 50 gwei.
    expect(
      check({ chainId: 42431, maxFeePerGas: 80n * gwei, maxPriorityFeePerGas: 50n * gwei }),
    ).not.toThrow()
    expect(check({ chainId: 42431, maxFeePerGas: 80n * gwei, maxPriorityFeePerGas: 51n * gwei })).toThrow(
      expect.objectContaining({ reason: 'sponsor-fee-too-high' }),
    )
  })

  it('checks the caps at creation (ConfigurationError)', () => {
    const base = { rpcUrl: 'http://127.0.0.1:1', currency: pathUsd, recipient, feePayer } as const
    for (const sponsorPolicy of [
      { maxFeePerGas: 100_000_000_000 },
      { maxPriorityFeePerGas: -1n },
      { maxTotalFee: '1' },
      { allowKeyAuthorization: 'yes' },
    ])
      expect(() => chargeServer({ ...base, sponsorPolicy: sponsorPolicy as never })).toThrow(
        ConfigurationError,
      )
    expect(() => chargeServer({ ...base, sponsorPolicy: { maxFeePerGas: 50n * gwei } })).not.toThrow()
    // The session server takes the same policy for its sponsored open and topUp.
    const session = {
      rpcUrl: base.rpcUrl,
      currency: pathUsd as Address,
      account: feePayer,
      escrow: recipient as Address,
    }
    expect(() => sessionServer(session)).not.toThrow()
    expect(() => sessionServer({ ...session, sponsorPolicy: { maxTotalFee: '1' } } as never)).toThrow(
      ConfigurationError,
    )
  })
})

describe('sponsor policy: the fee payer pays for this payment only', () => {
  it('refuses an EIP-7702 authorization list', async () => {
    const tx = await sign({
      authorizationList: [
        {
          address: '0x000000000000000000000000000000000000dEaD',
          chainId,
          nonce: 1n,
          signature: { type: 'secp256k1', signature: { r: 1n, s: 1n, yParity: 0 } },
        },
      ],
    })
    expect(
      (Transaction.deserialize(tx) as { authorizationList?: readonly unknown[] }).authorizationList,
    ).toHaveLength(1)
    expect(await refusal(tx)).toEqual({
      reason: 'sponsor-policy',
      detail: expect.stringContaining('authorization list is not allowed'),
    })
  })

  it('refuses a key authorization unless allowKeyAuthorization', async () => {
    const root = Account.fromSecp256k1(payerKey)
    const key = Account.fromSecp256k1(accessKey)
    const keyAuthorization = await root.signKeyAuthorization({ address: key.address, type: 'secp256k1' }, {
      chainId: BigInt(chainId),
    } as never)
    const tx = await sign({ keyAuthorization })
    expect((Transaction.deserialize(tx) as { keyAuthorization?: unknown }).keyAuthorization).toBeTruthy()
    expect(await refusal(tx)).toEqual({
      reason: 'sponsor-policy',
      detail: expect.stringContaining('key authorization is not allowed'),
    })
    expect(await refusal(tx, { allowKeyAuthorization: true })).toBeUndefined()
  })

  it('refuses a validAfter in the future; a past one (mppx topUp) is fine', async () => {
    const now = Math.floor(Date.now() / 1000)
    expect(await refusal(await sign({ validAfter: now + 30 }))).toEqual({
      reason: 'sponsor-policy',
      detail: expect.stringContaining('validAfter'),
    })
    expect(await refusal(await sign({ validAfter: now - 3600 }))).toBeUndefined()
  })
})

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

describe.skipIf(!!reason)('sponsored pull on anvil: fee caps', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 6 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  it('an inflated gas price is refused (402) before the fee payer signs; an honest one is paid', async () => {
    const { info } = devnet
    const { publicClient } = tempoClients(info)
    const balance = (owner: Address) =>
      publicClient.readContract({
        address: info.tokens.pathUsd,
        abi: erc20Abi,
        functionName: 'balanceOf',
        args: [owner],
      })
    const sponsor = privateKeyToAccount(info.accounts[3]!.privateKey)
    const method = chargeServer({
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      currency: info.tokens.alphaUsd,
      recipient: info.accounts[0]!.address,
      timeout: 5_000,
      feePayer: sponsor,
      feeToken: info.tokens.pathUsd,
      // anvil drops expiring-nonce transactions after the first from an account (see charge.test.ts).
      sponsorPolicy: { requireExpiringNonce: false },
    })
    const server = createServer({ realm: 'tempo.test', secrets: ['s'.repeat(40)], methods: [method] })
    const handler = server.protect(
      { offers: [{ method: 'tempo', request: { amount: '1000' } }] },
      () => new Response('paid'),
    )
    const account = privateKeyToAccount(info.accounts[4]!.privateKey)
    const wallet = walletClientFor({ rpcUrl: info.rpcUrl, chainId: info.chainId, account })
    const pay = async (fees: { maxFeePerGas?: bigint; maxPriorityFeePerGas?: bigint }) => {
      const issued = Challenge.parseAll(
        (await handler(new Request('https://tempo.test/r'))).headers.get('www-authenticate')!,
      )[0]!
      const memo = Attribution.encode({ challengeId: issued.id, realm: issued.realm })
      const prepared = await wallet.prepareTransactionRequest({
        calls: [
          {
            to: info.tokens.alphaUsd,
            data: encodeFunctionData({
              abi: Abis.tip20,
              functionName: 'transferWithMemo',
              args: [info.accounts[0]!.address, 1000n, memo],
            }),
          },
        ],
        gas: 200_000n,
        nonceKey: 0n,
        nonce: await wallet.getTransactionCount({ address: account.address, blockTag: 'pending' }),
        validBefore: Math.floor(Date.now() / 1000) + 60,
        feePayer: true,
        ...fees,
      } as never)
      const signature = (await wallet.signTransaction(prepared as never)) as Hex
      const before = await balance(sponsor.address)
      const response = await handler(
        new Request('https://tempo.test/r', {
          headers: {
            authorization: Credential.format({
              challenge: issued,
              payload: { type: 'transaction', signature },
            }),
          },
        }),
      )
      return { response, paid: before - (await balance(sponsor.address)) }
    }

    const abusive = await pay({ maxFeePerGas: 10n ** 16n, maxPriorityFeePerGas: 10n ** 16n })
    expect(abusive.response.status).toBe(402)
    expect(((await abusive.response.json()) as { reason?: string }).reason).toBe('sponsor-fee-too-high')
    expect(abusive.paid).toBe(0n)

    const honest = await pay({})
    expect(honest.response.status, await honest.response.clone().text()).toBe(200)
    expect(honest.paid).toBeGreaterThan(0n)
    expect(honest.paid).toBeLessThan(10_000n) // 0.01 USD: an honest transfer costs a few hundred base units
  }, 60_000)
})
