import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { createServer, type Server as HttpServer, type RequestListener } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Server, toNodeListener } from '@mppkit/core/server'
import { createTestRail } from '@mppkit/core/testing'
import { afterAll, describe, expect, it } from 'vitest'
import { node } from '../src/Adapters.js'
import { create } from '../src/Discovery.js'

// `mppkit inspect <origin>`: the core `mppkit` bin, run as a child process of its build, loads
// @mppkit/discovery (which core does not depend on) and inspects real HTTP servers on loopback: a
// service whose routes publish their discovery document, and hostile ones.

const root = fileURLToPath(new URL('../../../', import.meta.url))
const bin = join(root, 'packages/core/bin/mppkit.js')
const built = ['core/dist/bin/mppkit.js', 'discovery/dist/index.js'].every((file) =>
  existsSync(join(root, 'packages', file)),
)
if (!built)
  console.warn(
    '[skip] mppkit inspect <origin>: build first (`npx turbo run build --filter=@mppkit/discovery...`; npm test does)',
  )

type Run = { code: number; stdout: string; stderr: string }
function mppkit(args: string[], binPath = bin): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node', [binPath, ...args], { timeout: 30_000, maxBuffer: 16 << 20 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
    )
  })
}

const servers: HttpServer[] = []
async function serve(listener: RequestListener): Promise<string> {
  const server = createServer(listener)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  servers.push(server)
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}
afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  }
})

// A document served as-is at /openapi.json (everything else 404).
const document = (body: string | (() => AsyncIterable<string>)) =>
  serve(async (req, res) => {
    if (req.url !== '/openapi.json') return void res.writeHead(404).end()
    res.writeHead(200, { 'content-type': 'application/json' })
    if (typeof body === 'string') return void res.end(body)
    for await (const chunk of body()) if (!res.write(chunk)) await once(res, 'drain')
    res.end()
  })

