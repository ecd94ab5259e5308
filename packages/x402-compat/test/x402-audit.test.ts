// Audit of the x402 compatibility layer: the server adapter against lying facilitators and hostile
// PAYMENT-SIGNATURE values, and the client plug against hostile requirements.
import { create as createClient, Protocol } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Hex, toHex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { typedData } from '../src/Authorization.js'
import { charge as chargeClient, x402 as x402Client } from '../src/client/index.js'
import { charge, type Facilitator, x402 } from '../src/server/index.js'
import type { Reader } from '../src/server/Shared.js'
import * as Wire from '../src/Wire.js'
import { asFetch, balanceOf, facilitator, honoV2Server, walletOf } from './peers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
beforeAll(async () => {
  if (!reason) devnet = await startTempo({ accounts: 8 })
})
afterAll(async () => {
  await devnet?.stop()
})

const url = 'http://localhost/paid'

function setup(options: { facilitator?: Facilitator; client?: Reader } = {}) {
  const info = devnet.info
  const fac = facilitator(info, 7)
  const payTo = info.accounts[6]!.address
  const server = createServer({
    realm: 'localhost',
    secrets: ['x402-compat-test-secret-0123456789abcdef'],
    methods: [
      charge({
        chainId: info.chainId,
        currency: info.eip3009Token,
        recipient: payTo,
        domain: { name: info.eip3009.name, version: info.eip3009.version },
        decimals: info.eip3009.decimals,
        facilitator: options.facilitator ?? fac.client,
        ...(options.client ? { client: options.client } : {}),
      }),
    ],
  })
  let runs = 0
  const handler = x402(server, { maxTimeoutSeconds: 120 }).protect(
    { offers: [{ method: 'evm', request: { amount: '1000' } }] },
    () => {
      runs++
      return new Response('paid content')
    },
  )
  return { info, fac, payTo, handler, runs: () => runs }
}

async function requirementOf(handler: (request: Request) => Promise<Response>) {
  const response = await handler(new Request(url))
  return (
    Wire.decode(response.headers.get(Wire.headers.paymentRequired)!).accepts as Record<string, any>[]
  )[0]!
}

/** An x402 v2 payment of dev account `index` for `requirement`, with `extra` spread into its authorization. */
async function signed(index: number, requirement: Record<string, any>, extra: Record<string, unknown> = {}) {
  const info = devnet.info
  const account = privateKeyToAccount(info.accounts[index]!.privateKey)
  const authorization = {
    from: account.address,
    to: requirement.payTo,
    value: requirement.amount,
    validAfter: '0',
    validBefore: String(Math.floor(Date.now() / 1000) + 60),
    nonce: toHex(globalThis.crypto.getRandomValues(new Uint8Array(32))) as Hex,
  }
  const signature = await account.signTypedData(
    typedData({ ...info.eip3009, chainId: info.chainId, token: info.eip3009Token }, authorization),
  )
  return Wire.encode({
    x402Version: 2,
    resource: { url },
    accepted: requirement,
    payload: { signature, authorization: { ...authorization, ...extra } },
  })
}

const pay = (handler: (request: Request) => Promise<Response>, header: string) =>
  handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))

