// An EIP-3009 authorization's transfer is its own call's `Transfer`, not any `Transfer` of the amount in
// the same transaction. A payer who signs, for each of two payments, the real authorization and a second
// one with the same nonce paying itself 1 unit, and front-runs the settlements with ONE batch (a
// Multicall3 transaction: both 1-unit authorizations and one real transfer), must not be served twice
// for one payment by the lost-answer lookup (`landedAuthorization`) or by a facilitator's answer naming
// that batch (`confirmedAuthorization`). Honest batches and lost answers are still served, once each.
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { create as createServer } from '@mppkit/core/server'
import {
  type Address,
  encodeFunctionData,
  type Hex,
  multicall3Abi,
  parseAbi,
  parseSignature,
  toEventSelector,
  toHex,
} from 'viem'
import { type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTempo, type TempoDevnet, tempoUnavailableReason } from '../../devnet/src/tempo/index.js'
import { challengeHash, typedData } from '../src/Authorization.js'
import { charge, type Facilitator, type Reader, x402 } from '../src/server/index.js'
import * as Wire from '../src/Wire.js'
import { balanceOf, facilitator, walletOf } from './peers.js'
import { challengeOf, nativeServer, send, url } from './requests.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
/** A Multicall3 (viem's bytecode) the payer deployed: its batch calls the token several times in one transaction. */
let multicall: Address
beforeAll(async () => {
  if (reason) return
  devnet = await startTempo({ accounts: 8 })
  // viem's Multicall3 creation code (not exported from its entry points).
  const entry = createRequire(import.meta.url).resolve('viem')
  const contracts = join(dirname(entry), '..', '_esm', 'constants', 'contracts.js')
  const { multicall3Bytecode } = (await import(pathToFileURL(contracts).href)) as { multicall3Bytecode: Hex }
  const deployer = walletOf(devnet.info, 3)
  const hash = await deployer.deployContract({
    abi: multicall3Abi,
    bytecode: multicall3Bytecode,
    gas: 3_000_000n,
  })
  multicall = (await deployer.waitForTransactionReceipt({ hash })).contractAddress!
})
afterAll(async () => {
  await devnet?.stop()
})

const twaAbi = parseAbi([
  'function transferWithAuthorization(address from, address to, uint256 value, uint256 validAfter, uint256 validBefore, bytes32 nonce, uint8 v, bytes32 r, bytes32 s)',
])

type Signed = {
  authorization: {
    from: Address
    to: Address
    value: string
    validAfter: string
    validBefore: string
    nonce: Hex
  }
  signature: Hex
}

/** Signs EIP-3009 authorizations of dev account `index` for the devnet token. */
function signer(index: number) {
  const info = devnet.info
  const account: PrivateKeyAccount = privateKeyToAccount(info.accounts[index]!.privateKey)
  const validBefore = String(Math.floor(Date.now() / 1000) + 100)
  const sign = async (to: Address, value: string, nonce: Hex): Promise<Signed> => {
    const authorization = { from: account.address, to, value, validAfter: '0', validBefore, nonce }
    const domain = { ...info.eip3009, chainId: info.chainId, token: info.eip3009Token }
    return { authorization, signature: await account.signTypedData(typedData(domain, authorization)) }
  }
  return { account, sign }
}

const randomNonce = () => toHex(globalThis.crypto.getRandomValues(new Uint8Array(32))) as Hex

/** Submits `authorizations` in ONE Multicall3 transaction from dev account 3; returns its hash. */
async function batch(authorizations: Signed[]): Promise<Hex> {
  const info = devnet.info
  const calls = authorizations.map(({ authorization: a, signature }) => {
    const { r, s, v } = parseSignature(signature)
    return {
      target: info.eip3009Token,
      allowFailure: false,
      callData: encodeFunctionData({
        abi: twaAbi,
        functionName: 'transferWithAuthorization',
        args: [
          a.from,
          a.to,
          BigInt(a.value),
          BigInt(a.validAfter),
          BigInt(a.validBefore),
          a.nonce,
          Number(v),
          r,
          s,
        ],
      }),
    }
  })
  const wallet = walletOf(info, 3)
  const hash = await wallet.writeContract({
    address: multicall,
    abi: multicall3Abi,
    functionName: 'aggregate3',
    args: [calls],
    gas: 1_000_000n,
  })
  expect((await wallet.waitForTransactionReceipt({ hash })).status).toBe('success')
  return hash
}

