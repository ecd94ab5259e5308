// x402's own Permit2 transfer method (`extra.assetTransferMethod: "permit2"`) on the devnet: the devnet
// places contracts/X402ExactPermit2Proxy.sol (ours) at x402's fixed proxy address, over anvil's
// predeployed Permit2. First the x402 stack alone (`@x402/fetch` paying `@x402/hono` through `@x402/core`'s
// in-process facilitator with `@x402/evm`), which proves the proxy is the one x402 expects; then our
// client (`charge` + the `x402` plug) paying the same `@x402/hono` route.
import { Challenge, Credential } from '@mppkit/core'
import { create as createClient, PaymentFailedError, Protocol, receipt } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { x402Client } from '@x402/core/client'
import type { FacilitatorClient } from '@x402/core/server'
import { x402ResourceServer } from '@x402/core/server'
import { toClientEvmSigner, x402ExactPermit2ProxyABI, x402ExactPermit2ProxyAddress } from '@x402/evm'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { ExactEvmScheme as ExactEvmServerScheme } from '@x402/evm/exact/server'
import { wrapFetchWithPayment } from '@x402/fetch'
import { paymentMiddleware } from '@x402/hono'
import { Hono } from 'hono'
import { type Address, erc20Abi, getAddress, maxUint256, toFunctionSignature } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  permit2Address,
  startTempo,
  type TempoDevnet,
  type TempoDevnetInfo,
  tempoUnavailableReason,
  x402ExactPermit2ProxyAbi,
} from '../../devnet/src/tempo/index.js'
import { charge, x402 } from '../src/client/index.js'
import { charge as chargeServer, x402 as dualStack } from '../src/server/index.js'
import * as Wire from '../src/Wire.js'
import { asFetch, balanceOf, facilitator, walletOf } from './peers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet

beforeAll(async () => {
  if (reason) return
  devnet = await startTempo({ accounts: 8 })
  // Payers 1 and 3 made the one-time approval of Permit2; payer 2 did not.
  await approve(devnet.info, 1, maxUint256)
  await approve(devnet.info, 3, maxUint256)
  // Our client's payer: approved for exactly two payments of 1000.
  await approve(devnet.info, 6, 2000n)
})
afterAll(async () => {
  await devnet?.stop()
})

async function approve(info: TempoDevnetInfo, index: number, amount: bigint) {
  const wallet = walletOf(info, index)
  const hash = await wallet.writeContract({
    address: info.eip3009Token,
    abi: erc20Abi,
    functionName: 'approve',
    args: [permit2Address, amount],
    gas: 100_000n,
  })
  await wallet.waitForTransactionReceipt({ hash })
}

/** An `@x402/hono` v2 app selling `GET /paid` for `amount` of the devnet token, paid through Permit2. */
export function honoPermit2Server(
  info: TempoDevnetInfo,
  options: { facilitator: FacilitatorClient; payTo: Address; amount: string },
) {
  const server = new x402ResourceServer(options.facilitator).register(
    `eip155:${info.chainId}`,
    new ExactEvmServerScheme(),
  )
  let runs = 0
  const app = new Hono()
  app.use(
    paymentMiddleware(
      {
        'GET /paid': {
          accepts: {
            scheme: 'exact',
            network: `eip155:${info.chainId}`,
            payTo: options.payTo,
            price: {
              amount: options.amount,
              asset: info.eip3009Token,
              extra: { assetTransferMethod: 'permit2' },
            },
            maxTimeoutSeconds: 120,
          },
          description: 'a paid thing',
        },
      },
      server,
    ),
  )
  app.get('/paid', (c) => {
    runs++
    return c.text('paid content')
  })
  return { fetch: (request: Request) => app.fetch(request) as Promise<Response>, runs: () => runs }
}

/**
 * `@x402/fetch` paying with dev account `index`, through `@x402/evm`'s exact client (choosing the
 * requirement with `extra.assetTransferMethod: "permit2"` when offered several).
 */
