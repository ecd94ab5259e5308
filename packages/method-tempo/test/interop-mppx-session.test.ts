import { Receipt } from '@mppkit/core'
import { create as createServer } from '@mppkit/core/server'
import { type Address, custom, erc20Abi, type Hex, toHex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { createClient } from 'viem/tempo'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  fundTip20,
  startTempo,
  streamChannelEscrowAbi,
  type TempoDevnet,
  tempoClients,
  tempoDevnetChain,
  tempoGas,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { type SessionServer, sessionServer } from '../src/server/index.js'

// Session interop with the reference SDK: the unmodified mppx@0.11.0 legacy (contract escrow,
// `sessionProtocol: "v1"`) session client pays our `tempo.session` server on anvil with our v1 escrow.
const mppxClient = await import('mppx/client').catch(() => undefined)
const reason = mppxClient ? tempoUnavailableReason() : 'mppx is not installed'
if (reason) console.warn(`[skip] ${reason}`)

const realm = 'session.interop'
const secret = 'tempo-session-interop-secret-0123456789ab'
const price = 1_000n
// mppx's `deposit` / `maxDeposit` are decimal strings in token units (6 decimals): 0.01 = 10 000 base units.
const depositTokens = '0.01'
const deposit = 10_000n

describe.skipIf(!!reason)('tempo/session: the mppx@0.11.0 legacy (v1) client pays our server', () => {
  let devnet: TempoDevnet
  const servers: SessionServer[] = []
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 2 })
  })
  afterAll(async () => {
    for (const server of servers) server.stop()
    await devnet?.stop()
  })

  const read = () => tempoClients(devnet.info).publicClient
  const balance = (owner: Address) =>
    read().readContract({
      address: devnet.info.tokens.pathUsd,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [owner],
    })
  const onChain = (channelId: Hex) =>
    read().readContract({
      address: devnet.info.escrow,
      abi: streamChannelEscrowAbi,
      functionName: 'getChannel',
      args: [channelId],
    }) as Promise<{ payer: Address; payee: Address; deposit: bigint; settled: bigint; finalized: boolean }>

  function setup() {
    const payee = privateKeyToAccount(devnet.info.accounts[0]!.privateKey)
    const method = sessionServer({
      rpcUrl: devnet.info.rpcUrl,
      chainId: devnet.info.chainId,
      currency: devnet.info.tokens.pathUsd,
      account: payee,
      escrow: devnet.info.escrow,
      timeout: 5_000,
    })
    servers.push(method)
    const server = createServer({ realm, secrets: [secret], methods: [method] })
    let served = 0
    const handler = server.protect(
      {
        offers: [
          { method: 'tempo', intent: 'session', request: { amount: String(price), unitType: 'request' } },
        ],
      },
      () => new Response(`served ${++served}`),
    )
    const fetcher = ((input: RequestInfo, init?: RequestInit) =>
      handler(new Request(input, init))) as typeof fetch
    return { method, fetcher, payee, served: () => served }
  }

  // mppx opens from the expiring nonce lane, on which anvil serves one transaction per account: each
  // channel gets a fresh funded payer (DESIGN §5).
  //
  // Anvil workaround, not an mppx change: mppx's `createOpenPayload` (dist/tempo/legacy/client/ChannelOps.js)
  // prepares the approve+open batch without `gas`, so viem/tempo asks the node (`eth_fillTransaction`)
  // and mppx adds 5 000. anvil 1.7.1 (`--network tempo`) fills a 0x76 batch with gas 100 100 (expiring
  // lane; 53 001 on the protocol lane) whatever the calls, while approve+open on our escrow uses ~199 000:
  // the open reverts out of gas (status 0x0, gasUsed = gas limit). The payer's viem client, which mppx
  // takes through its documented `getClient` injection point, therefore raises the filled gas to the
  // devnet's approve+open budget (`tempoGas.open`). Every other RPC and answer passes through unchanged.
  async function freshPayer() {
    const privateKey = generatePrivateKey()
    const account = privateKeyToAccount(privateKey)
    await fundTip20({
      rpcUrl: devnet.info.rpcUrl,
      from: devnet.info.faucet,
      token: devnet.info.tokens.pathUsd,
      to: account.address,
      amount: 10_000_000n,
    })
    let fills = 0
    const client = createClient({
      account,
      chain: tempoDevnetChain(devnet.info),
      pollingInterval: 50,
      transport: custom({
        async request({ method, params }) {
          const response = await fetch(devnet.info.rpcUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
            signal: AbortSignal.timeout(8_000),
          })
          const body = (await response.json()) as {
            result?: { tx?: { gas?: Hex } }
            error?: { code: number; message: string }
          }
          if (body.error) throw Object.assign(new Error(body.error.message), { code: body.error.code })
          if (method === 'eth_fillTransaction' && body.result?.tx?.gas) {
            fills++
            if (BigInt(body.result.tx.gas) < tempoGas.open) body.result.tx.gas = toHex(tempoGas.open)
          }
          return body.result
        },
      }),
    })
    return { account, client, fills: () => fills }
  }

  it('Mppx.create + tempo.sessionLegacy.method: opens, pays each request with a voucher, settles, closes', async () => {
    const { method, fetcher, payee, served } = setup()
    const payer = await freshPayer()
    const legacy = mppxClient!.tempo.sessionLegacy.method({
      account: payer.account,
      deposit: depositTokens,
      escrowContract: devnet.info.escrow,
      getClient: () => payer.client as never,
    })
    const mppx = mppxClient!.Mppx.create({ polyfill: false, fetch: fetcher, methods: [legacy] })

    const receipts: Receipt.Receipt[] = []
    for (let i = 0; i < 4; i++) {
      const response = await mppx.fetch('https://session.interop/r')
      expect(response.status, await response.clone().text()).toBe(200)
      expect(await response.text()).toBe(`served ${i + 1}`)
      receipts.push(Receipt.parse(response.headers.get('payment-receipt')!))
    }
    // Only the open needed a transaction (one fill); the other three requests were paid by vouchers.
    expect(payer.fills()).toBe(1)
    expect(served()).toBe(4)
    const channelId = receipts[0]!.reference as Hex
    expect(channelId).toMatch(/^0x[0-9a-f]{64}$/)
    for (const [i, receipt] of receipts.entries()) {
      expect(receipt).toMatchObject({
        method: 'tempo',
        status: 'success',
        intent: 'session',
        reference: channelId,
        channelId,
        acceptedCumulative: String(price * BigInt(i + 1)),
        spent: String(price * BigInt(i + 1)),
      })
    }
    const opened = await onChain(channelId)
    expect(opened.payer.toLowerCase()).toBe(payer.account.address.toLowerCase())
    expect(opened.payee.toLowerCase()).toBe(payee.address.toLowerCase())
    expect(opened).toMatchObject({ deposit, settled: 0n, finalized: false })

    // Our batch settlement captures exactly what was served on mppx's vouchers.
    const settleTx = await method.settleChannels()
    expect(settleTx).toMatch(/^0x[0-9a-f]{64}$/)
    expect(await onChain(channelId)).toMatchObject({ deposit, settled: 4n * price, finalized: false })

    // Close through mppx's manual mode: a fresh 402 challenge, then a close voucher for what was spent.
    const payerBefore = await balance(payer.account.address)
    const challenge = await fetcher('https://session.interop/r')
    expect(challenge.status).toBe(402)
    const credential = await mppx.createCredential(challenge, {
      action: 'close',
      channelId,
      cumulativeAmountRaw: String(4n * price),
    })
    const closed = await fetcher('https://session.interop/r', {
      method: 'POST',
      headers: { authorization: credential },
    })
    expect(closed.status, await closed.clone().text()).toBe(200)
    const closeReceipt = Receipt.parse(closed.headers.get('payment-receipt')!)
    expect(closeReceipt).toMatchObject({ channelId, acceptedCumulative: '4000', spent: '4000' })
    expect(closeReceipt.txHash).toMatch(/^0x[0-9a-f]{64}$/)
    expect(await onChain(channelId)).toMatchObject({ settled: 4n * price, finalized: true })
    // The unspent deposit went back to the payer.
    expect((await balance(payer.account.address)) - payerBefore).toBe(deposit - 4n * price)
  })

  it('tempo.sessionLegacy (session manager): fetch parses our receipts; its close() on the last used challenge closes the channel', async () => {
    const { method, fetcher, served } = setup()
    const payer = await freshPayer()
    const manager = mppxClient!.tempo.sessionLegacy({
      account: payer.account,
      maxDeposit: depositTokens,
      escrowContract: devnet.info.escrow,
      getClient: () => payer.client as never,
      fetch: fetcher,
    })
    for (let i = 0; i < 3; i++) {
      const response = await manager.fetch('https://session.interop/r')
      expect(response.status, await response.clone().text()).toBe(200)
      // mppx parsed our receipt header with its own session receipt schema and checked it against its
      // local voucher state (`assertReceiptWithinLocalState`).
      expect(response.receipt).toMatchObject({
        channelId: manager.channelId,
        acceptedCumulative: String(price * BigInt(i + 1)),
        spent: String(price * BigInt(i + 1)),
      })
    }
    expect(served()).toBe(3)
    expect(manager.cumulative).toBe(3n * price)
    const channelId = manager.channelId as Hex
    expect(await onChain(channelId)).toMatchObject({ deposit, settled: 0n, finalized: false })

    // mppx's `SessionManager.close()` signs the close on `lastChallenge`, which the last paid request
    // already used; the session method lets a close answer a used challenge (the escrow finalizes once).
    const closeReceipt = await manager.close()
    expect(closeReceipt).toMatchObject({ channelId, spent: String(3n * price) })
    expect(await onChain(channelId)).toMatchObject({ deposit, settled: 3n * price, finalized: true })
    // The manager knows the channel is closed: a second close() sends nothing and changes nothing.
    await manager.close().catch(() => undefined)
    expect(await onChain(channelId)).toMatchObject({ deposit, settled: 3n * price, finalized: true })
    // Nothing left to batch-settle: the close captured it.
    expect(await method.settleChannels()).toBeUndefined()
  })
})