const noStackTrace = (run: Run) =>
  expect(run.stderr + run.stdout).not.toMatch(/\n\s+at [\w.<]+ \(|node:internal/)

describe.skipIf(!built)('mppkit inspect <origin> (the built bin)', () => {
  it('lists every paid operation of a real service with its offers, exit 0', async () => {
    const rail = createTestRail()
    const method = { ...rail.server(), defaults: { currency: 'usd', recipient: 'acct_1' } }
    const weather = { offers: [{ method: 'test', request: { amount: '1000' }, description: 'per call' }] }
    const chat = {
      offers: [
        { method: 'test', request: { amount: '500', currency: 'eur' } },
        { method: 'test', request: async () => ({ amount: '7' }) },
      ],
    }
    const server = Server.create({
      realm: 'weather.test',
      secrets: ['inspect-bin-secret-0123456789abcdefghij'],
      methods: [method],
    })
    const discovery = create({
      info: { title: 'Weather API', version: '1.0.0' },
      operations: [
        { path: '/weather', route: weather },
        { path: '/chat', method: 'post', route: chat, requestBody: { type: 'object' } },
        { path: '/health' },
      ],
      methods: [method],
    })
    const paid = toNodeListener(server.protect(weather, () => new Response('sunny')))
    const middleware = node(discovery)
    const origin = await serve((req, res) => middleware(req, res, () => paid(req, res)))
    const run = await mppkit(['inspect', origin])
    expect(run.stderr).toBe('')
    expect(run.code).toBe(0)
    expect(run.stdout.replace(origin, 'ORIGIN')).toMatchInlineSnapshot(`
      "ORIGIN/openapi.json: valid discovery document
      GET /weather
        test/charge: 1000 usd (per call)
      POST /chat
        test/charge: 500 eur
        test/charge: dynamic price
      "
    `)
    // A route change shows up: a URL with a path is still one resource's 402.
    const one = await mppkit(['inspect', `${origin}/weather`])
    expect(one.code).toBe(0)
    expect(one.stdout).toMatch(
      /^402 Payment Required .*\n1 Payment challenge\(s\):\n {2}test\/charge {2}realm=weather\.test/,
    )
  })

  it('hostile documents (huge, deep, wrong types, not JSON, control characters): one clear line or the problems, non-zero exit', async () => {
    const huge = await document(async function* () {
      for (let i = 0; i < 64; i++) yield `${' '.repeat(64 * 1024)}`
    })
    const deep = await document(`{"openapi":"3.1.0","info":${'['.repeat(300_000)}${']'.repeat(300_000)}}`)
    const deepest = await document(`${'{"a":'.repeat(150_000)}1${'}'.repeat(150_000)}`)
    const wrong = await document(
      JSON.stringify({
        openapi: 3,
        info: 'x',
        paths: { '/a': { get: { 'x-payment-info': { offers: 'all' } } } },
      }),
    )
    const notJson = await document('<html>hello</html>')
    const escapes = await document(
      JSON.stringify({
        openapi: '3.1.0',
        info: { title: 't', version: '1' },
        paths: {
          '/a\u001b[2J\u202e': {
            get: {
              'x-payment-info': { intent: 'charge', method: 'test\u001b]0;pwned\u0007', amount: '1' },
              responses: { '402': { description: 'Payment Required' } },
            },
          },
        },
      }),
    )
    const down = `http://127.0.0.1:${await (
      async () => {
        const probe = createServer()
        probe.listen(0, '127.0.0.1')
        await once(probe, 'listening')
        const { port } = probe.address() as AddressInfo
        await new Promise((resolve) => probe.close(resolve))
        return port
      }
    )()}`

    const runs = {
      huge: await mppkit(['inspect', huge]),
      deep: await mppkit(['inspect', deep]),
      deepest: await mppkit(['inspect', deepest]),
      wrong: await mppkit(['inspect', wrong]),
      notJson: await mppkit(['inspect', notJson]),
      escape: await mppkit(['inspect', escapes]),
      down: await mppkit(['inspect', down]),
    }
    for (const [name, run] of Object.entries(runs)) {
      // The escape document is valid: only its strings are hostile.
      expect(run.code, name).toBe(name === 'escape' ? 0 : 1)
      noStackTrace(run)
    }
    expect(runs.huge.stderr).toBe('mppkit inspect: the discovery document is larger than 1048576 bytes\n')
    expect(runs.notJson.stderr).toBe(`mppkit inspect: ${notJson}/openapi.json is not a JSON document\n`)
    expect(runs.down.stderr).toBe(`mppkit inspect: could not fetch ${down}/openapi.json\n`)
    expect(runs.deep.stdout).toContain('problem $.info: must be an object')
    expect(runs.deepest.stdout).toContain('problem $.openapi: must be an OpenAPI 3.x version string')
    expect(runs.wrong.stdout.replace(wrong, 'ORIGIN')).toMatchInlineSnapshot(`
      "ORIGIN/openapi.json: INVALID discovery document
        problem $.openapi: must be an OpenAPI 3.x version string
        problem $.info: must be an object
        problem $.paths["/a"].get.x-payment-info.offers: must be an array of one or more offers
        problem $.paths["/a"].get.responses: a payable operation must declare a 402 response
      "
    `)
    // The server's strings reach the terminal without their escape sequences.
    expect(runs.escape.stdout).not.toMatch(/[\u001b\u0007\u202e]/)
  }, 60_000)

  it('an origin without a discovery document: says so and shows what the origin answers', async () => {
    const free = await serve((_req, res) => res.writeHead(404).end())
    const run = await mppkit(['inspect', free])
    expect(run.code).toBe(1)
    expect(run.stderr).toBe(
      `mppkit inspect: no discovery document (${free}/openapi.json answered 404); showing what ${free} answers\n`,
    )
    expect(run.stdout).toMatch(/^404 Not Found/)
  })

  it('without @mppkit/discovery installed: says how to get it, and still shows the origin’s 402', async () => {
    // core alone, as a user installs it: its dist and bin in a node_modules with zod and nothing else.
    const folder = mkdtempSync(join(tmpdir(), 'mppkit-core-alone-'))
    try {
      const core = join(folder, 'node_modules/@mppkit/core')
      mkdirSync(core, { recursive: true })
      for (const part of ['package.json', 'bin', 'dist'])
        cpSync(join(root, 'packages/core', part), join(core, part), { recursive: true })
      symlinkSync(join(root, 'node_modules/zod'), join(folder, 'node_modules/zod'))
      const rail = createTestRail()
      const server = Server.create({
        realm: 'root.test',
        secrets: ['inspect-bin-secret-0123456789abcdefghij'],
        methods: [rail.server()],
      })
      const origin = await serve(
        toNodeListener(
          server.protect(
            { offers: [{ method: 'test', request: { amount: '5', currency: 'usd', recipient: 'a' } }] },
            () => new Response('ok'),
          ),
        ),
      )
      const run = await mppkit(['inspect', origin], join(core, 'bin/mppkit.js'))
      expect(run.stderr).toMatchInlineSnapshot(`
        "mppkit inspect: listing the paid operations of an origin needs @mppkit/discovery, which is not installed (or not built)
        hint: npm install @mppkit/discovery
        mppkit inspect: showing what ${origin} answers instead
        "
      `)
      expect(run.stdout).toMatch(/^402 Payment Required/)
      expect(run.code).toBe(0)
      // A header value still decodes without any other package.
      const header = (await fetch(origin)).headers.get('www-authenticate')!
      const decoded = await mppkit(['inspect', header], join(core, 'bin/mppkit.js'))
      expect(decoded.code).toBe(0)
      expect(decoded.stdout).toMatch(/^1 Payment challenge\(s\):/)
    } finally {
      rmSync(folder, { recursive: true, force: true })
    }
  })
})
