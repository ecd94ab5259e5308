import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Installation, installAlone, missingBuild } from '../../../scripts/install-alone.js'

// Each package installs alone (scripts/install-alone.ts packs the workspace packages and installs the
// tarballs in a fresh folder outside the workspace): core + mcp + discovery pay a tool and validate a
// document with no chain library; core + discovery alone (no MCP SDK) serve a discovery document that
// the installed `mppkit inspect <origin>` reads through @mppkit/discovery.

const reason = missingBuild(['core', 'mcp', 'discovery'])

const script = `
import { Method } from '@mppkit/core'
import { Client as Payer } from '@mppkit/core/client'
import { Server } from '@mppkit/core/server'
import * as Discovery from '@mppkit/discovery'
import { McpClient, McpServer as Payments } from '@mppkit/mcp'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js'
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import { z } from 'zod'

const iou = Method.define({ name: 'iou', intent: 'charge', request: z.object({ amount: z.string(), currency: z.string() }), payload: z.object({ note: z.string() }) })
const server = Server.create({ realm: 'alone.test', secrets: ['install-alone-secret-0123456789abcdefghij'],
  methods: [{ definition: iou, verify: async () => undefined, settle: async ({ payload }) => ({ reference: payload.note }) }] })
const route = { offers: [{ method: 'iou', request: { amount: '100', currency: 'usd' } }] }
const payments = Payments.create({ server, tools: { forecast: route } })
const mcp = new McpServer({ name: 'weather', version: '1.0.0' })
mcp.registerTool('forecast', {}, async () => ({ content: [{ type: 'text', text: 'sunny' }] }))
const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
await payments.connect(mcp, serverSide)
const agent = new Client({ name: 'agent', version: '1.0.0' })
await agent.connect(clientSide)
const payer = Payer.create({ methods: [{ definition: iou, createPayload: async () => ({ payload: { note: 'n1' } }) }] })
const result = await McpClient.wrap(agent, { client: payer }).callTool({ name: 'forecast' })
const report = Discovery.validate(Discovery.create({ info: { title: 't', version: '1' }, operations: [{ path: '/f', route }] }).openapi())
console.log(JSON.stringify({ text: result.content[0].text, receipt: result.receipt.reference, valid: report.valid }))
await agent.close()
`

const serveScript = `
import { createServer } from 'node:http'
import * as Discovery from '@mppkit/discovery'
const discovery = Discovery.create({
  info: { title: 'Alone', version: '1.0.0' },
  operations: [{ path: '/forecast', route: { offers: [{ method: 'iou', request: { amount: '100', currency: 'usd' } }] } }],
})
const middleware = Discovery.node(discovery)
const server = createServer((req, res) => middleware(req, res, () => res.writeHead(404).end()))
server.listen(0, '127.0.0.1', () => console.log(server.address().port))
process.stdin.on('end', () => server.close()).resume()
`

// Both installations are made side by side from the start (core and discovery packed once for the two);
// each test awaits its own.
let withMcp: Promise<Installation> | undefined
let withoutMcp: Promise<Installation> | undefined
beforeAll(() => {
  if (reason) return
  withMcp = installAlone(['core', 'mcp', 'discovery'])
  withoutMcp = installAlone(['core', 'discovery'])
  for (const installation of [withMcp, withoutMcp]) installation.catch(() => {})
})
afterAll(async () => {
  for (const installation of [withMcp, withoutMcp])
    await (await installation?.catch(() => undefined))?.remove()
})

describe.skipIf(!!reason)('install alone', () => {
  it('packs core, mcp and discovery, installs them without a chain library, pays a tool', {
    timeout: 240_000,
  }, async () => {
    const alone = await withMcp!
    expect(alone.modules).toContain('@modelcontextprotocol')
    for (const forbidden of ['viem', '@solana', 'lightning', 'stripe', 'mppx'])
      expect(alone.modules).not.toContain(forbidden)
    expect(JSON.parse(await alone.run(script))).toEqual({ text: 'sunny', receipt: 'n1', valid: true })
  })

  it('discovery installs with core alone, and the installed `mppkit inspect <origin>` uses it', {
    timeout: 240_000,
  }, async () => {
    const alone = await withoutMcp!
    for (const absent of [
      '@modelcontextprotocol',
      'viem',
      '@solana',
      'lightning',
      'stripe',
      'mppx',
      'express',
      'hono',
    ])
      expect(alone.modules).not.toContain(absent)
    await writeFile(join(alone.folder, 'serve.mjs'), serveScript)
    const server = spawn('node', ['serve.mjs'], { cwd: alone.folder, stdio: ['pipe', 'pipe', 'inherit'] })
    try {
      const port = await new Promise<string>((resolve, reject) => {
        server.stdout.once('data', (chunk) => resolve(String(chunk).trim()))
        server.once('exit', (code) => reject(new Error(`the server exited (${code})`)))
      })
      const origin = `http://127.0.0.1:${port}`
      const run = await alone.bin('mppkit', ['inspect', origin])
      expect(run.stderr).toBe('')
      expect(run.code).toBe(0)
      expect(run.stdout.replace(origin, 'ORIGIN')).toBe(
        'ORIGIN/openapi.json: valid discovery document\nGET /forecast\n  iou/charge: 100 usd\n',
      )
    } finally {
      server.stdin.end()
      server.kill()
    }
  })
})