function x402Payer(info: TempoDevnetInfo, index: number, handler: (request: Request) => Promise<Response>) {
  const network = `eip155:${info.chainId}` as const
  const client = x402Client.fromConfig({
    paymentRequirementsSelector: (_version, requirements) =>
      requirements.find((entry) => entry.extra?.assetTransferMethod === 'permit2') ?? requirements[0]!,
    schemes: [
      {
        network,
        client: new ExactEvmScheme(toClientEvmSigner(privateKeyToAccount(info.accounts[index]!.privateKey))),
      },
    ],
    spendControls: { allowedAssets: [{ network, asset: info.eip3009Token, maxAmountPerPayment: '1000000' }] },
  })
  const sent: string[] = []
  const fetch = wrapFetchWithPayment(async (input, init) => {
    const request = new Request(input, init)
    const signature = request.headers.get(Wire.headers.paymentSignature)
    if (signature) sent.push(signature)
    return handler(request)
  }, client)
  return { fetch, sent }
}

/** The `error` an x402 v2 402 names in `PAYMENT-REQUIRED`. */
const refusal = (response: Response) =>
  Wire.decode(response.headers.get(Wire.headers.paymentRequired) ?? Wire.encode({})).error

describe.skipIf(reason)('devnet: X402ExactPermit2Proxy at x402’s fixed address', () => {
  it('has the external interface @x402/evm calls, and is bound to the predeployed Permit2', async () => {
    const info = devnet.info
    expect(info.x402Permit2Proxy).toBe(getAddress(x402ExactPermit2ProxyAddress))
    const signatures = (abi: readonly { type: string }[]) =>
      abi
        .filter((item) => item.type === 'function' || item.type === 'event' || item.type === 'error')
        .map((item) => toFunctionSignature(item as never))
        .sort()
    // Every function, event and error x402's ABI names, with the same argument types.
    expect(signatures(x402ExactPermit2ProxyAbi)).toEqual(signatures(x402ExactPermit2ProxyABI))
    const read = (functionName: 'PERMIT2' | 'WITNESS_TYPE_STRING' | 'WITNESS_TYPEHASH') =>
      walletOf(info, 0).readContract({
        address: info.x402Permit2Proxy,
        abi: x402ExactPermit2ProxyAbi,
        functionName,
      })
    expect(await read('PERMIT2')).toBe(permit2Address)
    expect(await read('WITNESS_TYPE_STRING')).toMatchInlineSnapshot(
      `"Witness witness)TokenPermissions(address token,uint256 amount)Witness(address to,uint256 validAfter)"`,
    )
  })
})

