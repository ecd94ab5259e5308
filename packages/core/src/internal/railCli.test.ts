import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import * as Challenge from '../Challenge.js'
import { type OptionSpec, parseArgs } from '../cli/args.js'
import { guard } from '../cli/guard.js'
import { commonOptions, type Defaults, parseCommand, printResponse, runCommand } from '../cli/rail.js'
import { create as createClient } from '../client/Client.js'
import { toNodeListener } from '../server/node.js'
import { create as createPaidServer } from '../server/Server.js'
import { createTestRail, type TestRail } from '../testing/TestMethod.js'
import { closeCommand, type PayIo, payCommand, type RailCli, reclaimCommand } from './railCli.js'

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

describe('mppkit pay with a rail CLI that shows and asks nothing itself', () => {
  // A paid resource whose price the server changes after the probe: `1` for the first unpaid request,
  // `later` for every one after it (the rail's own fetch).
  async function repricing(later: string, currencies: readonly string[] = ['usd']) {
    const rail = createTestRail()
    const server = createPaidServer({
      realm: 'shop',
      secrets: ['rail-cli-secret-0123456789abcdefghij'],
      methods: [rail.server()],
    })
    let unpaid = 0
    const handler = server.protect(
      {
        offers: currencies.map((currency) => ({
          method: 'test',
          request: (request: Request) => {
            if (!request.headers.has('authorization') && currency === currencies[0]) unpaid++
            return { amount: unpaid <= 1 ? '1' : later, currency, recipient: 'merchant' }
          },
        })),
      },
      () => new Response('paid'),
    )
    const http = createServer(toNodeListener(handler))
    servers.push(http)
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    return { rail, url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/item` }
  }

  // A third-party rail CLI built on `@mppkit/core/cli` as documented (reads commonOptions, applies the
  // guard), exporting `options` but no `defaults`: it relies on `mppkit pay` to show and ask. Its own cap
  // is generous; `--max-amount` lowers it.
  function thirdParty(rail: TestRail, exported = true) {
    const received: string[][] = []
    const defaults: Defaults = { cap: () => 10n ** 12n, confirmAbove: () => undefined }
    const cli: RailCli = {
      ...(exported ? { options: {} } : {}),
      pay: async (argv, io) => {
        received.push(argv)
        const out = io ?? { stdout: () => {}, stderr: () => {} }
        return runCommand(out, 'usage', async () => {
          const command = parseCommand(argv, {}, defaults)!
          const client = createClient({
            methods: [guard(rail.client(), command.limits, { announce: () => {} })],
          })
          return printResponse(await client.fetch(command.url, command.init), out)
        })
      },
    }
    return { cli, received }
  }

  async function pay(argv: string[], cli: RailCli, answer = true) {
    const out = { stdout: '', stderr: '' }
    const asked: string[] = []
    const io: PayIo = {
      stdout: (t) => (out.stdout += t),
      stderr: (t) => (out.stderr += t),
      confirm: async (question) => {
        asked.push(question)
        return answer
      },
    }
    const code = await payCommand(argv, { io, load: async (name) => (name === 'test' ? cli : undefined) })
    return { code, asked, ...out }
  }

  it("passes what the person confirmed as the rail's caps: a price raised after the probe is refused, nothing paid", async () => {
    const { rail, url } = await repricing('1000000')
    const { cli, received } = thirdParty(rail)
    const result = await pay([url], cli)
    expect(result.asked).toEqual(['mppkit pay: pay this'])
    expect(received).toEqual([[url, '--max-amount=1', '--currency=usd']])
    expect(result.code).toBe(1)
    expect(result.stderr).toMatchInlineSnapshot(`
      "mppkit pay: test/charge asks 1 usd (smallest unit) to merchant (realm shop)
      mppkit pay: refusing to pay 1000000 base units of usd: above the cap of 1 base units; raise it with --max-amount <base units>
      "
    `)
    expect(rail.transfers.size).toBe(0)

    // The price confirmed is the price paid.
    const same = await repricing('1')
    const honest = thirdParty(same.rail)
    const paid = await pay([same.url], honest.cli)
    expect(paid).toMatchObject({ code: 0, stdout: 'paid' })
    expect([...same.rail.transfers.values()].map((t) => t.amount)).toEqual(['1'])
  })

  it('keeps a lower --max-amount and the --currency given, and asks only about the offers in it', async () => {
    const { rail, url } = await repricing('1', ['usd', 'eur'])
    const { cli, received } = thirdParty(rail)
    const result = await pay([url, '--currency', 'eur', '--max-amount', '0', '--'], cli)
    expect(result.stderr.split('\n')[0]).toBe(
      'mppkit pay: test/charge asks 1 eur (smallest unit) to merchant (realm shop)',
    )
    expect(result.asked).toHaveLength(1)
    // Before the `--` that ends the options; the smaller cap of the two.
    expect(received).toEqual([[url, '--currency', 'eur', '--max-amount', '0', '--max-amount=0', '--']])
    expect(result.code).toBe(1)
    expect(rail.transfers.size).toBe(0)
  })

  it('asks nothing it could not hold the rail to: offers in several currencies, or a rail without `options`; --yes still pays', async () => {
    const several = await repricing('1', ['usd', 'eur'])
    const mixed = thirdParty(several.rail)
    const refused = await pay([several.url], mixed.cli)
    expect(refused.code).toBe(1)
    expect(refused.asked).toEqual([])
    expect(refused.stderr.split('\n')[2]).toBe(
      'mppkit pay: not paid: a confirmation here could not cap what the rail pays (the offers are in 2 ' +
        'currencies (usd, eur): choose one with --currency <id>); check the offer(s) above and run again with --yes',
    )
    expect(mixed.received).toEqual([])

    const { rail, url } = await repricing('1')
    const opaque = thirdParty(rail, false)
    const unread = await pay([url], opaque.cli)
    expect(unread.code).toBe(1)
    expect(unread.asked).toEqual([])
    expect(unread.stderr).toContain(
      "(the test rail's CLI exports no `options` to pass --max-amount and --currency with)",
    )
    expect(opaque.received).toEqual([])
    // With --yes nobody confirms anything: the rail pays within its own caps, as before.
    expect(await pay([url, '--yes'], opaque.cli)).toMatchObject({ code: 0, asked: [] })
    expect(opaque.received).toEqual([[url]])
    expect(rail.transfers.size).toBe(1)
  })

  it('asks nothing about a session offer: its deposit is shown, and no cap passed here would hold it', async () => {
    const http = createServer((_req, res) => {
      const challenge: Challenge.Challenge = {
        id: 'ch_session',
        realm: 'shop',
        method: 'test',
        intent: 'session',
        request: { amount: '1', currency: 'usd', depositAmount: '1000000' },
      }
      res.writeHead(402, { 'www-authenticate': Challenge.format(challenge) }).end()
    })
    servers.push(http)
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/item`
    const { cli, received } = thirdParty(createTestRail())
    const result = await pay([url], cli)
    expect(result.code).toBe(1)
    expect(result.asked).toEqual([])
    expect(received).toEqual([])
    expect(result.stderr).toMatchInlineSnapshot(`
      "mppkit pay: test/session asks 1 usd (smallest unit), deposit 1000000 (realm shop)
      mppkit pay: not paid: a confirmation here could not cap what the rail pays (a session offer pays more than its amount (a deposit, top-ups), which --max-amount does not cap); check the offer(s) above and run again with --yes
      "
    `)
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

describe('closeCommand', () => {
  const capture = () => {
    const out = { stdout: '', stderr: '' }
    const io: PayIo = { stdout: (t) => (out.stdout += t), stderr: (t) => (out.stderr += t) }
    return { out, io }
  }
  // Each rail's CLI records the close it ran.
  const rails = () => {
    const calls: { rail: string; argv: string[] }[] = []
    const loaded: string[] = []
    const load = async (name: string): Promise<RailCli> => {
      loaded.push(name)
      return {
        pay: async () => 9,
        close: async (argv) => {
          calls.push({ rail: name, argv })
          return 0
        },
      }
    }
    return { calls, loaded, load }
  }
  const withEnv = async <T>(env: Record<string, string | undefined>, body: () => Promise<T>): Promise<T> => {
    const saved = { ...process.env }
    for (const [name, value] of Object.entries(env))
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    try {
      return await body()
    } finally {
      process.env = saved
    }
  }
  const noFiles = { MPPKIT_CHANNEL_FILE: undefined, MPPKIT_SESSION_FILE: undefined }

  it('runs the close of the rail whose file flag is given: --channel-file Tempo, --session-file Lightning', async () => {
    for (const [argv, rail] of [
      [['--channel-file', 'c.json'], 'tempo'],
      [['--channel-file=c.json', 'https://api.example/x'], 'tempo'],
      [['--session-file', 's.json', '--network', 'regtest'], 'lightning'],
      [['https://api.example/x', '--session-file=s.json'], 'lightning'],
    ] as const) {
      const { out, io } = capture()
      const { calls, loaded, load } = rails()
      // The other rail's file in the environment does not matter once a flag names one.
      const env = { MPPKIT_CHANNEL_FILE: 'c.json', MPPKIT_SESSION_FILE: 's.json' }
      expect(await withEnv(env, () => closeCommand([...argv], { io, load }))).toBe(0)
      expect(loaded, argv.join(' ')).toEqual([rail])
      expect(calls).toEqual([{ rail, argv }])
      expect(out.stderr).toBe('')
    }
  })

  it('without a file flag: Lightning when only MPPKIT_SESSION_FILE is set, else Tempo (as before)', async () => {
    for (const [env, rail] of [
      [noFiles, 'tempo'],
      [{ ...noFiles, MPPKIT_SESSION_FILE: 's.json' }, 'lightning'],
      [{ ...noFiles, MPPKIT_CHANNEL_FILE: 'c.json' }, 'tempo'],
      [{ MPPKIT_CHANNEL_FILE: 'c.json', MPPKIT_SESSION_FILE: 's.json' }, 'tempo'],
    ] as const) {
      const { calls, load } = rails()
      expect(await withEnv(env, () => closeCommand(['--help'], { io: capture().io, load }))).toBe(0)
      expect(calls, JSON.stringify(env)).toEqual([{ rail, argv: ['--help'] }])
    }
  })

  it('exits 2 when both file flags are given, loading no rail', async () => {
    const { out, io } = capture()
    const { loaded, load } = rails()
    expect(await closeCommand(['--channel-file', 'c.json', '--session-file', 's.json'], { io, load })).toBe(2)
    expect(loaded).toEqual([])
    expect(out.stderr.split('\n')[0]).toBe(
      'mppkit close: give --channel-file (Tempo channels) or --session-file (Lightning sessions), not both',
    )
    expect(out.stderr).toContain('mppkit close --session-file <path> [<url>] [options]')
  })

  it('exits 2 with an install hint when the chosen rail is missing, or has no close', async () => {
    const missing = capture()
    expect(
      await closeCommand(['--session-file', 's.json'], { io: missing.io, load: async () => undefined }),
    ).toBe(2)
    expect(missing.out.stderr).toBe(
      'mppkit close: the lightning rail is not installed\nhint: npm install @mppkit/method-lightning\n',
    )
    const old = capture()
    const payOnly = async () => ({ pay: async () => 0 })
    expect(await closeCommand(['--session-file', 's.json'], { io: old.io, load: payOnly })).toBe(2)
    expect(old.out.stderr).toMatch(
      /^mppkit close: the installed @mppkit\/method-lightning has no close command/,
    )
    const tempo = capture()
    expect(
      await withEnv(noFiles, () =>
        closeCommand(['--key', 'k'], { io: tempo.io, load: async () => undefined }),
      ),
    ).toBe(2)
    expect(tempo.out.stderr).toBe(
      'mppkit close: the tempo rail is not installed\nhint: npm install @mppkit/method-tempo\n',
    )
  })
})
