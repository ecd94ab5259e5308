import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import { Challenge, Jcs } from '@mppkit/core'
import {
  BaseError,
  Client as CoreClient,
  mayHaveSettled,
  PaymentFailedError,
  PolicyError,
} from '@mppkit/core/client'
import fc from 'fast-check'
import { describe, expect, test } from 'vitest'
import { connected, overHttp, paidServer } from '../../test/fixture.js'
import { challenge, hostile, paidResult, price } from '../../test/hostile.js'
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

describe('wrap, against a hostile or broken server', () => {
  const opaqueFor = (mcp: string) => Challenge.encodeOpaque({ mcp })
  const digestOf = async (args: unknown) =>
    `sha-256=:${Buffer.from(
      await crypto.subtle.digest('SHA-256', new TextEncoder().encode(Jcs.canonicalize(args ?? {}))),
    ).toString('base64')}:`

  test("a -32602 on the paid call is a refused credential only with mppkit's problem; else the payment may have settled", async () => {
    const call = (refusal: Record<string, unknown>) =>
      hostile((_, params) =>
        params._meta?.['org.paymentauth/credential']
          ? { challenges: [], code: -32602, data: refusal }
          : { challenges: [challenge({ opaque: opaqueFor('tools/call forecast') })] },
      )
    const refused = await call({ problem: { type: 'https://paymentauth.org/problems/malformed-credential' } })
    const sdk = await call({})
    try {
      const malformed = await wrap(refused.client, { client: refused.payer })
        .callTool({ name: 'forecast' })
        .catch((e: unknown) => e)
      expect((malformed as McpPaymentError).code).toBe('credential-refused')
      // The SDK's own -32602 after settlement (a target disabled meanwhile): not "nothing was paid".
      const unknown = await wrap(sdk.client, { client: sdk.payer })
        .callTool({ name: 'forecast' })
        .catch((e: unknown) => e)
      expect((unknown as McpPaymentError).code).toBe('outcome-unknown')
      expect((unknown as McpPaymentError).mayHaveSettled).toBe(true)
    } finally {
      await refused.close()
      await sdk.close()
    }
  })

  test('never pays a challenge bound to another tool: a typed refusal, nothing paid', async () => {
    const t = await hostile((_, params) =>
      params._meta?.['org.paymentauth/credential']
        ? paidResult(params)
        : { challenges: [challenge({ opaque: opaqueFor('tools/call premium') })] },
    )
    try {
      const error = await wrap(t.client, { client: t.payer })
        .callTool({ name: 'forecast', arguments: { city: 'Rome' } })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(McpPaymentError)
      expect((error as McpPaymentError).code).toBe('challenge-mismatch')
      expect((error as McpPaymentError).message).toMatchInlineSnapshot(
        `"every challenge the server sent is bound to another call than tools/call forecast: nothing was paid"`,
      )
      expect(t.rail.transfers.size).toBe(0)
      expect(t.payer.ledger.spent('usd')).toBe(0n)
      expect(t.calls).toHaveLength(1)
    } finally {
      await t.close()
    }
  })

  test('never pays a challenge bound to other arguments, or another resource; pays the one bound to the call', async () => {
    const bound = { opaque: opaqueFor('tools/call forecast'), digest: await digestOf({ city: 'Paris' }) }
    const t = await hostile((method, params) => {
      if (params._meta?.['org.paymentauth/credential']) return paidResult(params)
      if (method === 'resources/read')
        return { challenges: [challenge({ opaque: opaqueFor('resources/read data://premium/other') })] }
      // The second tool call is offered two challenges: the wrong one first.
      return { challenges: [challenge(bound), challenge({ ...bound, digest: digestOfRome })] }
    })
    const digestOfRome = await digestOf({ city: 'Rome' })
    try {
      const paid = wrap(t.client, { client: t.payer })
      const wrongArguments = await paid
        .callTool({ name: 'forecast', arguments: { city: 'Lima' } })
        .catch((e: unknown) => e)
      expect((wrongArguments as McpPaymentError).code).toBe('challenge-mismatch')
      const wrongResource = await paid.readResource({ uri: 'data://premium/market' }).catch((e: unknown) => e)
      expect((wrongResource as McpPaymentError).code).toBe('challenge-mismatch')
      expect(t.rail.transfers.size).toBe(0)
      // The call the second challenge is bound to is paid with that one, never with the first.
      const result = await paid.callTool({ name: 'forecast', arguments: { city: 'Rome' } })
      expect(result.receipt?.status).toBe('success')
      expect(t.rail.transfers.size).toBe(1)
      const sent = t.calls.at(-1)!.params._meta!['org.paymentauth/credential'] as any
      expect(sent.challenge.digest).toBe(digestOfRome)
    } finally {
      await t.close()
    }
  })

  test('a resource challenge bound to another spelling of the URI read is paid', async () => {
    const t = await hostile((_, params) =>
      params._meta?.['org.paymentauth/credential']
        ? paidResult(params, { contents: [] })
        : { challenges: [challenge({ opaque: opaqueFor('resources/read data://premium/market') })] },
    )
    try {
      const result = await wrap(t.client, { client: t.payer }).readResource({
        uri: 'DATA://premium/x/../market',
      })
      expect(result.receipt?.status).toBe('success')
    } finally {
      await t.close()
    }
  })

  test('a challenge that cannot be encoded (nested past the JCS limit) is refused before paying, never a crash after', async () => {
    let deep: Record<string, unknown> = {}
    for (let i = 0; i < 80; i++) deep = { deep }
    const t = await hostile((_, params) =>
      params._meta?.['org.paymentauth/credential']
        ? paidResult(params)
        : { challenges: [challenge({ request: { ...price, extra: deep } })] },
    )
    try {
      const error = await wrap(t.client, { client: t.payer })
        .callTool({ name: 'premium' })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(McpPaymentError)
      expect((error as McpPaymentError).code).toBe('no-challenge')
      expect(t.rail.transfers.size).toBe(0)
      expect(t.payer.ledger.spent('usd')).toBe(0n)
    } finally {
      await t.close()
    }
  })

  test('huge challenges (past 64 KiB in all) are refused with a typed error, nothing paid', async () => {
    for (const challenges of [
      [challenge({ description: 'x'.repeat(70_000) })],
      Array.from({ length: 2_000 }, () => challenge()),
    ]) {
      const t = await hostile((_, params) =>
        params._meta?.['org.paymentauth/credential'] ? paidResult(params) : { challenges },
      )
      try {
        const error = await wrap(t.client, { client: t.payer })
          .callTool({ name: 'premium' })
          .catch((e: unknown) => e)
        expect(error).toBeInstanceOf(McpPaymentError)
        expect((error as McpPaymentError).code).toBe('challenge-too-large')
        expect(t.rail.transfers.size).toBe(0)
      } finally {
        await t.close()
      }
    }
  })

  test('an expired or malformed challenge is a typed refusal, nothing paid', async () => {
    for (const challenges of [
      [challenge({ expires: '2000-01-01T00:00:00Z' })],
      [challenge({ request: { ...price, amount: '-5' } }), { id: '', realm: 1 }, 'junk', null],
    ]) {
      const t = await hostile((_, params) =>
        params._meta?.['org.paymentauth/credential'] ? paidResult(params) : { challenges },
      )
      try {
        const error = await wrap(t.client, { client: t.payer })
          .callTool({ name: 'premium' })
          .catch((e: unknown) => e)
        expect(BaseError.is(error), String(error)).toBe(true)
        expect(t.rail.transfers.size).toBe(0)
      } finally {
        await t.close()
      }
    }
  })

  test('a server that asks again after payment (forever) is paid once: a typed error, one transfer', async () => {
    const t = await hostile(() => ({ challenges: [challenge()] }))
    try {
      const error = await wrap(t.client, { client: t.payer })
        .callTool({ name: 'premium' })
        .catch((e: unknown) => e)
      expect((error as McpPaymentError).code).toBe('verification-failed')
      expect((error as McpPaymentError).jsonRpcCode).toBe(-32042)
      expect(t.rail.transfers.size).toBe(1)
      expect(t.calls).toHaveLength(2)
      // The credential is never part of what the error shows.
      const sent = JSON.stringify(t.calls[1]!.params._meta!['org.paymentauth/credential'])
      const transfer = [...t.rail.transfers.keys()][0]!
      expect(sent).toContain(transfer)
      expect(`${(error as Error).message} ${JSON.stringify(error)}`).not.toContain(transfer)
    } finally {
      await t.close()
    }
  })

  test('a paid retry that never answers is an McpPaymentError that says the payment may have gone through', async () => {
    const t = await hostile((_, params) =>
      params._meta?.['org.paymentauth/credential']
        ? new Promise<never>(() => {})
        : { challenges: [challenge()] },
    )
    try {
      const error = await wrap(t.client, { client: t.payer })
        .callTool({ name: 'premium' }, { timeout: 200 })
        .catch((e: unknown) => e)
      expect(error).toBeInstanceOf(McpPaymentError)
      const typed = error as McpPaymentError
      expect(typed.code).toBe('outcome-unknown')
      expect(mayHaveSettled(typed)).toBe(true)
      expect(typed.challenge?.id).toBeTypeOf('string')
      expect(typed.message).toMatchInlineSnapshot(
        `"the paid call failed after the payment was made (MCP error -32001: Request timed out); the payment may have gone through: check before paying again"`,
      )
      // Booked: a retry by the caller is held to the policy as if it had settled.
      expect(t.payer.ledger.spent('usd')).toBe(1000n)
      expect(t.rail.transfers.size).toBe(1)
    } finally {
      await t.close()
    }
  })
})