describe.skipIf(reason)(
  'x402 Permit2, the x402 stack alone (@x402/fetch → @x402/hono → in-process facilitator)',
  () => {
    it('pays once through the proxy: the token moves from the payer to payTo, the facilitator pays gas', async () => {
      const info = devnet.info
      const fac = facilitator(info, 5)
      const payTo = info.accounts[4]!.address
      const payer = info.accounts[1]!.address
      const server = honoPermit2Server(info, { facilitator: fac.client, payTo, amount: '1000' })
      const { fetch, sent } = x402Payer(info, 1, server.fetch)
      const [payeeBefore, payerBefore] = [await balanceOf(info, payTo), await balanceOf(info, payer)]
      const response = await fetch('http://localhost/paid')
      expect(response.status).toBe(200)
      expect(await response.text()).toBe('paid content')
      expect(server.runs()).toBe(1)
      expect(fac.counts.settle).toBe(1)
      expect((await balanceOf(info, payTo)) - payeeBefore).toBe(1000n)
      expect(payerBefore - (await balanceOf(info, payer))).toBe(1000n)
      // What @x402/evm signed: a Permit2 witness transfer whose spender is the proxy.
      const signed = Wire.decode(sent[0]!) as {
        accepted: { extra: unknown }
        payload: { permit2Authorization: { spender: string; witness: { to: string } } }
      }
      expect(signed.accepted.extra).toEqual({ assetTransferMethod: 'permit2' })
      expect(getAddress(signed.payload.permit2Authorization.spender)).toBe(info.x402Permit2Proxy)
      expect(getAddress(signed.payload.permit2Authorization.witness.to)).toBe(payTo)
      const settled = Wire.decode(response.headers.get(Wire.headers.paymentResponse)!)
      expect(settled).toMatchObject({ success: true, payer, network: `eip155:${info.chainId}` })
      const receipt = await walletOf(info, 0).getTransactionReceipt({ hash: settled.transaction as never })
      expect(getAddress(receipt.to!)).toBe(info.x402Permit2Proxy)
      expect(receipt.status).toBe('success')

      // The same PAYMENT-SIGNATURE again: Permit2's nonce is spent, nothing moves a second time.
      const replay = await server.fetch(
        new Request('http://localhost/paid', { headers: { [Wire.headers.paymentSignature]: sent[0]! } }),
      )
      expect(replay.status).toBe(402)
      expect(server.runs()).toBe(1)
      expect((await balanceOf(info, payTo)) - payeeBefore).toBe(1000n)
    })

    it('a payer who never approved Permit2: @x402/evm signs and sends anyway; the facilitator refuses it (412 permit2_allowance_required)', async () => {
      const info = devnet.info
      const fac = facilitator(info, 5)
      const payTo = info.accounts[4]!.address
      const server = honoPermit2Server(info, { facilitator: fac.client, payTo, amount: '1000' })
      const { fetch, sent } = x402Payer(info, 2, server.fetch)
      const before = await balanceOf(info, payTo)
      const response = await fetch('http://localhost/paid')
      // x402's HTTP server answers this one reason with 412, every other refusal with 402.
      expect(response.status).toBe(412)
      expect(sent).toHaveLength(1)
      expect(refusal(response)).toBe('permit2_allowance_required')
      expect(server.runs()).toBe(0)
      expect(fac.counts.settle).toBe(0)
      expect(await balanceOf(info, payTo)).toBe(before)
    })

    it('a tampered payTo in the signed witness is refused, on the facilitator and by the proxy on chain', async () => {
      const info = devnet.info
      const fac = facilitator(info, 5)
      const payTo = info.accounts[4]!.address
      const server = honoPermit2Server(info, { facilitator: fac.client, payTo, amount: '1000' })
      // Sign a real payment, but keep it from the server.
      let signed: string | undefined
      const client = x402Payer(info, 3, async (request) => {
        const header = request.headers.get(Wire.headers.paymentSignature)
        if (header) {
          signed = header
          return new Response('kept', { status: 418 })
        }
        return server.fetch(request)
      })
      await client.fetch('http://localhost/paid')
      const document = Wire.decode(signed!) as {
        payload: {
          signature: `0x${string}`
          permit2Authorization: {
            from: Address
            permitted: { token: Address; amount: string }
            nonce: string
            deadline: string
            witness: { to: Address; validAfter: string }
          }
        }
      }
      const thief = info.accounts[7]!.address
      const authorization = document.payload.permit2Authorization
      // On chain: the proxy hashes the witness it is given, so Permit2 finds the signature invalid.
      const settle = (to: Address) =>
        walletOf(info, 6).simulateContract({
          address: info.x402Permit2Proxy,
          abi: x402ExactPermit2ProxyAbi,
          functionName: 'settle',
          args: [
            {
              permitted: {
                token: authorization.permitted.token,
                amount: BigInt(authorization.permitted.amount),
              },
              nonce: BigInt(authorization.nonce),
              deadline: BigInt(authorization.deadline),
            },
            authorization.from,
            { to, validAfter: BigInt(authorization.witness.validAfter) },
            document.payload.signature,
          ],
        })
      await expect(settle(thief)).rejects.toThrow()
      // The untampered one would pass (the refusal is the tampering's, not something else's).
      await expect(settle(payTo)).resolves.toBeDefined()
      const before = await balanceOf(info, thief)
      const tampered = Wire.encode({
        ...document,
        payload: {
          ...document.payload,
          permit2Authorization: { ...authorization, witness: { ...authorization.witness, to: thief } },
        },
      })
      const response = await server.fetch(
        new Request('http://localhost/paid', { headers: { [Wire.headers.paymentSignature]: tampered } }),
      )
      expect(response.status).toBe(402)
      expect(server.runs()).toBe(0)
      expect(await balanceOf(info, thief)).toBe(before)
    })
  },
)

