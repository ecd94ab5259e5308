import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { Client as CoreClient } from '@mppkit/core/client'
import * as Server from '@mppkit/core/server'
import { chargeClient } from '@mppkit/method-tempo/client'
import { chargeServer } from '@mppkit/method-tempo/server'
import { type Address, erc20Abi, type Hex } from 'viem'
import { privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  fundTip20,
  startTempo,
  type TempoDevnet,
  tempoClients,
  tempoUnavailableReason,
} from '../../devnet/src/tempo/index.js'
import { wrap } from '../src/client/index.js'
import { create } from '../src/server/index.js'

// Paid MCP tools on a real rail: Tempo on anvil, and interop with mppx@0.11.0's MCP binding.
const mppxMcpClient = await import('mppx/mcp/client').catch(() => undefined)
const mppxClient = await import('mppx/client').catch(() => undefined)
const mppxServer = await import('mppx/server').catch(() => undefined)
const reason = tempoUnavailableReason()
if (reason) console.warn(`[skip] ${reason}`)
const mppxReason = mppxMcpClient && mppxClient && mppxServer ? undefined : 'mppx is not installed'
if (!reason && mppxReason) console.warn(`[skip] ${mppxReason}`)

const secret = 'mcp-tempo-secret-0123456789abcdef0123456789'
const receiptKey = 'org.paymentauth/receipt'

describe.skipIf(!!reason)('paid MCP tools on Tempo (anvil)', () => {
  let devnet: TempoDevnet
  beforeAll(async () => {
    devnet = await startTempo({ accounts: 4 })
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

  /** Our MCP server selling `forecast` for 1500 base units of PathUSD, connected in memory. */
  async function ourServer() {
    const recipient = devnet.info.accounts[0]!.address
    const server = Server.create({
      realm: 'mcp.tempo.test',
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
    const payments = create({
      server,
      tools: { forecast: [{ method: 'tempo', request: { amount: '1500' } }] },
    })
    const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
    let runs = 0
    mcp.registerTool('forecast', { description: 'Paid forecast' }, async () => {
      runs++
      return { content: [{ type: 'text', text: 'sunny' }] }
    })
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await payments.connect(mcp, serverSide)
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    return { client, recipient, runs: () => runs }
  }

  it('our client pays our server: the tool runs once, the receipt is the transaction', async () => {
    const { client, recipient, runs } = await ourServer()
    const before = await balance(devnet.info.tokens.pathUsd, recipient)
    const payer = CoreClient.create({
      methods: [
        chargeClient({
          account: privateKeyToAccount(devnet.info.accounts[1]!.privateKey),
          rpcUrl: devnet.info.rpcUrl,
          chainId: devnet.info.chainId,
        }),
      ],
    })
    const result = await wrap(client, { client: payer }).callTool({ name: 'forecast' })
    expect(result.content).toEqual([{ type: 'text', text: 'sunny' }])
    expect(result.receipt?.reference).toMatch(/^0x[0-9a-f]{64}$/)
    const onChain = await tempoClients(devnet.info).publicClient.getTransactionReceipt({
      hash: result.receipt!.reference as Hex,
    })
    expect(onChain.status).toBe('success')
    expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 1500n)
    expect(runs()).toBe(1)
    await client.close()
  })

  it.skipIf(!!mppxReason)("mppx@0.11.0's MCP client pays our server", async () => {
    const { client, recipient, runs } = await ourServer()
    // mppx pays from the expiring nonce lane: a fresh funded account (as in method-tempo's interop tests).
    const payer = tempoClients({
      ...devnet.info,
      privateKey: devnet.info.accounts[2]!.privateKey,
      timeout: 8_000,
    })
    await fundTip20({
      rpcUrl: devnet.info.rpcUrl,
      from: devnet.info.faucet,
      token: devnet.info.tokens.pathUsd,
      to: payer.account.address,
      amount: 10_000_000n,
    })
    const before = await balance(devnet.info.tokens.pathUsd, recipient)
    const paid = mppxMcpClient!.McpClient.wrap(client, {
      methods: [
        mppxClient!.tempo.charge({
          account: payer.account,
          mode: 'pull',
          getClient: () => payer.walletClient as never,
        }),
      ],
    })
    const result = await paid.callTool({ name: 'forecast' })
    expect(result.content).toEqual([{ type: 'text', text: 'sunny' }])
    expect(result.receipt).toMatchObject({ status: 'success', method: 'tempo' })
    expect((result._meta as any)[receiptKey].challengeId).toBeTypeOf('string')
    expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 1500n)
    expect(runs()).toBe(1)
    await client.close()
  })

  it.skipIf(!!mppxReason)('our client pays an mppx@0.11.0 MCP server', async () => {
    const recipient = devnet.info.accounts[0]!.address
    const { publicClient } = tempoClients({ ...devnet.info, timeout: 8_000 })
    const mppx = mppxServer!.Mppx.create({
      realm: 'mppx.mcp.test',
      secretKey: secret,
      transport: mppxServer!.Transport.mcpSdk(),
      methods: [
        mppxServer!.tempo.charge({
          recipient,
          currency: devnet.info.tokens.pathUsd,
          getClient: () => publicClient as never,
        }),
      ],
    })
    const mcp = new McpServer({ name: 'mppx-weather', version: '1.0.0' })
    mcp.registerTool('forecast', { description: 'Paid forecast' }, async (extra) => {
      const result = await (mppx as any)['tempo/charge']({ amount: '0.002' })(extra)
      if (result.status === 402) throw result.challenge
      return result.withReceipt({ content: [{ type: 'text', text: 'sunny (mppx)' }] })
    })
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await mcp.connect(serverSide)
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    const before = await balance(devnet.info.tokens.pathUsd, recipient)
    const payer = CoreClient.create({
      methods: [
        chargeClient({
          account: privateKeyToAccount(devnet.info.accounts[3]!.privateKey),
          rpcUrl: devnet.info.rpcUrl,
          chainId: devnet.info.chainId,
        }),
      ],
    })
    const result = await wrap(client, { client: payer }).callTool({ name: 'forecast' })
    expect(result.content).toEqual([{ type: 'text', text: 'sunny (mppx)' }])
    expect(result.receipt?.reference).toMatch(/^0x[0-9a-f]{64}$/)
    expect(await balance(devnet.info.tokens.pathUsd, recipient)).toBe(before + 2000n)
    await client.close()
  })
})
