// x402's Permit2 form (`extra.assetTransferMethod: "permit2"`) on our dual-stack server, when the
// facilitator's settlement answer is lost: the devnet (anvil `--network tempo`) runs our
// X402ExactPermit2Proxy at x402's address over the predeployed Permit2, `@x402/fetch` signs, and
// `@x402/core`'s in-process facilitator with `@x402/evm` settles, wrapped to drop or delay its answer.
// A payer whose transfer landed is served once from the chain; a permit that never landed, reverted,
// or only looks like a landed one (another nonce, another deadline) is not.
import { create as createServer } from '@mppkit/core/server'
import { x402Client } from '@x402/core/client'
import { toClientEvmSigner } from '@x402/evm'
import { ExactEvmScheme } from '@x402/evm/exact/client'
import { wrapFetchWithPayment } from '@x402/fetch'
import { type Address, decodeFunctionData, erc20Abi, getAddress, type Hex, maxUint256, parseAbi } from 'viem'
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
import { charge, type Facilitator, x402 } from '../src/server/index.js'
import type { Reader } from '../src/server/Shared.js'
import * as Wire from '../src/Wire.js'
import * as X402Permit2 from '../src/X402Permit2.js'
import { balanceOf, facilitator, walletOf } from './peers.js'

const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)

let devnet: TempoDevnet
const url = 'http://localhost/paid'