describe.skipIf(reason)('x402 Permit2, our client (charge + x402 plug) against @x402/hono', () => {
  const setup = (payerIndex: number, options: { reader?: boolean; policy?: object } = {}) => {
    const info = devnet.info
    const fac = facilitator(info, 5)
    const payTo = info.accounts[4]!.address
    const server = honoPermit2Server(info, { facilitator: fac.client, payTo, amount: '1000' })
    const signer = privateKeyToAccount(info.accounts[payerIndex]!.privateKey)
    const signed = { count: 0 }
    // Counts what the account signs: nothing may be signed for a payment that is refused up front.
    const account = {
      ...signer,
      signTypedData: (async (data: Parameters<typeof signer.signTypedData>[0]) => {
        signed.count++
        return signer.signTypedData(data)
      }) as typeof signer.signTypedData,
    }
    const sent: string[] = []
    const client = createClient({
      methods: [charge({ account, ...(options.reader === false ? {} : { client: walletOf(info, 0) }) })],
      protocols: [Protocol.mpp, x402({ decimals: { [info.eip3009Token]: 6 } })],
      ...(options.policy ? { policy: options.policy } : {}),
      fetch: asFetch(async (request) => {
        const header = request.headers.get(Wire.headers.paymentSignature)
        if (header) sent.push(header)
        return server.fetch(request)
      }),
    })
    return { info, fac, payTo, server, client, sent, signed, payer: signer.address }
  }

  it('pays once: x402’s permit2Authorization for the proxy, the token moves, PAYMENT-RESPONSE is the receipt', async () => {
    const { info, fac, payTo, server, client, sent, payer } = setup(6)
    const [payeeBefore, payerBefore] = [await balanceOf(info, payTo), await balanceOf(info, payer)]
    const response = await client.fetch('http://localhost/paid')
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('paid content')
    expect(server.runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - payeeBefore).toBe(1000n)
    expect(payerBefore - (await balanceOf(info, payer))).toBe(1000n)
    expect(receipt(response)).toMatchObject({ status: 'success', method: 'evm', payer })
    expect(sent).toHaveLength(1)
    const document = Wire.decode(sent[0]!) as {
      accepted: unknown
      payload: { signature: string; permit2Authorization: Record<string, unknown> }
    }
    // The requirement is echoed unchanged; the payload is x402's Permit2 form, nothing else.
    expect(document.accepted).toEqual({
      scheme: 'exact',
      network: `eip155:${info.chainId}`,
      asset: info.eip3009Token,
      amount: '1000',
      payTo,
      maxTimeoutSeconds: 120,
      extra: { assetTransferMethod: 'permit2' },
    })
    expect(Object.keys(document.payload).sort()).toEqual(['permit2Authorization', 'signature'])
    const { nonce, deadline, ...authorization } = document.payload.permit2Authorization
    expect(authorization).toEqual({
      from: payer,
      permitted: { token: info.eip3009Token, amount: '1000' },
      spender: info.x402Permit2Proxy,
      witness: { to: payTo, validAfter: '0' },
    })
    expect(nonce).toMatch(/^\d+$/)
    // The deadline is the offer's timeout from now (120 s), not longer.
    expect(Number(deadline) - Math.floor(Date.now() / 1000)).toBeLessThanOrEqual(120)

    // Replayed as is: Permit2's nonce is spent; nothing is served or moved again.
    const replay = await server.fetch(
      new Request('http://localhost/paid', { headers: { [Wire.headers.paymentSignature]: sent[0]! } }),
    )
    expect(replay.status).toBe(402)
    expect(server.runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - payeeBefore).toBe(1000n)

    // Tampered (another nonce, so Permit2 would take it, or a larger amount): the signature no longer covers it.
    for (const change of [{ nonce: '1' }, { permitted: { token: info.eip3009Token, amount: '1001' } }]) {
      const tampered = Wire.encode({
        ...document,
        payload: {
          ...document.payload,
          permit2Authorization: { ...document.payload.permit2Authorization, ...change },
        },
      })
      const refused = await server.fetch(
        new Request('http://localhost/paid', { headers: { [Wire.headers.paymentSignature]: tampered } }),
      )
      expect(refused.status).toBe(402)
    }
    expect(server.runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - payeeBefore).toBe(1000n)
  })

  it('a payer whose Permit2 allowance does not cover the amount: a typed error before anything is signed or sent', async () => {
    // Payer 2 never approved Permit2.
    const { info, payTo, server, client, sent, signed } = setup(2)
    const before = await balanceOf(info, payTo)
    const failure = await client.fetch('http://localhost/paid').catch((error: unknown) => error)
    expect(failure).toBeInstanceOf(PaymentFailedError)
    expect((failure as PaymentFailedError).code).toBe('permit2-allowance')
    expect((failure as Error).message).toBe(
      `evm: ${info.accounts[2]!.address} has not approved Permit2 (0x000000000022D473030F116dDEE9F6B43aC78BA3) for 1000 of ${info.eip3009Token}; nothing was signed (approve it once on the token; this client never does)`,
    )
    expect(signed.count).toBe(0)
    expect(sent).toHaveLength(0)
    expect(server.runs()).toBe(0)
    expect(await balanceOf(info, payTo)).toBe(before)
  })

  it('without a chain reader it signs and sends as @x402/evm does; the x402 server answers 412', async () => {
    const { info, payTo, server, client, sent, signed } = setup(2, { reader: false })
    const before = await balanceOf(info, payTo)
    const response = await client.fetch('http://localhost/paid')
    expect(response.status).toBe(412)
    expect(refusal(response)).toBe('permit2_allowance_required')
    expect(signed.count).toBe(1)
    expect(sent).toHaveLength(1)
    expect(server.runs()).toBe(0)
    expect(await balanceOf(info, payTo)).toBe(before)
  })

  it('the spend policy bounds x402 Permit2 offers: refused before anything is signed', async () => {
    const { server, client, sent, signed } = setup(6, { policy: { maxAmount: 999n } })
    await expect(client.fetch('http://localhost/paid')).rejects.toThrow(/exceeds the per-request maximum 999/)
    expect(signed.count).toBe(0)
    expect(sent).toHaveLength(0)
    expect(server.runs()).toBe(0)
  })
})

