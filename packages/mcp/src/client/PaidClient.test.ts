import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import { Client as CoreClient, PaymentFailedError, PolicyError } from '@mppkit/core/client'
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { connected, overHttp, paidServer } from '../../test/fixture.js'
import { capabilities, challengesOf, McpPaymentError, receiptOf, wrap } from './PaidClient.js'

describe('wrap', () => {
  test('pays a -32042 with the core client and returns the result with its receipt', async () => {
    const t = await connected()
    try {
      const received: string[] = []
      const payer = CoreClient.create({
        methods: [t.rail.client()],
        policy: { maxAmount: 10_000n },
        onReceipt: (receipt) => received.push(receipt.challengeId!),
      })
      const paid = wrap(t.client, { client: payer })
      const result = await paid.callTool({ name: 'forecast', arguments: { city: 'Rome' } })
      expect(result.content).toEqual([{ type: 'text', text: 'sunny in Rome' }])
      expect(result.receipt).toMatchObject({ status: 'success', method: 'test' })
      expect(received).toEqual([result.receipt!.challengeId])
      // The same Ledger as HTTP: the spend is booked.
      expect(payer.ledger.spent('usd')).toBe(1000n)
      expect(t.rail.settlements()).toBe(1)
    } finally {
      await t.close()
    }
  })

  test('over Streamable HTTP, resources and prompts too', async () => {
    const t = await overHttp()
    try {
      const paid = wrap(t.client, { client: t.payer })
      const tool = await paid.callTool({ name: 'premium' })
      expect(tool.receipt?.method).toBe('test')
      const resource = await paid.readResource({ uri: 'data://premium/market' })
      expect(resource.contents[0]).toMatchObject({ text: 'market data' })
      expect(resource.receipt?.challengeId).toBeTypeOf('string')
      const prompt = await paid.getPrompt({ name: 'expert' })
      expect(prompt.receipt?.challengeId).toBeTypeOf('string')
      expect(t.rail.settlements()).toBe(3)
      expect(t.payer.ledger.spent('usd')).toBe(7000n)
    } finally {
      await t.close()
    }
  })

  test('a free tool is called once, without payment', async () => {
    const t = await connected()
    try {
      const result = await wrap(t.client, { client: t.payer }).callTool({
        name: 'echo',
        arguments: { text: 'free' },
      })
      expect(result.receipt).toBeUndefined()
      expect(t.calls).toHaveLength(1)
    } finally {
      await t.close()
    }
  })

  test('a refused payment reaches the caller as a typed error', async () => {
    const t = await connected()
    try {
      const payer = CoreClient.create({
        methods: [t.rail.client({ tamper: () => ({ transfer: 'tx_forged' }) })],
      })
      const error = await wrap(t.client, { client: payer })
        .callTool({ name: 'premium' })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(McpPaymentError)
      const typed = error as McpPaymentError
      expect(typed.code).toBe('verification-failed')
      expect(typed.jsonRpcCode).toBe(-32043)
      expect(typed.failure).toEqual({ reason: 'unknown-transfer', detail: 'Unknown transfer.' })
      expect(typed.message).toMatchInlineSnapshot(
        `"the server refused the payment: MCP error -32043: Payment Verification Failed"`,
      )
      expect(t.calls).toEqual([])
    } finally {
      await t.close()
    }
  })

  test('a rail outage on the paid retry is an McpPaymentError payment-unavailable (-32603)', async () => {
    const fixture = paidServer({ failWith: () => new Error('rail down') })
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await fixture.payments.connect(fixture.mcp, serverSide)
    const client = new Client({ name: 'agent', version: '1.0.0' })
    await client.connect(clientSide)
    const payer = CoreClient.create({ methods: [fixture.rail.client()] })
    const error = await wrap(client, { client: payer })
      .callTool({ name: 'premium' })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(McpPaymentError)
    expect((error as McpPaymentError).code).toBe('payment-unavailable')
    expect((error as McpPaymentError).jsonRpcCode).toBe(-32603)
    expect(fixture.calls).toEqual([])
    await client.close()
  })

  test('the spend policy applies: a price over maxAmount is a PolicyError, nothing is paid', async () => {
    const t = await connected()
    try {
      const payer = CoreClient.create({ methods: [t.rail.client()], policy: { maxAmount: 10n } })
      await expect(wrap(t.client, { client: payer }).callTool({ name: 'premium' })).rejects.toBeInstanceOf(
        PolicyError,
      )
      expect(t.rail.transfers.size).toBe(0)
    } finally {
      await t.close()
    }
  })

  test('no method that pays: PaymentFailedError no-payable-challenge', async () => {
    const t = await connected()
    try {
      const other = CoreClient.create({
        methods: [{ ...t.rail.client(), definition: { ...t.rail.client().definition, name: 'other' } }],
      })
      const error = await wrap(t.client, { client: other })
        .callTool({ name: 'premium' })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(PaymentFailedError)
      expect((error as PaymentFailedError).code).toBe('no-payable-challenge')
    } finally {
      await t.close()
    }
  })
})

describe('challengesOf', () => {
  test('reads only well-formed challenges of payment errors, whatever the data', () => {
    fc.assert(
      fc.property(fc.anything(), fc.integer({ min: -32100, max: -32000 }), (data, code) => {
        const found = challengesOf(new McpError(code, 'x', data))
        expect(Array.isArray(found)).toBe(true)
        for (const challenge of found) expect(typeof challenge.request).toBe('object')
      }),
    )
    expect(challengesOf(new Error('no'))).toEqual([])
  })
})

describe('receiptOf', () => {
  test('a receipt for another challenge, or not a success, is not the receipt', () => {
    const receipt = { status: 'success', method: 'test', timestamp: 't', challengeId: 'a' }
    const result = { _meta: { 'org.paymentauth/receipt': receipt } }
    expect(receiptOf(result, 'a')).toEqual(receipt)
    expect(receiptOf(result, 'b')).toBeUndefined()
    expect(
      receiptOf({ _meta: { 'org.paymentauth/receipt': { ...receipt, status: 'failed' } } }),
    ).toBeUndefined()
    fc.assert(fc.property(fc.anything(), (value) => void receiptOf(value)))
  })
})

describe('capabilities', () => {
  test('the client advertises the methods it pays with in the InitializeRequest', async () => {
    const fixture = paidServer()
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
    await fixture.payments.connect(fixture.mcp, serverSide)
    const advertised = capabilities([fixture.rail.client(), fixture.rail.client()])
    const client = new Client({ name: 'agent', version: '1.0.0' }, { capabilities: advertised })
    await client.connect(clientSide)
    expect(fixture.mcp.server.getClientCapabilities()?.experimental).toEqual({
      payment: { methods: { test: { intents: ['charge'] } } },
    })
    await client.close()
  })
})