/**
 * A native server settling `authorization` with dev account 7's wallet, whose sends wait until both
 * payments were simulated and `frontRun` landed: the payer's batch is mined between the server's
 * simulations and its own transactions (which then revert: their nonces are used).
 */
function frontRunServer() {
  const base = walletOf(devnet.info, 7)
  let simulated = 0
  let release: () => void = () => {}
  const both = new Promise<void>((resolve) => (release = resolve))
  let landed: Promise<unknown> | undefined
  const state = { frontRun: async (): Promise<unknown> => undefined, sends: 0 }
  const wallet = new Proxy(base, {
    get(target, property, receiver) {
      if (property === 'simulateContract')
        return async (args: unknown) => {
          const result = await target.simulateContract(args as never)
          if (++simulated === 2) release()
          return result
        }
      if (property === 'sendTransaction')
        return async (args: unknown) => {
          await both
          landed ??= state.frontRun()
          await landed
          state.sends++
          return target.sendTransaction(args as never)
        }
      return Reflect.get(target, property, receiver)
    },
  })
  return { ...nativeServer(devnet.info, ['authorization'], { wallet: wallet as never }), state }
}

/** An x402 route (1000 of the devnet token to dev account 6) settled by `fac`, with `client` reading the chain. */
function x402Server(fac: Facilitator, client: Reader = walletOf(devnet.info, 0) as never) {
  const info = devnet.info
  const payTo = info.accounts[6]!.address
  const server = createServer({
    realm: 'localhost',
    secrets: ['x402-compat-test-secret-0123456789abcdef'],
    methods: [
      charge({
        chainId: info.chainId,
        currency: info.eip3009Token,
        recipient: payTo,
        domain: info.eip3009,
        facilitator: fac,
        client,
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
  const requirement = async () => {
    const required = await handler(new Request(url))
    return (Wire.decode(required.headers.get(Wire.headers.paymentRequired)!).accepts as any[])[0]
  }
  const pay = async (payment: Signed) =>
    handler(
      new Request(url, {
        headers: {
          [Wire.headers.paymentSignature]: Wire.encode({
            x402Version: 2,
            resource: { url },
            accepted: await requirement(),
            payload: payment,
          }),
        },
      }),
    )
  return { payTo, pay, runs: () => runs }
}

const reasonOf = async (response: Response) => ((await response.clone().json()) as { reason?: string }).reason

describe.skipIf(reason)(
  'evm charge, type="authorization": the lost-answer lookup (native, server wallet)',
  () => {
    it('one real transfer batched beside two 1-unit authorizations of two payments serves neither', async () => {
      const { payTo, handler, runs, state } = frontRunServer()
      const { account, sign } = signer(3)
      const [c1, c2] = [await challengeOf(handler), await challengeOf(handler)]
      const pay1 = await sign(payTo, '900', challengeHash(c1))
      const pay2 = await sign(payTo, '900', challengeHash(c2))
      // The same nonces paying the payer itself 1 unit each, and one real 900 under a third nonce.
      const burn1 = await sign(account.address, '1', challengeHash(c1))
      const burn2 = await sign(account.address, '1', challengeHash(c2))
      const real = await sign(payTo, '900', randomNonce())
      state.frontRun = () => batch([burn1, burn2, real])
      const before = await balanceOf(devnet.info, payTo)
      const source = `did:pkh:eip155:${devnet.info.chainId}:${account.address}`
      const responses = await Promise.all([
        send(
          handler,
          c1,
          { type: 'authorization', ...pay1.authorization, signature: pay1.signature },
          source,
        ),
        send(
          handler,
          c2,
          { type: 'authorization', ...pay2.authorization, signature: pay2.signature },
          source,
        ),
      ])
      // One payment of 900 landed, under neither challenge's authorization: at most one request (here
      // none) is served. Both settlements were sent (and reverted) and looked up.
      expect((await balanceOf(devnet.info, payTo)) - before).toBe(900n)
      expect(runs()).toBeLessThanOrEqual(1)
      expect(runs()).toBe(0)
      expect(responses.map((response) => response.status)).toEqual([402, 402])
      expect(state.sends).toBe(2)
    })

    it('an honest batch of both payments’ authorizations (their answers lost to reverts) serves each once', async () => {
      const { payTo, handler, runs, state } = frontRunServer()
      const { account, sign } = signer(3)
      const [c1, c2] = [await challengeOf(handler), await challengeOf(handler)]
      const pay1 = await sign(payTo, '900', challengeHash(c1))
      const pay2 = await sign(payTo, '900', challengeHash(c2))
      // The payer (or anyone holding them) submits both real authorizations in one batch first.
      state.frontRun = () => batch([pay1, pay2])
      const before = await balanceOf(devnet.info, payTo)
      const source = `did:pkh:eip155:${devnet.info.chainId}:${account.address}`
      const present = (challenge: typeof c1, paid: Signed) =>
        send(
          handler,
          challenge,
          { type: 'authorization', ...paid.authorization, signature: paid.signature },
          source,
        )
      const responses = await Promise.all([present(c1, pay1), present(c2, pay2)])
      for (const response of responses) expect(response.status, await response.clone().text()).toBe(200)
      expect(runs()).toBe(2)
      expect((await balanceOf(devnet.info, payTo)) - before).toBe(1800n)
      // Replays are refused: each payment served once.
      const replays = await Promise.all([present(c1, pay1), present(c2, pay2)])
      expect(replays.map((response) => response.status)).toEqual([402, 402])
      expect(runs()).toBe(2)
    })
  },
)

describe.skipIf(reason)('x402 (server), real @x402/evm facilitator: the lost-answer lookup', () => {
  it('one real transfer batched beside two 1-unit authorizations of two payments serves neither', async () => {
    const fac = facilitator(devnet.info, 7)
    const { account, sign } = signer(3)
    const payTo = devnet.info.accounts[6]!.address
    const [n1, n2] = [randomNonce(), randomNonce()]
    const pay1 = await sign(payTo, '1000', n1)
    const pay2 = await sign(payTo, '1000', n2)
    const burn1 = await sign(account.address, '1', n1)
    const burn2 = await sign(account.address, '1', n2)
    const real = await sign(payTo, '1000', randomNonce())
    // Both payments verified, then the payer's batch lands, then the facilitator is asked to settle.
    let verified = 0
    let release: () => void = () => {}
    const both = new Promise<void>((resolve) => (release = resolve))
    let landed: Promise<unknown> | undefined
    const timed: Facilitator = {
      verify: async (document, requirement) => {
        const answer = await fac.client.verify(document as never, requirement as never)
        if (++verified === 2) release()
        return answer
      },
      settle: async (document, requirement) => {
        await both
        landed ??= batch([burn1, burn2, real])
        await landed
        return fac.client.settle(document as never, requirement as never)
      },
    }
    const server = x402Server(timed)
    const before = await balanceOf(devnet.info, payTo)
    const responses = await Promise.all([server.pay(pay1), server.pay(pay2)])
    expect((await balanceOf(devnet.info, payTo)) - before).toBe(1000n)
    expect(server.runs()).toBeLessThanOrEqual(1)
    expect(server.runs()).toBe(0)
    expect(responses.map((response) => response.status)).toEqual([402, 402])
    expect(fac.counts.settle).toBe(2)
  })

  it('an honest settlement whose answer is lost is found on chain and served once', async () => {
    const fac = facilitator(devnet.info, 7)
    const losing: Facilitator = {
      verify: (document, requirement) => fac.client.verify(document as never, requirement as never),
      settle: async (document, requirement) => {
        await fac.client.settle(document as never, requirement as never)
        throw new Error('socket hang up')
      },
    }
    const server = x402Server(losing)
    const payment = await signer(4).sign(server.payTo, '1000', randomNonce())
    const before = await balanceOf(devnet.info, server.payTo)
    const paid = await server.pay(payment)
    expect(paid.status, await paid.clone().text()).toBe(200)
    const again = await server.pay(payment)
    expect(again.status).toBe(402)
    expect(server.runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(devnet.info, server.payTo)) - before).toBe(1000n)
  })

  it('a facilitator answer naming a batch that used the authorization for a 1-unit self-transfer is refused', async () => {
    const fac = facilitator(devnet.info, 7)
    const { account, sign } = signer(3)
    const payTo = devnet.info.accounts[6]!.address
    const nonce = randomNonce()
    const payment = await sign(payTo, '1000', nonce)
    const burn = await sign(account.address, '1', nonce)
    const real = await sign(payTo, '1000', randomNonce())
    // The facilitator (compromised, or batching others' payments) names a transaction holding this
    // authorization's AuthorizationUsed and a Transfer of the amount to the recipient: another one's.
    let named: Hex | undefined
    const naming: Facilitator = {
      verify: (document, requirement) => fac.client.verify(document as never, requirement as never),
      settle: async () => {
        named = await batch([burn, real])
        return {
          success: true,
          transaction: named,
          network: `eip155:${devnet.info.chainId}`,
          payer: account.address,
        }
      },
    }
    const server = x402Server(naming)
    const before = await balanceOf(devnet.info, payTo)
    const response = await server.pay(payment)
    expect(named).toBeDefined()
    expect(response.status).toBe(402)
    expect(await reasonOf(response)).toBe('facilitator-contradicted')
    expect(server.runs()).toBe(0)
    expect((await balanceOf(devnet.info, payTo)) - before).toBe(1000n)
  })

  it('a token that logs its Transfer before AuthorizationUsed: a direct call with this authorization still serves, once', async () => {
    const fac = facilitator(devnet.info, 7)
    // The chain reader sees each AuthorizationUsed after the Transfer of the same call (the order some
    // EIP-3009 tokens may log in): the facilitator's transaction calls the token with this very
    // authorization, so its Transfer is this payment's.
    const base = walletOf(devnet.info, 0)
    const used = toEventSelector('AuthorizationUsed(address,bytes32)')
    let reordered = 0
    const reversed = {
      ...base,
      getTransactionReceipt: async (args: { hash: Hex }) => {
        const receipt = await base.getTransactionReceipt(args)
        const logs = [...receipt.logs]
        let swapped = 0
        for (let i = 1; i < logs.length; i++)
          if (logs[i - 1]!.topics[0] === used && logs[i - 1]!.address === logs[i]!.address) {
            ;[logs[i - 1], logs[i]] = [logs[i]!, logs[i - 1]!]
            swapped++
          }
        reordered += swapped
        return { ...receipt, logs }
      },
    } as unknown as Reader
    let lose = false
    const sometimesLosing: Facilitator = {
      verify: (document, requirement) => fac.client.verify(document as never, requirement as never),
      settle: async (document, requirement) => {
        const answer = await fac.client.settle(document as never, requirement as never)
        if (lose) throw new Error('socket hang up')
        return answer
      },
    }
    const server = x402Server(sometimesLosing, reversed)
    const payer = signer(5)
    const before = await balanceOf(devnet.info, server.payTo)
    // Its answer checked against the (reordered) receipt…
    const first = await server.pay(await payer.sign(server.payTo, '1000', randomNonce()))
    expect(first.status, await first.clone().text()).toBe(200)
    // …and its answer lost: found by the lookup.
    lose = true
    const second = await server.pay(await payer.sign(server.payTo, '1000', randomNonce()))
    expect(second.status, await second.clone().text()).toBe(200)
    expect(server.runs()).toBe(2)
    expect(reordered).toBeGreaterThanOrEqual(2)
    expect(fac.counts.settle).toBe(2)
    expect((await balanceOf(devnet.info, server.payTo)) - before).toBe(2000n)
  })
})
