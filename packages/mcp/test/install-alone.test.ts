import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

// Each package installs alone: `npm pack` core, mcp and discovery, install the tarballs in a fresh folder
// outside the workspace, check that no chain library came along, and run a paid MCP tool call and a
// discovery document there.

const run = promisify(execFile)
const packages = fileURLToPath(new URL('../../', import.meta.url))
const built = ['core', 'mcp', 'discovery'].every((name) =>
  existsSync(join(packages, name, 'dist', 'index.js')),
)
const reason = built
  ? undefined
  : 'dist/ of @mppkit/core, mcp or discovery is missing: run `npm run build` first'
if (reason) console.warn(`[skip] install-alone: ${reason}`)

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
await mcp.connect(payments.transport(serverSide))
const agent = new Client({ name: 'agent', version: '1.0.0' })
await agent.connect(clientSide)
const payer = Payer.create({ methods: [{ definition: iou, createPayload: async () => ({ payload: { note: 'n1' } }) }] })
const result = await McpClient.wrap(agent, { client: payer }).callTool({ name: 'forecast' })
const report = Discovery.validate(Discovery.create({ info: { title: 't', version: '1' }, operations: [{ path: '/f', route }] }).openapi())
console.log(JSON.stringify({ text: result.content[0].text, receipt: result.receipt.reference, valid: report.valid }))
await agent.close()
`

let folder: string
beforeAll(async () => {
  if (!reason) folder = await mkdtemp(join(tmpdir(), 'mppkit-mcp-alone-'))
})
afterAll(async () => {
  if (folder) await rm(folder, { recursive: true, force: true })
})

describe.skipIf(!!reason)('install alone', () => {
  it('packs core, mcp and discovery, installs them without a chain library, pays a tool', {
    timeout: 240_000,
  }, async () => {
    const tarballs: Record<string, string> = {}
    for (const name of ['core', 'mcp', 'discovery']) {
      const { stdout } = await run('npm', ['pack', '--silent', '--pack-destination', folder], {
        cwd: join(packages, name),
      })
      tarballs[name] = join(folder, stdout.trim().split('\n').pop() as string)
    }
    await writeFile(
      join(folder, 'package.json'),
      JSON.stringify({
        name: 'alone',
        private: true,
        type: 'module',
        dependencies: {
          '@mppkit/core': `file:${tarballs.core}`,
          '@mppkit/mcp': `file:${tarballs.mcp}`,
          '@mppkit/discovery': `file:${tarballs.discovery}`,
        },
      }),
    )
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts'], {
      cwd: folder,
      timeout: 200_000,
    })
    const installed = await readdir(join(folder, 'node_modules'))
    expect(installed).toContain('@modelcontextprotocol')
    for (const forbidden of ['viem', '@solana', 'lightning', 'stripe', 'mppx'])
      expect(installed).not.toContain(forbidden)
    await writeFile(join(folder, 'pay.mjs'), script)
    const { stdout } = await run('node', ['pay.mjs'], { cwd: folder, timeout: 60_000 })
    expect(JSON.parse(stdout.trim().split('\n').pop() as string)).toEqual({
      text: 'sunny',
      receipt: 'n1',
      valid: true,
    })
  })
})