beforeAll(async () => {
  if (reason) return
  devnet = await startTempo({ accounts: 8 })
  // The payers' one-time approval of Permit2.
  for (const index of [1, 2, 3]) await approve(devnet.info, index, maxUint256)
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

type Document = {
  accepted: Record<string, unknown>
  payload: { signature: Hex; permit2Authorization: X402Permit2.Authorization }
}

/** The proxy's `settle` arguments for an x402 Permit2 payload (as `@x402/evm`'s facilitator builds them). */
function settleArgs(payload: Document['payload']) {
  const authorization = payload.permit2Authorization
  return [
    {
      permitted: {
        token: getAddress(authorization.permitted.token),
        amount: BigInt(authorization.permitted.amount),
      },
      nonce: BigInt(authorization.nonce),
      deadline: BigInt(authorization.deadline),
    },
    getAddress(authorization.from),
    { to: getAddress(authorization.witness.to), validAfter: BigInt(authorization.witness.validAfter) },
    payload.signature,
  ] as const
}

/** Submits the proxy's `settle` from dev account `index` (gas given: a reverting call is mined too). */
async function settleOnChain(info: TempoDevnetInfo, index: number, payload: Document['payload']) {
  const wallet = walletOf(info, index)
  const hash = await wallet.writeContract({
    address: info.x402Permit2Proxy,
    abi: x402ExactPermit2ProxyAbi,
    functionName: 'settle',
    args: settleArgs(payload),
    gas: 300_000n,
  })
  return wallet.waitForTransactionReceipt({ hash })
}

/**
 * The in-process x402 facilitator (gas from dev account 5), wrapped: `honest` answers as it is; `lose`
 * settles for real and then loses its answer (a dropped connection); `deny` settles for real and answers
 * failure (its wait for the receipt failed, say); `crash` fails once asked to settle,
 * sending nothing; `late` settles only once `release()` is called (the server has timed out by then);
 * `blind` says every payment is valid and then fails to settle (an outage, sending nothing); `say`
 * answers success with a chosen transaction, settling nothing.
 */
function wrapped(info: TempoDevnetInfo) {
  const honest = facilitator(info, 5)
  const state = {
    mode: 'honest' as 'honest' | 'lose' | 'deny' | 'crash' | 'late' | 'blind' | 'say',
    said: '0x' as Hex,
    /** The honest facilitator's answers to the settlements it was asked for. */
    answers: [] as { success: boolean; transaction: string }[],
    /** A `late` settlement, running until it answers (nobody is waiting for it any more). */
    pending: undefined as Promise<unknown> | undefined,
    release: () => {},
  }
  const settle = async (document: any, requirement: any) => {
    const answer = await honest.client.settle(document, requirement)
    state.answers.push(answer)
    return answer
  }
  const client: Facilitator = {
    verify: async (document, requirement) =>
      // `blind` and `say` vouch for any payment (a facilitator that does not check, or lies).
      state.mode === 'blind' || state.mode === 'say'
        ? { isValid: true }
        : honest.client.verify(document, requirement),
    settle: async (document, requirement) => {
      if (state.mode === 'crash' || state.mode === 'blind') throw new Error('socket hang up')
      if (state.mode === 'say')
        return { success: true, transaction: state.said, network: `eip155:${info.chainId}` } as never
      if (state.mode === 'lose') {
        await settle(document, requirement)
        throw new Error('socket hang up')
      }
      if (state.mode === 'deny') {
        await settle(document, requirement)
        return { success: false, transaction: '', errorReason: 'transaction_failed' }
      }
      if (state.mode === 'late') {
        const gate = new Promise<void>((resolve) => {
          state.release = resolve
        })
        state.pending = gate.then(() => settle(document, requirement))
        return state.pending as never
      }
      return settle(document, requirement)
    },
  }
  return { client, counts: honest.counts, state }
}

/** A reader over the devnet that counts its log searches. */
function countingReader(info: TempoDevnetInfo) {
  const client = walletOf(info, 0)
  const counts = { getLogs: 0 }
  const reader: Reader = {
    ...(client as unknown as Reader),
    getLogs: (args: unknown) => {
      counts.getLogs++
      return client.getLogs(args as never) as never
    },
  }
  return { reader, counts }
}

/** Our dual-stack server taking x402's Permit2 form, settled through `fac`, with a chain reader. */
function setup(fac: Facilitator, options: { timeout?: number } = {}) {
  const info = devnet.info
  const payTo = info.accounts[4]!.address
  const { reader, counts } = countingReader(info)
  const server = createServer({
    realm: 'localhost',
    secrets: ['x402-compat-test-secret-0123456789abcdef'],
    methods: [
      charge({
        chainId: info.chainId,
        currency: info.eip3009Token,
        recipient: payTo,
        domain: { name: info.eip3009.name, version: info.eip3009.version },
        facilitator: fac,
        client: reader,
        x402Permit2: true,
        ...(options.timeout ? { timeout: options.timeout } : {}),
      }),
    ],
    onError: () => {},
  })
  let runs = 0
  const handler = x402(server, { maxTimeoutSeconds: 120 }).protect(
    { offers: [{ method: 'evm', request: { amount: '1000' } }] },
    () => {
      runs++
      return new Response('paid content')
    },
  )
  return { info, payTo, handler, runs: () => runs, reads: counts }
}

/** A PAYMENT-SIGNATURE `@x402/fetch` (dev account `index`) signs for the route's Permit2 requirement. */
async function signedBy(index: number, handler: (request: Request) => Promise<Response>) {
  const info = devnet.info
  const network = `eip155:${info.chainId}` as const
  const client = x402Client.fromConfig({
    paymentRequirementsSelector: (_version, requirements) =>
      requirements.find((entry) => entry.extra?.assetTransferMethod === 'permit2')!,
    schemes: [
      {
        network,
        client: new ExactEvmScheme(toClientEvmSigner(privateKeyToAccount(info.accounts[index]!.privateKey))),
      },
    ],
    spendControls: { allowedAssets: [{ network, asset: info.eip3009Token, maxAmountPerPayment: '1000000' }] },
  })
  let kept: string | undefined
  const fetch = wrapFetchWithPayment(async (input, init) => {
    const request = new Request(input, init)
    const header = request.headers.get(Wire.headers.paymentSignature)
    if (header === null) return handler(request)
    kept = header
    return new Response('kept', { status: 418 })
  }, client)
  await fetch(url)
  const document = Wire.decode(kept!) as Document
  expect(document.accepted.extra).toEqual({ assetTransferMethod: 'permit2' })
  return { header: kept!, document }
}

const present = (handler: (request: Request) => Promise<Response>, header: string) =>
  handler(new Request(url, { headers: { [Wire.headers.paymentSignature]: header } }))

const problem = async (response: Response) => (await response.json()) as { detail: string; reason?: string }

const permit2Abi = parseAbi(['function invalidateUnorderedNonces(uint256 wordPos, uint256 mask)'])

describe.skipIf(reason)('x402 Permit2 on our server: a settlement whose answer was lost', () => {
  it('the transfer landed, the answer was lost: found on chain and served once; the same payment again is refused', async () => {
    const fac = wrapped(devnet.info)
    const { info, payTo, handler, runs } = setup(fac.client)
    const { header } = await signedBy(1, handler)
    const before = await balanceOf(info, payTo)
    fac.state.mode = 'lose'
    const paid = await present(handler, header)
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(await paid.text()).toBe('paid content')
    expect(fac.counts.settle).toBe(1)
    expect(fac.state.answers).toMatchObject([{ success: true }])
    // PAYMENT-RESPONSE names the very transaction the facilitator sent, read from the chain.
    const settled = Wire.decode(paid.headers.get(Wire.headers.paymentResponse)!)
    expect(settled).toMatchObject({ success: true, payer: info.accounts[1]!.address })
    expect(settled.transaction).toBe(fac.state.answers[0]!.transaction)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
    // Again (the facilitator answering normally now): claimed, refused, nothing moves.
    fac.state.mode = 'honest'
    const again = await present(handler, header)
    expect(again.status).toBe(402)
    expect(await problem(again)).toMatchObject({ reason: 'permit-used' })
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it('the transfer landed and the facilitator answered failure: found on chain and served once', async () => {
    const fac = wrapped(devnet.info)
    const { info, payTo, handler, runs } = setup(fac.client)
    const { header } = await signedBy(1, handler)
    const before = await balanceOf(info, payTo)
    fac.state.mode = 'deny'
    const paid = await present(handler, header)
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(Wire.decode(paid.headers.get(Wire.headers.paymentResponse)!).transaction).toBe(
      fac.state.answers[0]!.transaction,
    )
    const again = await present(handler, header)
    expect(again.status).toBe(402)
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it('the facilitator times out and its transfer lands later: 503, then the retry is served from the chain once, a second retry refused', async () => {
    const fac = wrapped(devnet.info)
    const { info, payTo, handler, runs } = setup(fac.client, { timeout: 1_500 })
    const { header } = await signedBy(2, handler)
    const before = await balanceOf(info, payTo)
    fac.state.mode = 'late'
    const first = await present(handler, header)
    expect(first.status).toBe(503)
    expect(first.headers.get('retry-after')).toBe('1')
    expect((await balanceOf(info, payTo)) - before).toBe(0n)
    // The facilitator goes on and settles, answering nobody.
    fac.state.release()
    await fac.state.pending
    expect(fac.state.answers).toMatchObject([{ success: true }])
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
    expect(runs()).toBe(0)
    // The retry: the facilitator now refuses it (its nonce is spent), and the chain shows it paid.
    const retry = await present(handler, header)
    expect(retry.status, await retry.clone().text()).toBe(200)
    expect(Wire.decode(retry.headers.get(Wire.headers.paymentResponse)!).transaction).toBe(
      fac.state.answers[0]!.transaction,
    )
    const third = await present(handler, header)
    expect(third.status).toBe(402)
    expect(await problem(third)).toMatchObject({ reason: 'permit-used' })
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it('the answer was lost and nothing was sent: 503 after one nonce read (no log search), then the facilitator back settles it once', async () => {
    const fac = wrapped(devnet.info)
    const { info, payTo, handler, runs, reads } = setup(fac.client)
    const { header } = await signedBy(3, handler)
    const before = await balanceOf(info, payTo)
    fac.state.mode = 'crash'
    const first = await present(handler, header)
    expect(first.status).toBe(503)
    expect(runs()).toBe(0)
    // Permit2's bitmap shows the nonce unspent: nothing can have landed, nothing more is searched.
    expect(reads.getLogs).toBe(0)
    expect((await balanceOf(info, payTo)) - before).toBe(0n)
    fac.state.mode = 'honest'
    const paid = await present(handler, header)
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(fac.counts.settle).toBe(1)
    expect(Wire.decode(paid.headers.get(Wire.headers.paymentResponse)!).transaction).toBe(
      fac.state.answers[0]!.transaction,
    )
    const again = await present(handler, header)
    expect(again.status).toBe(402)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it('a settlement that reverted does not count; once the payer can pay again it settles once', async () => {
    const fac = wrapped(devnet.info)
    const { info, payTo, handler, runs } = setup(fac.client)
    const { header, document } = await signedBy(2, handler)
    const before = await balanceOf(info, payTo)
    // The payer withdraws its Permit2 approval after the facilitator verified; its settle reverts.
    fac.client.settle = async () => {
      await approve(info, 2, 0n)
      const receipt = await settleOnChain(info, 5, document.payload)
      expect(receipt.status).toBe('reverted')
      throw new Error('socket hang up')
    }
    const first = await present(handler, header)
    expect(first.status).toBe(503)
    expect(runs()).toBe(0)
    expect((await balanceOf(info, payTo)) - before).toBe(0n)
    await approve(info, 2, maxUint256)
    const honest = wrapped(info)
    fac.client.settle = honest.client.settle
    const paid = await present(handler, header)
    expect(paid.status, await paid.clone().text()).toBe(200)
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
  })

  it('a spent nonce beside a landed transfer of the same amount to the same recipient does not count unless it is this permit', async () => {
    const fac = wrapped(devnet.info)
    const { info, payTo, handler, runs, reads } = setup(fac.client)
    const payer = walletOf(info, 3)
    const before = await balanceOf(info, payTo)
    // Payment A of payer 3, settled and served normally: a Transfer of 1000 from payer 3 to payTo.
    const a = await signedBy(3, handler)
    expect((await present(handler, a.header)).status).toBe(200)
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)

    // Payment B: its nonce spent by its owner (Permit2's invalidateUnorderedNonces), nothing paid.
    const b = await signedBy(3, handler)
    const nonce = BigInt(b.document.payload.permit2Authorization.nonce)
    const invalidated = await payer.writeContract({
      address: permit2Address,
      abi: permit2Abi,
      functionName: 'invalidateUnorderedNonces',
      args: [nonce >> 8n, 1n << (nonce & 255n)],
      gas: 100_000n,
    })
    expect((await payer.waitForTransactionReceipt({ hash: invalidated })).status).toBe('success')
    // The facilitator says B is valid and then fails to settle: the chain is searched, A is found and
    // its transaction examined, and it is not B's.
    fac.state.mode = 'blind'
    const refusedB = await present(handler, b.header)
    expect(refusedB.status).toBe(503)
    expect(reads.getLogs).toBe(1)

    // Payments C and D, each beside a permit of the payer with the same nonce, payee and amount but
    // another deadline (C′) or validAfter (D′), settled through the proxy: C's and D's nonces are spent
    // by transfers of the amount to payTo, which are not C and D.
    let paid = 1000n
    for (const change of [
      (authorization: X402Permit2.Authorization) => ({
        deadline: String(BigInt(authorization.deadline) - 1n),
      }),
      () => ({ witness: { to: payTo, validAfter: '1' } }),
    ]) {
      const searched = reads.getLogs
      const c = await signedBy(3, handler)
      const authorization = c.document.payload.permit2Authorization
      const other = { ...authorization, ...change(authorization) }
      const signature = await privateKeyToAccount(info.accounts[3]!.privateKey).signTypedData(
        X402Permit2.typedData(info.chainId, other),
      )
      const landed = await settleOnChain(info, 6, { signature, permit2Authorization: other })
      expect(landed.status).toBe('success')
      paid += 1000n
      expect((await balanceOf(info, payTo)) - before).toBe(paid)
      const refused = await present(handler, c.header)
      expect(refused.status).toBe(503)
      expect(reads.getLogs).toBe(searched + 1)
    }
    expect(runs()).toBe(1)
    expect((await balanceOf(info, payTo)) - before).toBe(3000n)
  })

  it('a facilitator answering success with another landed payment of the payer: this permit is not settled, nobody is served', async () => {
    const fac = wrapped(devnet.info)
    const { info, payTo, handler, runs } = setup(fac.client)
    // Payment A, settled for real through the proxy: a Transfer of the amount from payer 1 to payTo.
    const a = await signedBy(1, handler)
    expect((await present(handler, a.header)).status).toBe(200)
    const transaction = fac.state.answers[0]!.transaction as Hex
    const before = await balanceOf(info, payTo)
    // Payment B: the facilitator answers with A's transaction and sends nothing.
    const b = await signedBy(1, handler)
    fac.state.mode = 'say'
    fac.state.said = transaction
    const response = await present(handler, b.header)
    expect(response.status).toBe(402)
    expect(await problem(response)).toMatchObject({
      detail: "The facilitator's settlement answer names a transaction that did not settle this permit.",
      reason: 'facilitator-contradicted',
    })
    expect(runs()).toBe(1)
    expect(await balanceOf(info, payTo)).toBe(before)
    // Payment C, its nonce spent by its owner (nothing paid), and the facilitator answering with A's
    // transaction again: a spent nonce does not make A's proxy call this permit's settlement.
    const c = await signedBy(1, handler)
    const nonce = BigInt(c.document.payload.permit2Authorization.nonce)
    const payer = walletOf(info, 1)
    const invalidated = await payer.writeContract({
      address: permit2Address,
      abi: permit2Abi,
      functionName: 'invalidateUnorderedNonces',
      args: [nonce >> 8n, 1n << (nonce & 255n)],
      gas: 100_000n,
    })
    expect((await payer.waitForTransactionReceipt({ hash: invalidated })).status).toBe('success')
    const refused = await present(handler, c.header)
    expect(refused.status).toBe(402)
    expect(await problem(refused)).toMatchObject({ reason: 'facilitator-contradicted' })
    expect(runs()).toBe(1)
  })

  it('a payment the facilitator settled with the proxy’s settleWithPermit (x402’s eip2612GasSponsoring), answer lost: found on chain and served once', async () => {
    const fac = wrapped(devnet.info)
    const { info, payTo, handler, runs } = setup(fac.client)
    const { document } = await signedBy(1, handler)
    const authorization = document.payload.permit2Authorization
    // x402's EIP-2612 extension, as @x402/evm's client fills it (this server does not advertise it, no
    // `eip2612`, so @x402/fetch never sends it here; a permit that comes anyway is checked under the
    // token's domain and passed on, as x402 servers pass it on): the payer's EIP-2612 permit of the token
    // to Permit2. The devnet's EIP-3009 token has no `permit` (its Eip2612Token has), so the proxy's call
    // to it fails and is ignored, and the transfer stands on the payer's existing Permit2 allowance.
    const permit2612 = await privateKeyToAccount(info.accounts[1]!.privateKey).signTypedData({
      domain: {
        name: info.eip3009.name,
        version: info.eip3009.version,
        chainId: info.chainId,
        verifyingContract: info.eip3009Token,
      },
      types: {
        Permit: [
          { name: 'owner', type: 'address' },
          { name: 'spender', type: 'address' },
          { name: 'value', type: 'uint256' },
          { name: 'nonce', type: 'uint256' },
          { name: 'deadline', type: 'uint256' },
        ],
      },
      primaryType: 'Permit',
      message: {
        owner: authorization.from,
        spender: permit2Address,
        value: 1000n,
        nonce: 0n,
        deadline: BigInt(authorization.deadline),
      },
    })
    const header = Wire.encode({
      ...document,
      extensions: {
        eip2612GasSponsoring: {
          info: {
            from: authorization.from,
            asset: info.eip3009Token,
            spender: permit2Address,
            amount: '1000',
            nonce: '0',
            deadline: authorization.deadline,
            signature: permit2612,
            version: '1',
          },
          schema: {},
        },
      },
    })
    const before = await balanceOf(info, payTo)
    fac.state.mode = 'lose'
    const paid = await present(handler, header)
    expect(paid.status, await paid.clone().text()).toBe(200)
    const transaction = fac.state.answers[0]!.transaction as Hex
    expect(Wire.decode(paid.headers.get(Wire.headers.paymentResponse)!).transaction).toBe(transaction)
    // The facilitator called settleWithPermit (the lookup decoded that call), and the token moved.
    const sent = await walletOf(info, 0).getTransaction({ hash: transaction })
    expect(decodeFunctionData({ abi: x402ExactPermit2ProxyAbi, data: sent.input }).functionName).toBe(
      'settleWithPermit',
    )
    expect((await balanceOf(info, payTo)) - before).toBe(1000n)
    const again = await present(handler, header)
    expect(again.status).toBe(402)
    expect(runs()).toBe(1)
    expect(fac.counts.settle).toBe(1)
  })

  it('x402’s proxy address and Permit2 are the devnet’s (what the lookup reads)', () => {
    expect(devnet.info.x402Permit2Proxy).toBe(getAddress(X402Permit2.proxyAddress))
    expect(permit2Address as Address).toBe(getAddress('0x000000000022D473030F116dDEE9F6B43aC78BA3'))
  })
})
