import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { cpSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { toNodeListener } from '../src/server/node.js'
import { create as createServer } from '../src/server/Server.js'
import { createTestRail } from '../src/testing/index.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../../../', import.meta.url))
const manifest = JSON.parse(readFileSync(`${root}conformance/adapter.json`, 'utf8'))
const adapterPath = `${root}${manifest.command[1]}`
const cliPath = fileURLToPath(new URL('../dist/bin/mppkit.js', import.meta.url))
const built = existsSync(adapterPath) && existsSync(cliPath)
if (!built) console.warn('[skip] bin tests: run `npm run build` first (npm test does)')

function callAdapter(request: unknown): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = execFile(manifest.command[0], [adapterPath], { cwd: root }, (error, stdout) => {
      if (error) reject(error)
      else resolve(JSON.parse(stdout))
    })
    child.stdin!.end(JSON.stringify(request))
  })
}

describe('bin launchers (resolvable right after npm install)', () => {
  const packages = ['core', 'devnet']

  it('every bin of every package is a committed launcher, never a file under dist/', () => {
    for (const name of packages) {
      const manifest = JSON.parse(readFileSync(`${root}packages/${name}/package.json`, 'utf8'))
      for (const [bin, target] of Object.entries(manifest.bin as Record<string, string>)) {
        expect(target, `${name} bin ${bin}`).toMatch(/^\.\/bin\//)
        expect(existsSync(`${root}packages/${name}/${target}`), target).toBe(true)
        expect(manifest.files).toContain('bin')
      }
    }
  })

  it('npm links `mppkit` in node_modules/.bin to the launcher (so npx never asks the registry)', () => {
    const link = `${root}node_modules/.bin/mppkit`
    if (!existsSync(link)) return console.warn('[skip] node_modules/.bin/mppkit: run `npm install`')
    expect(realpathSync(link)).toBe(realpathSync(`${root}packages/core/bin/mppkit.js`))
  })

  it('says to build, with exit code 1, when dist/ is not there yet', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mppkit-launcher-'))
    try {
      cpSync(`${root}packages/core/bin`, join(dir, 'bin'), { recursive: true })
      const failure = await run('node', [join(dir, 'bin/mppkit.js'), 'inspect', 'x']).catch((e) => e)
      expect(failure.code).toBe(1)
      expect(failure.stderr).toMatchInlineSnapshot(`
        "mppkit: @mppkit/core is not built yet (no dist/bin/mppkit.js).
        hint: run \`npm run build\` (or \`npm start\`) at the repository root, then try again.
        "
      `)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe.skipIf(!built)('conformance adapter executable (conformance/adapter.json)', () => {
  const fixture = (name: string) =>
    JSON.parse(readFileSync(new URL(`./fixtures/conformance/${name}.json`, import.meta.url), 'utf8'))

  it('declares the capabilities it implements', () => {
    expect(manifest.capabilities).toEqual(
      expect.arrayContaining(['challenge.parse', 'credential.format', 'challenge.id', 'base64url.decode']),
    )
  })

  it('passes every challenge-id vector over stdin/stdout', async () => {
    const scenarios = fixture('challenge-id').scenarios as any[]
    const results = await Promise.all(
      scenarios.map((s) => callAdapter({ schema: 1, op: 'challenge.id', input: s.input })),
    )
    results.forEach((result, i) => {
      const s = scenarios[i]
      if (s.expected) expect(result).toEqual({ ok: true, value: { id: s.expected } })
      else expect(result).toMatchObject({ ok: false, error: { type: 'generation_error' } })
    })
  })

  it('parses www-authenticate and authorization vectors and reports typed errors', async () => {
    for (const [file, op] of [
      ['www-authenticate', 'challenge.parse'],
      ['authorization', 'credential.parse'],
    ] as const) {
      const scenarios = (fixture(file).scenarios as any[]).filter(
        (s) => typeof s.wire === 'string' && s.tests.parse,
      )
      const results = await Promise.all(
        scenarios.map((s) => callAdapter({ schema: 1, op, input: { header: s.wire } })),
      )
      results.forEach((result, i) => {
        const s = scenarios[i]
        if (s.tests.parse === true) expect(result.ok).toBe(true)
        else expect(result).toMatchObject({ ok: false, error: { type: s.tests.parse.error_type } })
      })
    }
  })

  it('answers unknown operations with unsupported_operation', async () => {
    expect(await callAdapter({ schema: 1, op: 'tempo.receipt.verify', input: {} })).toMatchObject({
      ok: false,
      error: { type: 'unsupported_operation' },
    })
  })
})

describe.skipIf(!built)('mppkit inspect', () => {
  let server: http.Server
  let url: string
  beforeAll(async () => {
    const rail = createTestRail()
    const mpp = createServer({
      realm: 'cli.test',
      secrets: ['cli-secret-0123456789abcdefghijklmnopq'],
      methods: [rail.server()],
    })
    server = http.createServer(
      toNodeListener(
        mpp.protect(
          {
            offers: [
              {
                method: 'test',
                description: 'Weather report',
                request: { amount: '2500', currency: 'usd', recipient: 'acct_1' },
              },
            ],
          },
          () => new Response('ok'),
        ),
      ),
    )
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/weather`
  })
  afterAll(() => new Promise((resolve) => server.close(resolve)))

  it('fetches a URL and shows its 402 offers', async () => {
    const { stdout } = await run('node', [cliPath, 'inspect', url])
    expect(stdout).toContain('402 Payment Required')
    expect(stdout).toContain('test/charge  realm=cli.test')
    expect(stdout).toContain('amount      2500 (base units) of usd')
    expect(stdout).toContain('description Weather report')
  })

  it('decodes a credential and redacts sensitive payload fields', async () => {
    const token = Buffer.from(
      JSON.stringify({
        challenge: { id: 'x', realm: 'r', method: 'lightning', intent: 'charge', request: 'e30' },
        payload: { preimage: 'ab'.repeat(32) },
      }),
    ).toString('base64url')
    const { stdout } = await run('node', [cliPath, 'inspect', `Authorization: Payment ${token}`])
    expect(stdout).toContain('Payment credential:')
    expect(stdout).toContain('<redacted 64 chars')
    expect(stdout).not.toContain('ab'.repeat(32))
    // A signed transaction (Solana pull, Tempo open) is spendable by whoever holds it: redacted too.
    const pull = Buffer.from(
      JSON.stringify({
        challenge: { id: 'x', realm: 'r', method: 'solana', intent: 'charge', request: 'e30' },
        payload: { type: 'transaction', transaction: 'Q'.repeat(300) },
      }),
    ).toString('base64url')
    const shown = (await run('node', [cliPath, 'inspect', `Authorization: Payment ${pull}`])).stdout
    expect(shown).toContain('<redacted 300 chars')
    expect(shown).not.toContain('Q'.repeat(300))
  })

  it('refuses a URL carrying credentials, sends nothing and never prints the password', async () => {
    let requests = 0
    const probe = http.createServer((_, res) => {
      requests++
      res.end()
    })
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
    const { port } = probe.address() as AddressInfo
    try {
      for (const target of [
        `http://agent:hunter2secret@127.0.0.1:${port}`,
        `http://agent:hunter2secret@127.0.0.1:${port}/x`,
      ]) {
        const failure = await run('node', [cliPath, 'inspect', target]).catch((e) => e)
        expect(failure.code, target).toBe(2)
        expect(failure.stderr).toBe(
          'mppkit inspect: a URL with credentials (user:password@) is refused; nothing was sent\n',
        )
        expect(`${failure.stdout}${failure.stderr}`).not.toContain('hunter2')
      }
      expect(requests).toBe(0)
    } finally {
      probe.close()
    }
  })

  it('exits non-zero on garbage', async () => {
    await expect(run('node', [cliPath, 'inspect', 'hello'])).rejects.toMatchObject({ code: 1 })
  })

  it('refuses unknown options and commands with exit code 2', async () => {
    await expect(run('node', [cliPath, 'inspect', url, '--revael'])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^mppkit inspect: unknown option --revael\n/),
    })
    await expect(run('node', [cliPath, 'pai', url])).rejects.toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^mppkit: unknown command pai\n/),
    })
  })

  it('`mppkit reclaim` runs the Tempo rail CLI: its help, and a usage error that echoes nothing', async () => {
    const help = await run('node', [cliPath, 'reclaim', '--help'])
    expect(help.stdout).toMatch(/^mppkit reclaim --channel <0x…> --escrow <0x…> \[options\]/)
    expect(help.stdout).toContain('\nmppkit reclaim --all [--escrow <0x…>] [options]\n')
    const secretish = `0x${'7'.repeat(63)}`
    const refused = (await run('node', [
      cliPath,
      'reclaim',
      '--channel',
      secretish,
      '--escrow',
      `0x${'1'.repeat(40)}`,
    ]).catch((error: unknown) => error)) as { code: number; stderr: string }
    expect(refused.code).toBe(2)
    expect(refused.stderr).toMatch(/^mppkit reclaim: --channel takes a channel id .*\(not shown\)\n/)
    expect(refused.stderr).not.toContain(secretish.slice(2))
    const usage = await run('node', [cliPath, '--help'])
    expect(usage.stdout).toContain('mppkit reclaim --channel <0x…> --escrow <0x…>')
    expect(usage.stdout).toContain('mppkit reclaim --all | --list [--escrow <0x…>]')
  })

  it('`mppkit close` runs the Tempo rail CLI: its help, and usage errors that echo nothing', async () => {
    const help = await run('node', [cliPath, 'close', '--help'])
    expect(help.stdout).toMatch(/^mppkit close --channel-file <path> \[<url>\] \[options\]/)
    const secretish = `0x${'7'.repeat(64)}`
    const missing = (await run('node', [cliPath, 'close', '--key', secretish], {
      env: { ...process.env, MPPKIT_CHANNEL_FILE: '' },
    }).catch((error: unknown) => error)) as { code: number; stderr: string }
    expect(missing.code).toBe(2)
    expect(missing.stderr).toMatch(/^mppkit close: missing --channel-file or MPPKIT_CHANNEL_FILE\n/)
    expect(missing.stderr).not.toContain(secretish.slice(2))
    const extra = (await run('node', [
      cliPath,
      'close',
      secretish,
      secretish,
      '--channel-file',
      'x.json',
    ]).catch((error: unknown) => error)) as { code: number; stderr: string }
    expect(extra.code).toBe(2)
    expect(extra.stderr).toMatch(/^mppkit close: give at most one <url> \(2 given; not shown\)\n/)
    expect(extra.stderr).not.toContain(secretish.slice(2))
    const usage = await run('node', [cliPath, '--help'])
    expect(usage.stdout).toContain('mppkit close --channel-file <path> [<url>]')
  })

  it('names the cause when the server is down (not `fetch failed`)', async () => {
    const probe = http.createServer()
    probe.listen(0, '127.0.0.1')
    await once(probe, 'listening')
    const { port } = probe.address() as AddressInfo
    await new Promise((resolve) => probe.close(resolve))
    await expect(run('node', [cliPath, 'inspect', `http://127.0.0.1:${port}/x`])).rejects.toMatchObject({
      code: 1,
      stderr: `mppkit inspect: could not fetch http://127.0.0.1:${port}/x: ECONNREFUSED 127.0.0.1:${port}\n`,
    })
  })
})
