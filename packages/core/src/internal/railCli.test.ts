import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { type OptionSpec, parseArgs } from '../cli/args.js'
import { commonOptions } from '../cli/rail.js'
import { type PayIo, payCommand, type RailCli, reclaimCommand } from './railCli.js'

type Seen = {
  host: 'api' | 'rpc'
  method: string
  path: string
  authorization?: string
  trace?: string
  body: string
}

const seen: Seen[] = []
const servers: Server[] = []
let api: string
let rpc: string

async function listen(host: Seen['host'], answer: (response: ServerResponse) => void): Promise<string> {
  const server = createServer((request: IncomingMessage, response) => {
    let body = ''
    request.on('data', (chunk) => (body += chunk))
    request.on('end', () => {
      seen.push({
        host,
        method: request.method!,
        path: request.url!,
        ...(request.headers.authorization ? { authorization: request.headers.authorization } : {}),
        ...(request.headers['x-trace'] ? { trace: String(request.headers['x-trace']) } : {}),
        body,
      })
      answer(response)
    })
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

beforeAll(async () => {
  api = await listen('api', (response) => {
    response.writeHead(402, {
      'www-authenticate': 'Payment id="x", realm="r", method="tempo", intent="charge", request="e30"',
    })
    response.end('{}')
  })
  rpc = await listen('rpc', (response) => {
    response.writeHead(200, { 'content-type': 'application/json' })
    response.end('{"jsonrpc":"2.0","id":1,"result":"0x1079"}')
  })
})
afterAll(async () => {
  for (const server of servers) await new Promise((resolve) => server.close(resolve))
})
beforeEach(() => {
  seen.length = 0
})

// A rail as this repository's are (`defaults`: it shows and asks itself) that records what it is handed.
function fakeRail(options: OptionSpec, exported: boolean) {
  const paid: string[][] = []
  const cli: RailCli & { defaults: object } = {
    defaults: {},
    ...(exported ? { options } : {}),
    pay: async (argv) => {
      paid.push(argv)
      return 0
    },
  }
  return { cli, paid }
}

async function run(argv: string[], rail: RailCli) {
  const out = { stdout: '', stderr: '' }
  const io: PayIo = { stdout: (t) => (out.stdout += t), stderr: (t) => (out.stderr += t) }
  const code = await payCommand(argv, { io, load: async (name) => (name === 'tempo' ? rail : undefined) })
  return { code, ...out }
}

const tempo = { '--rpc': { name: 'rpc', value: true }, '--key': { name: 'key', value: true } } as const

describe('mppkit pay', () => {
  it.each([
    ['read with the rails options', [], false],
    ['read with the options of --rail tempo', ['--rail', 'tempo'], true],
    ['--rail tempo without exported options', ['--rail', 'tempo'], false],
  ])('probes the URL, not the value of --rpc, and sends -H there only (%s)', async (_, rail, exported) => {
    const { cli, paid } = fakeRail(tempo, exported)
    const rpcUrl = `${rpc}/v1/RPC-API-KEY`
    const argv = [...rail, '--rpc', rpcUrl, '-H', 'Authorization: Bearer USER-API-TOKEN', `${api}/paid`]
    const result = await run(argv, cli)
    expect(result).toMatchObject({ code: 0, stdout: '' })
    expect(seen).toEqual([
      { host: 'api', method: 'GET', path: '/paid', authorization: 'Bearer USER-API-TOKEN', body: '' },
    ])
    // The rail pays the URL it was probed for.
    expect(paid.map((argv) => parseArgs(argv, { ...tempo, ...commonOptions }).positionals)).toEqual([
      [`${api}/paid`],
    ])
  })

  it("takes each rail's value-taking options for what they are: --rpc, --rpc-url, --api-base, --lnd-socket", async () => {
    const { cli } = fakeRail(tempo, false)
    for (const flag of ['--rpc', '--rpc-url', '--api-base', '--lnd-socket']) {
      seen.length = 0
      const result = await run([flag, `${rpc}/secret`, `${api}/paid`], cli)
      expect(result.code, flag).toBe(0)
      expect(seen.map((s) => `${s.host} ${s.path}`)).toEqual(['api /paid'])
    }
  })

  it('probes the request that is paid: -X, -d and -H in their --flag=value spellings too', async () => {
    const { cli } = fakeRail(tempo, false)
    const argv = [
      `${api}/paid`,
      '--method=PUT',
      '--data=hello',
      '--header=X-Trace: 7',
      '-H',
      'Authorization: a',
    ]
    expect((await run(argv, cli)).code).toBe(0)
    expect(seen).toEqual([
      { host: 'api', method: 'PUT', path: '/paid', authorization: 'a', trace: '7', body: 'hello' },
    ])
  })

  it('fetches nothing when it cannot tell whether an unknown flag takes the URL-looking argument as its value', async () => {
    const { cli, paid } = fakeRail(tempo, false)
    const result = await run(['--rpc-endpoint', `${rpc}/secret`, `${api}/paid`], cli)
    expect(result.code).toBe(2)
    expect(result.stderr.split('\n')[0]).toBe(
      'mppkit pay: cannot tell whether --rpc-endpoint takes a value or the argument after it is <url>: ' +
        'write --rpc-endpoint=<value>, or give <url> before it',
    )
    expect(seen).toEqual([])
    expect(paid).toEqual([])
    // After the URL, or as --flag=value, the unknown flag is the rail's to read (or refuse).
    expect((await run([`${api}/paid`, '--rpc-endpoint', `${rpc}/secret`], cli)).code).toBe(0)
    expect((await run([`--rpc-endpoint=${rpc}/secret`, `${api}/paid`], cli)).code).toBe(0)
    expect(seen.map((s) => `${s.host} ${s.path}`)).toEqual(['api /paid', 'api /paid'])
  })

  it('never echoes a key given without its flag, and fetches nothing', async () => {
    const key = '0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318'
    const { cli, paid } = fakeRail(tempo, false)
    for (const argv of [[`${api}/paid`, '--yes', key], [key], ['--rail', 'tempo', key]]) {
      const result = await run(argv, cli)
      expect(result.code, argv.join(' ')).toBe(2)
      expect(result.stderr).not.toContain(key.slice(2, 20))
    }
    expect(seen).toEqual([])
    expect(paid).toEqual([])
  })

  it('refuses a URL carrying credentials (user:password@): nothing fetched or paid, the password never printed', async () => {
    const { cli, paid } = fakeRail(tempo, false)
    const withCredentials = api.replace('http://', 'http://agent:hunter2secret@')
    for (const argv of [[`${withCredentials}/paid`], ['--rail', 'tempo', `${withCredentials}/paid`]]) {
      const result = await run(argv, cli)
      expect(result.code, argv.join(' ')).toBe(2)
      expect(result.stderr.split('\n')[0]).toBe(
        'mppkit pay: <url> must not carry credentials (user:password@); not shown',
      )
      expect(`${result.stdout}${result.stderr}`).not.toContain('hunter2')
    }
    expect(seen).toEqual([])
    expect(paid).toEqual([])
  })
})

describe('reclaimCommand', () => {
  const capture = () => {
    const out = { stdout: '', stderr: '' }
    const io: PayIo = { stdout: (t) => (out.stdout += t), stderr: (t) => (out.stderr += t) }
    return { out, io }
  }

  it('runs the Tempo rail CLI reclaim with the arguments as given', async () => {
    const { out, io } = capture()
    const calls: { rail: string; argv: string[] }[] = []
    const cli: RailCli = {
      pay: async () => 9,
      reclaim: async (argv) => {
        calls.push({ rail: 'tempo', argv })
        return 0
      },
    }
    const argv = ['--channel', `0x${'ab'.repeat(32)}`, '--escrow', `0x${'cd'.repeat(20)}`]
    const loaded: string[] = []
    const code = await reclaimCommand(argv, {
      io,
      load: async (name) => {
        loaded.push(name)
        return cli
      },
    })
    expect(code).toBe(0)
    expect(loaded).toEqual(['tempo'])
    expect(calls).toEqual([{ rail: 'tempo', argv }])
    expect(out.stderr).toBe('')
  })

  it('exits 2 with an install hint when the Tempo rail is missing, or has no reclaim', async () => {
    const missing = capture()
    expect(await reclaimCommand([], { io: missing.io, load: async () => undefined })).toBe(2)
    expect(missing.out.stderr).toBe(
      'mppkit reclaim: the tempo rail is not installed\nhint: npm install @mppkit/method-tempo\n',
    )
    const old = capture()
    expect(await reclaimCommand([], { io: old.io, load: async () => ({ pay: async () => 0 }) })).toBe(2)
    expect(old.out.stderr).toMatch(
      /^mppkit reclaim: the installed @mppkit\/method-tempo has no reclaim command/,
    )
  })
})
