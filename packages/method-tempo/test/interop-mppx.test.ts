import { Receipt } from '@mppkit/core'
import { create as createClient } from '@mppkit/core/client'
import { create as createServer } from '@mppkit/core/server'
import { type Address, erc20Abi, type Hex } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  fundTip20,
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { chargeClient } from '../src/client/index.js'
import { chargeServer } from '../src/server/index.js'

// Interop with the reference SDK (mppx@0.11.0, unmodified) on the same anvil node, both directions.
const mppxClient = await import('mppx/client').catch(() => undefined)
const mppxServer = await import('mppx/server').catch(() => undefined)
const reason = mppxClient && mppxServer ? tempoUnavailableReason() : 'mppx is not installed'
if (reason) console.warn(`[skip] ${reason}`)

const realm = 'interop.test'
const secret = 'tempo-interop-secret-0123456789abcdefghij'

describe.skipIf(!!reason)('tempo/charge ↔ mppx@0.11.0', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 3 })
  })
  afterAll(async () => {
    await devnet?.stop()
  })

  const balance = (token: Address, owner: Address) =>
    tempoClients(devnet.info).publicClient.readContract({
      address: token,
      abi: erc20Abi,
      functionName: 'balanceOf',
      args: [owner],
    })

  // mppx pays from the expiring nonce lane, on which anvil serves one transaction per account: each
  // mppx payment gets a fresh funded account (DESIGN §5).
  async function freshPayer() {
    const privateKey = generatePrivateKey()
    const clients = tempoClients({ ...devnet.info, privateKey, timeout: 8_000 })
    await fundTip20({
      rpcUrl: devnet.info.rpcUrl,
      from: devnet.info.faucet,
      token: devnet.info.tokens.pathUsd,
      to: clients.account.address,
      amount: 10_000_000n,
    })
    return clients
  }

  for (const mode of ['pull', 'push'] as const) {
    it(`the mppx client pays our server (${mode === 'pull' ? 'transaction' : 'hash'} mode)`, async () => {
      const recipient = devnet.info.accounts[0]!.address
      const server = createServer({
        realm,
        secrets: [secret],
        methods: [
          chargeServer({
            rpcUrl: devnet.info.rpcUrl,
            chainId: devnet.info.chainId,
            currency: devnet.info.tokens.pathUsd,
            recipient,
          }),
        ],
      })
      const handler = server.protect({ offers: [{ method: 'tempo', request: { amount: '1500' } }] }, () =>
        Response.json({ ok: true }),
      )
      const payer = await freshPayer()
      const before = await balance(devnet.info.tokens.pathUsd, recipient)
      const mppx = mppxClient!.Mppx.create({
        polyfill: false,
        fetch: ((input: RequestInfo, init?: RequestInit) =>
          handler(new Request(input, init))) as typeof fetch,
        methods: [
          mppxClient!.tempo.charge({
            account: payer.account,
            mode,
            getClient: () => payer.walletClient as never,
          }),
        ],
      })
      const response = await mppx.fetch('https://interop.test/paid')
      expect(response.status, await response.clone().text()).toBe(200)
      const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
      expect(receipt.reference).toMatch(/^0x[0-9a-f]{64}$/)
      expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 1500n)
    })
  }

  it('our client pays an mppx server (pull, then push)', async () => {
    const recipient = devnet.info.accounts[0]!.address
    const { publicClient } = tempoClients({ ...devnet.info, timeout: 8_000 })
    const mppx = mppxServer!.Mppx.create({
      realm,
      secretKey: secret,
      methods: [
        mppxServer!.tempo.charge({
          recipient,
          currency: devnet.info.tokens.pathUsd,
          getClient: () => publicClient as never,
        }),
      ],
    })
    const route = mppx['tempo/charge']({ amount: '0.002' })
    const handler = async (request: Request) => {
      const result = await route(request)
      if (result.status === 402) return result.challenge
      return result.withReceipt(Response.json({ paid: true }))
    }
    const before = await balance(devnet.info.tokens.pathUsd, recipient)
    for (const mode of ['pull', 'push'] as const) {
      const client = createClient({
        methods: [
          chargeClient({
            account: privateKeyToAccount(devnet.info.accounts[1]!.privateKey),
            rpcUrl: devnet.info.rpcUrl,
            chainId: devnet.info.chainId,
            mode,
          }),
        ],
        fetch: ((input: RequestInfo, init?: RequestInit) =>
          handler(new Request(input, init))) as typeof fetch,
      })
      const response = await client.fetch('https://interop.test/paid')
      expect(response.status, `${mode}: ${await response.clone().text()}`).toBe(200)
      expect(await response.json()).toEqual({ paid: true })
      const receipt = Receipt.parse(response.headers.get('payment-receipt')!)
      const onChain = await publicClient.getTransactionReceipt({ hash: receipt.reference as Hex })
      expect(onChain.status).toBe('success')
    }
    expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 4000n)
  })
})
