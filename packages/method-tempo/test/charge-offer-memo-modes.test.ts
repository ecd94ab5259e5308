// An offer that pins its own fixed memo replaces the method's `methodDetails`, `supportedModes`
// included: without it, its challenges would advertise both modes while hash credentials are refused
// for a fixed memo, and a push payer would pay and get a 402. Such an offer is refused before anyone
// pays; stated pull only, it is served to a push-preferring client in pull mode.
import { Challenge, ConfigurationError } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Address, erc20Abi, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { chargeClient } from '../src/client/index.js'
import { type ChargeOptions, chargeServer } from '../src/server/Charge.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
const memo = `0x${'ab'.repeat(32)}` as Hex
const secrets = ['charge-offer-memo-modes-secret-0123456789']

const balance = (owner: Address) =>
  tempoClients(devnet.info).publicClient.readContract({
    address: devnet.info.tokens.pathUsd,
    abi: erc20Abi,
    functionName: 'balanceOf',
    args: [owner],
  })

describe.skipIf(!!reason)('tempo/charge offers with their own fixed memo', () => {
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 4 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  /** A route of one tempo offer, and a push-preferring client paying it with `payerIndex`'s account. */
  function route(
    methodDetails: Record<string, unknown> | (() => Record<string, unknown>),
    payerIndex: number,
    extra: Partial<ChargeOptions> = {},
  ) {
    const { info } = devnet
    const method = chargeServer({
      rpcUrl: info.rpcUrl,
      chainId: info.chainId,
      currency: info.tokens.pathUsd,
      recipient: info.accounts[0]!.address,
      ...extra,
    })
    const errors: unknown[] = []
    const server = createServer({
      realm: 'tempo.test',
      secrets,
      methods: [method],
      onError: (error) => void errors.push(error),
    })
    let runs = 0
    const request =
      typeof methodDetails === 'function'
        ? () => ({ amount: '1000', methodDetails: methodDetails() })
        : { amount: '1000', methodDetails }
    const handler = () =>
      server.protect({ offers: [{ method: 'tempo', request }] }, () => {
        runs++
        return new Response('paid content')
      })
    const client = (protect: ReturnType<typeof handler>) =>
      createClient({
        methods: [
          chargeClient({
            account: privateKeyToAccount(info.accounts[payerIndex]!.privateKey),
            rpcUrl: info.rpcUrl,
            chainId: info.chainId,
            mode: 'push',
          }),
        ],
        fetch: ((input: RequestInfo, init?: RequestInit) =>
          protect(new Request(input, init))) as typeof fetch,
      })
    return { handler, client, runs: () => runs, errors }
  }

  /** The route's `methodDetails` as its 402 advertises it. */
  async function advertised(protect: (request: Request) => Promise<Response>) {
    const first = await protect(new Request('https://tempo.test/r'))
    const header = first.headers.get('www-authenticate')
    if (!header) return undefined
    const challenge = Challenge.parseAll(header).find((c) => c.method === 'tempo')
    return (challenge?.request as { methodDetails?: Record<string, unknown> } | undefined)?.methodDetails
  }

  it('refuses an offer whose fixed memo advertises push (supportedModes omitted or naming push) at configuration', async () => {
    const { info } = devnet
    for (const methodDetails of [
      { chainId: info.chainId, memo },
      { chainId: info.chainId, memo, supportedModes: ['pull', 'push'] },
      { chainId: info.chainId, memo, supportedModes: ['push'] },
    ]) {
      const { handler } = route(methodDetails, 1)
      let refusal: unknown
      try {
        await handler()(new Request('https://tempo.test/r'))
      } catch (error) {
        refusal = error
      }
      expect(refusal).toBeInstanceOf(ConfigurationError)
      expect(String((refusal as Error).message)).toMatch(
        /methodDetails\.supportedModes.*supportedModes: \['pull'\]/,
      )
    }
  })

  it('leaves a priced offer with such a memo out of the 402: the push client never pays', async () => {
    const { info } = devnet
    const { handler, client, runs, errors } = route(() => ({ chainId: info.chainId, memo }), 1)
    const protect = handler()
    expect(await advertised(protect)).toBeUndefined()
    const before = await balance(info.accounts[0]!.address)
    const outcome = await client(protect)
      .fetch('https://tempo.test/r')
      .then((response) => response.status)
      .catch((error: Error) => error.name)
    expect(outcome).not.toBe(200)
    expect(runs()).toBe(0)
    expect((await balance(info.accounts[0]!.address)) - before).toBe(0n)
    expect(errors.some((error) => error instanceof ConfigurationError)).toBe(true)
  })

  it("stated pull only, the challenge says ['pull'] and a push-preferring client pays in pull, served once", async () => {
    const { info } = devnet
    const { handler, client, runs } = route({ chainId: info.chainId, memo, supportedModes: ['pull'] }, 2)
    const protect = handler()
    expect(await advertised(protect)).toEqual({ chainId: info.chainId, memo, supportedModes: ['pull'] })
    const before = await balance(info.accounts[0]!.address)
    const response = await client(protect).fetch('https://tempo.test/r')
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('paid content')
    expect(runs()).toBe(1)
    expect((await balance(info.accounts[0]!.address)) - before).toBe(1000n)
  })

  it('with push opted in on the method, an offer memo advertising both modes is served to a push client', async () => {
    const { info } = devnet
    const { handler, client, runs } = route({ chainId: info.chainId, memo }, 3, {
      supportedModes: ['pull', 'push'],
    })
    const protect = handler()
    expect(await advertised(protect)).toEqual({ chainId: info.chainId, memo })
    const before = await balance(info.accounts[0]!.address)
    const response = await client(protect).fetch('https://tempo.test/r')
    expect(response.status).toBe(200)
    expect(runs()).toBe(1)
    expect((await balance(info.accounts[0]!.address)) - before).toBe(1000n)
  })
})
