import { PassThrough } from 'node:stream'
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js'
import { Client as CoreClient } from '@mppkit/core/client'
import { expect, test } from 'vitest'
import { paidServer } from '../../test/fixture.js'
import { liftMetaLines } from './Stdio.js'

const credentialKey = 'org.paymentauth/credential'
const receiptKey = 'org.paymentauth/receipt'

test('over stdio, a credential in root-level _meta pays once stdin is read through liftMetaLines', async () => {
  const t = paidServer()
  const stdin = new PassThrough()
  const stdout = new PassThrough()
  await t.payments.connect(t.mcp, new StdioServerTransport(liftMetaLines(stdin), stdout))
  const replies = new Map<number, any>()
  let buffer = ''
  stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8')
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    for (const line of lines) {
      const reply = JSON.parse(line)
      replies.set(reply.id, reply)
    }
  })
  const request = async (message: Record<string, unknown>) => {
    const line = JSON.stringify({ jsonrpc: '2.0', ...message })
    // Split across writes (inside a multi-byte character too): lines are reassembled before lifting.
    const bytes = Buffer.from(`${line}\n`, 'utf8')
    const cut = bytes.indexOf(Buffer.from('é')) + 1
    stdin.write(bytes.subarray(0, cut))
    stdin.write(bytes.subarray(cut))
    for (let i = 0; i < 100 && !replies.has(message.id as number); i++)
      await new Promise((resolve) => setTimeout(resolve, 10))
    return replies.get(message.id as number)
  }
  const first = await request({
    id: 1,
    method: 'tools/call',
    params: { name: 'forecast', arguments: { city: 'Orléans' } },
  })
  expect(first.error.code).toBe(-32042)
  const payer = CoreClient.create({ methods: [t.rail.client()] })
  const payment = await payer.pay(first.error.data.challenges, { url: 'mcp://weather/tools/forecast' })
  const paid = await request({
    id: 2,
    method: 'tools/call',
    params: { name: 'forecast', arguments: { city: 'Orléans' } },
    _meta: { [credentialKey]: payment.credential },
  })
  expect(paid?.result.content).toEqual([{ type: 'text', text: 'sunny in Orléans' }])
  expect(paid.result._meta[receiptKey].challengeId).toBe(payment.challenge.id)
  expect(t.rail.settlements()).toBe(1)
  await t.mcp.close()
})