describe.skipIf(reason)('x402 (server): facilitator answers are checked, not trusted', () => {
  /** A facilitator that verifies honestly, then answers settle with `answer` (settling for real first when `settles`). */
  const lying = (answer: (honest: any) => any, settles = true) => {
    const fac = facilitator(devnet.info, 7)
    const liar: Facilitator = {
      verify: (document, requirement) => fac.client.verify(document as never, requirement as never),
      settle: async (document, requirement) => {
        const honest = settles
          ? await fac.client.settle(document as never, requirement as never)
          : {
              success: true,
              transaction: '',
              network: requirement.network,
              payer: document.payload.authorization.from,
            }
        return answer(honest)
      },
    }
    return { liar, fac }
  }

  it('a settlement answer naming another network is refused, nothing served', async () => {
    const { liar } = lying(
      (honest) => ({ ...honest, transaction: `0x${'ab'.repeat(32)}`, network: 'eip155:1' }),
      false,
    )
    const { handler, runs } = setup({ facilitator: liar })
    const response = await pay(handler, await signed(1, await requirementOf(handler)))
    expect(response.status).toBe(402)
    expect(runs()).toBe(0)
  })

  it('a settlement answer naming another payer is refused, nothing served', async () => {
    const { liar } = lying(
      (honest) => ({
        ...honest,
        transaction: `0x${'ab'.repeat(32)}`,
        payer: devnet.info.accounts[2]!.address,
      }),
      false,
    )
    const { handler, runs } = setup({ facilitator: liar })
    const response = await pay(handler, await signed(1, await requirementOf(handler)))
    expect(response.status).toBe(402)
    expect(runs()).toBe(0)
  })

  it('a settlement answer whose transaction is not a transaction hash is refused, nothing served', async () => {
    for (const transaction of ['', 'pending', 42, undefined]) {
      const { liar } = lying((honest) => ({ ...honest, transaction }), false)
      const { handler, runs } = setup({ facilitator: liar })
      const response = await pay(handler, await signed(1, await requirementOf(handler)))
      expect(response.status).toBe(402)
      expect(runs()).toBe(0)
    }
  })

  it('with a client, a "success" whose transaction holds no such transfer is refused (the chain is asked)', async () => {
    const { liar } = lying((honest) => ({ ...honest, transaction: `0x${'cd'.repeat(32)}` }), false)
    const { info, handler, runs, payTo } = setup({ facilitator: liar, client: walletOf(devnet.info, 0) })
    const before = await balanceOf(info, payTo)
    const response = await pay(handler, await signed(1, await requirementOf(handler)))
    expect(response.status).toBe(402)
    expect(runs()).toBe(0)
    expect((await balanceOf(info, payTo)) - before).toBe(0n)
  })

  it("with a client, the hash of the payer's earlier transfer (same amount and recipient) does not pay again", async () => {
    const honest = setup({ client: walletOf(devnet.info, 0) })
    const first = await pay(honest.handler, await signed(5, await requirementOf(honest.handler)))
    expect(first.status).toBe(200)
    const earlier = Wire.decode(first.headers.get(Wire.headers.paymentResponse)!).transaction
    // Settles nothing, and names the earlier transaction: its Transfer is from this payer, for this amount.
    const { liar } = lying((answer) => ({ ...answer, transaction: earlier }), false)
    const { info, handler, runs, payTo } = setup({ facilitator: liar, client: walletOf(devnet.info, 0) })
    const before = await balanceOf(info, payTo)
    const response = await pay(handler, await signed(5, await requirementOf(handler)))
    expect(response.status).toBe(402)
    expect(runs()).toBe(0)
    expect((await balanceOf(info, payTo)) - before).toBe(0n)
  })

  it('with a client, a settled transfer reported under a wrong hash is served by its real one, once', async () => {
    const { liar, fac } = lying((honest) => ({ ...honest, transaction: `0x${'ef'.repeat(32)}` }))
    const { info, handler, runs, payTo } = setup({ facilitator: liar, client: walletOf(devnet.info, 0) })
    const before = await balanceOf(info, payTo)
    const header = await signed(2, await requirementOf(handler))
    const response = await pay(handler, header)
    expect(response.status, await response.clone().text()).toBe(200)
    const settled = Wire.decode(response.headers.get(Wire.headers.paymentResponse)!)
    expect(settled.transaction).not.toBe(`0x${'ef'.repeat(32)}`)
    expect(settled.transaction).toMatch(/^0x[0-9a-f]{64}$/)
    expect(fac.counts.settle).toBe(1)
    expect((await pay(handler, header)).status).toBe(402)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it('verify says valid, settle fails: refused, nothing served, the same payment settles later', async () => {
    const { liar } = lying(() => ({ success: false, errorReason: 'boom', transaction: '' }), false)
    const refused = setup({ facilitator: liar })
    const header = await signed(3, await requirementOf(refused.handler))
    expect((await pay(refused.handler, header)).status).toBe(402)
    expect(refused.runs()).toBe(0)
    const working = setup()
    expect((await pay(working.handler, header)).status).toBe(200)
  })
})

describe.skipIf(reason)('x402 (server): hostile PAYMENT-SIGNATURE values', () => {
  it('an authorization smuggling another credential type is not paid as that type', async () => {
    const { handler, runs, fac } = setup()
    const header = await signed(4, await requirementOf(handler), {
      type: 'hash',
      hash: `0x${'12'.repeat(32)}`,
    })
    const response = await pay(handler, header)
    // Paid as the EIP-3009 authorization it is (or refused), never read as a `hash` credential.
    expect(response.status, await response.clone().text()).toBe(200)
    expect(fac.counts.settle).toBe(1)
    expect(runs()).toBe(1)
  })

  it('deeply nested and huge values are 402 problems, never a 500 or 503', async () => {
    const { handler } = setup()
    const requirement = await requirementOf(handler)
    const deep = `${'['.repeat(100_000)}${']'.repeat(100_000)}`
    // A payment document (each with its own valid authorization) with `deep` spliced in at `member`.
    const nested = async (member: string) => {
      const document = Wire.decode(await signed(4, requirement))
      return btoa(
        JSON.stringify({ ...document, [member]: 0 }).replace(`"${member}":0`, `"${member}":${deep}`),
      )
    }
    const values = [
      await nested('accepted'),
      await nested('resource'),
      await nested('x402Version'),
      await nested('extensions'),
      btoa(
        JSON.stringify(Wire.decode(await signed(4, requirement))).replace(
          '"authorization":',
          `"extra":${deep},"authorization":`,
        ),
      ),
      Wire.encode({ ...Wire.decode(await signed(4, requirement)), resource: [url] }),
      Wire.encode({
        ...Wire.decode(await signed(4, requirement)),
        accepted: { ...requirement, extra: { ...requirement.extra, pad: 'x'.repeat(1_000_000) } },
      }),
    ]
    for (const [index, value] of values.entries()) {
      const response = await pay(handler, value)
      expect(response.status, `value ${index}`).toBe(402)
      expect(response.headers.get('content-type')).toBe('application/problem+json')
    }
  })
})

describe.skipIf(reason)('x402 (client): what it signs', () => {
  it('never signs a validBefore far in the future, whatever maxTimeoutSeconds the server names', async () => {
    const info = devnet.info
    const requirement = {
      scheme: 'exact',
      network: `eip155:${info.chainId}`,
      asset: info.eip3009Token,
      amount: '1000',
      payTo: info.accounts[4]!.address,
      maxTimeoutSeconds: 10 * 365 * 86_400,
      extra: { name: info.eip3009.name, version: info.eip3009.version },
    }
    const sent: string[] = []
    const client = createClient({
      methods: [chargeClient({ account: privateKeyToAccount(info.accounts[1]!.privateKey) })],
      protocols: [x402Client()],
      policy: { currencies: [info.eip3009Token], maxAmount: 10_000n },
      fetch: asFetch(async (request) => {
        const header = request.headers.get(Wire.headers.paymentSignature)
        if (header) sent.push(header)
        return new Response('{}', {
          status: 402,
          headers: {
            [Wire.headers.paymentRequired]: Wire.encode({
              x402Version: 2,
              resource: { url },
              accepts: [requirement],
            }),
          },
        })
      }),
    })
    await client.fetch(url)
    expect(sent).toHaveLength(1)
    const { payload } = Wire.decode(sent[0]!) as { payload: { authorization: { validBefore: string } } }
    expect(Number(payload.authorization.validBefore)).toBeLessThanOrEqual(
      Math.floor(Date.now() / 1000) + 3_600,
    )
  })

  it('an offer with an absurd maxTimeoutSeconds does not hide the others', async () => {
    const plug = x402Client()
    const info = devnet.info
    const base = {
      scheme: 'exact',
      network: `eip155:${info.chainId}`,
      asset: info.eip3009Token,
      amount: '1000',
      payTo: info.accounts[4]!.address,
      maxTimeoutSeconds: 60,
      extra: { name: info.eip3009.name, version: info.eip3009.version },
    }
    const response = new Response('{}', {
      status: 402,
      headers: {
        [Wire.headers.paymentRequired]: Wire.encode({
          x402Version: 2,
          resource: { url },
          accepts: [{ ...base, maxTimeoutSeconds: 9_000_000_000_000_000 }, base],
        }),
      },
    })
    const challenges = await plug.challenges(response)
    expect(challenges.length).toBeGreaterThanOrEqual(1)
  })

  it('against @x402/hono: pays once within the policy, never twice when the paid request is a 402 again', async () => {
    const info = devnet.info
    const fac = facilitator(info, 5)
    const server = honoV2Server(info, {
      facilitator: fac.client,
      payTo: info.accounts[4]!.address,
      amount: '1000',
    })
    let paidRequests = 0
    const client = createClient({
      methods: [chargeClient({ account: privateKeyToAccount(info.accounts[3]!.privateKey) })],
      protocols: [Protocol.mpp, x402Client()],
      policy: { currencies: [info.eip3009Token], maxAmount: 1_000n, budget: 1_000n },
      fetch: asFetch(async (request) => {
        if (request.headers.get(Wire.headers.paymentSignature)) {
          paidRequests++
          const answer = await server.fetch(new Request(request.url))
          return new Response(answer.body, { status: 402, headers: answer.headers })
        }
        return server.fetch(request)
      }),
    })
    const response = await client.fetch(url)
    expect(response.status).toBe(402)
    expect(paidRequests).toBe(1)
    expect(fac.counts.settle).toBe(0)
  })
})