describe.skipIf(reason)('x402 Permit2, our dual-stack server (x402Permit2) paid by @x402/fetch', () => {
  const url = 'http://localhost/paid'
  const setup = (lying?: { transaction: string }) => {
    const info = devnet.info
    const honest = facilitator(info, 5)
    // A facilitator that says it settled with a transaction that moved nothing (when `lying`).
    const fac = lying
      ? {
          counts: honest.counts,
          client: {
            ...honest.client,
            settle: async () => {
              honest.counts.settle++
              return { success: true, transaction: lying.transaction, network: `eip155:${info.chainId}` }
            },
          } as typeof honest.client,
        }
      : honest
    const payTo = info.accounts[4]!.address
    const server = createServer({
      realm: 'localhost',
      secrets: ['x402-compat-test-secret-0123456789abcdef'],
      methods: [
        chargeServer({
          chainId: info.chainId,
          currency: info.eip3009Token,
          recipient: payTo,
          domain: { name: info.eip3009.name, version: info.eip3009.version },
          facilitator: fac.client,
          client: walletOf(info, 0),
          x402Permit2: true,
        }),
      ],
    })
    let runs = 0
    const handler = dualStack(server, { maxTimeoutSeconds: 120 }).protect(
      { offers: [{ method: 'evm', request: { amount: '1000' } }] },
      () => {
        runs++
        return new Response('paid content')
      },
    )
    return { info, fac, payTo, server, handler, runs: () => runs }
  }
  /** A PAYMENT-SIGNATURE @x402/fetch signs for the route (kept from the route). */
  const signedBy = async (index: number, handler: (request: Request) => Promise<Response>) => {
    let kept: string | undefined
    const payer = x402Payer(devnet.info, index, async (request) => {
      const header = request.headers.get(Wire.headers.paymentSignature)
      if (header === null) return handler(request)
      kept = header
      return new Response('kept', { status: 418 })
    })
    await payer.fetch(url)
    return kept!
  }
  const present = (handler: (request: Request) => Promise<Response>, header: string) =>
    handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))

  it('advertises x402’s Permit2 requirement after the EIP-3009 one; @x402/fetch pays it through the proxy', async () => {
    const { info, fac, payTo, handler, runs } = setup()
    const unpaid = await handler(new Request(url))
    const accepts = Wire.decode(unpaid.headers.get(Wire.headers.paymentRequired)!).accepts as {
      extra: unknown
    }[]
    expect(accepts.map((entry) => entry.extra)).toEqual([
      { name: 'USD Coin', version: '2' },
      { assetTransferMethod: 'permit2' },
    ])
    const payer = info.accounts[3]!.address
    const [payeeBefore, payerBefore] = [await balanceOf(info, payTo), await balanceOf(info, payer)]
    const { fetch, sent } = x402Payer(info, 3, handler)
    const response = await fetch(url)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('paid content')
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((Wire.decode(sent[0]!).accepted as { extra: unknown }).extra).toEqual({
      assetTransferMethod: 'permit2',
    })
    expect((await balanceOf(info, payTo)) - payeeBefore).toBe(1000n)
    expect(payerBefore - (await balanceOf(info, payer))).toBe(1000n)
    const settled = Wire.decode(response.headers.get(Wire.headers.paymentResponse)!)
    expect(settled).toMatchObject({ success: true, payer, network: `eip155:${info.chainId}` })
    const landed = await walletOf(info, 0).getTransactionReceipt({ hash: settled.transaction as never })
    expect(getAddress(landed.to!)).toBe(info.x402Permit2Proxy)
    // Replayed: its Permit2 nonce is claimed; nothing reaches the facilitator again.
    const replay = await present(handler, sent[0]!)
    expect(replay.status).toBe(402)
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
  })

  it('20 concurrent copies of one PAYMENT-SIGNATURE settle once and serve once', async () => {
    const { info, fac, payTo, handler, runs } = setup()
    const header = await signedBy(3, handler)
    const before = await balanceOf(info, payTo)
    const responses = await Promise.all(Array.from({ length: 20 }, () => present(handler, header)))
    expect(responses.filter((response) => response.status === 200)).toHaveLength(1)
    expect(responses.filter((response) => response.status === 402)).toHaveLength(19)
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it('refuses a tampered permit before the facilitator sees it, and the type from an MPP client', async () => {
    const { info, fac, handler, runs } = setup()
    const header = await signedBy(3, handler)
    const document = Wire.decode(header) as {
      payload: { signature: string; permit2Authorization: Record<string, any> }
    }
    const authorization = document.payload.permit2Authorization
    const thief = info.accounts[7]!.address
    const tamper = (change: Record<string, unknown>) =>
      Wire.encode({
        ...document,
        payload: { ...document.payload, permit2Authorization: { ...authorization, ...change } },
      })
    const details: string[] = []
    for (const change of [
      { witness: { ...authorization.witness, to: thief } },
      { nonce: '7' },
      { spender: thief },
      { deadline: String(Math.floor(Date.now() / 1000) + 86_400 * 30) },
    ]) {
      const response = await present(handler, tamper(change))
      expect(response.status).toBe(402)
      details.push(((await response.json()) as { detail: string }).detail)
    }
    expect(details).toMatchInlineSnapshot(`
      [
        "The permit pays another recipient.",
        "The permit signature is invalid.",
        "The permit names another spender than x402’s Permit2 proxy.",
        "The permit is valid too far into the future.",
      ]
    `)
    expect(fac.counts.verify).toBe(0)
    // The same payment as an MPP credential: `x402-permit2` is no MPP credential type.
    const challenge = Challenge.parseAll(
      (await handler(new Request(url))).headers.get('www-authenticate')!,
    )[0]!
    const mpp = await handler(
      new Request(url, {
        headers: {
          authorization: Credential.format({
            challenge,
            payload: { type: 'x402-permit2', ...document.payload } as never,
          }),
        },
      }),
    )
    expect(mpp.status).toBe(402)
    expect(((await mpp.json()) as { detail: string }).detail).toMatchInlineSnapshot(
      `"This challenge does not accept x402-permit2 credentials."`,
    )
    expect(runs()).toBe(0)
    expect(fac.counts.verify).toBe(0)
    // Its payload under the route's EIP-3009 requirement: paid only in the form its requirement names.
    const accepts = Wire.decode((await handler(new Request(url))).headers.get(Wire.headers.paymentRequired)!)
      .accepts as unknown[]
    const crossed = await present(handler, Wire.encode({ ...document, accepted: accepts[0] }))
    expect(crossed.status).toBe(402)
    expect(((await crossed.json()) as { detail: string }).detail).toBe(
      'The accepted requirement is not offered here now.',
    )
    expect(fac.counts.verify).toBe(0)
    // Untampered, it pays (the refusals were the tampering's).
    expect((await present(handler, header)).status).toBe(200)
  })

  it('a facilitator answering success with a transaction that did not pay: nobody is served', async () => {
    const info = devnet.info
    // A real, successful transaction of the chain that moved nothing to payTo (payer 1's approval).
    const approval = await walletOf(info, 1).writeContract({
      address: info.eip3009Token,
      abi: erc20Abi,
      functionName: 'approve',
      args: [permit2Address, maxUint256],
      gas: 100_000n,
    })
    await walletOf(info, 1).waitForTransactionReceipt({ hash: approval })
    const { fac, handler, runs } = setup({ transaction: approval })
    const header = await signedBy(3, handler)
    const response = await present(handler, header)
    expect(response.status).toBe(402)
    expect(((await response.json()) as { detail: string }).detail).toBe(
      "The facilitator's settlement answer names a transaction that did not settle this permit.",
    )
    expect(fac.counts.settle).toBe(1)
    expect(runs()).toBe(0)
  })
})
